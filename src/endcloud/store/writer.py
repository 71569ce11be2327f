"""The service's store access: one writer thread with group commit, a reader per thread.

Every write is acknowledged only after its transaction has committed (SQLite: WAL,
synchronous=FULL; PostgreSQL: its WAL with the server's fsync): `await db.write(fn)` returns when
the COMMIT that carried `fn` is on disk. Writes that arrive
together share one COMMIT (one fsync), which is what keeps hundreds of concurrent sessions
cheap; each runs inside its own SAVEPOINT, so one failing write never takes the others down.
There is a single writer connection per process, so clients never see "database is locked";
on PostgreSQL the writers of several processes (replicas) take turns on one advisory lock.
When a PostgreSQL server goes away, the writes and reads in flight fail with
StoreUnavailableError (nothing acknowledged that was not committed; the service answers 503 with
Retry-After) and the next ones reconnect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable

from endcloud.errors import StoreError, StoreUnavailableError
from endcloud.store import Store

WriteFn = Callable[[Any], Any]  # a function of the connection
log = logging.getLogger(__name__)


class ServeStore:
    """The service's door to the store: `await write(fn)` (group-committed) and `await read(fn)`."""

    def __init__(self, location: str | Path) -> None:
        self.location = str(location)
        self._writer: Store | None = Store.open(self.location)  # runs the migrations once
        self._where = self._writer.location  # for messages: a URL without its password
        self._queue: queue.Queue[tuple[WriteFn, concurrent.futures.Future] | None] = queue.Queue()
        self._local = threading.local()
        self._readers: list[Store] = []
        self._readers_lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="serve-read")
        self._thread = threading.Thread(target=self._write_loop, name="serve-writer", daemon=True)
        self._thread.start()

    # -- writes ---------------------------------------------------------------------------------
    async def write(self, fn: WriteFn) -> Any:
        """Run `fn(conn)` in the writer's next transaction; return its result after COMMIT."""
        return await asyncio.wrap_future(self.write_nowait(fn))

    def write_nowait(self, fn: WriteFn) -> concurrent.futures.Future:
        """Queue `fn` from any thread (e.g. the cloud client's audit hook); no waiting."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 256:  # everything that is already waiting shares this COMMIT
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._commit(batch)
            except BaseException as exc:  # never let the writer die: every later write would hang
                log.exception("store writer: unexpected %s", type(exc).__name__)
                for _, fut in batch:
                    _settle(fut, None, exc)

    def _writer_conn(self) -> Any:
        """The writer's connection; reopened after the server went away (None while it is down)."""
        if self._writer is None:
            try:
                self._writer = Store.open(self.location)
            except Exception:  # down, or dropped again mid-migration check: still unavailable
                return None
        return self._writer.conn

    def _commit(self, batch: list[tuple[WriteFn, Any]]) -> None:
        conn = self._writer_conn()
        if conn is None:
            for _, fut in batch:
                _settle(fut, None, self._unavailable())
            return
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            conn.begin_write()
            for fn, fut in batch:
                conn.execute("SAVEPOINT w")
                try:
                    results.append((fut, fn(conn), None))
                    conn.execute("RELEASE w")
                except Exception as exc:  # this write alone is undone
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((fut, None, exc))
            conn.execute("COMMIT")
        except BaseException as exc:  # the COMMIT itself failed: nobody is acknowledged
            with contextlib.suppress(Exception):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if conn.broken:  # the server went away: a new connection for the next batch
                self._drop(self._writer)
                self._writer = None
                exc = self._unavailable()
            for fn, fut in batch:
                _settle(fut, None, exc)
            return
        for fut, value, exc in results:  # acknowledged only now, after COMMIT
            _settle(fut, value, exc)

    def _unavailable(self) -> StoreUnavailableError:
        # "not acknowledged", not "not written": a COMMIT cut off mid-way may have landed
        return StoreUnavailableError(f"{self._where}: the store does not answer; not acknowledged")

    @staticmethod
    def _drop(store: Store | None) -> None:
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    # -- reads ----------------------------------------------------------------------------------
    async def read(self, fn: WriteFn) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read_sync, fn)

    def _read_sync(self, fn: WriteFn, retry: bool = True) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            try:
                store = self._local.store = Store.open(self.location)
            except (StoreError, sqlite3.OperationalError, sqlite3.InterfaceError):
                raise self._unavailable() from None
            with self._readers_lock:
                self._readers.append(store)
        try:
            return fn(store.conn)
        except Exception:
            if not store.conn.broken:
                raise
            with self._readers_lock:  # the server went away (or came back: a stale connection)
                self._readers.remove(store)
            self._local.store = None
            self._drop(store)
            if retry:  # a read is safe to repeat: once more on a new connection
                return self._read_sync(fn, retry=False)
            raise self._unavailable() from None

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self._pool.shutdown(wait=True)
        for s in self._readers:
            self._drop(s)
        self._drop(self._writer)


def _settle(fut: concurrent.futures.Future, value: Any, exc: BaseException | None) -> None:
    """Hand the outcome to a waiting request; one that was cancelled meanwhile (the customer went
    away) is skipped - its write stands, nobody is waiting for the answer."""
    try:
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)
    except concurrent.futures.InvalidStateError:
        pass
