"""A trained matcher on disk and in memory: `<dir>/matcher.json` (backbone, hyper-parameters, data,
calibration, validation figures) beside `<dir>/weights.pt` (the trained tensors only).

Where `match` finds its weights, first hit wins: the folder a caller names (`matcher_weights`,
`--matcher-weights`), `$ENDCLOUD_MATCHER`, then the matcher shipped inside the package
(`endcloud/evaluate/matcher/shipped/`, what `endcloud evaluate train-matcher --config
configs/matcher.yaml` produced; its manifest says on what data and how it scored).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from endcloud.errors import MissingWeightsError
from endcloud.evaluate.encoders import normalise
from endcloud.evaluate.scoring import Calibration

if TYPE_CHECKING:
    from endcloud.evaluate.matcher.backbones import Backbone

SHIPPED_DIR = Path(__file__).with_name("shipped")
ENV = "ENDCLOUD_MATCHER"
FILES = ("matcher.json", "weights.pt")


def resolve_path(path: str | Path | None = None) -> Path:
    """`path`, else $ENDCLOUD_MATCHER, else the shipped matcher - and it must hold a trained matcher."""
    folder = Path(path or os.environ.get(ENV) or SHIPPED_DIR).expanduser()
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise MissingWeightsError(
            f"No trained matcher at {folder} (missing {', '.join(missing)}) - train one with: "
            f"endcloud evaluate train-matcher --config configs/matcher.yaml, or point "
            f"{ENV} / matcher_weights at its folder")
    return folder


class TrainedMatcher:
    """A backbone, its trained tensors and a calibration: the thing `match` loads."""

    def __init__(self, backbone: Backbone, calibration: Calibration, about: dict[str, Any]) -> None:
        self.backbone, self.calibration, self.about = backbone, calibration, about

    def _batch_size(self) -> int:
        return 256 if str(getattr(self.backbone, "device", "cpu")).startswith("cuda") else 32

    def cosine(self, queries: list[str], replies: list[str], batch_size: int = 0) -> np.ndarray:
        """(N,) raw cosines of query i and reply i for a bi-encoder (no gradient)."""
        import torch

        batch_size = batch_size or self._batch_size()
        self.backbone.train(False)
        with torch.no_grad():
            q = _batched(self.backbone, queries, "query", batch_size)
            p = _batched(self.backbone, replies, "passage", batch_size)
        if q.shape[1] != p.shape[1]:  # one side was all empty texts (width-1 zero rows)
            return np.zeros(len(queries))
        return np.clip(np.einsum("nd,nd->n", q, p).astype(np.float64), -1.0, 1.0)  # float noise

    def raw(self, queries: list[str], replies: list[str], batch_size: int = 0) -> np.ndarray:
        """(N,) uncalibrated scores: a cosine for a bi-encoder, a logit for a pair scorer."""
        import torch

        if hasattr(self.backbone, "score_texts"):  # frozen encodings + a head: vectorised
            self.backbone.train(False)
            q = [normalise(t)[:2000] for t in queries]
            r = [normalise(t)[:2000] for t in replies]
            with torch.no_grad():
                out = [self.backbone.score_texts(q[i: i + 512], r[i: i + 512]) for i in range(0, len(q), 512)]
            return torch.cat(out).double().numpy() if out else np.zeros(0)
        if not hasattr(self.backbone, "pair_scores"):
            return self.cosine(queries, replies, batch_size)
        batch_size = batch_size or self._batch_size()
        self.backbone.train(False)
        cut = [(normalise(q)[:2000], normalise(r)[:2000]) for q, r in zip(queries, replies)]
        uniq = sorted({c for c in cut if c[0] and c[1]}, key=lambda c: len(c[0]) + len(c[1]))
        got: dict[tuple[str, str], float] = {}
        with torch.no_grad():
            for i in range(0, len(uniq), batch_size):
                chunk = uniq[i: i + batch_size]
                logits = self.backbone.pair_scores([c[0] for c in chunk], [c[1] for c in chunk])
                got.update(zip(chunk, logits.float().cpu().numpy().tolist()))
        return np.array([got.get(c, 0.0) for c in cut], dtype=np.float64)

    def save(self, path: str | Path) -> Path:
        """Write `<path>/weights.pt` (trained tensors only) and `<path>/matcher.json`."""
        import torch

        out = Path(path).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        # a backbone may store its tensors in less precision (`save_dtype`: pair-head, float16 -
        # scores move by < 1e-4 and the shipped file halves to 1.3 MB); they load back as float32
        half = getattr(self.backbone, "save_dtype", None) == "float16"
        state = {k: (v.detach().cpu().half() if half and v.is_floating_point() and v.dim() else v.detach().cpu())
                    .contiguous() for k, v in self.backbone.trainable().items()}
        torch.save(state, out / "weights.pt")
        meta = {"backbone": self.backbone.config(), "calibration": asdict(self.calibration), **self.about}
        (out / "matcher.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", e5_file: str | Path | None = None
             ) -> "TrainedMatcher":
        """Read a saved matcher; LoRA adapters are merged into the base weights for inference."""
        import torch

        from endcloud.evaluate.matcher.backbones import build

        folder = resolve_path(path)
        meta = json.loads((folder / "matcher.json").read_text(encoding="utf-8"))
        try:
            backbone = build(meta.pop("backbone"), device, e5_file)
        except ValueError as exc:
            raise ValueError(f"{folder}/matcher.json: {exc}") from None
        backbone.load_trainable(torch.load(folder / "weights.pt", map_location=device, weights_only=True))
        backbone.merge()
        return cls(backbone, Calibration(**meta.pop("calibration")), meta)


def _batched(backbone: Backbone, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
    """(N, D) float32; empty texts give zero rows (cosine 0), like the other encoders."""
    cut = [normalise(t)[:2000] for t in texts]
    uniq = sorted({t for t in cut if t}, key=len)  # similar lengths together: less padding
    vecs: dict[str, np.ndarray] = {}
    for i in range(0, len(uniq), batch_size):
        chunk = uniq[i: i + batch_size]
        for t, v in zip(chunk, backbone.encode(chunk, kind).float().cpu().numpy()):
            vecs[t] = v
    dim = next(iter(vecs.values())).shape[0] if vecs else 1
    return np.stack([vecs.get(t, np.zeros(dim, np.float32)) for t in cut]) if cut else np.zeros((0, dim))
