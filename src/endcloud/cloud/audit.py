"""The store side of the cloud stage: labels (the cache), quarantine, failures, egress audit.

All writes go through one lock, because the client's worker threads write audit records on the
same SQLite connection the label job writes labels on. Every write is its own autocommitted
transaction (the store runs with synchronous=FULL), so a label acknowledged here survives kill -9.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from endcloud.cloud.client import EgressRecord
from endcloud.records import TeacherReply
from endcloud.records import Sample
from endcloud.store import Store
from endcloud.store.db import utcnow


class CloudStore:
    def __init__(self, store: Store, run_id: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.lock = threading.Lock()

    # -- egress audit: what left the machine (hash, sizes, tokens, latency, cost, status) --------
    def audit(self, r: EgressRecord) -> None:
        with self.lock:
            insert_egress(self.store.conn, r, self.run_id)

    # -- labels: exactly one per (sample, prompt hash) --------------------------------------------
    def state(self, sample_id: str, prompt_hash: str) -> str:
        """'labelled', 'quarantined' or 'todo'."""
        with self.lock:
            conn = self.store.conn
            key = (sample_id, prompt_hash)
            if conn.execute("SELECT 1 FROM cloud_labels WHERE sample_id=? AND prompt_hash=?", key).fetchone():
                return "labelled"
            if conn.execute("SELECT 1 FROM cloud_quarantine WHERE sample_id=? AND prompt_hash=?",
                            key).fetchone():
                return "quarantined"
        return "todo"

    def cached_reply(self, prompt_hash: str) -> Any:
        """A label already made for the very same prompt (e.g. a duplicate query), if any."""
        with self.lock:
            return self.store.conn.execute(
                "SELECT * FROM cloud_labels WHERE prompt_hash=? ORDER BY id LIMIT 1",
                (prompt_hash,)).fetchone()

    def add_label(self, sample: Sample, prompt_hash: str, reply: TeacherReply) -> bool:
        """Insert the label; False when one existed already (the UNIQUE key makes it exactly-once)."""
        context = json.dumps([{"role": t.role, "content": t.text} for t in sample.context],
                             ensure_ascii=False)
        with self.lock:
            cur = self.store.conn.execute(
                "INSERT OR IGNORE INTO cloud_labels (sample_id, prompt_hash, run_id, model, query,"
                " context_json, reply, finish_reason, prompt_tokens, completion_tokens, cost,"
                " latency_ms, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (sample.id, prompt_hash, self.run_id, reply.model, sample.query, context, reply.text,
                 reply.finish_reason, reply.prompt_tokens, reply.completion_tokens, reply.cost,
                 round(reply.latency_s * 1000, 1), reply.attempts, utcnow()))
            return cur.rowcount == 1

    def quarantine(self, sample_id: str, prompt_hash: str, reason: str, detail: str,
                   attempts: int) -> None:
        with self.lock:
            self.store.conn.execute(
                "INSERT OR IGNORE INTO cloud_quarantine (sample_id, prompt_hash, run_id, reason,"
                " detail, attempts, created_at) VALUES (?,?,?,?,?,?,?)",
                (sample_id, prompt_hash, self.run_id, reason, detail[:500], attempts, utcnow()))

    def add_failure(self, sample_id: str, prompt_hash: str, error: str) -> int:
        """Count a transient failure of this item (across runs); return the new count."""
        with self.lock:
            conn = self.store.conn
            conn.execute(
                "INSERT INTO cloud_failures VALUES (?,?,1,?,?) ON CONFLICT (sample_id, prompt_hash)"
                " DO UPDATE SET failures = failures + 1, last_error = excluded.last_error,"
                " updated_at = excluded.updated_at",
                (sample_id, prompt_hash, error[:500], utcnow()))
            row = conn.execute("SELECT failures FROM cloud_failures WHERE sample_id=? AND prompt_hash=?",
                               (sample_id, prompt_hash)).fetchone()
            return int(row[0])

    def labels_for(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        with self.lock:
            rows = self.store.conn.execute("SELECT * FROM cloud_labels").fetchall()
        wanted = set(keys)
        return {(r["sample_id"], r["prompt_hash"]): r for r in rows
                if (r["sample_id"], r["prompt_hash"]) in wanted}

    def quarantined_for(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        with self.lock:
            rows = self.store.conn.execute("SELECT * FROM cloud_quarantine").fetchall()
        wanted = set(keys)
        return {(r["sample_id"], r["prompt_hash"]): r for r in rows
                if (r["sample_id"], r["prompt_hash"]) in wanted}


def insert_egress(conn: Any, r: EgressRecord, run_id: int | None) -> None:
    """One row of the egress audit: hashes, sizes, tokens, cost, status, the knowledge chunk ids
    that were inside - never text."""
    conn.execute(
        "INSERT INTO cloud_egress (ts, run_id, endpoint, model, payload_sha256, request_bytes,"
        " response_bytes, prompt_tokens, completion_tokens, latency_ms, cost, status, attempt,"
        " knowledge_ids) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (utcnow(), run_id, r.endpoint, r.model, r.payload_sha256, r.request_bytes,
         r.response_bytes, r.prompt_tokens, r.completion_tokens, round(r.latency_ms, 1),
         r.cost, r.status, r.attempt,
         json.dumps(list(r.knowledge_ids)) if r.knowledge_ids else None))
