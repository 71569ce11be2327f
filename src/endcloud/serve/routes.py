"""HTTP routes, kept thin: check who is asking, validate, hand over to `ServiceTurn` or the store.

Who may call what (the route-inventory test holds every route to this):
  public    GET /health, /health/live, /health/ready (probes), GET /v1/models, POST /v1/customers,
            the pages and their static files, GET /openapi.json
  customer  `Authorization: Bearer <customer token>` (the token POST /v1/customers returned):
            chat, feedback, and reading only its own conversations
  staff     `Authorization: Bearer $ENDCLOUD_ADMIN_TOKEN`: /admin/* (401 without, 403 wrong):
            exchanges, reviews, hand-offs, the evolution/serving report (JSON and PNG), and
            GET /metrics (Prometheus text)
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from endcloud import wire
from endcloud.serve import protocol as p
from endcloud.store import conversations
from endcloud.store import feedback as feedback_rows
from endcloud.store.db import ping
from endcloud.end.backend import GenParams
from endcloud.serve.turn import Services, ServiceTurn

STATIC = Path(__file__).with_name("static")
# img-src blob: lets the review console show the report plot it fetched with the staff token
PAGE_HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' blob:; "
                                           "frame-ancestors 'none'",
                "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                "cache-control": "no-store"}

router = APIRouter()


def services(request: Request) -> Services:
    return request.app.state.services


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def customer(request: Request) -> str:
    """The customer id behind the bearer token (401 without a known one)."""
    token = bearer(request)
    if not token:
        raise unauthorized("send Authorization: Bearer <customer token> (POST /v1/customers gives one)")
    cache: dict[str, str] = request.app.state.token_cache
    cid = cache.get(token)
    if cid is None:
        cid = await services(request).store.read(lambda conn: conversations.customer_for_token(conn, token))
        if cid is None:
            raise unauthorized("unknown customer token")
        if len(cache) > 50_000:
            cache.clear()
        cache[token] = cid
    return cid


async def staff(request: Request) -> None:
    """401 without a token, 403 with a wrong one (or when no staff token is configured)."""
    token = bearer(request) or request.headers.get("x-admin-token")
    if not token:
        raise unauthorized("staff routes need Authorization: Bearer <ENDCLOUD_ADMIN_TOKEN>")
    expected = services(request).admin_token
    if not expected:
        raise HTTPException(403, "staff routes are disabled: set ENDCLOUD_ADMIN_TOKEN and restart")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "wrong staff token")


# -- public ---------------------------------------------------------------------------------------
@router.get("/health", response_model=p.Health)
async def health(request: Request) -> p.Health:
    svc = services(request)
    return p.Health(models=svc.backend.models(), cloud=svc.cloud.breaker_state)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process answers (for a supervisor's liveness probe)."""
    return {"status": "live"}


@router.get("/health/ready", responses={503: {"model": p.ErrorResponse}})
async def ready(request: Request) -> dict[str, str]:
    """The model is loaded and the store answers (a load balancer's readiness probe); else 503."""
    svc = getattr(request.app.state, "services", None)
    if svc is None:
        raise HTTPException(503, "starting: the model is not loaded yet", headers={"retry-after": "2"})
    try:
        await asyncio.wait_for(svc.store.read(ping), 2.0)
    except Exception:
        raise HTTPException(503, "the store does not answer", headers={"retry-after": "2"}) from None
    return {"status": "ready"}


@router.get("/v1/models", response_model=p.ModelList)
async def models(request: Request) -> p.ModelList:
    return p.ModelList(data=[p.ModelCard(id=m) for m in services(request).backend.models()])


@router.post("/v1/customers", response_model=p.NewCustomer, status_code=201)
async def new_customer(request: Request) -> p.NewCustomer:
    """A new anonymous customer and its token (shown once; only its hash is stored)."""
    svc = services(request)
    # Per client address (behind a reverse proxy: the proxy's, so limit there too): 429 first,
    # so a flood of sign-ups writes nothing.
    svc.signups.check(request.client.host if request.client else "unknown")
    cid, token = f"cust-{uuid.uuid4().hex[:20]}", f"ec-{secrets.token_urlsafe(32)}"
    await svc.store.write(lambda conn: conversations.new_customer(conn, cid, token))
    return p.NewCustomer(customer_id=cid, token=token)


