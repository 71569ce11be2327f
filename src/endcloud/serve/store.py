"""Store access for the service: one writer thread with group commit, a reader per thread.

Every write is acknowledged only after its transaction has committed (WAL, synchronous=FULL):
`await db.write(fn)` returns when the COMMIT that carried `fn` is on disk. Writes that arrive
together share one COMMIT (one fsync), which is what keeps hundreds of concurrent sessions
cheap; each runs inside its own SAVEPOINT, so one failing write never takes the others down.
There is a single writer connection, so clients never see "database is locked".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import queue
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

from endcloud.records import Exchange
from endcloud.store import Store
from endcloud.store.db import utcnow

WriteFn = Callable[[sqlite3.Connection], Any]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ServeStore:
    """The service's door to SQLite: `await write(fn)` (group-committed) and `await read(fn)`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer = Store.open(self.path)  # runs the migrations once
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
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return await asyncio.wrap_future(fut)

    def write_nowait(self, fn: WriteFn) -> concurrent.futures.Future:
        """Queue `fn` from any thread (e.g. the cloud client's audit hook); no waiting."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut

    def _write_loop(self) -> None:
        conn = self._writer.conn
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
            self._commit(conn, batch)

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, Any]]) -> None:
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
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
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for fn, fut in batch:
                fut.set_exception(exc)
            return
        for fut, value, exc in results:  # acknowledged only now, after COMMIT
            if exc is None:
                fut.set_result(value)
            else:
                fut.set_exception(exc)

    # -- reads ----------------------------------------------------------------------------------
    async def read(self, fn: WriteFn) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read_sync, fn)

    def _read_sync(self, fn: WriteFn) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.path)
            with self._readers_lock:
                self._readers.append(store)
        return fn(store.conn)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)
        self._pool.shutdown(wait=True)
        for s in self._readers:
            s.close()
        self._writer.close()


# -- the statements (plain functions of a connection, so tests can call them directly) ---------
def new_customer(conn: sqlite3.Connection, customer_id: str, token: str) -> str:
    conn.execute("INSERT INTO serve_customers (id, token_sha256, created_at) VALUES (?, ?, ?)",
                 (customer_id, token_hash(token), utcnow()))
    return customer_id


def customer_for_token(conn: sqlite3.Connection, token: str) -> str | None:
    row = conn.execute("SELECT id FROM serve_customers WHERE token_sha256 = ?",
                       (token_hash(token),)).fetchone()
    return row[0] if row else None


def new_conversation_id() -> str:
    return f"conv-{uuid.uuid4().hex[:20]}"


def new_conversation(conn: sqlite3.Connection, customer_id: str, cid: str | None = None) -> str:
    cid = cid or new_conversation_id()
    conn.execute("INSERT INTO serve_conversations (id, customer_id, created_at) VALUES (?, ?, ?)",
                 (cid, customer_id, utcnow()))
    return cid


def conversation_owner(conn: sqlite3.Connection, conversation_id: str) -> str | None:
    row = conn.execute("SELECT customer_id FROM serve_conversations WHERE id = ?",
                       (conversation_id,)).fetchone()
    return row[0] if row else None


def add_exchange(conn: sqlite3.Connection, ex: Exchange) -> str:
    row = dict(ex.__dict__)
    row["context_json"] = json.dumps(row.pop("context"), ensure_ascii=False)
    row["created_at"] = utcnow()
    cols = ", ".join(row)
    conn.execute(f"INSERT INTO serve_exchanges ({cols}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))
    return ex.id


def exchange_owner(conn: sqlite3.Connection, exchange_id: str) -> str | None:
    row = conn.execute("SELECT c.customer_id FROM serve_exchanges e JOIN serve_conversations c "
                       "ON c.id = e.conversation_id WHERE e.id = ?", (exchange_id,)).fetchone()
    return row[0] if row else None


def add_feedback(conn: sqlite3.Connection, exchange_id: str, thumb: str | None,
                 rating: int | None, comment: str | None) -> int:
    cur = conn.execute("INSERT INTO serve_feedback (exchange_id, thumb, rating, comment, created_at)"
                       " VALUES (?, ?, ?, ?, ?)", (exchange_id, thumb, rating, comment, utcnow()))
    return int(cur.lastrowid)


def add_review(conn: sqlite3.Connection, exchange_id: str, rating: int | None,
               verdict: str | None, corrected_reply: str | None, reviewer: str) -> int:
    if conn.execute("SELECT 1 FROM serve_exchanges WHERE id = ?", (exchange_id,)).fetchone() is None:
        raise KeyError(exchange_id)
    cur = conn.execute("INSERT INTO serve_reviews (exchange_id, rating, verdict, corrected_reply, "
                       "reviewer, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (exchange_id, rating, verdict, corrected_reply, reviewer, utcnow()))
    return int(cur.lastrowid)


def remember_review(conn: sqlite3.Connection, memory_id: str, exchange_id: str, review_id: int,
                    origin: str, query_masked: str, reply_masked: str) -> None:
    """An approved or corrected answer (masked) for the answer memory."""
    conn.execute("INSERT INTO knowledge_memory (id, exchange_id, review_id, origin, query_masked,"
                 " reply_masked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (memory_id, exchange_id, review_id, origin, query_masked, reply_masked, utcnow()))


def approved_memory(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT id, query_masked, reply_masked, origin FROM knowledge_memory"
                             " ORDER BY created_at, rowid"))


def exchange_text(conn: sqlite3.Connection, exchange_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT context_json, query, reply FROM serve_exchanges WHERE id = ?",
                        (exchange_id,)).fetchone()


def conversation_turns(conn: sqlite3.Connection, conversation_id: str) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT id, query, reply, created_at FROM serve_exchanges "
                             "WHERE conversation_id = ? ORDER BY created_at, rowid",
                             (conversation_id,)))


def customer_conversations(conn: sqlite3.Connection, customer_id: str) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT id, created_at FROM serve_conversations WHERE customer_id = ?"
                             " ORDER BY created_at DESC, rowid DESC LIMIT 200", (customer_id,)))


REVIEW_FILTERS = {
    "all": "1",
    "low": "(e.match_score IS NOT NULL AND e.match_score < :threshold) OR e.answered_by != 'end' "
           "OR e.grounded < 1 OR e.nonanswer IS NOT NULL",
    "disliked": "EXISTS (SELECT 1 FROM serve_feedback f WHERE f.exchange_id = e.id "
                "AND (f.thumb = 'down' OR f.rating <= 2))",
    "unreviewed": "NOT EXISTS (SELECT 1 FROM serve_reviews r WHERE r.exchange_id = e.id)",
}


def recent_exchanges(conn: sqlite3.Connection, which: str, limit: int,
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
