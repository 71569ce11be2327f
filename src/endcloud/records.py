"""The typed records that pass between stages.

A `Dialogue` is what a loader yields: one conversation as turns in order. The data stage turns
dialogues into `Sample`s: (context turns, customer query, agent reply), written as OpenAI
`messages` JSONL so every later stage (teacher, training, evaluation) reads one format.
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
