"""One customer turn, stage by stage: admit -> retrieve (shop knowledge, approved answers) ->
(cloud before? an approved answer?) -> end model -> score -> guard placeholders -> (cloud after?)
-> record -> acknowledge.

    turn = await ServiceTurn.begin(services, conversation_id, model, messages, params)
    async for piece in turn.run():   # text for the customer, then turn.exchange is committed
        ...

`begin` takes the model slot (waiting in the bounded queue) before a response has started, so
a refusal is a clean 503 rather than a broken stream (the route checks the rate limit first).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator

from endcloud.knowledge.context import (fit_messages, knowledge_block, lang_of,
                                        placeholder_guard, with_knowledge)
from endcloud.knowledge.evidence import quotable, quote
from endcloud.end.backend import Delta, Final, GenParams
from endcloud.serve import handoff
from endcloud.store import handoffs
from endcloud.store.conversations import add_exchange
from endcloud.serve.escalation import CloudOutcome
from endcloud.records import Exchange

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
    knowledge: Any = None  # knowledge.service.ShopKnowledge, or None
    metrics: Any = None  # metrics.Metrics (/metrics), or None


def pieces(text: str, size: int = 8) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class ServiceTurn:
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
        self.found: Any = None  # knowledge.service.Retrieved
        self.prompt = messages  # what the models are shown: with the shop's knowledge, fitted
        self.knowledge_ids: list[str] = []
        self.handoff_only = False  # a question the knowledge base does not cover, on_missing=handoff
        self.grounded: float | None = None  # of the end draft, against its prompt (evaluate.grounded)
        self.nonanswer: str | None = None  # the end draft was an echo | restates | filler | empty
        self.held: Any = None  # the conversation's open hand-off: a person answers, not the models
        self.wait_min = svc.cfg.handoff.expected_wait_min

    @classmethod
    async def begin(cls, svc: Services, conversation_id: str, model: str,
                    messages: list[dict[str, str]], params: GenParams) -> "ServiceTurn":
        """Admit the turn: take a model slot if it needs one (or raise limits.Refused(503))."""
        turn = cls(svc, conversation_id, model, messages, params)
        if svc.cfg.handoff.enabled:
            turn.held, turn.wait_min = await svc.store.read(lambda conn: (
                handoffs.open_of(conn, conversation_id), handoff.expected_wait_min(conn, svc.cfg.handoff)))
            if turn.held is not None:  # the customer is talking to a person: no model, no slot
                return turn
        turn.reason = svc.policy.before(turn.query)
        turn.handoff_only = turn.reason == "person"
        if svc.knowledge is not None:
            await turn._retrieve()
        if turn.reason is None and not turn.memory_answer():
            turn.slot = svc.admission.slot()
            await turn.slot.__aenter__()  # waits in the bounded queue, or raises Refused(503)
        return turn

    async def _retrieve(self) -> None:
        """The shop's knowledge for this turn: into the prompt; an uncovered fact question is
        escalated (or handed over) per `knowledge.on_missing`."""
        kb, cfg = self.svc.knowledge, self.svc.cfg
        self.found = found = await asyncio.to_thread(kb.retrieve, self.query)
        close = [m for m in found.memory if m.dense >= kb.cfg.memory_context_threshold]
        shown = found.units if kb.cfg.units else found.hits
        block, self.knowledge_ids = knowledge_block(close + shown, kb.cfg.max_context_tokens,
                                                    lang_of(self.query))
        self.prompt = fit_messages(with_knowledge(self.messages, block), cfg.backend.max_input_tokens)
        if self.reason is None and not kb.covered(found) and kb.cfg.on_missing != "model":
            self.reason = "no_knowledge"
            self.handoff_only = kb.cfg.on_missing == "handoff"

    def memory_answer(self) -> str | None:
        """An approved answer close enough to serve as it is (None: generate)."""
        found = self.found
        return found.answer.chunk.text if found is not None and found.answer is not None else None

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
                outcome = (CloudOutcome("not_called") if self.handoff_only
                           else await self.svc.cloud.ask(self.prompt, self.knowledge_ids))
                reply = self._shown_text(outcome.text) if outcome.ok else None
                by = "cloud" if reply else "handoff"
                reply = reply or self._handoff()
                for p in pieces(reply):
                    self._shown()
                    yield p
                await self._record(reply, by, None, None if self.handoff_only else outcome, None,
                                   None, Final("stop", 0, 0))
                return
            answer = self.memory_answer()
            if answer is not None:
                async for p in self._serve_memory(answer):
                    yield p
                return
            async for p in self._generate():
                yield p
        finally:
            await self.release()

    async def _serve_memory(self, answer: str) -> AsyncIterator[str]:
        """Dify's annotation reply: an approved answer, as it is, without the model."""
        reply = self._shown_text(answer) or self._handoff()
        for p in pieces(reply):
            self._shown()
            yield p
        match = await asyncio.to_thread(self.svc.policy.match, self.query, reply)
        await self._record(reply, "end", reply, None, match, None, Final("stop", 0, 0), "memory")

    async def _generate(self) -> AsyncIterator[str]:
        live = not self.svc.policy.cfg.enabled or self.svc.policy.cfg.after_mode == "record"
        parts: list[str] = []
        final = Final("stop", 0, 0)
        failed = False
        try:
            async for ev in self.svc.backend.stream(self.model, self.prompt, self.params):
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
        guarded = self._shown_text(draft)
        if reason is None and guarded is None and self.svc.policy.cfg.enabled:
            reason = "placeholder"  # a fact the model did not have: the cloud, or a person
        self._check_draft(guarded if guarded is not None else draft)
        min_grounded = self.svc.cfg.escalation.min_grounded
        if reason != "end_error" and guarded and self.svc.policy.cfg.enabled and (
                self._invents(guarded) or (self.grounded is not None and self.grounded < min_grounded)):
            reason = "ungrounded"  # over a low score too: an invented fact is never the fallback
        if reason is None and guarded and self.svc.policy.cfg.enabled and self._states_no_fact(guarded):
            reason = "no_fact"
        if reason is None and guarded and self.svc.policy.cfg.enabled and self._off_evidence(guarded):
            reason = "off_evidence"
        reply, by, outcome, source = (shown if live else (guarded or "")), "end", None, "model"
        if reason is not None and (not live or failed):
            self.reason = reason
            quoted = self._quote()
            if quoted is not None:  # the shop's own sentences: grounded, private, no cloud call
                reply, source = quoted, "quote"
            else:
                outcome = await self.svc.cloud.ask(self.prompt, self.knowledge_ids)
                cloud_reply = self._shown_text(outcome.text) if outcome.ok else None
                if cloud_reply:
                    reply, by = cloud_reply, "cloud"
                elif (self.svc.cfg.escalation.fallback == "handoff" or not guarded
                      or reason == "ungrounded" or self.nonanswer):  # nor an invented fact, nor an echo
                    reply, by = self._handoff(), "handoff"
        elif reason is not None:
            self.reason = f"{reason}:recorded"
        if not live or failed:
            for p in pieces(reply):
                self._shown()
                yield p
        await self._record(reply, by, draft, outcome, match, final.confidence, final, source)

    def _check_draft(self, draft: str) -> None:
        """Groundedness of the draft against everything the model was shown, and its non-answer kind."""
        from endcloud.evaluate.grounded import grounding
        from endcloud.evaluate.nonanswer import kind

        self.grounded = grounding(draft, [m["content"] for m in self.prompt]).score
        self.nonanswer = kind(self.query, draft)

    def _quotable(self) -> list[Any]:
        """The units a fact question may be answered with as they are (none: quoting is off,
        the question needs no shop fact, or nothing retrieved is close enough)."""
        kb, found = self.svc.knowledge, self.found
        if kb is None or found is None or not kb.cfg.quote or not found.needs_facts:
            return []
        return quotable(found.units, kb.cfg.quote_units, kb.cfg.quote_min, self.query)

    def _states_no_fact(self, reply: str) -> bool:
        """A fact question answered without a single number while the shop's sentences at hand
        (close enough to quote) hold one: "可到她手上。" for "几天能到?"."""
        from endcloud.evaluate.facts import numbers

        return not numbers(reply) and any(numbers(u.text) for u in self._quotable())

    def _off_evidence(self, reply: str) -> bool:
        """A fact question answered with an amount ("9元", "36小时", "$4.5") or a number that the
        quotable units (the closest sentences of the shop) do not hold, while they hold one: the
        model took it from a distractor chunk ("运费为1元" from a size chart). Or one that asks
        for an amount and does not state the best unit's ("几个工作日" answered with "11天")."""
        kb = self.svc.knowledge
        if kb is None or not kb.cfg.strict_evidence:
            return False
        units = self._quotable()
        if not units:
            return False
        from endcloud.evaluate.facts import claims, numbers
        from endcloud.knowledge.evidence import misses_asked

        evidence = " ".join(u.text for u in units) + " " + self.query
        if not numbers(evidence):
            return False
        return bool(claims(reply) - claims(evidence) or numbers(reply) - numbers(evidence)
                    or misses_asked(self.query, reply, units))

    def _handoff(self) -> str:
        """What the customer is told when a person takes over: the expected wait (or the opening
        hours) when hand-off is on, else the configured sentence."""
        h, e = self.svc.cfg.handoff, self.svc.cfg.escalation
        if h.enabled:
            return handoff.customer_message(h, lang_of(self.query), self.wait_min)
        return e.handoff_message_en if lang_of(self.query) == "en" else e.handoff_message

    async def to_person(self) -> int | None:
        """A customer message while a person holds the conversation: into the staff view. None
        when the hand-off ended since `begin` looked (released or closed meanwhile): nothing was
        written, and the turn must go to the bot after all."""
        held = self.held

        def write(conn: Any) -> int | None:
            still = handoffs.open_of(conn, self.conversation_id)
            if still is None or still["id"] != held["id"]:
                return None
            return handoffs.add_message(conn, held["id"], self.conversation_id, "customer", self.query)

        return await self.svc.store.write(write)

    def _quote(self) -> str | None:
        """The reply for a fact question whose draft is not served: the closest units, quoted."""
        text = quote(self._quotable(), lang_of(self.query))
        return self._shown_text(text) if text else None

    def _invents(self, reply: str) -> bool:
        """A number, or an amount with its unit ("1元" where the shop says "9元"), in the reply that
        neither the prompt (chunks, history) nor the question holds."""
        kb = self.svc.knowledge
        if kb is None or not kb.cfg.check_numbers or self.found is None:
            return False
        from endcloud.evaluate.facts import claims, numbers

        given = " ".join(m["content"] for m in self.prompt)
        return bool(numbers(reply) - numbers(given) or claims(reply) - claims(given))

    def _shown_text(self, text: str) -> str | None:
        """`text` with this conversation's own masked values restored; None when a placeholder
        with nothing behind it remains (a customer never sees `[数字x]` or another's `[ORDER_1]`)."""
        if not text.strip():
            return None
        guarded = placeholder_guard(text, self._conversation())
        return None if guarded.missing else guarded.text

    def _conversation(self) -> Any:
        return conversation_state(self.messages)

    async def _record(self, reply: str, by: str, draft: str | None, outcome: CloudOutcome | None,
                      match: float | None, confidence: float | None, final: Final,
                      source: str | None = None) -> None:
        o = outcome or CloudOutcome("not_called")
        knowledge = None
        if self.found is not None:
            f = self.found
            knowledge = json.dumps({
                "chunks": self.knowledge_ids, "version": f.version,
                "relevance": None if f.relevance is None else round(f.relevance, 4),
                "memory": f.answer.chunk.id if source == "memory" and f.answer else None,
                "retrieval_ms": round(f.ms, 2)})
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
            first_token_ms=None if self.first_token_ms is None else round(self.first_token_ms, 2),
            answered_from=source if by == "end" else None, knowledge_json=knowledge,
            grounded=self.grounded, nonanswer=self.nonanswer)
        queue = by == "handoff" and self.svc.cfg.handoff.enabled  # a person is promised: queue it

        def write(conn: Any) -> None:
            add_exchange(conn, ex)
            if queue:
                handoffs.open_handoff(conn, self.conversation_id,
                                     "requested" if self.reason == "person" else self.reason or "handoff")

        await self.svc.store.write(write)
        self.exchange = ex
        if self.svc.metrics is not None:
            self.svc.metrics.turn(ex, time.monotonic() - self.t0,
                                  ("requested" if self.reason == "person" else self.reason or "handoff")
                                  if queue else None)


@functools.lru_cache(maxsize=1)
def masker() -> Any:
    """One masker for the process (its detectors are read once)."""
    from endcloud.data.privacy import Masker

    return Masker()


def conversation_state(messages: list[dict[str, str]]) -> Any:
    """The masking state of a conversation: placeholders numbered as its own messages give them."""
    m = masker()
    conv = m.new_conversation()
    for msg in messages:
        if msg.get("role") in ("user", "assistant"):
            m.mask(msg["content"], conv)
    return conv
