"""The gate: candidate vs champion on a fixed held-out set plus a regression set.

    result = gate(cfg, base_model, champion_dir_or_None, candidate_dir, regression_rows, trained_on)
    result.promote, result.reason

Both adapters answer every held-out query greedily; each reply gets its Final (Eq. 1 against the
held-out reference). Promote only if
  * the held-out set was never trained on (any overlap refuses: the comparison would be biased),
  * the paired difference of mean Final (candidate - champion) clears `delta`: by default its
    bootstrap 95 % lower bound must be > delta (= 0), i.e. the gain is not noise,
  * the regression set's mean Final drops by no more than `regression_tolerance`,
  * no more replies than the champion's contain personal data (the PII masker finds a value) or
    match an unsafe pattern.
Greedy replies are a function of (base model, adapter weights, conversations, generation
settings); with `cache_dir` they are kept under that key, so the champion, unchanged since the
last round, is not asked the same held-out questions again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from endcloud.evolve.config import GateConfig
from endcloud.runs import atomic_write


@dataclass
class Side:
    """One model's replies and scores on the held-out and regression sets."""

    finals: list[float]
    regression: list[float]
    pii: int
    unsafe: int
    replies: list[str] = field(default_factory=list)
    ungrounded: float = 0.0  # share of held-out replies with a fact the reference does not support

    @property
    def mean(self) -> float:
        return float(np.mean(self.finals)) if self.finals else 0.0

    @property
    def regression_mean(self) -> float:
        return float(np.mean(self.regression)) if self.regression else 0.0


@dataclass
class GateResult:
    promote: bool
    reason: str
    champion_final: float
    candidate_final: float
    diff_mean: float
    diff_lower: float | None
    n_heldout: int
    n_regression: int
    champion_regression: float
    candidate_regression: float
    champion_pii: int
    candidate_pii: int
    champion_unsafe: int
    candidate_unsafe: int
    champion_ungrounded: float = 0.0
    candidate_ungrounded: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pairs(path: str | Path, limit: int = 0) -> list[tuple[list[dict[str, str]], str]]:
    """(messages up to the query, reference reply) per line of a messages JSONL."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            msgs = json.loads(line)["messages"]
            out.append(([m for m in msgs[:-1] if m["role"] != "system"], msgs[-1]["content"]))
            if limit and len(out) >= limit:
                break
    return out


def norm_query(messages: list[dict[str, str]]) -> str:
    return " ".join(messages[-1]["content"].split()).lower()


def bootstrap_lower(diffs: np.ndarray, n: int, confidence: float, seed: int) -> float:
    """The (1 - confidence) / 2 quantile of the bootstrapped mean of `diffs`."""
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n, len(diffs)))].mean(axis=1)
    return float(np.quantile(means, (1.0 - confidence) / 2.0))


def decide(cfg: GateConfig, champ: Side, cand: Side, leaked: int = 0) -> GateResult:
    """The decision and its reason, from both sides' scores (pure; unit-tested on its own)."""
    d = np.asarray(cand.finals) - np.asarray(champ.finals)
    mean = float(d.mean()) if len(d) else 0.0
    lower = bootstrap_lower(d, cfg.bootstrap, cfg.confidence, cfg.seed) if cfg.bootstrap and len(d) else None
    reg_drop = champ.regression_mean - cand.regression_mean if cand.regression else 0.0
    if leaked:
        promote, reason = False, f"{leaked} held-out queries were in the training data"
    elif not len(d):
        promote, reason = False, "empty held-out set"
    elif lower is not None and lower <= cfg.delta:
        promote, reason = False, (f"no clear gain: mean diff {mean:+.4f}, bootstrap "
                                  f"{cfg.confidence:.0%} lower bound {lower:+.4f} <= {cfg.delta}")
    elif lower is None and mean <= cfg.delta:
        promote, reason = False, f"no gain: mean diff {mean:+.4f} <= {cfg.delta}"
    elif reg_drop > cfg.regression_tolerance:
        promote, reason = False, (f"regression set dropped {reg_drop:.4f} > "
                                  f"{cfg.regression_tolerance}")
    elif cand.pii > champ.pii:
        promote, reason = False, f"PII regression: {cand.pii} replies with personal data vs {champ.pii}"
    elif cand.unsafe > champ.unsafe:
        promote, reason = False, f"safety regression: {cand.unsafe} unsafe replies vs {champ.unsafe}"
    elif cand.ungrounded - champ.ungrounded > cfg.ungrounded_tolerance:
        promote, reason = False, (f"groundedness regression: {cand.ungrounded:.1%} of replies state a fact "
                                  f"the reference does not support vs {champ.ungrounded:.1%} "
                                  f"(tolerance {cfg.ungrounded_tolerance:.0%})")
    else:
        promote = True
        reason = f"mean Final {champ.mean:.4f} -> {cand.mean:.4f} ({mean:+.4f}" + (
            f", lower bound {lower:+.4f})" if lower is not None else ")")
    return GateResult(promote, reason, champ.mean, cand.mean, mean, lower, len(d),
                      len(cand.regression), champ.regression_mean, cand.regression_mean,
                      champ.pii, cand.pii, champ.unsafe, cand.unsafe, champ.ungrounded, cand.ungrounded)


