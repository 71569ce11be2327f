"""Configuration of `endcloud serve` (`configs/serve.yaml`).

The staff token is deliberately not a field: it comes from `ENDCLOUD_ADMIN_TOKEN` only, so it
never lands in a config file or a run folder. The cloud key likewise (`ENDCLOUD_CLOUD_API_KEY`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from endcloud.cloud.config import CloudConfig
from endcloud.config import check, store_location
from endcloud.end.config import DEFAULT_SYSTEM, BackendConfig
from endcloud.knowledge.config import KnowledgeConfig

ADMIN_TOKEN_ENV = "ENDCLOUD_ADMIN_TOKEN"

DEFAULT_HANDOFF = "亲，这个问题需要人工客服为您处理，已为您转接，请稍候~"
DEFAULT_HANDOFF_EN = "A colleague will take this one from here - please hold on a moment."
HARD_PATTERNS = [r"投诉|起诉|律师|法院|12315|工商|赔偿|举报",
                 r"(?i)\b(complain|complaint|lawyer|lawsuit|sue|manager)\b"]
# a customer asking for a person: the conversation goes to the staff queue (handoff.patterns)
PERSON_PATTERNS = [r"人工(客服)?|转人工|真人|找(个)?人工",
                   r"(?i)\b(human agent|a human|real person|live agent|talk to (a |an )?(person|someone|agent|human))\b"]
OUT_OF_SCOPE_PATTERNS = [r"(?i)\b(write (me )?(a|an) (poem|essay|code)|homework)\b",
                         r"写(一首)?诗|写作业|写代码"]


@dataclass
class LimitsConfig:
    """What one request may ask for, and how much waiting the service accepts."""

    max_body_bytes: int = 64 * 1024  # larger bodies get 413 before any parsing
    max_message_chars: int = 2000  # one message longer than this: 422
    max_messages: int = 40
    max_tokens_cap: int = 256  # the server-side cap on max_tokens
    default_max_tokens: int = 128
    queue_size: int = 16  # requests allowed to wait for a model slot; beyond: 503 + Retry-After
    queue_timeout_s: float = 20.0  # the longest a request waits for a slot before 503
    retry_after_s: int = 2
    session_rate_per_minute: int = 30  # per customer token; beyond: 429 + Retry-After
    session_burst: int = 10
    customer_rate_per_minute: int = 30  # POST /v1/customers per client address; 0 = unlimited
    customer_burst: int = 20

    def __post_init__(self) -> None:
        check(1024 <= self.max_body_bytes <= 16 * 1024 * 1024, "limits.max_body_bytes",
              "must be in [1024, 16 MiB]")
        check(self.max_message_chars >= 1, "limits.max_message_chars", "must be >= 1")
        check(self.max_messages >= 1, "limits.max_messages", "must be >= 1")
        check(1 <= self.default_max_tokens <= self.max_tokens_cap, "limits.default_max_tokens",
              "must be >= 1 and <= limits.max_tokens_cap")
        check(self.queue_size >= 0, "limits.queue_size", "must be >= 0")
        check(self.queue_timeout_s > 0, "limits.queue_timeout_s", "must be > 0")
        check(self.retry_after_s >= 1, "limits.retry_after_s", "must be >= 1")
        check(self.session_rate_per_minute >= 0, "limits.session_rate_per_minute", "0 = unlimited")
        check(self.session_burst >= 1, "limits.session_burst", "must be >= 1")
        check(self.customer_rate_per_minute >= 0, "limits.customer_rate_per_minute", "0 = unlimited")
        check(self.customer_burst >= 1, "limits.customer_burst", "must be >= 1")


@dataclass
class EscalationConfig:
    """When the cloud takes over a turn, and what the customer gets when the cloud cannot."""

    enabled: bool = True
    hard_patterns: list[str] = field(default_factory=lambda: list(HARD_PATTERNS))
    out_of_scope_patterns: list[str] = field(default_factory=lambda: list(OUT_OF_SCOPE_PATTERNS))
    max_query_chars: int = 600  # longer queries are "hard" (escalated before generation)
    scorer: str = "match"  # query-reply Match scorer (endcloud.evaluate); falls back to "ngram"
    match_threshold: float = 0.5  # calibrated reply Match below this (0.5 = even odds): the cloud takes over
    confidence_threshold: float = 0.0  # geometric-mean token probability below this: same
    # share of the draft's checkable facts (amounts, numbers, named policies) that its prompt
    # (knowledge chunks, history, question) supports, below this: "ungrounded", the cloud takes
    # over. 0 = off; 1 = any unsupported fact. A draft without such facts is never held back.
    min_grounded: float = 0.0
    # replace: hold the end reply until it is scored, stream the winner; record: stream the end
    # reply live and only record its scores (low ones are flagged for review)
    after_mode: Literal["replace", "record"] = "replace"
    fallback: Literal["local", "handoff"] = "local"  # after-check escalation whose cloud call failed
    handoff_message: str = DEFAULT_HANDOFF
    handoff_message_en: str = DEFAULT_HANDOFF_EN  # for a customer who writes in English
    first_token_s: float = 5.0  # the cloud's first bytes must arrive within this
    total_s: float = 15.0  # the whole cloud call, retries included
    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(
        stream=True, max_attempts=2, backoff_base_s=0.2, backoff_max_s=1.0, max_tokens=256,
        reject_truncated=False, connect_timeout_s=2.0))

    def __post_init__(self) -> None:
        import re

        for i, p in enumerate(self.hard_patterns + self.out_of_scope_patterns):
            try:
                re.compile(p)
            except re.error as exc:
                check(False, "escalation.hard_patterns", f"pattern {i} does not compile: {exc}")
        check(0 < self.first_token_s <= self.total_s, "escalation.first_token_s",
              "must be > 0 and <= escalation.total_s")
        check(0 <= self.match_threshold <= 1, "escalation.match_threshold", "must be in [0, 1]")
        check(0 <= self.confidence_threshold <= 1, "escalation.confidence_threshold",
              "must be in [0, 1]")
        check(0 <= self.min_grounded <= 1, "escalation.min_grounded", "must be in [0, 1] (0 = off)")
        check(bool(self.handoff_message.strip()), "escalation.handoff_message", "must not be empty")
        check(bool(self.handoff_message_en.strip()), "escalation.handoff_message_en", "must not be empty")


@dataclass
class HandoffConfig:
    """Hand-off to a person: when a conversation goes to the staff queue, and what the customer
    is told while a person is on the way. Staff answer from the review console (/review)."""

    enabled: bool = True
    patterns: list[str] = field(default_factory=lambda: list(PERSON_PATTERNS))  # the customer asks
    # {wait}: the expected wait in minutes (the median of the last answered hand-offs, else
    # expected_wait_min); outside `hours`, the off-hours message ({hours}) instead
    waiting_message: str = "亲，已为您转接人工客服，预计等待约{wait}分钟，请稍候~"
    waiting_message_en: str = "A colleague will join this chat in about {wait} min - please stay here."
    off_hours_message: str = "亲，人工客服的服务时间是{hours}，同事上班后会第一时间回复您~"
    off_hours_message_en: str = "Our team is here {hours}; a colleague will answer as soon as they are back."
    hours: str = ""  # staff on duty, e.g. "09:00-21:00" (local time of `timezone`); "" = always
    timezone: str = "Asia/Shanghai"
    expected_wait_min: int = 3
    abandon_after_s: float = 1800.0  # a hand-off nobody answered within this counts as abandoned
    poll_max_s: float = 25.0  # the longest a long-poll for new messages waits before answering empty

    def __post_init__(self) -> None:
        import re

        for i, pattern in enumerate(self.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                check(False, "handoff.patterns", f"pattern {i} does not compile: {exc}")
        check(not self.hours or re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", self.hours) is not None,
              "handoff.hours", "must be HH:MM-HH:MM (or empty: always on duty)")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            check(False, "handoff.timezone", f"unknown time zone {self.timezone!r}")
        check(self.expected_wait_min >= 1, "handoff.expected_wait_min", "must be >= 1")
        check(0 < self.poll_max_s <= 60, "handoff.poll_max_s", "must be in (0, 60]")


@dataclass
class ServeConfig:
    """`endcloud serve`: the real-time service."""

    host: str = "127.0.0.1"  # loopback by default; put a TLS proxy in front to publish it
    port: int = 8080
    store: str = ""  # SQLite file; default $ENDCLOUD_DB or ./endcloud.db
    system: str = DEFAULT_SYSTEM  # put before every conversation that has no system message
    access_log: bool = False  # uvicorn's request lines (paths only; tokens travel in headers)
    backend: BackendConfig = field(default_factory=BackendConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)

    def __post_init__(self) -> None:
        store_location(self.store)
        check(self.knowledge.max_context_tokens < self.backend.max_input_tokens,
              "knowledge.max_context_tokens", "must be < backend.max_input_tokens (the history "
              "and the question need room too)")
        check(0 <= self.port <= 65535, "port", "must be in [0, 65535] (0 = a free port)")
        check(bool(self.host), "host", "must not be empty")
