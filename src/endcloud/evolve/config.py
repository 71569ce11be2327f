"""Configuration of the online loop (`configs/evolve.yaml`) -> `EvolveConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from endcloud.cloud.config import CloudConfig, PromptConfig
from endcloud.config import check, store_location
from endcloud.end.config import MethodConfig, ModelConfig
from endcloud.end.config import DEFAULT_SYSTEM

UNSAFE_PATTERNS = [r"(?i)\b(idiot|stupid|shut up|damn)\b", r"傻[逼瓜]|滚开|去死|白痴"]


@dataclass
class SelectConfig:
    """Which served exchanges become training data."""

    final_threshold: float = 0.3  # the end reply's Final below this: relabel it
    max_rating: int = 2  # a customer rating <= this (or a thumbs-down): relabel it
    limit: int = 2000  # newest first, at most this many per round
    min_new: int = 1  # fewer selected items than this: the round is skipped
    relabel_ungrounded: bool = True  # also relabel end drafts with an unsupported fact or a non-answer


@dataclass
class RelabelConfig:
    """The cloud teacher (the label job: exactly-once, cached, fail-closed privacy)."""

    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(base_url="local"))
    prompt: PromptConfig = field(default_factory=lambda: PromptConfig(n_examples=0))
    examples: str = ""  # few-shot examples (messages JSONL); "" = prompt.n_examples must be 0
    max_item_failures: int = 3


@dataclass
class RetrainConfig:
    """The SFT step of a round (the end-model recipe), run in its own process."""

    from_champion: bool = True  # continue from the champion adapter (else a new one on the base)
    method: MethodConfig = field(default_factory=MethodConfig)
    natural: str = ""  # earlier natural data for replay (messages JSONL, e.g. a train split)
    replay_share: float = 0.3  # share of draws from earlier natural + generated data
    replay_max: int = 2000  # replay pool size cap (a seeded sample)
    # labels of up to N refused rounds since the champion was trained are learned again: the
    # champion never saw them, and one round's few labels rarely clear the gate alone (0 = never)
    carry_refused: int = 3
    steps: int = 200
    lr: float = 2e-4
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    batch_size: int = 4
    grad_accum: int = 1
    max_input_tokens: int = 256
    max_output_tokens: int = 256
    # the service's system prompt (serve.yaml `system`): candidates are trained and gated with the
    # prompt they will be served with ("" = none, for a service started with system: "")
    system: str = DEFAULT_SYSTEM
    seed: int = 42
    subprocess: bool = True  # False: train in this process (tests, notebooks)
    threads: int = 0  # torch threads of the training process (0 = torch's default)
    nice: int = 5  # the training process's niceness: serving keeps the CPU first
    timeout_s: float = 6 * 3600

    def __post_init__(self) -> None:
        check(0.0 <= self.replay_share < 1.0, "train.replay_share", "must be in [0, 1)")
        check(self.steps > 0, "train.steps", "must be > 0")
        check(self.lr > 0, "train.lr", "must be > 0")
        check(self.threads >= 0, "train.threads", "must be >= 0 (0 = default)")
        check(self.carry_refused >= 0, "train.carry_refused", "must be >= 0 (0 = never)")


@dataclass
class GateConfig:
    """Candidate vs champion on a fixed held-out set (+ a regression set); promote or refuse."""

    heldout: str = ""  # messages JSONL never trained on: the last user turn is the query
    regression: str = ""  # optional messages JSONL of earlier good replies
    regression_from_store: int = 50  # plus up to N liked / approved served replies
    limit: int = 0  # first N held-out queries (0 = all)
    similarity: str = "similarity"  # scorer names (endcloud.evaluate.scorers), as eval and serve
    match: str = "match"
    alpha: float = 0.8  # Eq. 1
    theta: float = 0.2
    delta: float = 0.0  # required improvement of mean Final
    bootstrap: int = 2000  # resamples for the paired difference's lower bound (0 = mean only)
    confidence: float = 0.95  # two-sided: the lower bound is the (1 - c) / 2 quantile
    regression_tolerance: float = 0.02  # the regression set's mean Final may drop at most this
    # the share of held-out replies stating a fact (amount, number, named policy) the reference
    # reply and query do not support may rise at most this (endcloud.evaluate.grounded); 1 = off
    ungrounded_tolerance: float = 0.05
    unsafe_patterns: list[str] = field(default_factory=lambda: list(UNSAFE_PATTERNS))
    max_new_tokens: int = 64
    max_input_tokens: int = 256
    batch_size: int = 8
    seed: int = 0
    cache: bool = True  # keep greedy replies by (model, adapter bytes, inputs, settings)

    def __post_init__(self) -> None:
        check(self.delta >= 0, "gate.delta", "must be >= 0")
        check(self.bootstrap == 0 or self.bootstrap >= 100, "gate.bootstrap", "0 or >= 100")
        check(0.5 < self.confidence < 1.0, "gate.confidence", "must be in (0.5, 1)")
        check(self.regression_tolerance >= 0, "gate.regression_tolerance", "must be >= 0")
        check(0 <= self.ungrounded_tolerance <= 1, "gate.ungrounded_tolerance", "must be in [0, 1] (1 = off)")


@dataclass
class WatchConfig:
    """`endcloud evolve watch`: a round every `interval_s`, or sooner when enough data waits."""

    interval_s: float = 24 * 3600.0
    min_new: int = 50  # this many selectable exchanges start a round early
    poll_s: float = 60.0
    max_rounds: int = 0  # stop after N rounds (0 = run until interrupted)


@dataclass
class EvolveConfig:
    """`endcloud evolve run`: one round of select -> relabel -> retrain -> gate -> promote."""

    store: str = ""  # the service's SQLite file; default $ENDCLOUD_DB or ./endcloud.db
    work_dir: str = "runs/evolve"  # round folders, report
    registry: str = ""  # adapter registry; default <work_dir>/registry (point the service here)
    model: ModelConfig = field(default_factory=ModelConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    relabel: RelabelConfig = field(default_factory=RelabelConfig)
    train: RetrainConfig = field(default_factory=RetrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)

    def __post_init__(self) -> None:
        store_location(self.store)

    @property
    def registry_dir(self) -> str:
        return self.registry or f"{self.work_dir}/registry"
