"""The training recipe: setup -> contrastive steps (checkpointed) -> calibrate.

    m = train_matcher(pairs, PairHead("use"), MatcherTrainConfig(steps=3000), validation, fillers=pool)

Each step takes B pairs. A query's candidates are its real reply, the other replies of the batch
(never one of the same group or the same text), up to `hard_negatives` of its look-alikes, up to
`nonanswer_negatives` of its non-answers (echo, restatement) and `filler_negatives` stock fillers;
the loss is the softmax cross-entropy with the real reply as the target. Backbones that encode
(bi-encoders) score candidates by cos / τ; backbones that score pairs by their logits.

`checkpoint` (a file) makes a run resumable: every `checkpoint_every` steps the trainable tensors,
the optimiser, the schedule and the random state are written there (atomically), and a run that
finds one for the same configuration continues from its step.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from endcloud.evaluate.matcher.artefact import TrainedMatcher
from endcloud.evaluate.matcher.data import TrainPair
from endcloud.evaluate.scoring import Calibration, fit_platt
from endcloud.progress import progress

if TYPE_CHECKING:
    from endcloud.evaluate.matcher.backbones import Backbone


@dataclass
class MatcherTrainConfig:
    """Hyper-parameters of `train_matcher` (saved in matcher.json)."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    temperature: float = 0.05  # bi-encoders: cos / τ (e5's cosines crowd together)
    hard_negatives: int = 1  # look-alike replies per query
    nonanswer_negatives: int = 1  # its echo / restatement per query
    filler_negatives: int = 0  # stock fillers per query
    pair_negatives: int = 7  # cross-encoders: candidates per query besides the real reply
    seed: int = 0
    log_every: int = 50
    scheduler: str = "linear"  # warm-up over the first 10% of steps, then "linear" decay or "constant"
    max_seconds: float = 0.0  # stop after the step that crosses this wall time (0 = run all steps)
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MatcherTrainConfig.{name} must be > 0")
        if self.temperature <= 0:
            raise ValueError("MatcherTrainConfig.temperature must be > 0")
        if self.scheduler not in ("linear", "constant"):
            raise ValueError("MatcherTrainConfig.scheduler must be 'linear' or 'constant'")


def train_matcher(pairs: list[TrainPair], backbone: Backbone, cfg: MatcherTrainConfig | None = None,
                  validation: list[TrainPair] | None = None, about: dict[str, Any] | None = None,
                  log: Callable[[str], None] | None = print, fillers: list[str] | None = None,
                  checkpoint: str | Path | None = None) -> TrainedMatcher:
    """Tune `backbone` on (query, reply) pairs; calibrate on `validation` (or the last 10% of pairs)."""
    import torch

    cfg = cfg or MatcherTrainConfig()
    if validation is None:
        cut = max(1, len(pairs) // 10)
        pairs, validation = pairs[:-cut], pairs[-cut:]
    if len(pairs) < 2:
        raise ValueError("train_matcher needs at least 2 training pairs")
    fillers = list(fillers or [])
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    groups = backbone.param_groups(cfg.lr) if hasattr(backbone, "param_groups") else backbone.parameters()
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0 = time.perf_counter()
    spent = 0.0  # seconds of earlier runs of a resumed checkpoint

    def done_share(s: int) -> float:  # with a wall-time cap, the schedule ends when the time does
        share = s / cfg.steps
        if cfg.max_seconds > 0:
            share = max(share, (spent + time.perf_counter() - t0) / cfg.max_seconds)
        return min(1.0, share)

    decay = (lambda s: 1 - done_share(s)) if cfg.scheduler == "linear" else (lambda s: 1.0)
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * decay(s))
    table = _Features(backbone, pairs, fillers, log) if hasattr(backbone, "vectors") else None
    order: list[int] = []
    losses: list[float] = []
    start = 0
    key = _fingerprint(cfg, backbone, pairs)
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            backbone.load_trainable(state["trainable"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            rng.setstate(state["rng"])
            torch.set_rng_state(state["torch_rng"])
            start, order, losses, spent = state["step"], state["order"], state["losses"], state["seconds"]
            if log:
                log(f"resuming from {ckpt} at step {start}/{cfg.steps}")
        elif log:
            log(f"{ckpt} is from another configuration or data: starting afresh")
    backbone.train(True)
    steps_done = start
    for step in progress(range(start, cfg.steps), "matcher steps", total=cfg.steps - start, unit="step"):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(pairs)), len(pairs))
        batch = [pairs[order.pop()] for _ in range(min(cfg.batch_size, len(pairs)))]
        if table is not None:
            loss = table.loss(batch, cfg, rng)
        elif hasattr(backbone, "pair_scores"):
            loss = _pair_loss(backbone, batch, cfg, rng, fillers)
        else:
            loss = step_loss(backbone, batch, cfg, rng, fillers)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        steps_done = step + 1
        elapsed = spent + time.perf_counter() - t0
        out_of_time = cfg.max_seconds > 0 and elapsed >= cfg.max_seconds
        if log and (steps_done % cfg.log_every == 0 or steps_done == cfg.steps or out_of_time):
            log(f"step {steps_done}/{cfg.steps} loss {np.mean(losses[-cfg.log_every:]):.4f} ({elapsed:.0f}s)")
        if ckpt and (steps_done % cfg.checkpoint_every == 0 or out_of_time):
            _save_checkpoint(ckpt, {"key": key, "step": steps_done, "trainable": backbone.trainable(),
                                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                                    "order": order, "losses": losses, "seconds": elapsed})
        if out_of_time:
            break
    backbone.train(False)
    if hasattr(backbone, "set_bank"):  # the reference replies a score is centred on (PairHead)
        replies = sorted({p.reply for p in pairs})
        backbone.set_bank(random.Random(cfg.seed).sample(replies, min(256, len(replies))))
    matcher = TrainedMatcher(backbone, Calibration(), {})
    matcher.calibration = calibrate(matcher, validation, cfg.seed)
    seconds = round(spent + time.perf_counter() - t0, 1)
    tail = losses[-cfg.log_every:]
    matcher.about = {"train": {**asdict(cfg), "steps_done": steps_done, "pairs": len(pairs),
                               "seconds": seconds, "resumed_at": start or None,
                               "final_loss": round(float(np.mean(tail)), 4) if tail else None},
                     **(about or {})}
    return matcher


