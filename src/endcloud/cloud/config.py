"""Configuration of the cloud teacher (`configs/label.yaml`).

The API key is deliberately not a field: it is read from `ENDCLOUD_CLOUD_API_KEY` only, so it
can never end up in a config file, a run folder's `config.yaml` or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from endcloud.config import check, store_location

API_KEY_ENV = "ENDCLOUD_CLOUD_API_KEY"

DEFAULT_SYSTEM = (
    "Assuming that you are an e-commerce customer service agent who is able to answer the "
    "specialized knowledge in e-commerce, has good service consciousness, and is able to deal "
    "with the customer's request properly, you are asked to play the role of an e-commerce "
    "customer service agent in order to deal with the customers in the following."
)
# Placeholders such as [PHONE_1] stand for masked personal data: the teacher must keep them.
DEFAULT_RULES = (
    "Reply in the customer's language with one short, polite customer-service message. "
    "Keep placeholders such as [ORDER_1] or [PHONE_1] exactly as written."
)


@dataclass
class CloudConfig:
    """One OpenAI-compatible chat-completions endpoint and how we talk to it."""

    base_url: str = "http://127.0.0.1:8765/v1"  # `endcloud cloud serve-local` default
    model: str = "local"
    # base_url "" or "local": the label job starts `serve-local` itself on a free loopback port
    # and stops it afterwards (no key, no internet). These three say what it serves and how.
    local_model: str = ""  # packaged name (`endcloud models list`), .gguf or HF folder; "" = default
    local_backend: Literal["auto", "llama-cpp", "transformers"] = "auto"
    local_start_timeout_s: float = 900.0  # load + warm-up of a CPU model (download excluded)
    extra_headers: dict[str, str] = field(default_factory=dict)
    temperature: float = 0.6  # paper, Table IV
    top_p: float = 0.8
    max_tokens: int = 256
    stream: bool = False
    # One retry layer: timeouts, connection errors, 408/409/429/5xx and malformed replies.
    deadline_s: float = 120.0  # wall clock per call, all attempts and waits included
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0  # per read; the deadline bounds a server that trickles bytes
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    # Circuit breaker: open after `breaker_consecutive` failures in a row, or when more than
    # `breaker_ratio` of the last `breaker_window` calls (at least `breaker_min_calls`) failed.
    breaker_consecutive: int = 3
    breaker_ratio: float = 0.5
    breaker_min_calls: int = 5
    breaker_window: int = 20
    breaker_open_s: float = 5.0
    concurrency: int = 4
    requests_per_minute: int = 0  # 0 = unlimited
    tokens_per_minute: int = 0  # prompt + max_tokens, estimated before sending; 0 = unlimited
    max_response_bytes: int = 1_000_000
    max_reply_chars: int = 4000
    reject_truncated: bool = True  # finish_reason=length is malformed for a label
    refusal_patterns: list[str] = field(default_factory=lambda: [
        r"^\s*(I'?m sorry|I am sorry|Sorry), (but )?I (can(no|')t|am unable to|won't)",
        r"^\s*I (can(no|')t|am unable to) (help|assist) with",
        r"^\s*(作为|身为)(一个)?(AI|人工智能|语言模型)",
        r"^\s*抱歉，我(无法|不能)(提供|回答|协助)(这|此)",
    ])
    # Prices in your currency per 1,000 tokens, for the running cost (0 = free, e.g. local).
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0

    def __post_init__(self) -> None:
        check(self.base_url in ("", "local") or self.base_url.startswith(("http://", "https://")),
              "cloud.base_url", "must start with http:// or https://, or be local (\"\" = local: "
              "the job starts the embedded teacher)")
        check(self.local_start_timeout_s > 0, "cloud.local_start_timeout_s", "must be > 0")
        check(bool(self.model), "cloud.model", "name the model, e.g. cloud.model=gpt-4o-mini")
        check(self.max_tokens > 0, "cloud.max_tokens", "must be > 0")
        check(self.deadline_s > 0, "cloud.deadline_s", "must be > 0")
        check(self.connect_timeout_s > 0 and self.read_timeout_s > 0, "cloud.read_timeout_s",
              "timeouts must be > 0")
        check(self.max_attempts >= 1, "cloud.max_attempts", "must be >= 1")
        check(0 <= self.backoff_base_s <= self.backoff_max_s, "cloud.backoff_base_s",
              "must be >= 0 and <= cloud.backoff_max_s")
        check(self.breaker_consecutive >= 1, "cloud.breaker_consecutive", "must be >= 1")
        check(0 < self.breaker_ratio <= 1, "cloud.breaker_ratio", "must be within (0, 1]")
        check(1 <= self.breaker_min_calls <= self.breaker_window, "cloud.breaker_min_calls",
              "must be >= 1 and <= cloud.breaker_window")
        check(self.breaker_open_s > 0, "cloud.breaker_open_s", "must be > 0")
        check(self.concurrency >= 1, "cloud.concurrency", "must be >= 1")
        check(self.requests_per_minute >= 0, "cloud.requests_per_minute", "must be >= 0")
        check(self.tokens_per_minute >= 0, "cloud.tokens_per_minute", "must be >= 0")
        check(self.max_response_bytes >= 1024, "cloud.max_response_bytes", "must be >= 1024")
        for name in self.extra_headers:
            check(name.lower() not in ("authorization", "api-key", "x-api-key"),
                  f"cloud.extra_headers.{name}",
                  f"put keys in the environment ({API_KEY_ENV}), not in config files")

    @property
    def is_local(self) -> bool:
        """True when the label job must start the embedded teacher itself (base_url "" or local)."""
        return self.base_url in ("", "local")


@dataclass
class PromptConfig:
    """The prompt of Table II: instruction, N example Q/A pairs, then the (multi-turn) query."""

    system: str = DEFAULT_SYSTEM
    rules: str = DEFAULT_RULES  # appended after the instruction; "" for the paper's text only
    examples: str = ""  # train-split `messages` JSONL; "" = the input's samples with split=train
    n_examples: int = 8  # fixed examples, same for every query (paper: 500); cacheable prefix
    n_retrieved: int = 0  # extra examples chosen per query by similarity (after the fixed ones)
    selection: Literal["first", "random"] = "random"  # how the fixed examples are drawn
    seed: int = 42
    max_example_chars: int = 400  # longer example answers are cut (keeps N=500 affordable)
    context_turns: int = 6  # history turns sent before the query (0 = single-turn)
    # the shop's knowledge (`endcloud kb build` folders): chunks and approved answers per query
    knowledge: str = ""
    knowledge_k: int = 3
    memory: str = ""
    memory_k: int = 2

    def __post_init__(self) -> None:
        check(bool(self.system.strip()), "prompt.system", "must not be empty")
        check(0 <= self.knowledge_k <= 20, "prompt.knowledge_k", "must be in [0, 20]")
        check(0 <= self.memory_k <= 20, "prompt.memory_k", "must be in [0, 20]")
        check(self.n_examples >= 0, "prompt.n_examples", "must be >= 0")
        check(self.n_retrieved >= 0, "prompt.n_retrieved", "must be >= 0")
        check(self.max_example_chars >= 20, "prompt.max_example_chars", "must be >= 20")
        check(self.context_turns >= 0, "prompt.context_turns", "must be >= 0")


@dataclass
class LabelConfig:
    """`endcloud cloud label`: prepared samples in, teacher labels out (store + JSONL)."""

    input: str = ""  # prepared `messages` JSONL (the data stage's output)
    output: str = ""  # labels JSONL; default: <run folder>/labels.jsonl
    output_root: str = "runs"
    store: str = ""  # SQLite file; default $ENDCLOUD_DB or ./endcloud.db
    split: str = ""  # label only samples of this split ("" = all)
    limit: int = 0  # label at most this many samples (0 = all)
    max_item_failures: int = 3  # calls that failed for transient reasons before quarantine
    cloud: CloudConfig = field(default_factory=CloudConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        store_location(self.store)
        check(self.limit >= 0, "limit", "must be >= 0")
        check(self.max_item_failures >= 1, "max_item_failures", "must be >= 1")
