"""The hand-off routes: the customer's view of a conversation a person holds, and the staff's
queue, claims, replies and releases (the logic: `store/handoffs.py`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from endcloud.serve import protocol as p
from endcloud.store import conversations, handoffs
from endcloud.serve.routes import customer, own_conversation, services, staff

router = APIRouter()


# -- customers ------------------------------------------------------------------------------------
@router.get("/v1/conversations/{conversation_id}/handoff", response_model=p.CustomerHandoff)
async def my_handoff(conversation_id: str, request: Request, after: int = Query(0, ge=0),
                     wait: float = Query(0.0, ge=0, le=60), cid: str = Depends(customer)) -> p.CustomerHandoff:
    """Who holds this conversation, and the staff messages after the cursor `after`; with `wait`,
    a long poll: answers as soon as there is one (or after `wait` s, at most handoff.poll_max_s)."""
    svc = services(request)
    await own_conversation(svc, cid, conversation_id)

    def read(conn: Any) -> tuple[Any, list[dict[str, Any]]]:
        return handoffs.status_of(conn, conversation_id), handoffs.messages_after(conn, conversation_id, after)

    # the customer's own messages are not sent back, but the cursor moves past them
    state, page = await poll(request, read, wait, lambda got: any(m["sender"] != "customer" for m in got[1]))
    return p.CustomerHandoff(handoff=state, messages=[p.HandoffMessage(**m) for m in page
                                                      if m["sender"] != "customer"],
                             cursor=max([after] + [m["id"] for m in page]))


async def poll(request: Request, read: Any, wait: float, ready: Any) -> Any:
    """Read until `ready(result)`, `wait` seconds (capped by handoff.poll_max_s) have passed, or
    the client has gone away."""
    svc = services(request)
    deadline = time.monotonic() + min(wait, svc.cfg.handoff.poll_max_s)
    while True:
        got = await svc.store.read(read)
        if ready(got) or time.monotonic() >= deadline or await request.is_disconnected():
            return got
        await asyncio.sleep(0.2)


# -- staff ----------------------------------------------------------------------------------------
@router.get("/admin/handoffs", response_model=p.HandoffQueue, dependencies=[Depends(staff)])
async def handoff_queue(request: Request, after: int = Query(0, ge=0),
                        wait: float = Query(0.0, ge=0, le=60)) -> p.HandoffQueue:
    """Open hand-offs (waiting first, then newest), each with its whole conversation; with
    `after` (the cursor of the last answer) and `wait`, a long poll for the next change."""
    cursor = handoffs.last_message_id

    # every change (a hand-off opened, claimed, answered, released; a customer message) adds a
    # message, so the cursor moving is the signal: the cheap read is polled, the queue built once
    if after and wait:
        await poll(request, cursor, wait, lambda last: last > after)
    rows, last = await services(request).store.read(lambda conn: (handoffs.queue(conn), cursor(conn)))
    return p.HandoffQueue(data=[p.QueueItem(**h) for h in rows], cursor=last)


def _staff_write(fn: Any) -> Any:
    """Run a hand-off write, mapping an unknown id to 404 and a conflict to 409."""
    async def run(request: Request) -> Any:
        try:
            return await services(request).store.write(fn)
        except KeyError:
            raise HTTPException(404, "hand-off not found") from None
        except handoffs.HandoffConflict as exc:
            raise HTTPException(409, str(exc)) from None
    return run


@router.post("/admin/handoffs/{handoff_id}/claim", response_model=p.HandoffStatus,
             dependencies=[Depends(staff)])
async def claim_handoff(handoff_id: int, req: p.StaffAction, request: Request) -> p.HandoffStatus:
    """Take a waiting conversation: exactly one of several staff racing for it wins (409 for the rest)."""
    def write(conn: Any) -> dict[str, Any]:
        if not handoffs.claim(conn, handoff_id, req.staff):
            row = handoffs.get(conn, handoff_id)
            raise handoffs.HandoffConflict(f"hand-off {handoff_id} is {row['status']}" + (
                f" (held by {row['claimed_by']})" if row["claimed_by"] else ""))
        row = handoffs.get(conn, handoff_id)
        return {"id": row["id"], "status": row["status"], "claimed_by": row["claimed_by"]}

    return p.HandoffStatus(**await _staff_write(write)(request))


@router.post("/admin/handoffs/{handoff_id}/reply", response_model=p.Stored, status_code=201,
             dependencies=[Depends(staff)])
async def reply_handoff(handoff_id: int, req: p.StaffReply, request: Request) -> p.Stored:
    """A reply from the staff member who claimed the conversation; 201 once it is committed
    (the customer sees it on the next poll). Refused (409) for a hand-off nobody claimed."""
    text = req.text.strip()
    if not text:
        raise HTTPException(422, "the reply is empty")
    mid = await _staff_write(lambda conn: handoffs.staff_reply(conn, handoff_id, req.staff, text))(request)
    return p.Stored(id=mid)


@router.post("/admin/handoffs/{handoff_id}/release", response_model=p.Stored, dependencies=[Depends(staff)])
async def release_handoff(handoff_id: int, req: p.StaffAction, request: Request) -> p.Stored:
    """Give the conversation back to the bot: its next message is answered by the model again."""
    await _staff_write(lambda conn: handoffs.end(conn, handoff_id, req.staff, "released"))(request)
    return p.Stored(id=handoff_id)


@router.post("/admin/handoffs/{handoff_id}/close", response_model=p.Stored, dependencies=[Depends(staff)])
async def close_handoff(handoff_id: int, req: p.StaffAction, request: Request) -> p.Stored:
    await _staff_write(lambda conn: handoffs.end(conn, handoff_id, req.staff, "closed"))(request)
    return p.Stored(id=handoff_id)


@router.post("/admin/conversations/{conversation_id}/takeover", response_model=p.HandoffStatus,
             status_code=201, dependencies=[Depends(staff)])
async def take_over(conversation_id: str, req: p.StaffAction, request: Request) -> p.HandoffStatus:
    """Staff take a conversation over from the console (claimed by them at once)."""
    def write(conn: Any) -> dict[str, Any]:
        if conversations.conversation_owner(conn, conversation_id) is None:
            raise KeyError(conversation_id)
        hid, _ = handoffs.open_handoff(conn, conversation_id, "taken_over", req.staff)
        if not handoffs.claim(conn, hid, req.staff):
            raise handoffs.HandoffConflict(f"the conversation is held by {handoffs.get(conn, hid)['claimed_by']}")
        return {"id": hid, "status": "claimed", "claimed_by": req.staff}

    try:
        return p.HandoffStatus(**await services(request).store.write(write))
    except KeyError:
        raise HTTPException(404, "conversation not found") from None
    except handoffs.HandoffConflict as exc:
        raise HTTPException(409, str(exc)) from None
