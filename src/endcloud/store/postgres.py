"""The PostgreSQL backend: psycopg 3 connections from a pool, speaking the store's SQL.

The store's SQL is one dialect for both backends: `?` and `:name` parameters, `ON CONFLICT`,
`RETURNING`, ISO-8601 text timestamps, and a `rowid` column on the tables that are read in
insertion order (SQLite has one implicitly; the PostgreSQL schema declares it). This module
rewrites the parameters for psycopg, maps its errors to the PEP 249 classes the SQLite backend
raises, and gives rows that index by position and by name, like `sqlite3.Row`.

Writes that SQLite serialises with `BEGIN IMMEDIATE` take one transaction-scoped advisory lock
here (`begin_write`), so the guarantees that rest on one writer at a time (the hand-off events
cursor only grows, a migration runs once) hold across every process on the database.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence

from endcloud.errors import StoreError

WRITE_LOCK = 0x656E64636C6F7564  # "endcloud": the advisory lock every write transaction takes
POOL_MAX = 16  # connections per process and database (one per reader thread + the writer)
GETCONN_TIMEOUT_S = 5.0  # a request waits this long for a connection before the store counts as down

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|(?<![:\w]):([A-Za-z_]\w*)|%")


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


_USERINFO_PW = re.compile(r"(://[^/@:]*:)([^@/]*)@")
_QUERY_PW = re.compile(r"([?&]password=)([^&]*)", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its password (in the user info or as ?password=), for messages and logs."""
    return _QUERY_PW.sub(r"\1***", _USERINFO_PW.sub(r"\1***@", url))


def scrub(text: str, url: str) -> str:
    """`text` (a driver's message) with every form of the URL's password taken out."""
    from urllib.parse import unquote

    secrets_ = [m.group(2) for m in (*_USERINFO_PW.finditer(url), *_QUERY_PW.finditer(url))]
    for secret in {x for s in secrets_ if s for x in (s, unquote(s))}:
        text = text.replace(secret, "***")
    return text


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """`?` -> `%s`, `:name` -> `%(name)s`, a literal `%` -> `%%` (outside quotes and comments)."""
    def sub(m: re.Match) -> str:
        t = m.group(0)
        if t == "?":
            return "%s"
        if t == "%":
            return "%%"
        if m.group(1):
            return f"%({m.group(1)})s"
        return t

    return _TOKEN.sub(sub, sql)


class Row(tuple):
    """A result row: `row[0]`, `row["name"]`, `dict(row)` - what the code reads from sqlite3.Row."""

    _names: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...], values: Sequence[Any]) -> "Row":
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no column {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = tuple(c.name for c in cursor.description) if cursor.description else ()
    return lambda values: Row(names, values)


def _translate(exc: Exception) -> Exception:
    """psycopg's error as the sqlite3 class of the same PEP 249 name, with the server's primary
    message only: its DETAIL quotes the failing row's values (a customer's text)."""
    import psycopg

    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None and diag.message_primary else
               (str(exc).strip().splitlines() or [type(exc).__name__])[0])
    for theirs, ours in ((psycopg.IntegrityError, sqlite3.IntegrityError),
                         (psycopg.OperationalError, sqlite3.OperationalError),
                         (psycopg.ProgrammingError, sqlite3.ProgrammingError),
                         (psycopg.DataError, sqlite3.DataError),
                         (psycopg.InterfaceError, sqlite3.InterfaceError),
                         (psycopg.DatabaseError, sqlite3.DatabaseError)):
        if isinstance(exc, theirs):
            return ours(message)
    return exc


class Cursor:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self) -> Row | None:
        return self._cur.fetchone() if self._cur.description else None

    def fetchall(self) -> list[Row]:
        return self._cur.fetchall() if self._cur.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """One pooled psycopg connection with the part of sqlite3.Connection's API the store uses."""

    dialect = "postgresql"

    def __init__(self, raw: Any, pool: Any) -> None:
        self._raw = raw
        self._pool = pool

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        try:
            if params:
                return Cursor(self._raw.execute(pg_sql(sql), params))
            return Cursor(self._raw.execute(sql))
        except Exception as exc:
            raise _translate(exc) from exc

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        cur = self._raw.cursor()
        try:
            cur.executemany(pg_sql(sql), list(seq))
        except Exception as exc:
            raise _translate(exc) from exc
        return Cursor(cur)

    def begin_write(self) -> None:
        """A write transaction; writers queue on one advisory lock, as SQLite's writers do."""
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    @property
    def broken(self) -> bool:
        """The server went away (restart, network): this connection is done; open another."""
        return bool(self._raw.closed or self._raw.broken)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        pool.putconn(self._raw)  # the pool rolls back whatever was left open


_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


def _configure(raw: Any) -> None:
    from psycopg.types.numeric import FloatLoader

    raw.adapters.register_loader("numeric", FloatLoader)  # AVG/SUM: floats, as in SQLite


def connect(url: str) -> PgConnection:
    """A connection from this process's pool for `url` (autocommit: BEGIN/COMMIT are explicit)."""
    try:
        import psycopg_pool
    except ImportError:
        raise StoreError("a postgresql:// store needs psycopg: pip install 'endcloud[postgres]'") from None
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            import psycopg

            try:  # one direct attempt first: a wrong URL fails now, with the server's reason
                psycopg.connect(url, connect_timeout=10).close()
            except psycopg.Error as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise StoreError(f"{redact(url)}: cannot connect to the store: "
                                 f"{scrub(reason, url)}") from None
            pool = psycopg_pool.ConnectionPool(
                url, min_size=1, max_size=POOL_MAX, open=False, configure=_configure,
                check=psycopg_pool.ConnectionPool.check_connection,  # a restarted server's stale ones
                kwargs={"autocommit": True, "row_factory": _row_factory}, name="endcloud")
            try:
                pool.open(wait=True, timeout=GETCONN_TIMEOUT_S)
            except Exception as exc:
                pool.close(timeout=0)
                raise StoreError(f"{redact(url)}: the store did not answer the pool within "
                                 f"{GETCONN_TIMEOUT_S:.0f} s ({type(exc).__name__})") from None
            _pools[url] = pool
    try:
        raw = pool.getconn(timeout=GETCONN_TIMEOUT_S)
    except Exception as exc:
        raise StoreError(f"{redact(url)}: no store connection within {GETCONN_TIMEOUT_S:.0f} s "
                         f"({type(exc).__name__})") from None
    return PgConnection(raw, pool)


def close_pool(url: str, timeout_s: float = 1.0) -> None:
    """Close this process's pool for `url` (its connections too, after `timeout_s`)."""
    with _pools_lock:
        pool = _pools.pop(url, None)
    if pool is not None:
        pool.close(timeout=timeout_s)


def close_pools() -> None:
    """Close every pool of this process (tests; a server's shutdown)."""
    for url in list(_pools):
        close_pool(url)
