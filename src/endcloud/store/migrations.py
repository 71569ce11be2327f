"""Named, forward-only schema migrations. Append new ones; never edit or reorder applied ones.

Each migration is (name, SQL script). `Store.open` applies the ones not yet recorded in the
`_migrations` table, each in its own transaction, in list order.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_runs",
        """
        CREATE TABLE runs (
            id          INTEGER PRIMARY KEY,
            stage       TEXT NOT NULL,
            run_dir     TEXT NOT NULL,
            config_json TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            stats_json  TEXT,
            error       TEXT
        );
        CREATE INDEX runs_stage ON runs (stage, started_at);
        """,
    ),
]
