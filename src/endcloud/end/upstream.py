"""The `openai` backend: any OpenAI-compatible server answers as the end model.

llama.cpp `llama-server -m end.gguf --lora a.gguf` (the fast CPU path) or vLLM `--enable-lora
--lora-modules shop-a=/adapters/a` (the scale-out path for many shops and GPUs: each adapter is a
model name, passed through unchanged). Spoken through `endcloud.wire`, retried like the teacher
client (`wire.Retry`) until the first piece arrives, all under `upstream_deadline_s`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from endcloud import wire
from endcloud.end.backend import Backend, Delta, Event, Final, GenParams
from endcloud.end.config import BackendConfig
from endcloud.errors import CloudError, DeadlineError, TransientError

if TYPE_CHECKING:
    import random

    import httpx


class OpenAIBackend(Backend):
    """An OpenAI-compatible upstream (llama.cpp server, vLLM --enable-lora, Ollama ...).

    A request that fails before its first piece (connection refused, timeout, 429/5xx) is retried
    as the teacher client retries (`wire.Retry`), all within `upstream_deadline_s`; once a piece
    has reached the customer, a failure ends the stream (text cannot be taken back).
    """

    def __init__(self, cfg: BackendConfig, rng: random.Random | None = None) -> None:
        import random

        self.cfg, self.served_name, self.slots = cfg, cfg.served_name, cfg.slots
        self.client: httpx.AsyncClient | None = None
        self.retry = wire.Retry(cfg.upstream_max_attempts, rng=rng or random.Random())

    def models(self) -> list[str]:
        return list(self.cfg.upstream_models) or [self.served_name]

    async def start(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=self.cfg.base_url.rstrip("/"),
                                        timeout=httpx.Timeout(self.cfg.upstream_deadline_s, connect=5.0))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
                     ) -> AsyncIterator[Event]:
        body = wire.request_body(
            model, messages, max_tokens=params.max_tokens, stream=True,
            temperature=self.cfg.temperature if params.temperature is None else params.temperature,
            top_p=self.cfg.top_p if params.top_p is None else params.top_p)
        deadline = time.monotonic() + self.cfg.upstream_deadline_s
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                async for ev in self._attempt(body, deadline):
                    started = True
                    yield ev
                return
            except CloudError as exc:
                delay = None if started else self.retry.delay(exc, attempt, deadline)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _attempt(self, body: dict[str, Any], deadline: float) -> AsyncIterator[Event]:
        import httpx

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineError("deadline", "no time left for another attempt")
        # every wait of this attempt (connect, each read) is bounded by the time left
        timeout = httpx.Timeout(remaining, connect=min(5.0, remaining))
        stream, n = wire.Stream(), 0
        try:
            async with self.client.stream("POST", "/chat/completions", json=body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    raw = await resp.aread()
                    raise wire.http_error(resp.status_code, wire.error_detail(raw),
                                          resp.headers.get("retry-after"))
                async for event in wire.asse_events(resp.aiter_lines()):
                    text = stream.feed(event)
                    if text:
                        n += 1
                        yield Delta(text)
        except httpx.TimeoutException:
            raise TransientError("timeout", "the upstream did not answer in time") from None
        except httpx.HTTPError as exc:  # connection refused/reset, protocol errors
            raise TransientError("connection", type(exc).__name__) from None
        reply = stream.completion()
        yield Final(reply.finish_reason or "stop", reply.prompt_tokens, reply.completion_tokens or n, None)
