"""What every scorer is: `Scorer` (a pair of texts -> [0, 1]) and the Platt `Calibration` map
from a raw cosine to [0, 1], with its fit. The scorers themselves, by name: `scorers.py`; the
trained matcher: `matcher/`."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class Scorer(ABC):
    """Scores pairs: `score(left, right)[i]` judges left[i] against right[i], in [0, 1]."""

    name: str = ""

    @abstractmethod
    def score(self, left: list[str], right: list[str]) -> np.ndarray:
        """(N,) float64 in [0, 1]; an empty text on either side gives 0.0."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass
class Calibration:
    """Platt map from a raw cosine to [0, 1]: sigmoid(a·cos + b). Identity when `kind` says so."""

    kind: str = "platt"  # "platt" | "identity"
    a: float = 1.0
    b: float = 0.0
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __call__(self, cos: np.ndarray) -> np.ndarray:
        if self.kind == "identity":
            return np.clip(cos, 0.0, 1.0)
        return 1.0 / (1.0 + np.exp(-(self.a * cos + self.b)))

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n",
                              encoding="utf-8")


def fit_platt(pos: np.ndarray, neg: np.ndarray, iters: int = 50, l2: float = 1e-3) -> tuple[float, float]:
    """(a, b) of the logistic regression label ~ sigmoid(a·x + b), both classes weighted equally.

    Newton's method on two parameters (no scikit-learn needed); a tiny ridge keeps it finite when
    the classes separate perfectly.
    """
    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    X = np.stack([x, np.ones_like(x)], axis=1)  # (N, 2)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-X @ theta))
        grad = X.T @ (w * (p - y)) + l2 * theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])
