"""Evolve rounds and the exchanges each used: the exchanges a round may select, the round's
record from start to decision, and the labels of refused rounds to carry forward."""

from __future__ import annotations

import json
from typing import Any

from endcloud.store.db import utcnow, write_transaction

SELECTABLE = """
SELECT e.id, e.context_json, e.query, e.end_reply, e.answered_by, e.escalation,
       e.match_score, e.cloud_status, e.cloud_request_masked, e.cloud_reply_masked, e.created_at,
       e.grounded, e.nonanswer,
       (SELECT COUNT(*) FROM serve_feedback f WHERE f.exchange_id = e.id AND
            (f.thumb = 'down' OR f.rating <= :max_rating)) AS dislikes,
       CASE WHEN e.answered_by = 'staff' THEN e.reply  -- a person's live reply is the label
            ELSE (SELECT c.reply FROM serve_corrections c WHERE c.exchange_id = e.id
                  ORDER BY c.review_id DESC LIMIT 1) END AS correction,
       (SELECT c.review_id FROM serve_corrections c WHERE c.exchange_id = e.id
            ORDER BY c.review_id DESC LIMIT 1) AS review_id
FROM serve_exchanges e
WHERE NOT EXISTS (SELECT 1 FROM evolve_items i WHERE i.exchange_id = e.id)
ORDER BY e.created_at DESC, e.rowid DESC
LIMIT :limit
"""


def unused_exchanges(conn: Any, max_rating: int, limit: int) -> list[Any]:
    """Exchanges no round has used yet, newest first, with their dislikes and latest correction
    (a staff exchange's own reply is its correction)."""
    return list(conn.execute(SELECTABLE, {"max_rating": max_rating, "limit": limit}))


def count_unused(conn: Any) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM serve_exchanges e WHERE NOT EXISTS "
                            "(SELECT 1 FROM evolve_items i WHERE i.exchange_id = e.id)").fetchone()[0])


def liked_end_replies(conn: Any, limit: int) -> list[Any]:
    """End replies liked (thumbs-up or rating >= 4) or approved by staff, newest first."""
    return conn.execute(
        "SELECT e.query, e.reply, e.context_json FROM serve_exchanges e WHERE e.answered_by = 'end'"
        " AND (EXISTS (SELECT 1 FROM serve_feedback f WHERE f.exchange_id = e.id AND "
        "(f.thumb = 'up' OR f.rating >= 4)) OR EXISTS (SELECT 1 FROM serve_reviews r WHERE "
        "r.exchange_id = e.id AND r.verdict = 'approve')) ORDER BY e.created_at DESC LIMIT ?",
        (limit,)).fetchall()


def start_round(conn: Any) -> int:
    return int(conn.execute("INSERT INTO evolve_rounds (round_dir, status, started_at) "
                            "VALUES ('', 'running', ?) RETURNING id", (utcnow(),)).fetchone()[0])


def set_round_dir(conn: Any, round_id: int, round_dir: str, run_id: int) -> None:
    conn.execute("UPDATE evolve_rounds SET round_dir = ?, run_id = ? WHERE id = ?",
                 (round_dir, run_id, round_id))


def finish_round(conn: Any, round_id: int, status: str, reason: str, stats: dict[str, Any],
                 gate: dict[str, Any], champion_after: str | None) -> Any:
    """Record the outcome; return the round's (run_id, round_dir)."""
    conn.execute(
        "UPDATE evolve_rounds SET status = ?, reason = ?, finished_at = ?, selected = ?, "
        "corrections = ?, labelled = ?, quarantined = ?, train_new = ?, train_replay = ?, "
        "cloud_calls = ?, cloud_cost = ?, champion_before = ?, candidate = ?, champion_after = ?,"
        " champion_final = ?, candidate_final = ?, diff_mean = ?, diff_lower = ?, decision = ?, "
        "stats_json = ? WHERE id = ?",
        (status, reason, utcnow(), stats.get("selected", 0), stats.get("corrections", 0),
         stats.get("labelled", 0), stats.get("quarantined", 0), stats.get("train_new", 0),
         stats.get("train_replay", 0), stats.get("cloud_calls", 0), stats.get("cloud_cost", 0.0),
         stats.get("champion_before"), stats.get("candidate"), champion_after,
         gate.get("champion_final"), gate.get("candidate_final"), gate.get("diff_mean"),
         gate.get("diff_lower"), status if gate else None, json.dumps(stats, ensure_ascii=False),
         round_id))
    return conn.execute("SELECT run_id, round_dir FROM evolve_rounds WHERE id = ?",
                        (round_id,)).fetchone()


def refused_round_dirs(conn: Any, champion: str | None, n: int) -> list[str]:
    """Folders of the last `n` refused rounds since the champion's own round, newest first."""
    since = 0
    if champion is not None:
        since = conn.execute("SELECT MAX(id) FROM evolve_rounds WHERE candidate = ?",
                             (champion,)).fetchone()[0] or 0
    return [r[0] for r in conn.execute(
        "SELECT round_dir FROM evolve_rounds WHERE status = 'refused' AND id > ? "
        "ORDER BY id DESC LIMIT ?", (since, n))]


def record_items(conn: Any, rows: list[tuple]) -> None:
    """(round_id, exchange_id, reasons, final, label_source, review_id) each: the exchanges a
    round used (an exchange is used once: a second record of it is ignored)."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO evolve_items (round_id, exchange_id, reasons, final, label_source, "
            "review_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
