"""The `openai` backend: any OpenAI-compatible server answers as the end model.

llama.cpp `llama-server -m end.gguf --lora a.gguf` (the fast CPU path) or vLLM `--enable-lora
--lora-modules shop-a=/adapters/a` (the scale-out path for many shops and GPUs: each adapter is a
model name, passed through unchanged). Spoken through `endcloud.wire`, retried like the teacher
client (`wire.Retry`) until the first piece arrives, all under `upstream_deadline_s`.

With `upstream_adapters`, a promotion reaches the engine (`use_adapter`, called by the hot swap):
- vllm: the champion's LoRA folder is loaded under a new name every time (`POST
  /v1/load_lora_adapter`; a same-name reload would reuse stale prefix-cache entries), requests for
  `served_name` go to that name from the next one on, and the old name is unloaded (`POST
  /v1/unload_lora_adapter`) once its last in-flight request has finished. A rollback to the base
  model sends `served_name` itself again. The folder's path must be readable by vLLM.
- llama-server: it loads LoRA files only at start, so the champion must be one of them (`--lora
  <id>.gguf`, matched by file name: the adapter id or the folder's name); every request for
  `served_name` then carries the scales (`"lora": [{"id", "scale"}]`: the champion's 1, every
  other 0; base = all 0) and `cache_prompt: false`. Per request, not the server's global `POST
  /lora-adapters`, and without the prompt cache: this build's cache does not tell adapters apart
  (measured: after a switch, replies continued from the other adapter's cached prompt).
Prefix-Tuning and P-Tuning v2 adapters cannot be served by either engine: refused, naming the
transformers backend.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from endcloud import wire
from endcloud.end.backend import Backend, Delta, Event, Final, GenParams
from endcloud.end.config import BackendConfig
from endcloud.errors import AdapterError, CloudError, DeadlineError, RequestRejectedError, TransientError

log = logging.getLogger(__name__)
UNLOAD_RETRY_S = 5.0  # vllm: how often a failed unload of a retired adapter name is tried again

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
        self.root = cfg.base_url.rstrip("/").removesuffix("/v1")  # the engine's own endpoints
        self.active: str | None = None  # vllm: the upstream name `served_name` goes to now
        self.active_source: Path | None = None  # vllm: its folder (loaded again after a restart)
        self.inflight: Counter[str] = Counter()
        self.retired: set[str] = set()  # vllm: names to unload once their requests finished
        self.lora: list[dict[str, Any]] | None = None  # llama-server: the scales each request carries
        self.unload_after = 0.0  # vllm: the next background unload try, after a failed one
        self.unloads: set[Any] = set()
        self.lock = threading.Lock()

    # -- adapters on the engine -----------------------------------------------------------------
    def use_adapter(self, source: str | Path | None, name: str | None = None) -> None:
        if not self.cfg.upstream_adapters:
            return super().use_adapter(source, name)
        if source is not None:
            from endcloud.end.adapters import verify

            method = verify(source).get("method", "lora")
            if method != "lora":
                raise AdapterError(f"{source}: a {method} adapter cannot be served by vLLM or "
                                   "llama.cpp's server (they apply LoRA only); serve it with "
                                   "backend.kind=transformers")
        if self.cfg.upstream_adapters == "vllm":
            self._vllm_switch(source, name)
        else:
            self._llama_server_switch(source, name)
        self.champion = name if source is not None else None

    def _vllm_switch(self, source: str | Path | None, name: str | None) -> None:
        new = None
        if source is not None:
            new = f"{self.served_name}-{name or Path(source).name}-{secrets.token_hex(3)}"
            self._post_sync("/v1/load_lora_adapter",
                            {"lora_name": new, "lora_path": str(Path(source).resolve())})
        with self.lock:
            old, self.active = self.active, new
            self.active_source = None if source is None else Path(source)
            if old is not None:
                self.retired.add(old)  # unloaded once its last request has ended
        self._unload_idle()

    def _llama_server_switch(self, source: str | Path | None, name: str | None) -> None:
        import httpx

        try:
            loaded = httpx.get(f"{self.root}/lora-adapters", timeout=10).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AdapterError(f"{self.root}/lora-adapters: {type(exc).__name__}: not a llama-server "
                               "that answers") from None
        pick = None
        if source is not None:
            wanted = {n for n in (name, Path(source).name, Path(source).stem) if n}
            pick = next((a["id"] for a in loaded if Path(a["path"]).stem in wanted), None)
            if pick is None:
                raise AdapterError(
                    f"llama-server at {self.root} was not started with adapter {name!r}: it loads LoRA "
                    f"files only at start (restart it with --lora {name}.gguf --lora-init-without-apply; "
                    f"`endcloud end export-gguf {source} {name}.gguf` writes it); it has "
                    f"{[Path(a['path']).name for a in loaded]}")
        with self.lock:  # sent with every request for served_name, not set on the server: its
            # global POST /lora-adapters mixes cached prompts across adapters (measured: garbage)
            self.lora = [{"id": a["id"], "scale": 1.0 if a["id"] == pick else 0.0} for a in loaded]

    def _post_sync(self, path: str, body: Any) -> None:
        import httpx

        try:
            r = httpx.post(f"{self.root}{path}", json=body, timeout=60)
        except httpx.HTTPError as exc:
            raise AdapterError(f"{self.root}{path}: {type(exc).__name__}: the engine did not answer") from None
        if r.status_code >= 400:
            err = AdapterError(f"{self.root}{path}: HTTP {r.status_code}: {wire.error_detail(r.content)}")
            err.status = r.status_code  # type: ignore[attr-defined]
            raise err

    def _acquire(self, model: str) -> str:
        """The upstream name for this request (the champion's for `served_name`), counted."""
        with self.lock:
            upstream = self.active if model == self.served_name and self.active else model
            self.inflight[upstream] += 1
        return upstream

    async def _release(self, upstream: str) -> None:
        with self.lock:
            self.inflight[upstream] -= 1
            due = bool(self.retired) and time.monotonic() >= self.unload_after
            if due:
                self.unload_after = time.monotonic() + UNLOAD_RETRY_S
        if due:  # in the background: the request that ends here does not wait for the engine
            task = asyncio.get_running_loop().run_in_executor(None, self._unload_idle)
            self.unloads.add(task)
            task.add_done_callback(self.unloads.discard)

    def _unload_idle(self) -> None:
        """Unload every retired name with no request left on it. A failed unload is logged and
        tried again after a later request (at most every UNLOAD_RETRY_S) or switch; it never
        fails or delays a customer's request."""
        with self.lock:
            idle = [n for n in self.retired if self.inflight[n] == 0]
        for name in idle:
            try:
                self._post_sync("/v1/unload_lora_adapter", {"lora_name": name})
            except AdapterError as exc:
                if getattr(exc, "status", None) not in (400, 404):  # 4xx: the engine lacks it already
                    log.warning("could not unload %s (will retry): %s", name, exc)
                    continue
            with self.lock:
                self.retired.discard(name)

    def models(self) -> list[str]:
        return list(self.cfg.upstream_models) or [self.served_name]

    async def start(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=self.cfg.base_url.rstrip("/"),
                                        timeout=httpx.Timeout(self.cfg.upstream_deadline_s, connect=5.0))
        if self.cfg.upstream_adapters == "llama-server":  # start on the base model: every scale 0
            try:  # (adapters loaded without --lora-init-without-apply would otherwise apply)
                await asyncio.to_thread(self._llama_server_switch, None, None)
            except AdapterError as exc:  # the engine may come up after us: the first swap retries
                log.warning("%s", exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
                     ) -> AsyncIterator[Event]:
        if self.cfg.upstream_adapters == "llama-server" and self.lora is None:
            try:  # the engine was down at start: set the base scales before the first request
                await asyncio.to_thread(self._llama_server_switch, None, None)
            except AdapterError as exc:
                log.warning("%s", exc)
        upstream = self._acquire(model)
        lora = self.lora if model == self.served_name else None
        started = False
        try:
            async for ev in self._stream(upstream, messages, params, lora):
                started = True
                yield ev
        except RequestRejectedError as exc:
            # vLLM restarted and forgot its runtime adapters: the champion's name is unknown
            # (404). Load the champion again (a new name) and answer this request with it.
            if started or exc.status != 404 or upstream != self.active or self.active_source is None:
                raise
            log.warning("the engine does not know %s (restarted?): loading the champion again", upstream)
            await asyncio.to_thread(self._vllm_switch, self.active_source, self.champion)
            again = self._acquire(model)
            try:
                async for ev in self._stream(again, messages, params, lora):
                    yield ev
            finally:
                await self._release(again)
        finally:
            await self._release(upstream)

    async def _stream(self, model: str, messages: list[dict[str, str]], params: GenParams,
                      lora: list[dict[str, Any]] | None = None) -> AsyncIterator[Event]:
        body = wire.request_body(
            model, messages, max_tokens=params.max_tokens, stream=True,
            temperature=self.cfg.temperature if params.temperature is None else params.temperature,
            top_p=self.cfg.top_p if params.top_p is None else params.top_p)
        if lora is not None:  # llama-server: this request's adapter scales, and no prompt cache:
            body["lora"] = lora  # its cache does not tell adapters apart (measured: the first
            body["cache_prompt"] = False  # reply after a switch continued the other adapter's KV)
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
