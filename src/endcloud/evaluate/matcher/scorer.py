"""`match`: the trained matcher as a Scorer - its calibrated score of (query, reply) in [0, 1].

    s = get_scorer("match")                      # the shipped matcher, or $ENDCLOUD_MATCHER
    s.score(["发货了吗"], ["亲，今天下午发出哦"])
    get_scorer("match", path="~/my-matcher")     # a folder `endcloud evaluate train-matcher` wrote
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from endcloud.evaluate.encoders import normalise
from endcloud.evaluate.matcher.artefact import TrainedMatcher, resolve_path
from endcloud.evaluate.scoring import Scorer


class TrainedMatchScorer(Scorer):
    """Calibrated score of the trained matcher; an empty side gives 0.0 like every scorer."""

    name = "match"

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        self.path = resolve_path(path)
        self.matcher = TrainedMatcher.load(self.path, device)

    def raw(self, left: list[str], right: list[str]) -> np.ndarray:
        if len(left) != len(right):
            raise ValueError(f"{self.name}: {len(left)} left texts but {len(right)} right texts")
        return self.matcher.raw(left, right)

    def score(self, left: list[str], right: list[str]) -> np.ndarray:
        if not left:
            return np.zeros(0)
        raw = self.raw(left, right)
        empty = np.array([not normalise(x) or not normalise(y) for x, y in zip(left, right)], dtype=bool)
        return np.where(empty, 0.0, self.matcher.calibration(raw))

    def describe(self) -> dict[str, Any]:
        about = {k: v for k, v in self.matcher.about.items() if k != "fillers"}
        return {"name": self.name, "path": str(self.path), **about,
                "backbone": self.matcher.backbone.config(),
                "calibration": asdict(self.matcher.calibration)}
