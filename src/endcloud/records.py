"""The typed records that pass between stages.

A `Dialogue` is what a loader yields: one conversation as turns in order. The data stage turns
dialogues into `Sample`s: (context turns, customer query, agent reply), written as OpenAI
`messages` JSONL so every later stage (teacher, training, evaluation) reads one format.
A `TeacherReply` is one validated answer of the cloud teacher (the label job and the service's
escalation both get one); an `Exchange` is one served turn as the store keeps it (written by the
service, read by the review console, the report and evolve); `SelectStats` and `RelabelStats`
are what an evolve round records about its selection and labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from endcloud.errors import DataFormatError

Role = Literal["user", "assistant", "system"]
ROLES: tuple[str, ...] = ("user", "assistant", "system")


@dataclass
class Turn:
    role: Role
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dialogue:
    """One conversation from a corpus. `id` is unique within its source."""

    id: str
    turns: list[Turn]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    """One training/evaluation example: the reply an agent gave to `query` after `context`."""

    id: str
    session_id: str
    context: list[Turn]
    query: str
    reply: str
    source: str
    split: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_messages(self, system: str | None = None) -> dict[str, Any]:
        """OpenAI chat format: {"messages": [...], "meta": {...}}."""
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages += [{"role": t.role, "content": t.text} for t in self.context]
        messages.append({"role": "user", "content": self.query})
        messages.append({"role": "assistant", "content": self.reply})
        meta = {"id": self.id, "session_id": self.session_id, "source": self.source,
                "split": self.split, **self.meta}
        return {"messages": messages, "meta": meta}

    def to_sharegpt(self) -> dict[str, Any]:
        """ShareGPT format: {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}."""
        who = {"user": "human", "assistant": "gpt", "system": "system"}
        turns = [*self.context, Turn("user", self.query), Turn("assistant", self.reply)]
        return {"id": self.id,
                "conversations": [{"from": who[t.role], "value": t.text} for t in turns],
                "meta": {"session_id": self.session_id, "source": self.source,
                         "split": self.split, **self.meta}}

    @classmethod
    def from_messages(cls, obj: dict[str, Any]) -> "Sample":
        """Inverse of `to_messages` (system messages are dropped from the context)."""
        msgs = [m for m in obj["messages"] if m["role"] != "system"]
        if len(msgs) < 2 or msgs[-1]["role"] != "assistant" or msgs[-2]["role"] != "user":
            raise ValueError("a sample needs ... user, assistant as its last two messages")
        meta = dict(obj.get("meta", {}))
        return cls(
            id=str(meta.pop("id", "")),
            session_id=str(meta.pop("session_id", "")),
            context=[Turn(m["role"], m["content"]) for m in msgs[:-2]],
            query=msgs[-2]["content"],
            reply=msgs[-1]["content"],
            source=str(meta.pop("source", "")),
            split=str(meta.pop("split", "")),
            meta=meta,
        )


def read_samples(path: str | Path) -> Iterable[Sample]:
    """Samples from a `messages` JSONL file; a bad line raises DataFormatError naming it."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                sample = Sample.from_messages(json.loads(line))
            except (json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(path, n, f"not a `messages` sample: {exc}") from None
            if not sample.id:
                sample.id = f"line-{n}"
            yield sample


@dataclass
class TeacherReply:
    """A validated teacher reply. `text` has placeholders restored; `masked_text` is as received."""

    text: str
    masked_text: str
    finish_reason: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int
    cost: float
    payload_sha256: str


@dataclass
class Exchange:
    """One turn as the store keeps it (`reply` is what the customer got)."""

    id: str
    conversation_id: str
    model: str
    context: list[dict[str, str]]
    query: str
    reply: str
    answered_by: str  # end | cloud | handoff (the canned message) | staff (a person's reply)
    finish_reason: str
    latency_ms: float
    end_reply: str | None = None
    escalation: str | None = None  # why the cloud was asked (None: it was not)
    cloud_status: str | None = None  # ok | timeout | circuit_open | http_503 | privacy | ...
    cloud_request_masked: str | None = None  # JSON of the masked messages that left the machine
    cloud_reply_masked: str | None = None
    match_score: float | None = None
    confidence: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cloud_prompt_tokens: int = 0
    cloud_completion_tokens: int = 0
    cost: float = 0.0
    first_token_ms: float | None = None
    answered_from: str | None = None  # model | memory | quote (answered_by == "end")
    knowledge_json: str | None = None  # {"chunks": [ids], "memory": id, "version": ...}
    grounded: float | None = None  # share of the reply's checkable facts the prompt supports
    nonanswer: str | None = None  # the end reply was an echo | restates | filler | empty
    staff: str | None = None  # who answered (answered_by == "staff")


@dataclass
class SelectStats:
    """How an evolve round's selection went: rows scanned, items per reason, what was dropped."""

    scanned: int = 0
    staff: int = 0
    low_final: int = 0
    disliked: int = 0
    correction: int = 0
    ungrounded: int = 0
    nonanswer: int = 0
    unmaskable: int = 0
    duplicates: int = 0


@dataclass
class RelabelStats:
    """Where an evolve round's labels came from, and what the cloud part cost."""

    human: int = 0  # corrections and staff replies: never sent to the cloud
    served_cloud: int = 0  # the cloud's reply while serving, reused
    cloud: int = 0
    quarantined: int = 0
    pending: int = 0
    cloud_calls: int = 0
    cloud_cost: float = 0.0
    cached: int = 0

    @property
    def labelled(self) -> int:
        return self.cloud + self.human + self.served_cloud
