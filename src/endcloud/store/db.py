"""Connection handling, migrations and the run log."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from endcloud.config import store_location
from endcloud.errors import StoreError
from endcloud.store.migrations import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000


def default_db_path() -> Path:
    """`$ENDCLOUD_DB` or ./endcloud.db."""
    return Path(store_location(os.environ.get("ENDCLOUD_DB", "endcloud.db"), "ENDCLOUD_DB"))


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """A thin wrapper over one SQLite connection. Use one Store per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path | None = None,
             migrations: list[tuple[str, str]] | None = None) -> "Store":
        path = Path(store_location(str(path))) if path is not None else default_db_path()
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a commit is explicit.
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode})")
            # FULL: an acknowledged write survives power loss, not only a process crash.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from None
        store = cls(conn, path)
        store.migrate(MIGRATIONS if migrations is None else migrations)
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- migrations -------------------------------------------------------------------------
    def migrate(self, migrations: list[tuple[str, str]]) -> list[str]:
        """Apply pending migrations in order; return the names applied now."""
        self.conn.execute("CREATE TABLE IF NOT EXISTS _migrations "
                          "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
        known = [name for name, _ in migrations]
        if done != known[: len(done)]:
            extra = [n for n in done if n not in known]
            raise StoreError(
                f"{self.path}: schema has migrations this version does not know "
                f"({', '.join(extra) or 'different order'}); use a newer endcloud")
        applied = []
        for name, sql in migrations[len(done):]:
            # A migration that rebuilds a table other tables reference (SQLite cannot change a
            # CHECK in place) says so on its first line; foreign keys are off while it runs
            # (the pragma is a no-op inside a transaction) and checked before it commits.
            rebuild = sql.lstrip().startswith(REBUILD)
            if rebuild:
                self.conn.execute("PRAGMA foreign_keys = OFF")
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                if self.conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                    self.conn.execute("COMMIT")  # another process applied it since we looked
                    continue
                for stmt in _statements(sql):
                    self.conn.execute(stmt)
                if rebuild and self.conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise sqlite3.IntegrityError("the rebuilt tables break a foreign key")
                self.conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, utcnow()))
                self.conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self.conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: migration {name} failed: {exc}") from None
            finally:
                if rebuild:
                    self.conn.execute("PRAGMA foreign_keys = ON")
            applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, stage: str, run_dir: str | Path, config: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (stage, run_dir, config_json, status, started_at) "
            "VALUES (?, ?, ?, 'running', ?)",
            (stage, str(run_dir), json.dumps(config, ensure_ascii=False), utcnow()))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, stats: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        self.conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, stats_json = ?, error = ? WHERE id = ?",
            ("failed" if error else "ok", utcnow(),
             json.dumps(stats, ensure_ascii=False) if stats is not None else None, error, run_id))

    def runs(self, stage: str | None = None) -> list[sqlite3.Row]:
        if stage:
            return list(self.conn.execute("SELECT * FROM runs WHERE stage = ? ORDER BY id", (stage,)))
        return list(self.conn.execute("SELECT * FROM runs ORDER BY id"))


REBUILD = "-- rebuild"  # first line of a migration that recreates a referenced table


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT implicitly)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
