"""`endcloud experiment`'s configuration (`configs/paper.yaml`, `paper-gpu.yaml`, `tiny.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from endcloud.cloud.config import CloudConfig, PromptConfig
from endcloud.config import check
from endcloud.data.config import PrepareConfig
from endcloud.end.config import MethodConfig, ModelConfig
from endcloud.evaluate.config import GenerationConfig


TINY = "tiny"  # train.model.name: build `endcloud.tiny` into the run folder (no download)
ORIGINAL = "original"


# -- configuration ------------------------------------------------------------------------------
@dataclass
class HeldOutConfig:
    """Which test queries every system answers (the rows of Table VI)."""

    split: Literal["train", "validation", "test"] = "test"
    n: int = 8
    min_query_chars: int = 4  # skip "嗯", "ok": nothing to judge
    one_per_session: bool = True  # no session dominates the table
    seed: int = 42
    reference: Literal["cloud", "human"] = "cloud"  # Sim against: the teacher (paper) or the agent

    def __post_init__(self) -> None:
        check(self.n > 0, "heldout.n", "must be > 0")
        check(self.min_query_chars >= 1, "heldout.min_query_chars", "must be >= 1")


@dataclass
class TeacherConfig:
    """The cloud teacher: endpoint and Table II prompt (N = prompt.n_examples)."""

    train_queries: int = 64  # training samples labelled (0 = the whole train split)
    seed: int = 42  # which training samples, when not all
    max_item_failures: int = 3
    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(base_url="local"))
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        check(self.train_queries >= 0, "teacher.train_queries", "must be >= 0 (0 = all)")


def _paper_methods() -> list[MethodConfig]:
    return [MethodConfig(name="prefix-tuning"), MethodConfig(name="p-tuning-v2"),
            MethodConfig(name="lora")]


@dataclass
class TrainSettings:
    """One recipe for every method (Table IV); a method's own knobs live in `methods[]`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    methods: list[MethodConfig] = field(default_factory=_paper_methods)
    checkpoints: list[int] = field(default_factory=lambda: [3000, 5000, 15000, 30000])
    lr: float = 5e-5
    lr_per_method: dict[str, float] = field(default_factory=dict)
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 1
    grad_accum: int = 1
    natural: bool = False  # also train on the human replies of the train split
    label_ratio: float = 0.5  # share of cloud labels when `natural` is on
    max_input_tokens: int = 256
    max_output_tokens: int = 512
    log_every: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        check(bool(self.methods), "train.methods", "list at least one method")
        names = [m.name for m in self.methods]
        check(len(set(names)) == len(names), "train.methods", "each method at most once")
        check(bool(self.checkpoints) and all(s > 0 for s in self.checkpoints),
              "train.checkpoints", "list the steps to evaluate, e.g. [3000, 5000, 15000]")
        self.checkpoints = sorted(set(self.checkpoints))

    @property
    def steps(self) -> int:
        return self.checkpoints[-1]


@dataclass
class EvalSettings:
    """How systems are scored (Eq. 1) and sampled; every checkpoint of every method is a system."""

    similarity: str = "similarity"
    match: str = "match"
    alpha: float = 0.8
    theta: float = 0.2
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    figure_max_queries: int = 30
    table_v_queries: int = 5  # queries shown with every system's reply (Table V)


@dataclass
class ExperimentConfig:
    """`endcloud experiment`: prepare -> labels -> train x methods -> evaluate -> report."""

    data: PrepareConfig = field(default_factory=PrepareConfig)
    prepared: str = ""  # an existing data run folder (train.jsonl, test.jsonl): skips `prepare`
    heldout: HeldOutConfig = field(default_factory=HeldOutConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluate: EvalSettings = field(default_factory=EvalSettings)
    output_root: str = "runs"
    run_dir: str = ""  # a fixed run folder (needed for resume); default runs/experiment-<time>
    resume: bool = False

    def __post_init__(self) -> None:
        check(not self.resume or bool(self.run_dir), "run_dir",
              "resume=true needs the run folder to continue: run_dir=runs/experiment-...")


@dataclass
class ExperimentResult:
    run_dir: Path
    finals: dict[str, float]  # system -> mean Final (Table VI's mean row)
    files: dict[str, Path]
    timings: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)


def system_name(method: str, step: int) -> str:
    return f"{method}@{step}"