@router.get("/", include_in_schema=False)
async def chat_page() -> FileResponse:
    return FileResponse(STATIC / "chat.html", headers=PAGE_HEADERS)


@router.get("/review", include_in_schema=False)
async def review_page() -> FileResponse:
    return FileResponse(STATIC / "review.html", headers=PAGE_HEADERS)


# -- customers ------------------------------------------------------------------------------------
@router.post("/v1/chat/completions", response_model=p.ChatResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(req: p.ChatRequest, request: Request, response: Response,
                           cid: str = Depends(customer)) -> Any:
    svc = services(request)
    model = req.model or svc.backend.models()[0]
    if model not in svc.backend.models():
        raise HTTPException(404, f"model {model!r} not found; GET /v1/models lists them")
    messages = check_messages(req, svc)
    svc.limiter.check(cid)  # 429 before anything is written
    new = req.conversation_id is None
    conversation = conversations.new_conversation_id() if new else await own_conversation(
        svc, cid, req.conversation_id)
    lim = svc.cfg.limits
    wanted = req.max_tokens or req.max_completion_tokens or lim.default_max_tokens
    params = GenParams(min(wanted, lim.max_tokens_cap), req.temperature, req.top_p)
    turn = await ServiceTurn.begin(svc, conversation, model, messages, params)  # or 503: nothing written
    if turn.held is not None:  # a person holds the conversation: the message goes to them
        if await turn.to_person() is not None:
            return held_reply(turn, req, response)
        # released in the meantime: the bot answers after all
        turn = await ServiceTurn.begin(svc, conversation, model, messages, params)
    try:
        if new:  # only an admitted turn opens a conversation
            await svc.store.write(lambda conn: conversations.new_conversation(conn, cid, conversation))
    except BaseException:
        await turn.release()
        raise
    headers = {"x-conversation-id": conversation, "x-reply-id": turn.id}
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return TurnStream(turn, sse(turn, include_usage), media_type="text/event-stream",
                          headers={**headers, "cache-control": "no-cache"})
    text = "".join([piece async for piece in turn.run()])
    ex = turn.exchange
    assert ex is not None
    usage = p.TokenUsage(prompt_tokens=ex.prompt_tokens, completion_tokens=ex.completion_tokens,
                    total_tokens=ex.prompt_tokens + ex.completion_tokens)
    body = p.ChatResponse(id=turn.id, created=turn.created, model=model, usage=usage,
                          conversation_id=conversation, choices=[p.Choice(
                              message=p.AssistantMessage(content=text), finish_reason=ex.finish_reason)])
    response.headers.update(headers)
    return body


def held_reply(turn: ServiceTurn, req: p.ChatRequest, response: Response) -> Any:
    """The reply to a message for the person who holds the conversation (committed already):
    empty; their answer comes through GET /v1/conversations/{id}/handoff."""
    headers = {"x-conversation-id": turn.conversation_id, "x-handoff": turn.held["status"]}
    base = {"id": turn.id, "created": turn.created, "model": turn.model,
            "conversation_id": turn.conversation_id}
    if req.stream:
        async def events() -> AsyncIterator[bytes]:
            for delta, finish in ((p.ChunkDelta(role="assistant", content=""), None), (p.ChunkDelta(), "stop")):
                chunk = p.ChatChunk(**base, choices=[p.ChunkChoice(delta=delta, finish_reason=finish)])
                yield wire.sse_event(chunk.model_dump_json(exclude_none=True))
            yield wire.SSE_DONE

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={**headers, "cache-control": "no-cache"})
    response.headers.update(headers)
    return p.ChatResponse(**base, usage=p.TokenUsage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
                          choices=[p.Choice(message=p.AssistantMessage(content=""), finish_reason="stop")])


