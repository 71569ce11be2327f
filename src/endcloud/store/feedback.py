"""Customer feedback, staff reviews and corrections, the answer memory they feed, and imported
human ratings."""

from __future__ import annotations

from typing import Any

from endcloud.store.db import utcnow


def add_feedback(conn: Any, exchange_id: str, thumb: str | None,
                 rating: int | None, comment: str | None) -> int:
    cur = conn.execute("INSERT INTO serve_feedback (exchange_id, thumb, rating, comment, created_at)"
                       " VALUES (?, ?, ?, ?, ?) RETURNING id", (exchange_id, thumb, rating, comment, utcnow()))
    return int(cur.fetchone()[0])


def add_review(conn: Any, exchange_id: str, rating: int | None,
               verdict: str | None, corrected_reply: str | None, reviewer: str) -> int:
    if conn.execute("SELECT 1 FROM serve_exchanges WHERE id = ?", (exchange_id,)).fetchone() is None:
        raise KeyError(exchange_id)
    cur = conn.execute("INSERT INTO serve_reviews (exchange_id, rating, verdict, corrected_reply, "
                       "reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                       (exchange_id, rating, verdict, corrected_reply, reviewer, utcnow()))
    return int(cur.fetchone()[0])


def remember_review(conn: Any, memory_id: str, exchange_id: str, review_id: int,
                    origin: str, query_masked: str, reply_masked: str) -> None:
    """An approved or corrected answer (masked) for the answer memory."""
    conn.execute("INSERT INTO knowledge_memory (id, exchange_id, review_id, origin, query_masked,"
                 " reply_masked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (memory_id, exchange_id, review_id, origin, query_masked, reply_masked, utcnow()))


def approved_memory(conn: Any) -> list[Any]:
    return list(conn.execute("SELECT id, query_masked, reply_masked, origin FROM knowledge_memory"
                             " ORDER BY created_at, rowid"))


def add_human_ratings(conn: Any, rows: list[tuple], source: str) -> None:
    """Imported ratings: (sample_id, query, reply, reference, rating, verdict, corrected_reply,
    rater) each; the caller holds the transaction."""
    now = utcnow()
    conn.executemany(
        "INSERT INTO human_ratings (sample_id, query, reply, reference, rating, verdict, "
        "corrected_reply, rater, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, source, now) for r in rows])


def human_ratings(conn: Any) -> list[Any]:
    return conn.execute("SELECT * FROM human_ratings ORDER BY id").fetchall()
