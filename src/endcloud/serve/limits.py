"""Limits: a body-size cap enforced before parsing, a bounded queue in front of the model, and a
per-session rate limit. Each refusal is immediate (no waiting to find out) and says when to retry.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


class Refused(Exception):
    """Admission refused: the route answers `status` with `Retry-After: retry_after`."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 before any JSON parsing.

    A Content-Length over the cap is refused without reading a byte; a chunked body is buffered
    up to the cap (cheap at 64 KiB) and refused as soon as it goes over.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await _error(send, 400, "Content-Length is not a number")
            if declared > self.max_bytes:
                return await _error(send, 413, f"request body larger than {self.max_bytes} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _error(send, 413, f"request body larger than {self.max_bytes} bytes")
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then wait for the disconnect, as the server would

        await self.app(scope, replay, send)


def error_body(status: int, message: str) -> bytes:
    """The OpenAI-style error body every route and middleware of the service answers with."""
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            413: "request_too_large", 422: "invalid_request_error", 429: "rate_limit_error",
            503: "overloaded_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")
    return json.dumps({"error": {"message": message, "type": kind, "code": status}},
                      ensure_ascii=False).encode()


async def _error(send: Callable, status: int, message: str) -> None:
    body = error_body(status, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class Admission:
    """`slots` generations run; up to `queue_size` more wait (at most `timeout_s`); the rest: 503.

        async with admission.slot():
            ...  # generate
    """

    def __init__(self, slots: int, queue_size: int, timeout_s: float, retry_after: int) -> None:
        self.sem = asyncio.Semaphore(slots)
        self.capacity = slots + queue_size
        self.timeout_s, self.retry_after = timeout_s, retry_after
        self.inside = 0  # running + waiting

    def slot(self) -> "_Slot":
        if self.inside >= self.capacity:  # decided at once: no request waits to learn it is refused
            raise Refused(503, "the service is busy; try again shortly", self.retry_after)
        return _Slot(self)


class _Slot:
    def __init__(self, adm: Admission) -> None:
        self.adm = adm
        adm.inside += 1
        self.held = False

    async def __aenter__(self) -> None:
        try:
            await asyncio.wait_for(self.adm.sem.acquire(), self.adm.timeout_s)
        except asyncio.TimeoutError:
            self.adm.inside -= 1
            raise Refused(503, "the service is busy; try again shortly", self.adm.retry_after) from None
        except BaseException:
            self.adm.inside -= 1
            raise
        self.held = True

    async def __aexit__(self, *exc: object) -> None:
        self.adm.inside -= 1
        if self.held:
            self.adm.sem.release()


class SessionLimiter:
    """Token bucket per session key: `rate_per_minute` sustained, bursts of `burst`."""

    def __init__(self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (level, last time)

    def check(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        level, last = self.buckets.get(key, (self.burst, now))
        level = min(self.burst, level + (now - last) * self.rate)
        if level < 1.0:
            self.buckets[key] = (level, now)
            wait = max(1, int((1.0 - level) / self.rate + 0.999))
            raise Refused(429, "too many requests in this session; slow down", wait)
        self.buckets[key] = (level - 1.0, now)
        if len(self.buckets) > 100_000:  # forget the idle ones (full buckets carry no state)
            self.buckets = {k: v for k, v in self.buckets.items() if v[0] < self.burst - 1e-9}
