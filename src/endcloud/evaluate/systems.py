"""Where a system's replies come from: a replies file, or the end model generating them.

    items = read_queries("runs/data-X/test.jsonl", limit=50)
    replies = source_for(system_cfg, gen_cfg).replies(items)     # [Reply(text, latency_ms)]

Replies files are matched to queries by id (`id` or `meta.id`, as `endcloud end generate` writes
them), else by the query text. A query with no reply in the file is an error naming the file
and the query, not a silent 0.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endcloud.errors import DataFormatError
from endcloud.evaluate.config import GenerationConfig, SystemConfig


@dataclass
class QueryItem:
    id: str
    query: str  # the last user turn
    messages: list[dict[str, str]]  # the conversation up to and including the query
    human_reply: str  # the split's own agent reply ("" if the file has none): BLEU's reference


@dataclass
class Reply:
    text: str
    latency_ms: float | None = None


def read_queries(path: str | Path, limit: int = 0) -> list[QueryItem]:
    """Messages JSONL -> QueryItems (a trailing assistant message becomes `human_reply`)."""
    items: list[QueryItem] = []
    for lineno, obj in _jsonl(path):
        msgs = obj.get("messages") if isinstance(obj, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise DataFormatError(path, lineno, 'expected {"messages": [...]} (OpenAI chat format)')
        msgs = [m for m in msgs if m.get("role") != "system"]
        human = msgs.pop()["content"] if msgs and msgs[-1].get("role") == "assistant" else ""
        if not msgs or msgs[-1].get("role") != "user":
            raise DataFormatError(path, lineno, "the conversation must end with a user message "
                                  "(optionally followed by the agent's reply)")
        meta = obj.get("meta") or {}
        items.append(QueryItem(str(meta.get("id") or f"line{lineno}"), msgs[-1]["content"],
                               msgs, human))
        if limit and len(items) >= limit:
            break
    return items


def _jsonl(path: str | Path) -> list[tuple[int, Any]]:
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, None, "file not found")
    rows = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataFormatError(p, lineno, f"not valid JSON: {exc.msg}") from None
    return rows


class ReplySource(ABC):
    """One system's replies to a list of queries, in the same order."""

    @abstractmethod
    def replies(self, items: list[QueryItem]) -> list[Reply]:
        ...


class FileReplies(ReplySource):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_query: dict[str, dict[str, Any]] = {}
        for lineno, obj in _jsonl(self.path):
            if not isinstance(obj, dict) or not isinstance(obj.get("reply"), str):
                raise DataFormatError(self.path, lineno, 'expected {"id" or "query", "reply": "..."}')
            rid = obj.get("id") or (obj.get("meta") or {}).get("id")
            if rid:
                self.by_id[str(rid)] = obj
            if isinstance(obj.get("query"), str):
                self.by_query[obj["query"]] = obj

    def replies(self, items: list[QueryItem]) -> list[Reply]:
        out = []
        for item in items:
            obj = self.by_id.get(item.id) or self.by_query.get(item.query)
            if obj is None:
                raise DataFormatError(self.path, None, f"no reply for query {item.id} "
                                      f"({item.query[:40]!r}); match by `id` or `query`")
            lat = obj.get("latency_ms")
            out.append(Reply(obj["reply"], float(lat) if isinstance(lat, (int, float)) else None))
        return out


class EndModelReplies(ReplySource):
    """Generate with `endcloud.end` (base model + optional adapter); latency = batch time / size."""

    def __init__(self, system: SystemConfig, gen: GenerationConfig) -> None:
        self.system, self.gen = system, gen

    def replies(self, items: list[QueryItem]) -> list[Reply]:
        from endcloud.end.config import GenerateConfig, ModelConfig
        from endcloud.end.generate import load_generator

        cfg = GenerateConfig(model=ModelConfig(name=self.system.model, dtype=self.gen.dtype),  # type: ignore[arg-type]
                             adapter=self.system.adapter, max_new_tokens=self.gen.max_new_tokens,
                             max_input_tokens=self.gen.max_input_tokens,
                             temperature=self.gen.temperature, top_p=self.gen.top_p,
                             batch_size=self.gen.batch_size, seed=self.gen.seed, stream=False)
        generator = load_generator(cfg)
        out: list[Reply] = []
        for i in range(0, len(items), self.gen.batch_size):
            chunk = items[i: i + self.gen.batch_size]
            t0 = time.perf_counter()
            texts = generator.generate([it.messages for it in chunk])
            ms = (time.perf_counter() - t0) * 1000 / len(chunk)
            out += [Reply(t, ms) for t in texts]
        return out


def source_for(system: SystemConfig, gen: GenerationConfig) -> ReplySource:
    return FileReplies(system.replies) if system.replies else EndModelReplies(system, gen)
