"""The store side of the cloud stage: labels (the cache), quarantine, failures, egress audit
(the statements: `store/labels.py`).

All writes go through one lock, because the client's worker threads write audit records on the
same connection the label job writes labels on. Every write is its own autocommitted
transaction (SQLite runs with synchronous=FULL), so a label acknowledged here survives kill -9.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from endcloud.cloud.client import EgressRecord
from endcloud.records import Sample, TeacherReply
from endcloud.store import Store, labels


class CloudStore:
    def __init__(self, store: Store, run_id: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.lock = threading.Lock()

    # -- egress audit: what left the machine (hash, sizes, tokens, latency, cost, status) --------
    def audit(self, r: EgressRecord) -> None:
        with self.lock:
            labels.add_egress(self.store.conn, r, self.run_id)

    # -- labels: exactly one per (sample, prompt hash) --------------------------------------------
    def state(self, sample_id: str, prompt_hash: str) -> str:
        """'labelled', 'quarantined' or 'todo'."""
        with self.lock:
            return labels.label_state(self.store.conn, sample_id, prompt_hash)

    def cached_reply(self, prompt_hash: str) -> Any:
        """A label already made for the very same prompt (e.g. a duplicate query), if any."""
        with self.lock:
            return labels.label_for_prompt(self.store.conn, prompt_hash)

    def add_label(self, sample: Sample, prompt_hash: str, reply: TeacherReply) -> bool:
        """Insert the label; False when one existed already (the UNIQUE key makes it exactly-once)."""
        context = json.dumps([{"role": t.role, "content": t.text} for t in sample.context],
                             ensure_ascii=False)
        with self.lock:
            return labels.add_label(
                self.store.conn, sample.id, prompt_hash, self.run_id, reply.model, sample.query,
                context, reply.text, reply.finish_reason, reply.prompt_tokens,
                reply.completion_tokens, reply.cost, round(reply.latency_s * 1000, 1), reply.attempts)

    def quarantine(self, sample_id: str, prompt_hash: str, reason: str, detail: str,
                   attempts: int) -> None:
        with self.lock:
            labels.add_quarantine(self.store.conn, sample_id, prompt_hash, self.run_id, reason,
                                  detail[:500], attempts)

    def add_failure(self, sample_id: str, prompt_hash: str, error: str) -> int:
        """Count a transient failure of this item (across runs); return the new count."""
        with self.lock:
            return labels.add_failure(self.store.conn, sample_id, prompt_hash, error[:500])

    def labels_for(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        with self.lock:
            rows = labels.labels(self.store.conn)
        wanted = set(keys)
        return {(r["sample_id"], r["prompt_hash"]): r for r in rows
                if (r["sample_id"], r["prompt_hash"]) in wanted}

    def quarantined_for(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        with self.lock:
            rows = labels.quarantined(self.store.conn)
        wanted = set(keys)
        return {(r["sample_id"], r["prompt_hash"]): r for r in rows
                if (r["sample_id"], r["prompt_hash"]) in wanted}
