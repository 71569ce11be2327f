"""Hand-offs to a person in the store: the staff queue, claims, live messages both ways, and
staff replies as labels. (What the customer is told, and when staff are on duty: serve/handoff.py.)

A conversation enters the queue when the customer asks for a person (`handoff.patterns`), when
an escalation whose cloud call failed falls back to `handoff`, or when staff take it over from
the console. While a hand-off is open (waiting or claimed) the end model and the cloud are not
asked: the customer's messages go to the staff view, and the claimed staff member's replies go
to the customer (both through `serve_handoff_messages`, whose growing id is the events cursor
both sides poll). Every staff reply is also an exchange answered by `staff`, with the staff
member's name: the highest-priority training label for the next evolve round.

    open_handoff(conn, conversation, "requested")      -> (handoff id, created now?)
    claim(conn, hid, "alice")                           -> True for exactly one claimant
    staff_reply(conn, hid, "alice", "您好，我来帮您查")  -> the message id (after the commit: shown)
    release(conn, hid, "alice") / close(conn, hid, "alice")  -> the bot answers again
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from endcloud.records import Exchange
from endcloud.store.conversations import add_exchange
from endcloud.store.db import utcnow

OPEN = ("waiting", "claimed")


class HandoffConflict(Exception):
    """The hand-off is not in a state that allows this (claimed by someone else, closed...)."""


def open_of(conn: Any, conversation_id: str) -> Any:
    """The conversation's open hand-off (waiting or claimed), if any."""
    return conn.execute("SELECT * FROM serve_handoffs WHERE conversation_id = ? AND status IN "
                        "('waiting', 'claimed')", (conversation_id,)).fetchone()


