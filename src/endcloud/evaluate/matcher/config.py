"""Configuration of `endcloud evaluate train-matcher`: `configs/matcher.yaml` -> `MatcherConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from endcloud.config import check

BACKBONE_NAMES = ("pair-head", "head", "e5-lora", "e5-cross")


@dataclass
class TrainingConfig:
    """The recipe's knobs (see `endcloud.evaluate.matcher.recipe.MatcherTrainConfig`)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    hard_negatives: int = 2
    nonanswer_negatives: int = 1
    filler_negatives: int = 2
    pair_negatives: int = 7
    seed: int = 0
    max_minutes: float = 12.0  # stop after the step that crosses this (0 = run every step)
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        check(self.steps > 0, "training.steps", "must be > 0")
        check(self.batch_size > 1, "training.batch_size", "must be > 1 (the batch holds the negatives)")
        check(self.lr > 0, "training.lr", "must be > 0")
        check(self.temperature > 0, "training.temperature", "must be > 0")
        for name in ("hard_negatives", "nonanswer_negatives", "filler_negatives", "pair_negatives"):
            check(getattr(self, name) >= 0, f"training.{name}", "must be >= 0")
        check(self.max_minutes >= 0, "training.max_minutes", "must be >= 0 (0 = no cap)")
        check(self.checkpoint_every > 0, "training.checkpoint_every", "must be > 0")


@dataclass
class MatcherConfig:
    """Prepared splits in, a matcher folder (matcher.json + weights.pt) out."""

    train: list[str] = field(default_factory=list)  # messages JSONL files (`endcloud data prepare`)
    validation: list[str] = field(default_factory=list)  # for calibration and the figures
    output: str = "runs/matcher"
    backbone: str = "pair-head"
    encoder: str = "use"  # pair-head / head: the frozen encoder (use | e5 | ngram)
    hidden: int = 256  # pair-head: MLP width
    rank: int = 16  # head / e5-lora / e5-cross
    device: str = "cpu"
    look_alikes: int = 2  # look-alike replies of other sessions per reply
    limit: int = 0  # use at most this many training replies (0 = all)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        check(bool(self.train), "train", "list at least one prepared training split (messages JSONL)")
        check(bool(self.validation), "validation", "list at least one prepared validation split")
        check(self.backbone in BACKBONE_NAMES, "backbone", f"one of {', '.join(BACKBONE_NAMES)}")
        check(self.encoder in ("use", "e5", "ngram"), "encoder", "use, e5 or ngram")
        check(self.hidden > 0 and self.rank > 0, "hidden", "hidden and rank must be > 0")
        check(self.look_alikes >= 0, "look_alikes", "must be >= 0")
        check(self.limit >= 0, "limit", "must be >= 0 (0 = all)")