def check_messages(req: p.ChatRequest, svc: Services) -> list[dict[str, str]]:
    """The configured limits (422), the last message from the user, a system prompt first."""
    lim = svc.cfg.limits
    if len(req.messages) > lim.max_messages:
        raise HTTPException(422, f"too many messages (limit {lim.max_messages})")
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    for i, m in enumerate(messages):
        if len(m["content"]) > lim.max_message_chars:
            raise HTTPException(422, f"messages[{i}] is longer than {lim.max_message_chars} characters")
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise HTTPException(422, "the last message must be a non-empty user message")
    if messages[0]["role"] != "system" and svc.cfg.system:
        messages.insert(0, {"role": "system", "content": svc.cfg.system})
    return messages


async def own_conversation(svc: Services, cid: str, conversation_id: str) -> str:
    owner = await svc.store.read(lambda conn: conversations.conversation_owner(conn, conversation_id))
    if owner != cid:  # someone else's and unknown look the same
        raise HTTPException(404, "conversation not found")
    return conversation_id


class TurnStream(StreamingResponse):
    """The SSE response of a turn; it gives the turn's model slot back however the response ends.

    The body generator's own `finally` is not enough: when the client is gone before the first
    byte (an ASGI 2.4 server's `send` raises at once), the generator never starts, and when the
    response is cancelled between two chunks, it is left suspended, not closed.
    """

    def __init__(self, turn: ServiceTurn, content: AsyncIterator[bytes], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.turn = turn

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            await self.turn.release()


async def sse(turn: ServiceTurn, include_usage: bool) -> AsyncIterator[bytes]:
    base = {"id": turn.id, "created": turn.created, "model": turn.model,
            "conversation_id": turn.conversation_id}

    def event(delta: p.ChunkDelta, finish: str | None = None, usage: p.TokenUsage | None = None) -> bytes:
        choices = [] if usage else [p.ChunkChoice(delta=delta, finish_reason=finish)]
        chunk = p.ChatChunk(**base, choices=choices, usage=usage)
        return wire.sse_event(chunk.model_dump_json(exclude_none=True))

    try:
        yield event(p.ChunkDelta(role="assistant", content=""))
        async for piece in turn.run():
            yield event(p.ChunkDelta(content=piece))
        ex = turn.exchange
        assert ex is not None
        yield event(p.ChunkDelta(), ex.finish_reason)
        if include_usage:
            yield event(p.ChunkDelta(), usage=p.TokenUsage(
                prompt_tokens=ex.prompt_tokens, completion_tokens=ex.completion_tokens,
                total_tokens=ex.prompt_tokens + ex.completion_tokens))
        yield wire.SSE_DONE
    finally:
        await turn.release()


@router.post("/v1/feedback", response_model=p.Stored, status_code=201)
async def feedback(req: p.FeedbackRequest, request: Request, cid: str = Depends(customer)) -> p.Stored:
    """Thumbs, a 1-5 rating and/or a comment on one of this customer's replies; 201 after commit."""
    if req.thumb is None and req.rating is None and not req.comment:
        raise HTTPException(422, "give a thumb, a rating or a comment")
    svc = services(request)

    def write(conn: Any) -> int:
        if conversations.exchange_owner(conn, req.reply_id) != cid:
            raise KeyError(req.reply_id)
        return feedback_rows.add_feedback(conn, req.reply_id, req.thumb, req.rating, req.comment)

    try:
        fid = await svc.store.write(write)
    except KeyError:
        raise HTTPException(404, "reply not found") from None
    return p.Stored(id=fid)


@router.get("/v1/conversations", response_model=p.ConversationList)
async def my_conversations(request: Request, cid: str = Depends(customer)) -> p.ConversationList:
    rows = await services(request).store.read(lambda conn: conversations.customer_conversations(conn, cid))
    return p.ConversationList(data=[p.ConversationSummary(id=r["id"], created_at=r["created_at"])
                                    for r in rows])


@router.get("/v1/conversations/{conversation_id}", response_model=p.ConversationHistory)
async def my_conversation(conversation_id: str, request: Request,
                          cid: str = Depends(customer)) -> p.ConversationHistory:
    svc = services(request)
    await own_conversation(svc, cid, conversation_id)
    rows = await svc.store.read(lambda conn: conversations.conversation_turns(conn, conversation_id))
    return p.ConversationHistory(id=conversation_id, turns=[
        p.HistoryTurn(reply_id=r["id"], query=r["query"], reply=r["reply"], created_at=r["created_at"])
        for r in rows])


# -- staff ----------------------------------------------------------------------------------------
@router.get("/admin/exchanges", response_model=p.ExchangeList, dependencies=[Depends(staff)])
async def exchanges(request: Request,
                    filter: Literal["all", "low", "disliked", "unreviewed"] = "all",
                    limit: int = Query(50, ge=1, le=500)) -> p.ExchangeList:
    svc = services(request)
    threshold = svc.cfg.escalation.match_threshold
    rows = await svc.store.read(lambda conn: conversations.recent_exchanges(conn, filter, limit, threshold))
    return p.ExchangeList(data=[p.ExchangeRow(**r) for r in rows])


@router.post("/admin/reviews", response_model=p.Stored, status_code=201, dependencies=[Depends(staff)])
async def review(req: p.ReviewRequest, request: Request) -> p.Stored:
    """Rate, approve/reject, or correct a reply; a correction becomes a training label."""
    correction = req.corrected_reply.strip() if req.corrected_reply else None
    if req.rating is None and req.verdict is None and not correction:
        raise HTTPException(422, "give a rating, a verdict or a corrected reply")
    svc = services(request)
    try:
        rid = await svc.store.write(lambda conn: feedback_rows.add_review(
            conn, req.exchange_id, req.rating, req.verdict, correction, req.reviewer))
    except KeyError:
        raise HTTPException(404, "exchange not found") from None
    if svc.knowledge is not None and (correction or req.verdict == "approve"):
        await remember(svc, req.exchange_id, rid, correction)
    return p.Stored(id=rid)


async def remember(svc: Services, exchange_id: str, review_id: int, correction: str | None) -> None:
    """The fast path of online evolution: an approved or corrected answer joins the answer
    memory (masked, in the store first) and serves the next similar question from any customer."""
    from endcloud.serve.turn import conversation_state, masker

    row = await svc.store.read(lambda conn: conversations.exchange_text(conn, exchange_id))
    conv = conversation_state(json.loads(row["context_json"]))  # its values' numbering
    q, a = masker().mask(row["query"], conv), masker().mask(correction or row["reply"], conv)
    if not (q.sendable and a.sendable):
        return  # text that still looks personal never enters the shared memory
    origin = "correction" if correction else "approved"
    memory_id = f"mem-{exchange_id}-{review_id}"
    await svc.store.write(lambda conn: feedback_rows.remember_review(conn, memory_id, exchange_id, review_id,
                                                          origin, q.text, a.text))
    await asyncio.to_thread(svc.knowledge.remember, q.text, a.text, origin, memory_id)


@router.get("/admin/report", response_model=p.Report, dependencies=[Depends(staff)])
async def report(request: Request) -> p.Report:
    """Per evolve round and per day, the tables `endcloud evolve report` writes (same queries)."""
    from endcloud.store import report as tables

    rounds, days = await services(request).store.read(
        lambda conn: (tables.rounds(conn), tables.days(conn, services(request).cfg.handoff.abandon_after_s)))
    return p.Report(rounds=[p.ReportRound(**r) for r in rounds], days=[p.ReportDay(**d) for d in days])


_PLOT_LOCK = threading.Lock()  # pyplot keeps global state: one figure at a time


@router.get("/admin/report.png", dependencies=[Depends(staff)], response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
async def report_png(request: Request) -> Response:
    """The report's PNG (Final per round; escalation, local share and cost per day)."""
    from endcloud.store import report as tables

    def draw(conn: Any) -> bytes | None:
        with _PLOT_LOCK, tempfile.TemporaryDirectory() as out:
            _, png = tables.write_report(conn, out)
            return None if png is None else png.read_bytes()

    data = await services(request).store.read(draw)
    if data is None:
        raise HTTPException(404, "the plot needs matplotlib: pip install 'endcloud[eval]'")
    return Response(data, media_type="image/png", headers={"cache-control": "no-store"})


@router.get("/metrics", dependencies=[Depends(staff)], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format (scrape with the staff token as a bearer credential)."""
    from endcloud.serve.metrics import CONTENT_TYPE

    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)
