"""Customers and their tokens, conversations and exchanges (the service's turns), and the
review console's listing of them. Functions of one connection (either backend), called inside
the service's writer transaction or a reader thread."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from endcloud.records import Exchange
from endcloud.store.db import utcnow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_customer(conn: Any, customer_id: str, token: str) -> str:
    conn.execute("INSERT INTO serve_customers (id, token_sha256, created_at) VALUES (?, ?, ?)",
                 (customer_id, token_hash(token), utcnow()))
    return customer_id


def customer_for_token(conn: Any, token: str) -> str | None:
    row = conn.execute("SELECT id FROM serve_customers WHERE token_sha256 = ?",
                       (token_hash(token),)).fetchone()
    return row[0] if row else None


def new_conversation_id() -> str:
    return f"conv-{uuid.uuid4().hex[:20]}"


def new_conversation(conn: Any, customer_id: str, cid: str | None = None) -> str:
    cid = cid or new_conversation_id()
    conn.execute("INSERT INTO serve_conversations (id, customer_id, created_at) VALUES (?, ?, ?)",
                 (cid, customer_id, utcnow()))
    return cid


def conversation_owner(conn: Any, conversation_id: str) -> str | None:
    row = conn.execute("SELECT customer_id FROM serve_conversations WHERE id = ?",
                       (conversation_id,)).fetchone()
    return row[0] if row else None


def add_exchange(conn: Any, ex: Exchange) -> str:
    row = dict(ex.__dict__)
    row["context_json"] = json.dumps(row.pop("context"), ensure_ascii=False)
    row["created_at"] = utcnow()
    cols = ", ".join(row)
    conn.execute(f"INSERT INTO serve_exchanges ({cols}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))
    return ex.id


def exchange_owner(conn: Any, exchange_id: str) -> str | None:
    row = conn.execute("SELECT c.customer_id FROM serve_exchanges e JOIN serve_conversations c "
                       "ON c.id = e.conversation_id WHERE e.id = ?", (exchange_id,)).fetchone()
    return row[0] if row else None


def exchange_text(conn: Any, exchange_id: str) -> Any:
    return conn.execute("SELECT context_json, query, reply FROM serve_exchanges WHERE id = ?",
                        (exchange_id,)).fetchone()


def conversation_turns(conn: Any, conversation_id: str) -> list[Any]:
    return list(conn.execute("SELECT id, query, reply, created_at FROM serve_exchanges "
                             "WHERE conversation_id = ? ORDER BY created_at, rowid",
                             (conversation_id,)))


def customer_conversations(conn: Any, customer_id: str) -> list[Any]:
    return list(conn.execute("SELECT id, created_at FROM serve_conversations WHERE customer_id = ?"
                             " ORDER BY created_at DESC, rowid DESC LIMIT 200", (customer_id,)))


REVIEW_FILTERS = {
    "all": "TRUE",
    "low": "(e.match_score IS NOT NULL AND e.match_score < :threshold) OR e.answered_by != 'end' "
           "OR e.grounded < 1 OR e.nonanswer IS NOT NULL",
    "disliked": "EXISTS (SELECT 1 FROM serve_feedback f WHERE f.exchange_id = e.id "
                "AND (f.thumb = 'down' OR f.rating <= 2))",
    "unreviewed": "NOT EXISTS (SELECT 1 FROM serve_reviews r WHERE r.exchange_id = e.id)",
}


def recent_exchanges(conn: Any, which: str, limit: int,
                     threshold: float) -> list[dict[str, Any]]:
    """Exchanges for the review console, newest first, with their feedback and review summary."""
    sql = f"""
        SELECT e.id, e.conversation_id, e.model, e.query, e.reply, e.answered_by, e.answered_from,
               e.knowledge_json, e.escalation,
               e.cloud_status, e.match_score, e.confidence, e.grounded, e.nonanswer, e.latency_ms,
               e.cost, e.created_at,
               (SELECT COUNT(*) FROM serve_feedback f WHERE f.exchange_id = e.id AND f.thumb = 'up') AS ups,
               (SELECT COUNT(*) FROM serve_feedback f WHERE f.exchange_id = e.id AND f.thumb = 'down') AS downs,
               (SELECT AVG(f.rating) FROM serve_feedback f WHERE f.exchange_id = e.id) AS rating,
               (SELECT r.corrected_reply FROM serve_reviews r WHERE r.exchange_id = e.id
                  AND r.corrected_reply IS NOT NULL ORDER BY r.id DESC LIMIT 1) AS correction,
               (SELECT r.verdict FROM serve_reviews r WHERE r.exchange_id = e.id
                  AND r.verdict IS NOT NULL ORDER BY r.id DESC LIMIT 1) AS verdict
        FROM serve_exchanges e WHERE {REVIEW_FILTERS[which]}
        ORDER BY e.created_at DESC, e.rowid DESC LIMIT :limit"""
    return [dict(r) for r in conn.execute(sql, {"threshold": threshold, "limit": limit})]
