"""The teacher client: OpenAI chat completions over httpx, with privacy at the boundary.

    client = CloudClient(CloudConfig(base_url="http://127.0.0.1:8765/v1", model="local"))
    reply = client.chat([{"role": "user", "content": "我的订单什么时候发货？"}])
    reply.text, reply.prompt_tokens, reply.attempts

One call, step by step:
  1. mask every message with one masker conversation; any message not sendable (or a masker
     crash) raises PrivacyError and nothing is sent (fail closed);
  2. circuit breaker -> rate limiter -> concurrency slot -> one HTTP attempt, read under the
     call's wall-clock deadline (a server that trickles bytes cannot hold the call);
  3. the single retry layer: timeouts, connection errors, 408/409/429/5xx and malformed
     replies are retried with exponential backoff and full jitter, honouring Retry-After
     when it fits in the remaining deadline; other 4xx fail at once;
  4. every attempt is written to the egress audit (hashes and sizes, never text or key);
  5. placeholders in the reply are restored locally.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import random
import re
import threading
import time
from contextvars import ContextVar
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlsplit

from endcloud import wire
from endcloud.cloud.config import API_KEY_ENV, CloudConfig
from endcloud.records import TeacherReply
from endcloud.text import estimate_tokens
from endcloud.errors import (AuthError, CircuitOpenError, CloudError, DeadlineError, MalformedReplyError,
                             MissingExtraError, PrivacyError, TransientError)

if TYPE_CHECKING:
    import httpx

    from endcloud.data.privacy import Conversation, Masker

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024


@dataclass
class EgressRecord:
    """One HTTP request that left the machine, as the audit log keeps it."""

    endpoint: str
    model: str
    payload_sha256: str
    request_bytes: int
    response_bytes: int
    status: str  # ok | http_503 | timeout | truncated | ...
    attempt: int
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    knowledge_ids: tuple[str, ...] = ()  # knowledge chunks inside this request (KNOWLEDGE_IDS)


# The knowledge chunks the caller put into the messages it is sending; set around `chat` (it is
# copied into worker threads with the context), read into each audit record.
KNOWLEDGE_IDS: ContextVar[tuple[str, ...]] = ContextVar("knowledge_ids", default=())

AuditSink = Callable[[EgressRecord], None]


# -- circuit breaker ---------------------------------------------------------------------------
class CircuitBreaker:
    """closed -> open (after too many failures) -> half-open (one probe) -> closed or open."""

    def __init__(self, consecutive: int = 3, ratio: float = 0.5, min_calls: int = 5,
                 window: int = 20, open_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consecutive, self.ratio, self.min_calls, self.open_s = consecutive, ratio, min_calls, open_s
        self.clock = clock
        self.outcomes: deque[bool] = deque(maxlen=window)  # True = failure
        self.streak = 0
        self.opened_at: float | None = None
        self.probing = False
        self.lock = threading.Lock()

    @property
    def state(self) -> str:
        with self.lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.open_s else "open"

    def before_call(self) -> None:
        """Raise CircuitOpenError unless a call may go out now (half-open lets one probe pass)."""
        with self.lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self.probing:
                self.probing = True
                return
            assert self.opened_at is not None
            raise CircuitOpenError(max(0.0, self.opened_at + self.open_s - self.clock()))

    def record(self, failed: bool) -> None:
        with self.lock:
            if self.probing:  # the half-open probe decides alone
                self.probing = False
                if failed:
                    self.opened_at = self.clock()
                else:
                    self.opened_at, self.streak = None, 0
                    self.outcomes.clear()
                return
            if self.opened_at is not None:
                return  # a call that started before the breaker opened
            self.outcomes.append(failed)
            self.streak = self.streak + 1 if failed else 0
            n = len(self.outcomes)
            too_many = n >= self.min_calls and sum(self.outcomes) / n > self.ratio
            if self.streak >= self.consecutive or too_many:
                self.opened_at = self.clock()
                log.warning("circuit breaker open for %.1f s after repeated failures", self.open_s)


# -- rate limiter -------------------------------------------------------------------------------
class RateLimiter:
    """Token buckets for requests/minute and tokens/minute (0 = unlimited)."""

    def __init__(self, requests_per_minute: int = 0, tokens_per_minute: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = (float(requests_per_minute), float(tokens_per_minute))
        self.levels = list(self.limits)  # start full: a burst of one minute's budget
        self.clock = clock
        self.last = clock()
        self.lock = threading.Lock()

    def acquire(self, tokens: int, deadline: float) -> None:
        need = (1.0, float(tokens))
        while True:
            with self.lock:
                now = self.clock()
                for i, limit in enumerate(self.limits):
                    if limit:
                        self.levels[i] = min(limit, self.levels[i] + (now - self.last) * limit / 60)
                self.last = now
                waits = [0.0 if not lim else max(0.0, min(n, lim) - lvl) * 60 / lim
                         for n, lim, lvl in zip(need, self.limits, self.levels)]
                wait = max(waits)
                if wait == 0:
                    for i, limit in enumerate(self.limits):
                        if limit:
                            self.levels[i] -= min(need[i], limit)
                    return
            if now + wait > deadline:
                raise DeadlineError("rate_limited", f"the rate limit needs {wait:.1f} s, "
                                    "more than the call's remaining deadline")
            time.sleep(min(wait, 0.5))


# -- the client ---------------------------------------------------------------------------------
class CloudClient:
    """A chat-completions client for any OpenAI-compatible endpoint. Thread-safe."""

    def __init__(self, cfg: CloudConfig, *, masker: Masker | None = None, audit: AuditSink | None = None,
                 transport: httpx.BaseTransport | None = None, rng: random.Random | None = None) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingExtraError("httpx", "cloud") from None
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.endpoint = _safe_endpoint(cfg.base_url)
        self._key = os.environ.get(API_KEY_ENV, "") or None
        if self._key is None and not is_local(cfg.base_url):
            raise AuthError("no_api_key", f"no API key found - set {API_KEY_ENV} "
                            f"(export {API_KEY_ENV}=...) to call {self.endpoint}")
        self.masker = masker if masker is not None else _default_masker()
        self.audit = audit or (lambda record: None)
        self.breaker = CircuitBreaker(cfg.breaker_consecutive, cfg.breaker_ratio,
                                      cfg.breaker_min_calls, cfg.breaker_window, cfg.breaker_open_s)
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self.slots = threading.BoundedSemaphore(cfg.concurrency)
        self.retry = wire.Retry(cfg.max_attempts, cfg.backoff_base_s, cfg.backoff_max_s,
                                rng or random.Random())
        self.refusals = [re.compile(p, re.IGNORECASE) for p in cfg.refusal_patterns]
        self.http = httpx.Client(transport=transport, follow_redirects=False,
                                 limits=httpx.Limits(max_connections=cfg.concurrency * 2))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "CloudClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]], deadline_s: float | None = None) -> TeacherReply:
        """Mask, send (with retries), validate and restore one chat completion."""
        masked, conversation = self.mask_messages(messages)
        payload = json.dumps(self.request_body(masked), ensure_ascii=False).encode("utf-8")
        digest = hashlib.sha256(payload).hexdigest()
        est_prompt = sum(estimate_tokens(m["content"]) for m in masked) + 4 * len(masked)
        start = time.monotonic()
        deadline = start + (deadline_s if deadline_s is not None else self.cfg.deadline_s)
        attempt = 0
        while True:
            attempt += 1
            try:
                reply, cost = self._attempt(payload, digest, attempt, deadline, est_prompt)
            except CloudError as exc:
                exc.attempts = attempt
                delay = self.retry.delay(exc, attempt, deadline)
                if delay is None:
                    raise
                log.info("teacher call failed (%s); retry %d in %.2f s", exc.kind, attempt, delay)
                time.sleep(delay)
                continue
            return TeacherReply(text=self.restore(reply.text, conversation), masked_text=reply.text,
                         finish_reason=reply.finish_reason, model=reply.model or self.cfg.model,
                         prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                         latency_s=time.monotonic() - start, attempts=attempt, cost=cost,
                         payload_sha256=digest)

    def mask_messages(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], Conversation]:
        """Mask every message with one conversation state; fail closed on anything unsendable."""
        try:
            conversation = self.masker.new_conversation()
            results = [self.masker.mask(m["content"], conversation) for m in messages]
        except Exception as exc:  # a broken masker must never let text through
            raise PrivacyError(f"the masker failed ({type(exc).__name__}); nothing was sent") from None
        for i, (m, r) in enumerate(zip(messages, results)):
            if not r.sendable:
                reasons = ", ".join(r.reasons) or "marked not sendable"
                raise PrivacyError(f"message {i} ({m['role']}) is not safe to send after "
                                   f"masking ({reasons}); nothing was sent")
        return [{"role": m["role"], "content": r.text} for m, r in zip(messages, results)], conversation

    def restore(self, text: str, conversation: Conversation) -> str:
        return conversation.restore(text)

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return wire.request_body(self.cfg.model, messages, max_tokens=self.cfg.max_tokens,
                                 temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                 stream=self.cfg.stream)

    # -- one attempt ----------------------------------------------------------------------------
    def _attempt(self, payload: bytes, digest: str, attempt: int, deadline: float,
                 est_prompt: int) -> tuple[wire.Completion, float]:
        self.limiter.acquire(est_prompt + self.cfg.max_tokens, deadline)
        self.breaker.before_call()
        with self.slots:
            t0 = time.monotonic()
            received = 0
            try:
                raw, received = self._send(payload, deadline)
                reply = self._parse(raw)
            except CloudError as exc:
                self._audit(digest, len(payload), received, exc.kind, attempt, t0)
                # A 400/401 proves the server is up: it closes a half-open breaker like a success.
                self.breaker.record(failed=exc.counts_against_breaker)
                raise
            except BaseException:
                self.breaker.record(failed=True)
                raise
        if reply.prompt_tokens == 0:
            reply.prompt_tokens = est_prompt
        cost = (reply.prompt_tokens * self.cfg.price_prompt_per_1k
                + reply.completion_tokens * self.cfg.price_completion_per_1k) / 1000
        self._audit(digest, len(payload), received, "ok", attempt, t0, reply, cost)
        self.breaker.record(failed=False)
        return reply, cost

    def _send(self, payload: bytes, deadline: float) -> tuple[bytes, int]:
        """POST and read the whole body, never past the deadline nor over the size limit."""
        import httpx

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineError("deadline", "no time left for another attempt")
        timeout = httpx.Timeout(connect=min(self.cfg.connect_timeout_s, remaining),
                                read=min(self.cfg.read_timeout_s, remaining),
                                write=min(self.cfg.read_timeout_s, remaining), pool=remaining)
        try:
            with self.http.stream("POST", self.url, content=payload, headers=self._headers(),
                                  timeout=timeout) as resp:
                if resp.status_code >= 400:
                    body = b"".join(self._read(resp, deadline, MAX_ERROR_BODY, truncate=True))
                    raise self._http_error(resp.status_code, resp.headers, body)
                chunks = list(self._read(resp, deadline, self.cfg.max_response_bytes))
                raw = b"".join(chunks)
                ctype = resp.headers.get("content-type", "")
        except httpx.TimeoutException:
            if time.monotonic() >= deadline - 1e-3:
                raise DeadlineError("deadline", "the server did not answer within the deadline") from None
            raise TransientError("timeout", "the server did not answer in time") from None
        except httpx.HTTPError as exc:  # connection refused/reset, protocol errors
            raise TransientError("connection", type(exc).__name__) from None
        if "html" in ctype.lower() or raw.lstrip()[:1] == b"<":
            raise MalformedReplyError("html_body", "the server sent an HTML page, not JSON")
        return raw, len(raw)

    def _read(self, resp: httpx.Response, deadline: float, limit: int,
              truncate: bool = False) -> Iterator[bytes]:
        size = 0
        for chunk in resp.iter_bytes():  # decoded: the size limit also stops gzip bombs
            size += len(chunk)
            if size > limit:
                if truncate:
                    yield chunk[: max(0, limit - size + len(chunk))]
                    return
                raise MalformedReplyError("oversize", f"response larger than {limit} bytes")
            if time.monotonic() > deadline:
                raise DeadlineError("deadline", "the server was still sending at the deadline")
            yield chunk

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.cfg.extra_headers}
        if self.cfg.stream:
            headers["accept"] = "text/event-stream"
        if self._key:
            headers["authorization"] = f"Bearer {self._key}"
        return headers

    def _http_error(self, status: int, headers: httpx.Headers, body: bytes) -> CloudError:
        hint = (f": check {API_KEY_ENV}" if self._key else f": set {API_KEY_ENV} (the endpoint needs a key)")
        return wire.http_error(status, self.redact(wire.error_detail(body)), headers.get("retry-after"),
                               key_hint=hint)

    # -- parsing and validation -------------------------------------------------------------------
    def _parse(self, raw: bytes) -> wire.Completion:
        text = raw.decode("utf-8", errors="replace")
        if self.cfg.stream and "data:" in text[:2000]:
            reply = wire.parse_stream(text)
        else:
            reply = wire.parse_completion(text)
        self._validate(reply)
        return reply

    def _validate(self, reply: wire.Completion) -> None:
        text, finish = reply.text, reply.finish_reason
        if reply.refusal or finish == "content_filter":
            raise MalformedReplyError("refusal", "the model refused or the reply was filtered")
        if finish == "length" and self.cfg.reject_truncated:
            raise MalformedReplyError("truncated", f"finish_reason=length at max_tokens={self.cfg.max_tokens}")
        if not text.strip():
            raise MalformedReplyError("empty_content", "the reply has no text")
        if len(text) > self.cfg.max_reply_chars:
            raise MalformedReplyError("oversize", f"reply longer than {self.cfg.max_reply_chars} characters")
        if any(p.search(text) for p in self.refusals):
            raise MalformedReplyError("refusal", "the reply reads as a refusal")

    def _audit(self, digest: str, sent: int, received: int, status: str, attempt: int,
               t0: float, reply: wire.Completion | None = None, cost: float = 0.0) -> None:
        record = EgressRecord(self.endpoint, self.cfg.model, digest, sent, received, status, attempt,
                              (time.monotonic() - t0) * 1000, reply.prompt_tokens if reply else 0,
                              reply.completion_tokens if reply else 0, cost, KNOWLEDGE_IDS.get())
        try:
            self.audit(record)
        except Exception:  # the audit must not turn a good reply into a failure
            log.exception("could not write the egress audit record")

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def is_local(base_url: str) -> bool:
    """Loopback endpoints (our serve-local, llama.cpp, Ollama) need no key."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe_endpoint(base_url: str) -> str:
    """scheme://host/path without user info or query (which could carry a key)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _default_masker() -> Masker:
    from endcloud.data.privacy import Masker

    return Masker()


@dataclass
class UsageTotals:
    """Running totals across calls (the label job's progress bar shows them)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, reply: TeacherReply) -> None:
        with self.lock:
            self.calls += 1
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
            self.cost += reply.cost
