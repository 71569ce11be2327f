"""Connection handling, migrations and the run log, for a SQLite file or a PostgreSQL server.

`Store.open(location)` takes a file path (SQLite: WAL, synchronous=FULL, the embedded default)
or a `postgresql://` URL (psycopg 3 from a pool). Both connections speak one SQL dialect (see
`store/postgres.py`) and both have `begin_write()`, which opens the transaction a writer holds
alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from endcloud.config import store_location
from endcloud.errors import StoreError
from endcloud.store import postgres
from endcloud.store.migrations import MIGRATIONS
from endcloud.store.pg_migrations import PG_MIGRATIONS

BUSY_TIMEOUT_MS = 10_000
REBUILD = "-- rebuild"  # first line of a SQLite migration that recreates a referenced table


def default_location() -> str:
    """`$ENDCLOUD_DB` or ./endcloud.db: a file path or a postgresql:// URL."""
    return store_location(os.environ.get("ENDCLOUD_DB", "endcloud.db"), "ENDCLOUD_DB")


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class SqliteConnection(sqlite3.Connection):
    """sqlite3's connection with the two things the store adds: its dialect and begin_write."""

    dialect = "sqlite"
    broken = False  # a file does not go away under an open connection

    def begin_write(self) -> None:
        self.execute("BEGIN IMMEDIATE")


def _open_sqlite(path: Path) -> SqliteConnection:
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a commit is explicit.
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False, factory=SqliteConnection)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _journal_mode_wal(conn)
        if mode.lower() != "wal":
            raise StoreError(f"{path}: could not switch to WAL journal mode (got {mode})")
        # FULL: an acknowledged write survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the store: {exc}") from None
    return conn


def _journal_mode_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL. Two processes creating one new file at once: the switch can answer
    "database is locked" without waiting on the busy timeout, so it is retried within it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Store:
    """One connection to the store and the run log on it. Use one Store per thread."""

    def __init__(self, conn: Any, location: str) -> None:
        self.conn = conn
        self.location = location  # a path, or the URL without its password

    @property
    def dialect(self) -> str:
        return self.conn.dialect

    @classmethod
    def open(cls, location: str | Path | None = None,
             migrations: list[tuple[str, str]] | None = None) -> "Store":
        where = store_location(str(location)) if location is not None else default_location()
        if postgres.is_url(where):
            store = cls(postgres.connect(where), postgres.redact(where))
            default = PG_MIGRATIONS
        else:
            store = cls(_open_sqlite(Path(where)), where)
            default = MIGRATIONS
        try:
            store.migrate(default if migrations is None else migrations)
        except BaseException:
            store.close()
            raise
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
        conn = self.conn
        if self.dialect == "sqlite":
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations "
                         "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        else:  # PostgreSQL's IF NOT EXISTS is not safe against a concurrent CREATE: hold the lock
            conn.begin_write()
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                         "applied_at TEXT NOT NULL, rowid BIGINT GENERATED ALWAYS AS IDENTITY)")
            conn.execute("COMMIT")
        done = self.applied_migrations()
        known = [name for name, _ in migrations]
        if done != known[: len(done)]:
            extra = [n for n in done if n not in known]
            raise StoreError(
                f"{self.location}: schema has migrations this version does not know "
                f"({', '.join(extra) or 'different order'}); use a newer endcloud")
        applied = []
        for name, sql in migrations[len(done):]:
            # A SQLite migration that rebuilds a table other tables reference (SQLite cannot
            # change a CHECK in place) says so on its first line; foreign keys are off while it
            # runs (the pragma is a no-op inside a transaction) and checked before it commits.
            rebuild = self.dialect == "sqlite" and sql.lstrip().startswith(REBUILD)
            if rebuild:
                conn.execute("PRAGMA foreign_keys = OFF")
            try:
                conn.begin_write()
                if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                    conn.execute("COMMIT")  # another process applied it since we looked
                    continue
                for stmt in _statements(sql):
                    conn.execute(stmt)
                if rebuild and conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise sqlite3.IntegrityError("the rebuilt tables break a foreign key")
                conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                             (name, utcnow()))
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"{self.location}: migration {name} failed: {exc}") from None
            finally:
                if rebuild:
                    conn.execute("PRAGMA foreign_keys = ON")
            applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY rowid")]

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, stage: str, run_dir: str | Path, config: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (stage, run_dir, config_json, status, started_at) "
            "VALUES (?, ?, ?, 'running', ?) RETURNING id",
            (stage, str(run_dir), json.dumps(config, ensure_ascii=False), utcnow()))
        return int(cur.fetchone()[0])

    def finish_run(self, run_id: int, stats: dict[str, Any] | None = None,
                   error: str | None = None) -> None:
        self.conn.execute(
            "UPDATE runs SET status = ?, finished_at = ?, stats_json = ?, error = ? WHERE id = ?",
            ("failed" if error else "ok", utcnow(),
             json.dumps(stats, ensure_ascii=False) if stats is not None else None, error, run_id))

    def runs(self, stage: str | None = None) -> list[Any]:
        if stage:
            return list(self.conn.execute("SELECT * FROM runs WHERE stage = ? ORDER BY id", (stage,)))
        return list(self.conn.execute("SELECT * FROM runs ORDER BY id"))


def ping(conn: Any) -> bool:
    """The store answers a query (readiness probes)."""
    return conn.execute("SELECT 1").fetchone() is not None


@contextlib.contextmanager
def write_transaction(conn: Any) -> Iterator[Any]:
    """`with write_transaction(conn):` - begin_write, COMMIT on success, ROLLBACK on an error."""
    conn.begin_write()
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
