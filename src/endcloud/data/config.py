"""Configuration of the data stage (`configs/data.yaml`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from endcloud.config import check, store_location

Format = Literal["jddc2019", "jddc2018", "ecd", "bitext", "openai", "sharegpt", "qa_csv", "demo"]


@dataclass
class SourceConfig:
    """One input corpus. `path` is relative to `data_dir` unless absolute."""

    format: Format = "demo"
    path: str = ""
    name: str = ""  # label used in stats and sample ids; defaults to the format
    keep_negatives: bool = False  # ECD: keep label-0 (wrong) responses as samples
    limit: int = 0  # stop after this many dialogues (0 = all)

    def __post_init__(self) -> None:
        check(self.format == "demo" or bool(self.path), "sources[].path",
              f"format {self.format!r} needs a path")
        check(self.limit >= 0, "sources[].limit", "must be >= 0")
        self.name = self.name or self.format


# The public corpora in ../shared/data (or $ENDCLOUD_DATA_DIR), by name: `corpus=jddc2019` reads
# them from that path; nothing is copied into the project.
CORPORA: dict[str, list[dict[str, str]]] = {
    "jddc2019": [
        {"format": "jddc2019", "path": "jddc/jddc2019_chat_sample_v1.tsv.gz", "name": "jddc2019_v1"},
        {"format": "jddc2019", "path": "jddc/jddc2019_chat_sample_v2.tsv.gz", "name": "jddc2019_v2"},
    ],
    "jddc2018": [
        {"format": "jddc2018", "path": "jddc/jddc2018_baseline/train.enc.gz", "name": "jddc2018_train"},
        {"format": "jddc2018", "path": "jddc/jddc2018_baseline/test.enc.gz", "name": "jddc2018_test"},
    ],
    "ecd": [
        {"format": "ecd", "path": "ecd_sample/train.txt.gz", "name": "ecd_train"},
        {"format": "ecd", "path": "ecd_sample/test.txt.gz", "name": "ecd_test"},
    ],
    "bitext": [
        {"format": "bitext", "path": "bitext_customer_support/bitext_customer_support.csv.gz",
         "name": "bitext"},
    ],
}


@dataclass
class CleanConfig:
    fullwidth_to_halfwidth: bool = True  # full-width letters/digits/space -> ASCII; CJK punctuation kept
    urls: Literal["keep", "mask", "drop"] = "mask"  # mask: replace with [URL]
    emoji: Literal["keep", "drop"] = "drop"  # Unicode emoji and JDDC emoticon codes (#E-s...)
    merge_consecutive: bool = True  # one turn per speaker change
    drop_transfer: bool = True  # JDDC: drop sessions flagged is_transfer (handed to a human)
    drop_system: bool = True  # drop order cards and canned system notices
    dedup: Literal["none", "exact", "near"] = "near"
    min_reply_chars: int = 2
    min_query_chars: int = 1


@dataclass
class LengthConfig:
    """Length filters in tokens of the target tokenizer.

    `tokenizer` is a `tokenizer.json`, a Hugging Face model folder, or "" for a fast estimate
    (one token per CJK character, per word, per punctuation mark).
    """

    tokenizer: str = ""
    max_input_tokens: int = 256
    max_output_tokens: int = 512

    def __post_init__(self) -> None:
        check(self.max_input_tokens > 0, "length.max_input_tokens", "must be > 0")
        check(self.max_output_tokens > 0, "length.max_output_tokens", "must be > 0")


@dataclass
class SplitConfig:
    """Deterministic split by session: a session's samples all land in one split."""

    train: float = 0.9
    validation: float = 0.05
    test: float = 0.05
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            check(0.0 <= getattr(self, name) <= 1.0, f"split.{name}", "must be within [0, 1]")
        check(abs(self.train + self.validation + self.test - 1.0) < 1e-6, "split",
              "train + validation + test must sum to 1")


@dataclass
class PrivacyConfig:
    enabled: bool = True
    drop_unsendable: bool = True  # drop samples whose masked text still looks personal


@dataclass
class PrepareConfig:
    """`endcloud data prepare`: corpora in, `messages` JSONL per split + stats out."""

    sources: list[SourceConfig] = field(default_factory=lambda: [SourceConfig()])
    corpus: str = ""  # a name in CORPORA (jddc2019, jddc2018, ecd, bitext): replaces `sources`
    data_dir: str = ""  # default: $ENDCLOUD_DATA_DIR, else ../shared/data
    output_root: str = "runs"
    output_formats: list[Literal["messages", "sharegpt"]] = field(default_factory=lambda: ["messages"])
    system_prompt: str = ""  # optional system message written at the top of each sample
    context_turns: int = 6  # turns of history before the query (0 = single-turn)
    on_error: Literal["fail", "skip"] = "fail"  # skip: count malformed records and go on
    max_line_bytes: int = 1_000_000
    store: str = ""  # SQLite file; default $ENDCLOUD_DB or ./endcloud.db
    clean: CleanConfig = field(default_factory=CleanConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def __post_init__(self) -> None:
        store_location(self.store)
        if self.corpus:
            check(self.corpus in CORPORA, "corpus",
                  f"{self.corpus!r} is not one of {', '.join(CORPORA)}")
            self.sources = [SourceConfig(**src) for src in CORPORA[self.corpus]]  # type: ignore[arg-type]
        check(bool(self.sources), "sources", "list at least one corpus")
        check(self.context_turns >= 0, "context_turns", "must be >= 0")
        check(self.max_line_bytes >= 1024, "max_line_bytes", "must be >= 1024")
        check(bool(self.output_formats), "output_formats", "list at least one format")

    def resolve_path(self, path: str) -> Path:
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        base = self.data_dir or os.environ.get("ENDCLOUD_DATA_DIR") or default_data_dir()
        return Path(base) / p


def default_data_dir() -> str:
    """../shared/data next to the checkout, as laid out on the developer machines and CI."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data"
        if (parent / "pyproject.toml").exists() and candidate.exists():
            return str(candidate)
    return str(Path.cwd().parent / "shared" / "data")