class _Features:
    """Frozen encodings of every text training touches, computed once (with a progress bar), so
    a step of a frozen-encoder backbone is a few matrix products."""

    def __init__(self, backbone: Backbone, pairs: list[TrainPair], fillers: list[str], log) -> None:
        import torch

        self.backbone = backbone
        queries = sorted({p.query for p in pairs})
        passages = sorted({t for p in pairs for t in (p.reply, *p.negatives, *p.nonanswers)} | set(fillers))
        self.q_index = {t: i for i, t in enumerate(queries)}
        self.p_index = {t: i for i, t in enumerate(passages)}
        self.Q = self._encode(queries, "query")
        self.P = self._encode(passages, "passage")
        self.fillers = torch.tensor([self.p_index[f] for f in fillers], dtype=torch.long)
        if log:
            log(f"encoded {len(queries)} queries and {len(passages)} replies")

    def _encode(self, texts: list[str], kind: str):
        import torch

        chunks = [texts[i: i + 512] for i in range(0, len(texts), 512)]
        rows = [self.backbone.vectors(c, kind) for c in progress(chunks, f"encoding {kind}s", unit="chunk")]
        return torch.cat(rows) if rows else torch.zeros((0, 1))

    def loss(self, batch: list[TrainPair], cfg: MatcherTrainConfig, rng: random.Random):
        import torch

        B = len(batch)
        q = self.Q[[self.q_index[p.query] for p in batch]]  # (B, D)
        own = [self.p_index[p.reply] for p in batch]
        extra = []
        for p in batch:
            ids = [self.p_index[t] for t in rng.sample(p.negatives, min(cfg.hard_negatives, len(p.negatives)))]
            ids += [self.p_index[t] for t in
                    rng.sample(p.nonanswers, min(cfg.nonanswer_negatives, len(p.nonanswers)))]
            if len(self.fillers) and cfg.filler_negatives:
                ids += self.fillers[torch.randint(len(self.fillers), (cfg.filler_negatives,))].tolist()
            extra.append(ids)
        width = max(len(x) for x in extra)
        pad = torch.full((B, width), -1, dtype=torch.long)
        for i, ids in enumerate(extra):
            pad[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        cand = torch.cat([torch.tensor(own)[None].expand(B, B), pad], 1)  # (B, B + width)
        logits = self.backbone.logits(q[:, None], self.P[cand.clamp(min=0)])
        # padding, and another pair's reply that is this pair's (same text or same group), are no negatives
        same = torch.tensor([[a.reply == b.reply or (a.group and a.group == b.group) for b in batch]
                             for a in batch])
        same.fill_diagonal_(False)
        blocked = torch.cat([same, pad < 0], 1)
        logits = logits.masked_fill(blocked, float("-inf"))
        return torch.nn.functional.cross_entropy(logits, torch.arange(B))


def _extras(p: TrainPair, cfg: MatcherTrainConfig, rng: random.Random, fillers: list[str]) -> list[str]:
    out = rng.sample(p.negatives, min(cfg.hard_negatives, len(p.negatives)))
    out += rng.sample(p.nonanswers, min(cfg.nonanswer_negatives, len(p.nonanswers)))
    if fillers:
        out += [rng.choice(fillers) for _ in range(cfg.filler_negatives)]
    return out


def step_loss(backbone: Backbone, batch: list[TrainPair], cfg: MatcherTrainConfig, rng: random.Random,
              fillers: list[str] | None = None):
    """Bi-encoder step: B queries against the batch's replies plus every query's extras (cos / τ)."""
    import torch

    queries = [p.query for p in batch]
    replies = [p.reply for p in batch]
    extra = [t for p in batch for t in _extras(p, cfg, rng, fillers or [])]
    q = backbone.encode(queries, "query")  # (B, D)
    p = backbone.encode(replies + extra, "passage")  # (B + E, D)
    logits = q @ p.T / cfg.temperature  # (B, B + E)
    # the same reply text twice in a batch (short stock replies) is not a negative of itself
    same = torch.tensor([[r == c for c in replies + extra] for r in replies], device=logits.device)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=logits.device))