def side(cfg: GateConfig, replies: list[str], heldout: list[tuple[list[dict], str]],
         regression: list[tuple[list[dict], str]]) -> Side:
    """Score one model's replies (held-out first, then regression)."""
    from endcloud.data.privacy import Masker
    from endcloud.evaluate.stage import score_pairs

    pairs = heldout + regression
    scored = score_pairs([m[-1]["content"] for m, _ in pairs], replies, [r for _, r in pairs],
                         cfg.similarity, cfg.match, cfg.alpha, cfg.theta)
    finals = [s["final"] for s in scored]
    masker = Masker()
    pii = sum(1 for r in replies if masker.mask(r).spans)
    unsafe_re = [re.compile(p) for p in cfg.unsafe_patterns]
    unsafe = sum(1 for r in replies if any(p.search(r) for p in unsafe_re))
    n = len(heldout)
    ungrounded = float(np.mean([bool(s["unsupported"]) for s in scored[:n]])) if n else 0.0
    return Side(finals[:n], finals[n:], pii, unsafe, replies, ungrounded)


def replies_of(model_cfg: Any, adapter: Path | None, cfg: GateConfig,
               conversations: list[list[dict[str, str]]]) -> list[str]:
    """Greedy replies of the base model (+ adapter) to each conversation."""
    from endcloud.end.config import GenerateConfig
    from endcloud.end.generate import load_generator

    gen = load_generator(GenerateConfig(model=model_cfg, adapter=str(adapter) if adapter else "",
                                        max_new_tokens=cfg.max_new_tokens, temperature=0.0, top_p=1.0,
                                        max_input_tokens=cfg.max_input_tokens, seed=cfg.seed))
    out: list[str] = []
    for i in range(0, len(conversations), cfg.batch_size):
        out += gen.generate(conversations[i: i + cfg.batch_size])
    return out


def reply_key(model_cfg: Any, adapter: Path | None, cfg: GateConfig,
              conversations: list[list[dict[str, str]]]) -> str:
    """What determines greedy replies: model config, adapter bytes, inputs, generation settings."""
    from endcloud.config import to_dict

    h = hashlib.sha256()
    h.update(json.dumps([to_dict(model_cfg), conversations, cfg.max_new_tokens,
                         cfg.max_input_tokens, cfg.batch_size, cfg.seed],
                        ensure_ascii=False, sort_keys=True, default=str).encode())
    for f in sorted(adapter.rglob("*")) if adapter is not None else []:
        if f.is_file():
            h.update(f.relative_to(adapter).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def cached_replies(model_cfg: Any, adapter: Path | None, cfg: GateConfig,
                   conversations: list[list[dict[str, str]]], cache_dir: Path | None) -> list[str]:
    """`replies_of`, kept under `reply_key` in `cache_dir` (None: no cache)."""
    if cache_dir is None:
        return replies_of(model_cfg, adapter, cfg, conversations)
    path = Path(cache_dir) / f"{reply_key(model_cfg, adapter, cfg, conversations)}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    out = replies_of(model_cfg, adapter, cfg, conversations)
    with atomic_write(path) as fh:  # two gates at once never read a half-written file
        fh.write(json.dumps(out, ensure_ascii=False))
    return out


def gate(cfg: GateConfig, model_cfg: Any, champion: Path | None, candidate: Path,
         regression: list[tuple[list[dict], str]], trained_on: set[str],
         system: str = "", cache_dir: Path | None = None) -> tuple[GateResult, dict]:
    """Evaluate both and decide; also return every reply and score (for the round folder)."""
    heldout = read_pairs(cfg.heldout, cfg.limit)
    if cfg.regression:
        regression = read_pairs(cfg.regression) + regression
    leaked = sum(1 for m, _ in heldout if norm_query(m) in trained_on)
    sys_msg = [{"role": "system", "content": system}] if system else []
    convs = [sys_msg + m for m, _ in heldout + regression]  # as served: same system prompt
    sides = {name: side(cfg, cached_replies(model_cfg, path, cfg, convs, cache_dir), heldout,
                        regression)
             for name, path in (("champion", champion), ("candidate", candidate))}
    result = decide(cfg, sides["champion"], sides["candidate"], leaked)
    detail = {name: {"finals": s.finals, "regression": s.regression, "replies": s.replies}
              for name, s in sides.items()}
    return result, detail
