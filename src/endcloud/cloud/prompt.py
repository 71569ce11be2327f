"""The prompt of Table II, with fixed and retrieval-chosen few-shot examples.

    pool = ExamplePool.from_jsonl("runs/data-.../train.jsonl")
    builder = PromptBuilder(PromptConfig(n_examples=8, n_retrieved=4), pool)
    messages = builder.messages(sample)   # [system, *context, user query]

Layout (why): the system message holds the instruction, then the N fixed examples in one stable
order, identical for every query, so providers' prompt caching (which keys on the token prefix)
serves that part at a discount; examples retrieved for this query come after them; then the
multi-turn context and the query itself as ordinary chat messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from endcloud.cloud.config import PromptConfig
from endcloud.records import Sample, read_samples

@dataclass(frozen=True)
class PromptExample:
    id: str
    session_id: str
    query: str
    reply: str


class ExamplePool:
    """Question/answer pairs from the training split, with a small BM25 index over char n-grams.

    Character uni+bigrams work for Chinese without a segmenter and for English well enough.
    """

    def __init__(self, examples: list[PromptExample]) -> None:
        self.examples = examples
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths: list[int] = []
        for i, ex in enumerate(examples):
            grams = Counter(_grams(ex.query))
            self.lengths.append(sum(grams.values()))
            for g, tf in grams.items():
                self.postings[g].append((i, tf))
        self.avg_len = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> "ExamplePool":
        return cls([PromptExample(s.id, s.session_id, s.query, s.reply) for s in samples])

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "ExamplePool":
        return cls.from_samples(read_samples(path))

    def __len__(self) -> int:
        return len(self.examples)

    def search(self, query: str, k: int, exclude_session: str = "") -> list[int]:
        """Indices of the k most similar examples (BM25), best first."""
        if k <= 0 or not self.examples:
            return []
        n, k1, b = len(self.examples), 1.2, 0.75
        scores: dict[int, float] = defaultdict(float)
        for g, qtf in Counter(_grams(query)).items():
            docs = self.postings.get(g)
            if not docs or len(docs) > 0.5 * n and n > 20:  # near-stopwords: cost, no signal
                continue
            idf = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            for i, tf in docs:
                norm = tf * (k1 + 1) / (tf + k1 * (1 - b + b * self.lengths[i] / self.avg_len))
                scores[i] += idf * norm * qtf
        ranked = sorted(scores, key=lambda i: (-scores[i], i))
        return [i for i in ranked if not _same_session(self.examples[i], exclude_session)][:k]


def _grams(text: str) -> list[str]:
    s = "".join(text.lower().split())
    return list(s) + [s[i:i + 2] for i in range(len(s) - 1)]


def _same_session(ex: PromptExample, session_id: str) -> bool:
    return bool(session_id) and ex.session_id == session_id


KNOWLEDGE_HEAD = ("Shop knowledge for this question. Answer from it; when it does not cover the "
                  "question, say that you will check or hand over to a colleague, and never invent "
                  "a fact (a time, a fee, a number of days, a policy):")
MEMORY_HEAD = "Approved answers to similar questions:"


class PromptBuilder:
    """Builds the chat messages for one sample, and their hash (the label cache key).

    With `prompt.knowledge` / `prompt.memory` set, each query also gets the top chunks of the
    shop's knowledge base and the most similar approved answers, delimited, after the examples;
    `build` returns the chunk ids beside the messages (the label's provenance)."""

    def __init__(self, cfg: PromptConfig, pool: ExamplePool, knowledge: Any = None,
                 memory: Any = None) -> None:
        self.cfg = cfg
        self.pool = pool
        if knowledge is None and cfg.knowledge and cfg.knowledge_k:
            knowledge = _open_index(cfg.knowledge)
        if memory is None and cfg.memory and cfg.memory_k:
            memory = _open_index(cfg.memory)
        self.knowledge, self.memory = knowledge, memory
        order = list(range(len(pool)))
        if cfg.selection == "random":
            random.Random(cfg.seed).shuffle(order)
        # Spares replace fixed examples from the sample's own session (they would leak its reply).
        self.fixed_order = order[: cfg.n_examples + 32]

    def fixed_examples(self, session_id: str = "") -> list[PromptExample]:
        picked = [self.pool.examples[i] for i in self.fixed_order
                  if not _same_session(self.pool.examples[i], session_id)]
        return picked[: self.cfg.n_examples]

    def system_text(self, sample: Sample) -> str:
        return self._system(sample)[0]

    def _system(self, sample: Sample) -> tuple[str, list[str]]:
        cfg = self.cfg
        parts = [cfg.system.strip()]
        if cfg.rules.strip():
            parts.append(cfg.rules.strip())
        fixed = self.fixed_examples(sample.session_id)
        chosen = {ex.id for ex in fixed}
        retrieved = [self.pool.examples[i]
                     for i in self.pool.search(sample.query, cfg.n_retrieved + len(fixed),
                                               sample.session_id)
                     if self.pool.examples[i].id not in chosen][: cfg.n_retrieved]
        if fixed or retrieved:
            parts.append("Here are some examples for your reference.")
        if fixed:
            parts.append(self._format(fixed, 1))
        if retrieved:
            parts.append("Examples similar to the customer's question:")
            parts.append(self._format(retrieved, len(fixed) + 1))
        ids: list[str] = []
        if self.memory is not None and cfg.memory_k:
            approved = [h.chunk for h in self.memory.search(sample.query, cfg.memory_k)]
            if approved:
                parts.append(MEMORY_HEAD + "\n" + "\n".join(
                    f"Customer: {_clip(c.title, cfg.max_example_chars)}\nCustomer Service: "
                    f"{_clip(c.text, cfg.max_example_chars)}" for c in approved))
                ids += [c.id for c in approved]
        if self.knowledge is not None and cfg.knowledge_k:
            chunks = [h.chunk for h in self.knowledge.search(sample.query, cfg.knowledge_k)]
            if chunks:
                parts.append("<knowledge>\n" + KNOWLEDGE_HEAD + "\n" + "\n".join(
                    f"[K{n}] {c.title}: {c.text}" for n, c in enumerate(chunks, 1)) + "\n</knowledge>")
                ids += [c.id for c in chunks]
        return "\n\n".join(parts), ids

    def _format(self, examples: list[PromptExample], first: int) -> str:
        cut = self.cfg.max_example_chars
        return "\n\n".join(f"Customer {n}: {_clip(ex.query, cut)}\nCustomer Service {n}: {_clip(ex.reply, cut)}"
                           for n, ex in enumerate(examples, first))

    def messages(self, sample: Sample) -> list[dict[str, str]]:
        """[system (instruction + examples + knowledge), *last context turns, user query]."""
        return self.build(sample)[0]

    def build(self, sample: Sample) -> tuple[list[dict[str, str]], list[str]]:
        """The messages and the ids of the knowledge chunks / approved answers inside them."""
        context = sample.context[-self.cfg.context_turns:] if self.cfg.context_turns else []
        system, ids = self._system(sample)
        msgs = [{"role": "system", "content": system}]
        msgs += [{"role": t.role, "content": t.text} for t in context if t.role in ("user", "assistant")]
        msgs.append({"role": "user", "content": sample.query})
        return _merge_same_role(msgs), ids


def _open_index(path: str) -> Any:
    from endcloud.knowledge.index import open_index  # bm25s/usearch only when a prompt uses them

    return open_index(path)


def _merge_same_role(msgs: list[dict[str, str]]) -> list[dict[str, str]]:
    """Strict chat templates reject two user turns in a row; join them with a newline."""
    out: list[dict[str, str]] = []
    for m in msgs:
        if out and out[-1]["role"] == m["role"] != "system":
            out[-1] = {"role": m["role"], "content": out[-1]["content"] + "\n" + m["content"]}
        else:
            out.append(dict(m))
    return out


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prompt_hash(messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """sha256 of the canonical request (model, sampling parameters, messages)."""
    canonical = json.dumps({"params": params, "messages": messages}, ensure_ascii=False,
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
