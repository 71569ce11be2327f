"""One customer turn, stage by stage: admit -> (cloud before?) -> end model -> score ->
(cloud after?) -> record -> acknowledge.

    turn = await Turn.begin(services, conversation_id, model, messages, params)
    async for piece in turn.run():   # text for the customer, then turn.exchange is committed
        ...

`begin` takes the model slot (waiting in the bounded queue) before a response has started, so
a refusal is a clean 503 rather than a broken stream (the route checks the rate limit first).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from endcloud.serve.backends import Delta, Final, GenParams
from endcloud.serve.escalation import CloudOutcome
from endcloud.serve.store import Exchange, add_exchange

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the routes need, built once by the app's lifespan."""

    cfg: Any  # ServeConfig
    backend: Any  # backends.Backend
    store: Any  # store.ServeStore
    policy: Any  # escalation.Policy
    cloud: Any  # escalation.Cloud
    admission: Any  # limits.Admission
    limiter: Any  # limits.SessionLimiter, per customer token
    admin_token: str | None
    signups: Any  # limits.SessionLimiter, per client address, for POST /v1/customers


def pieces(text: str, size: int = 8) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class Turn:
    def __init__(self, svc: Services, conversation_id: str, model: str,
                 messages: list[dict[str, str]], params: GenParams) -> None:
        self.svc, self.conversation_id, self.model = svc, conversation_id, model
        self.messages, self.params = messages, params
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.t0 = time.monotonic()
        self.first_token_ms: float | None = None
        self.query = messages[-1]["content"]
        self.reason: str | None = None
        self.slot: Any = None
        self.exchange: Exchange | None = None

    @classmethod
    async def begin(cls, svc: Services, conversation_id: str, model: str,
                    messages: list[dict[str, str]], params: GenParams) -> "Turn":
        """Admit the turn: take a model slot if it needs one (or raise limits.Refused(503))."""
        turn = cls(svc, conversation_id, model, messages, params)
        turn.reason = svc.policy.before(turn.query)
        if turn.reason is None:
            turn.slot = svc.admission.slot()
            await turn.slot.__aenter__()  # waits in the bounded queue, or raises Refused(503)
        return turn

    async def release(self) -> None:
        if self.slot is not None:
            slot, self.slot = self.slot, None
            await slot.__aexit__(None, None, None)

    def _shown(self) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = (time.monotonic() - self.t0) * 1000

    async def run(self) -> AsyncIterator[str]:
        """Yield the reply's text for the customer; the exchange is committed before the end."""
        try:
            if self.reason is not None:
                outcome = await self.svc.cloud.ask(self.messages)
                reply = outcome.text if outcome.ok else self.svc.cfg.escalation.handoff_message
                for p in pieces(reply):
                    self._shown()
                    yield p
                await self._record(reply, "cloud" if outcome.ok else "handoff", None, outcome,
                                   None, None, Final("stop", 0, 0))
                return
            live = not self.svc.policy.cfg.enabled or self.svc.policy.cfg.after_mode == "record"
            parts: list[str] = []
            final = Final("stop", 0, 0)
            failed = False
            try:
                async for ev in self.svc.backend.stream(self.model, self.messages, self.params):
                    if isinstance(ev, Delta):
                        parts.append(ev.text)
                        if live and ev.text:
                            self._shown()
                            yield ev.text
                    else:
                        final = ev
            except Exception:  # an end model that fails hands the turn over, never errors
                log.exception("the end model failed; escalating")
                failed, final = True, Final("error", 0, 0)
            await self.release()  # the model is free; scoring and the cloud happen outside it
            shown = "".join(parts)  # in live mode, exactly what the customer saw
            draft = shown.strip()
            match = await asyncio.to_thread(self.svc.policy.match, self.query, draft)
            reason = "end_error" if failed else self.svc.policy.after(match, final.confidence)
            reply, by, outcome = (shown if live else draft), "end", None
            if reason is not None and (not live or failed):
                self.reason = reason
                outcome = await self.svc.cloud.ask(self.messages)
                if outcome.ok:
                    reply, by = outcome.text, "cloud"
                elif self.svc.cfg.escalation.fallback == "handoff" or not draft:
                    reply, by = self.svc.cfg.escalation.handoff_message, "handoff"
            elif reason is not None:
                self.reason = f"{reason}:recorded"
            if not live or failed:
                for p in pieces(reply):
                    self._shown()
                    yield p
            await self._record(reply, by, draft, outcome, match, final.confidence, final)
        finally:
            await self.release()

    async def _record(self, reply: str, by: str, draft: str | None, outcome: CloudOutcome | None,
                      match: float | None, confidence: float | None, final: Final) -> None:
        o = outcome or CloudOutcome("not_called")
        ex = Exchange(
            id=self.id, conversation_id=self.conversation_id, model=self.model,
            context=self.messages[:-1], query=self.query, reply=reply, answered_by=by,
            finish_reason=final.finish_reason if by == "end" else "stop",
            latency_ms=round((time.monotonic() - self.t0) * 1000, 2), end_reply=draft,
            escalation=self.reason, cloud_status=None if outcome is None else o.status,
            cloud_request_masked=o.masked_request, cloud_reply_masked=o.masked_reply,
            match_score=match, confidence=confidence, prompt_tokens=final.prompt_tokens,
            completion_tokens=final.completion_tokens, cloud_prompt_tokens=o.prompt_tokens,
            cloud_completion_tokens=o.completion_tokens, cost=o.cost,
            first_token_ms=None if self.first_token_ms is None else round(self.first_token_ms, 2))
        await self.svc.store.write(lambda conn: add_exchange(conn, ex))
        self.exchange = ex