def _pair_loss(backbone: Backbone, batch: list[TrainPair], cfg: MatcherTrainConfig, rng: random.Random,
               fillers: list[str] | None = None):
    """Cross-encoder step: per query, its reply among `pair_negatives` others - its extras first,
    the rest other replies of the batch (never the same text as its reply)."""
    import torch

    replies = [p.reply for p in batch]
    queries, cands = [], []
    for p in batch:
        negs = _extras(p, cfg, rng, fillers or [])[: cfg.pair_negatives]
        others = [r for r in replies if r != p.reply and r not in negs]
        negs += rng.sample(others, min(cfg.pair_negatives - len(negs), len(others)))
        negs = (negs * cfg.pair_negatives)[: cfg.pair_negatives] if negs else [""] * cfg.pair_negatives
        queries += [p.query] * (1 + cfg.pair_negatives)
        cands += [p.reply] + negs
    logits = backbone.pair_scores(queries, cands).view(len(batch), 1 + cfg.pair_negatives)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                                 device=logits.device))


def other_group_replies(pairs: list[TrainPair], seed: int = 0) -> list[str]:
    """Per pair, the reply of a random pair of another group (a 'wrong answer' of the same corpus)."""
    rng = random.Random(seed)
    n = len(pairs)
    out = []
    for p in pairs:
        for _ in range(100):
            c = pairs[rng.randrange(n)]
            if c.reply != p.reply and (not p.group or c.group != p.group):
                break
        out.append(c.reply)
    return out


def calibrate(matcher: TrainedMatcher, validation: list[TrainPair], seed: int = 0) -> Calibration:
    """Platt map on held-out pairs: the real reply (1) vs another group's reply (0)."""
    if len(validation) < 2:
        raise ValueError("calibration needs at least 2 validation pairs")
    queries = [p.query for p in validation]
    pos = matcher.raw(queries, [p.reply for p in validation])
    neg = matcher.raw(queries, other_group_replies(validation, seed))
    a, b = fit_platt(pos, neg)
    return Calibration("platt", a, b, {
        "data": "held-out validation pairs; negatives: the same queries with another session's reply",
        "positives": len(pos), "negatives": len(neg),
        "raw_mean": {"positive": round(float(pos.mean()), 4), "negative": round(float(neg.mean()), 4)}})


def _fingerprint(cfg: MatcherTrainConfig, backbone: Backbone, pairs: list[TrainPair]) -> str:
    same = {k: v for k, v in asdict(cfg).items() if k not in ("max_seconds", "log_every", "checkpoint_every")}
    h = hashlib.sha256(json.dumps([same, backbone.config()], sort_keys=True).encode())
    for p in pairs:
        h.update(p.query.encode() + b"\0" + p.reply.encode() + b"\1")
    return h.hexdigest()


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
