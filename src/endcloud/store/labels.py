"""The cloud teacher's labels (the cache: exactly one per sample and prompt hash), the quarantine
of items the teacher could not label, the count of transient failures, and the egress audit."""

from __future__ import annotations

import json
from typing import Any

from endcloud.store.db import utcnow


def label_state(conn: Any, sample_id: str, prompt_hash: str) -> str:
    """'labelled', 'quarantined' or 'todo'."""
    key = (sample_id, prompt_hash)
    if conn.execute("SELECT 1 FROM cloud_labels WHERE sample_id=? AND prompt_hash=?", key).fetchone():
        return "labelled"
    if conn.execute("SELECT 1 FROM cloud_quarantine WHERE sample_id=? AND prompt_hash=?", key).fetchone():
        return "quarantined"
    return "todo"


def label_for_prompt(conn: Any, prompt_hash: str) -> Any:
    """The first label made for this very prompt (e.g. a duplicate query), if any."""
    return conn.execute("SELECT * FROM cloud_labels WHERE prompt_hash=? ORDER BY id LIMIT 1",
                        (prompt_hash,)).fetchone()


def add_label(conn: Any, sample_id: str, prompt_hash: str, run_id: int | None, model: str,
              query: str, context_json: str, reply: str, finish_reason: str, prompt_tokens: int,
              completion_tokens: int, cost: float, latency_ms: float, attempts: int) -> bool:
    """Insert a label; False when one existed already (the UNIQUE key makes it exactly-once,
    across processes too)."""
    cur = conn.execute(
        "INSERT INTO cloud_labels (sample_id, prompt_hash, run_id, model, query, context_json,"
        " reply, finish_reason, prompt_tokens, completion_tokens, cost, latency_ms, attempts,"
        " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (sample_id, prompt_hash, run_id, model, query, context_json, reply, finish_reason,
         prompt_tokens, completion_tokens, cost, latency_ms, attempts, utcnow()))
    return cur.rowcount == 1


def add_quarantine(conn: Any, sample_id: str, prompt_hash: str, run_id: int | None, reason: str,
                   detail: str, attempts: int) -> None:
    conn.execute(
        "INSERT INTO cloud_quarantine (sample_id, prompt_hash, run_id, reason, detail, attempts,"
        " created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (sample_id, prompt_hash, run_id, reason, detail, attempts, utcnow()))


def add_failure(conn: Any, sample_id: str, prompt_hash: str, error: str) -> int:
    """Count a transient failure of this item (across runs); return the new count."""
    row = conn.execute(
        "INSERT INTO cloud_failures VALUES (?,?,1,?,?) ON CONFLICT (sample_id, prompt_hash)"
        " DO UPDATE SET failures = cloud_failures.failures + 1, last_error = excluded.last_error,"
        " updated_at = excluded.updated_at RETURNING failures",
        (sample_id, prompt_hash, error, utcnow())).fetchone()
    return int(row[0])


def labels(conn: Any) -> list[Any]:
    return conn.execute("SELECT * FROM cloud_labels ORDER BY id").fetchall()


def quarantined(conn: Any) -> list[Any]:
    return conn.execute("SELECT * FROM cloud_quarantine ORDER BY id").fetchall()


def add_egress(conn: Any, r: Any, run_id: int | None) -> None:
    """One row of the egress audit for a request that left the machine (an EgressRecord):
    hashes, sizes, tokens, cost, status, the knowledge chunk ids that were inside - never text."""
    conn.execute(
        "INSERT INTO cloud_egress (ts, run_id, endpoint, model, payload_sha256, request_bytes,"
        " response_bytes, prompt_tokens, completion_tokens, latency_ms, cost, status, attempt,"
        " knowledge_ids) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (utcnow(), run_id, r.endpoint, r.model, r.payload_sha256, r.request_bytes,
         r.response_bytes, r.prompt_tokens, r.completion_tokens, round(r.latency_ms, 1),
         r.cost, r.status, r.attempt,
         json.dumps(list(r.knowledge_ids)) if r.knowledge_ids else None))