def open_handoff(conn: Any, conversation_id: str, reason: str,
                 staff: str | None = None) -> tuple[int, bool]:
    """Open a hand-off (claimed at once when `staff` takes it over), or join the open one."""
    row = open_of(conn, conversation_id)
    if row is not None:
        return int(row["id"]), False
    now = utcnow()
    cur = conn.execute(
        "INSERT INTO serve_handoffs (conversation_id, reason, status, requested_at, claimed_by, "
        "claimed_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (conversation_id, reason, "claimed" if staff else "waiting", now, staff, now if staff else None))
    hid = int(cur.fetchone()[0])
    add_message(conn, hid, conversation_id, "system", "claimed" if staff else "waiting", staff)
    return hid, True


def get(conn: Any, handoff_id: int) -> Any:
    row = conn.execute("SELECT * FROM serve_handoffs WHERE id = ?", (handoff_id,)).fetchone()
    if row is None:
        raise KeyError(handoff_id)
    return row


def claim(conn: Any, handoff_id: int, staff: str) -> bool:
    """Take a waiting hand-off; False when someone else holds it (one person at a time)."""
    row = get(conn, handoff_id)
    if row["status"] == "claimed" and row["claimed_by"] == staff:
        return True  # claiming twice is harmless
    cur = conn.execute("UPDATE serve_handoffs SET status = 'claimed', claimed_by = ?, claimed_at = ? "
                       "WHERE id = ? AND status = 'waiting'", (staff, utcnow(), handoff_id))
    if cur.rowcount != 1:
        return False
    add_message(conn, handoff_id, row["conversation_id"], "system", "claimed", staff)
    return True


def add_message(conn: Any, handoff_id: int, conversation_id: str, sender: str,
                text: str, staff: str | None = None, exchange_id: str | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO serve_handoff_messages (handoff_id, conversation_id, sender, staff, text, "
        "exchange_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (handoff_id, conversation_id, sender, staff, text, exchange_id, utcnow()))
    return int(cur.fetchone()[0])


def staff_reply(conn: Any, handoff_id: int, staff: str, text: str) -> int:
    """A reply from the staff member who holds the hand-off: a message for the customer and an
    exchange answered by `staff` (query: what the customer wrote since the last reply)."""
    row = get(conn, handoff_id)
    if row["status"] != "claimed" or row["claimed_by"] != staff:
        holder = row["claimed_by"] if row["status"] == "claimed" else None
        raise HandoffConflict(f"hand-off {handoff_id} is {row['status']}"
                              + (f" and held by {holder}" if holder else "") + ": claim it first")
    cid = row["conversation_id"]
    context, query = _context_and_query(conn, cid, handoff_id)
    exchange_id = None
    if query.strip():  # a reply to something the customer wrote: a training label
        ex = Exchange(id=f"staff-{uuid.uuid4().hex[:24]}", conversation_id=cid, model="staff",
                      context=context, query=query, reply=text, answered_by="staff",
                      finish_reason="stop", latency_ms=0.0, escalation="handoff", staff=staff)
        add_exchange(conn, ex)
        exchange_id = ex.id
    if row["first_reply_at"] is None:
        conn.execute("UPDATE serve_handoffs SET first_reply_at = ? WHERE id = ?", (utcnow(), handoff_id))
    return add_message(conn, handoff_id, cid, "staff", text, staff, exchange_id)


def end(conn: Any, handoff_id: int, staff: str, status: str) -> None:
    """Release the conversation to the bot, or close it (only its holder, or anyone while waiting)."""
    row = get(conn, handoff_id)
    if row["status"] not in OPEN:
        raise HandoffConflict(f"hand-off {handoff_id} is already {row['status']}")
    if row["status"] == "claimed" and row["claimed_by"] != staff:
        raise HandoffConflict(f"hand-off {handoff_id} is held by {row['claimed_by']}")
    conn.execute("UPDATE serve_handoffs SET status = ?, ended_at = ? WHERE id = ?",
                 (status, utcnow(), handoff_id))
    add_message(conn, handoff_id, row["conversation_id"], "system", status, staff)


def _context_and_query(conn: Any, cid: str, handoff_id: int
                       ) -> tuple[list[dict[str, str]], str]:
    """The conversation before the customer's latest messages, and those messages (joined)."""
    context: list[dict[str, str]] = []
    for r in conn.execute("SELECT query, reply FROM serve_exchanges WHERE conversation_id = ? "
                          "ORDER BY created_at, rowid", (cid,)):
        context += [{"role": "user", "content": r["query"]}, {"role": "assistant", "content": r["reply"]}]
    pending: list[str] = []
    for m in conn.execute("SELECT sender, text FROM serve_handoff_messages WHERE handoff_id = ? "
                          "ORDER BY id", (handoff_id,)):
        if m["sender"] == "customer":
            pending.append(m["text"])
        elif m["sender"] == "staff":
            pending = []  # answered already (and in the context, as its exchange)
    if not pending and context:  # staff write first: the reply answers the last customer turn
        last = context.pop(-2)
        context.pop(-1)
        pending = [last["content"]]
    return context, "\n".join(pending)


# -- views ----------------------------------------------------------------------------------------
def messages_after(conn: Any, conversation_id: str | None, after: int,
                   limit: int = 200) -> list[dict[str, Any]]:
    """Hand-off messages newer than the cursor `after`: one conversation's, or all (staff)."""
    where, args = ("conversation_id = ? AND ", [conversation_id]) if conversation_id else ("", [])
    rows = conn.execute(f"SELECT id, handoff_id, conversation_id, sender, staff, text, created_at "
                        f"FROM serve_handoff_messages WHERE {where}id > ? ORDER BY id LIMIT ?",
                        (*args, after, limit))
    return [dict(r) for r in rows]


def status_of(conn: Any, conversation_id: str) -> dict[str, Any] | None:
    row = open_of(conn, conversation_id)
    return None if row is None else {"id": row["id"], "status": row["status"],
                                     "claimed_by": row["claimed_by"]}


def queue(conn: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Open hand-offs, waiting first then newest, each with its whole conversation."""
    now = now or datetime.now(timezone.utc)
    out = []
    for h in conn.execute("SELECT * FROM serve_handoffs WHERE status IN ('waiting', 'claimed') "
                          "ORDER BY status = 'claimed', requested_at DESC"):
        cid = h["conversation_id"]
        turns = [{"sender": s, "text": t, "at": at} for q, r, by, at in conn.execute(
            "SELECT query, reply, answered_by, created_at FROM serve_exchanges WHERE conversation_id = ? "
            "AND answered_by != 'staff' ORDER BY created_at, rowid", (cid,))
            for s, t in (("customer", q), ("bot" if by != "handoff" else "system", r))]
        turns += [{"sender": m["sender"], "text": m["text"], "at": m["created_at"], "staff": m["staff"]}
                  for m in conn.execute("SELECT * FROM serve_handoff_messages WHERE conversation_id = ? "
                                        "AND sender != 'system' ORDER BY id", (cid,))]  # earlier hand-offs too
        turns.sort(key=lambda t: t["at"])
        out.append({"id": h["id"], "conversation_id": cid, "reason": h["reason"], "status": h["status"],
                    "claimed_by": h["claimed_by"], "requested_at": h["requested_at"],
                    "waiting_s": round((now - _parse(h["requested_at"])).total_seconds(), 1),
                    "messages": turns})
    return out


def last_message_id(conn: Any) -> int:
    """The events cursor now: the newest hand-off message's id (0 before any)."""
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM serve_handoff_messages").fetchone()[0])


def recent_waits(conn: Any, recent: int = 20) -> list[float]:
    """Seconds from request to first staff reply of the last `recent` answered hand-offs."""
    return [(_parse(a) - _parse(r)).total_seconds() for r, a in conn.execute(
        "SELECT requested_at, first_reply_at FROM serve_handoffs WHERE first_reply_at IS NOT NULL "
        "ORDER BY id DESC LIMIT ?", (recent,))]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
