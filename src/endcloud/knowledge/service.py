"""The service's view of the shop's knowledge: the index (followed across rebuilds) and the
answer memory (approved answers, growing while it serves).

    kb = ShopKnowledge.open(cfg.knowledge)    # KnowledgeError naming the path if unusable
    found = kb.retrieve("几点前下单当天发货?")  # chunks for the prompt, relevance, memory match
    kb.remember(query_masked, reply_masked, "correction", ref="review-7")   # searchable at once

Memory entries hold masked text only (the caller masks; `remember` refuses text that still
looks personal). An entry whose reply holds a placeholder is never served as it is: its
placeholder stood for another customer's value.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from endcloud.errors import KnowledgeError
from endcloud.knowledge.config import KnowledgeConfig
from endcloud.knowledge.context import PLACEHOLDER
from endcloud.knowledge.evidence import Unit, evidence
from endcloud.knowledge.index import HybridIndex, Hit, current_version, open_index, read_manifest
from endcloud.knowledge.sources import Chunk, make_chunk

if TYPE_CHECKING:
    from endcloud.evaluate.encoders import Encoder
    from endcloud.evaluate.scoring import Scorer

log = logging.getLogger(__name__)


@dataclass
class Retrieved:
    hits: list[Hit] = field(default_factory=list)  # knowledge chunks, best first
    units: list[Unit] = field(default_factory=list)  # their sentences closest to the query
    relevance: float | None = None  # best chunk's dense cosine (None: no index)
    memory: list[Hit] = field(default_factory=list)  # approved answers, best first
    answer: Hit | None = None  # a memory entry close enough to serve as it is
    needs_facts: bool = False
    version: str = ""  # the index version the hits came from
    ms: float = 0.0

    def ids(self) -> list[str]:
        return [h.chunk.id for h in self.hits]


class ShopKnowledge:
    def __init__(self, cfg: KnowledgeConfig, index: HybridIndex | None, memory: HybridIndex,
                 encoder: Encoder) -> None:
        self.cfg = cfg
        self.index = index
        self.memory = memory
        self.encoder = encoder
        self.fact = [re.compile(p) for p in cfg.fact_patterns]
        self._version = index.version if index is not None else ""
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        self._rerank_failed = False
        self._rerank_ready = False

    @classmethod
    def open(cls, cfg: KnowledgeConfig, encoder: Encoder | None = None) -> "ShopKnowledge | None":
        """None when no index or memory is configured; KnowledgeError when a configured index is
        unusable and `required` (else a warning and a service without it)."""
        if not cfg.index and not cfg.memory:
            return None
        index = None
        if cfg.index:
            try:
                index = open_index(cfg.index, encoder)
            except KnowledgeError as exc:
                if cfg.required:
                    raise
                log.warning("serving without the knowledge base: %s", exc)
        if encoder is None:
            encoder = index.encoder if index is not None else _encoder_for(cfg.memory)
        memory = _open_memory(cfg.memory, encoder, cfg.required)
        kb = cls(cfg, index, memory, encoder)
        if index is not None and cfg.units:
            kb._reranker()  # its model loads here, at start-up, not on a customer's turn
        return kb

    # -- per turn -----------------------------------------------------------------------------------
    def retrieve(self, query: str) -> Retrieved:
        t0 = time.monotonic()
        self.maybe_reload()
        index = self.index  # one reference for the whole turn: a swap cannot split it
        out = Retrieved(needs_facts=any(p.search(query) for p in self.fact))
        if index is not None:
            out.hits = index.search(query, self.cfg.k)
            out.relevance = max((h.dense for h in out.hits), default=0.0)
            out.version = index.version
            if self.cfg.units:
                out.units = evidence(query, out.hits, index.encoder, self.cfg.units,
                                     self._reranker(), self.cfg.rerank, self.cfg.answer_type)
        out.memory = self.memory.search(query, 2) if len(self.memory) else []
        best = max(out.memory, key=lambda h: h.dense, default=None)
        if (self.cfg.memory_as_is and best is not None and best.dense >= self.cfg.memory_threshold
                and not PLACEHOLDER.search(best.chunk.text)):
            out.answer = best
        out.ms = (time.monotonic() - t0) * 1000
        return out

    def _reranker(self) -> Scorer | None:
        """The trained matcher (the process-wide scorer the escalation shares), or None."""
        if not self.cfg.rerank or self._rerank_failed:
            return None
        from endcloud.evaluate.scorers import get_scorer

        try:
            scorer = get_scorer("match")
            if not self._rerank_ready:
                scorer.score(["你好"], ["您好"])  # the weights load on the first score
                self._rerank_ready = True
            return scorer
        except Exception as exc:  # missing weights or extras: rank by cosine alone
            self._rerank_failed = True
            log.warning("knowledge.rerank off: the matcher did not load (%s)", exc)
            return None

    def covered(self, found: Retrieved) -> bool:
        """False for a question that needs shop facts when nothing relevant was retrieved."""
        if self.index is None or not found.needs_facts or found.answer is not None:
            return True
        return (found.relevance or 0.0) >= self.cfg.min_relevance and bool(found.hits)

    # -- the fast path of online evolution ------------------------------------------------------------
    def remember(self, query: str, reply: str, origin: str, ref: str = "") -> str | None:
        """Add an approved (masked) answer; searchable when this returns. None if refused."""
        entry = _entry(query, reply, origin, ref)
        if entry is None:
            return None
        self.memory.add([entry])
        return entry.id

    def remember_all(self, rows: list[Any]) -> int:
        """Approvals kept in the store (id, query_masked, reply_masked, origin), in one batch."""
        entries = [e for r in rows
                   if (e := _entry(r["query_masked"], r["reply_masked"], r["origin"], r["id"]))]
        self.memory.add(entries)
        return len(entries)

    # -- rebuilds -----------------------------------------------------------------------------------
    def maybe_reload(self) -> None:
        """Follow `endcloud kb build` rebuilds: load the new version beside the old one, then
        swap with one assignment (a turn holds the index it started with)."""
        if not self.cfg.index or not self.cfg.reload_s:
            return
        now = time.monotonic()
        if now - self._checked < self.cfg.reload_s or not self._reload_lock.acquire(blocking=False):
            return
        try:
            self._checked = now
            try:
                name = current_version(self.cfg.index).name
            except KnowledgeError:
                return  # mid-rebuild or removed: keep serving the index in hand
            if name != self._version:
                fresh = open_index(self.cfg.index, self.encoder)
                self.index, self._version = fresh, name
                log.info("knowledge index reloaded: %s (%d chunks)", name, len(fresh))
        except KnowledgeError as exc:
            log.warning("knowledge rebuild not loaded (still serving %s): %s", self._version, exc)
        finally:
            self._reload_lock.release()


def _entry(query: str, reply: str, origin: str, ref: str) -> Chunk | None:
    """A memory entry, or None for empty text or text that still looks personal."""
    if not query.strip() or not reply.strip() or _looks_personal(query + reply):
        return None
    return make_chunk("serve", "memory", query.strip(), reply.strip(), {"origin": origin, "ref": ref})


def _looks_personal(text: str) -> bool:
    """The masker's own fail-closed residue rule: long digit runs, an @."""
    return bool(re.search(r"\d{7,}|[@＠]", re.sub(r"\[[A-Z]+_\d+\]", "", text)))


def _encoder_for(memory_dir: str) -> Encoder:
    from endcloud.evaluate.encoders import get_encoder

    name = "e5"
    if memory_dir:
        try:
            name = read_manifest(current_version(memory_dir))["encoder"]
        except KnowledgeError:
            pass
    return get_encoder(name)


def _open_memory(folder: str, encoder: Encoder, required: bool) -> HybridIndex:
    """The memory folder with its own encoder (it may differ from the index's: e.g. USE, fast
    enough to embed 100k approved answers); empty, on the index's encoder, when there is none."""
    if folder and Path(folder).exists():
        try:
            return open_index(folder)
        except KnowledgeError as exc:
            if required:
                raise
            log.warning("answer memory not loaded (starting empty): %s", exc)
    elif folder and required:
        raise KnowledgeError(f"{folder}: no answer memory here - build one: endcloud kb build "
                             f"--memory SAMPLES.jsonl FAQ.csv --output {folder}")
    dim = encoder.encode(["a"])[0].shape[0]
    return HybridIndex([], np.zeros((0, dim), np.float32), encoder)
