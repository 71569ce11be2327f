"""The evaluation stage's scores: a row per query and system of a run."""

from __future__ import annotations

from typing import Any

from endcloud.store.db import write_transaction


def add_eval_scores(conn: Any, rows: list[tuple]) -> None:
    """(run_id, system, sample_id, query, reply, reference, sim, match, match_reference, final,
    rule, alpha, theta, scorers, created_at) each, in one transaction."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO eval_scores (run_id, system, sample_id, query, reply, reference, sim, "
            "match, match_reference, final, rule, alpha, theta, scorers, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
