"""End-model backends behind one interface: `stream(model, messages, params)` yields events.

    backend = build_backend(cfg.backend)        # transformers | openai | fake
    async for ev in backend.stream("end", messages, GenParams(max_tokens=64)):
        ...  # Delta(text) ... then one Final(finish_reason, tokens, confidence)

- `transformers`: the base model in process, plus each promoted adapter under its own model name,
  sampled by our own loop (`endcloud.end.generate`, works for LoRA and prefix methods). Each
  step's token probability is kept, so the reply carries a confidence (geometric mean).
- `openai`: any OpenAI-compatible server: llama.cpp `llama-server -m end.gguf --lora a.gguf`
  (the fast CPU path) or vLLM `--enable-lora --lora-modules shop-a=/adapters/a` (the scale-out path
  for many shops and GPUs: each adapter is a model name, passed through unchanged).
- `fake`: a fixed reply at a fixed pace, for benchmarks and tests at the boundary.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

from endcloud.serve.config import BackendConfig


@dataclass
class GenParams:
    max_tokens: int = 128
    temperature: float | None = None  # None: the backend's configured default
    top_p: float | None = None


@dataclass
class Delta:
    text: str


@dataclass
class Final:
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int
    confidence: float | None = None  # geometric-mean probability of the sampled tokens


Event = Delta | Final


class Backend(ABC):
    """One end model (or several adapters of one base) that streams replies."""

    slots: int = 1  # generations it runs at once; the queue in front sizes itself by this

    def models(self) -> list[str]:
        """The model names this backend answers to (the first is the default)."""
        return [self.served_name]

    served_name: str = "end"

    async def start(self) -> None:
        """Load weights, open connections (called once, from the app's lifespan)."""

    async def close(self) -> None:
        """Release what `start` took."""

    @abstractmethod
    def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
               ) -> AsyncIterator[Event]:
        """Yield Delta pieces, then exactly one Final."""


class FakeBackend(Backend):
    """A fixed reply, one piece per `token_delay_s`: measures the service, not a model."""

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg, self.served_name, self.slots = cfg, cfg.served_name, cfg.slots
        self.pieces = [cfg.fake_reply[i:i + 2] for i in range(0, len(cfg.fake_reply), 2)]

    async def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
                     ) -> AsyncIterator[Event]:
        pieces = self.pieces[: params.max_tokens]
        for piece in pieces:
            if self.cfg.fake_token_delay_s:
                await asyncio.sleep(self.cfg.fake_token_delay_s)
            yield Delta(piece)
        finish = "length" if len(pieces) < len(self.pieces) else "stop"
        yield Final(finish, sum(len(m["content"]) for m in messages), len(pieces), 1.0)


class TransformersBackend(Backend):
    """The base model and its promoted adapters in this process (one generation at a time)."""

    slots = 1

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg, self.served_name = cfg, cfg.served_name
        self.generators: dict[str, Any] = {}
        self.lock = threading.Lock()  # the model is not reentrant

    def models(self) -> list[str]:
        return [self.served_name, *self.cfg.adapters]

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        from endcloud.end.adapters import load_adapter
        from endcloud.end.generate import Generator, Sampling
        from endcloud.end.models import load_base

        def sampling() -> Sampling:
            return Sampling(256, self.cfg.temperature, self.cfg.top_p, self.cfg.max_input_tokens)

        model, tokenizer, base = load_base(self.cfg.model)
        self.generators[self.served_name] = Generator(model, tokenizer, sampling(), self.cfg.seed)
        for name, folder in self.cfg.adapters.items():
            # PEFT injects into the modules it wraps, so each adapter gets its own copy of the base
            copy, tok, _ = load_base(self.cfg.model)
            peft = load_adapter(copy, folder, base.sha256)
            peft.eval()
            self.generators[name] = Generator(peft, tok, sampling(), self.cfg.seed)

    def use_adapter(self, folder: Any, name: str | None = None) -> None:
        """Hot swap (serve/hotswap.py): answer as `served_name` with this adapter (None: the base
        model). Loaded beside the current one, then swapped in with one assignment; requests
        that already started finish on the model they started with."""
        from endcloud.end.adapters import load_adapter
        from endcloud.end.generate import Generator, Sampling
        from endcloud.end.models import load_base

        self.base_generator = getattr(self, "base_generator", self.generators[self.served_name])
        if folder is None:
            self.generators[self.served_name] = self.base_generator
        else:
            copy, tok, base = load_base(self.cfg.model)
            peft = load_adapter(copy, folder, base.sha256).eval()
            self.generators[self.served_name] = Generator(peft, tok, Sampling(
                256, self.cfg.temperature, self.cfg.top_p, self.cfg.max_input_tokens), self.cfg.seed)
        self.champion = name

    def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
               ) -> AsyncIterator[Event]:
        gen = self.generators[model]
        return _threaded(lambda stop: self._run(gen, messages, params, stop))

    def _run(self, gen: Any, messages: list[dict[str, str]], params: GenParams,
             stop: threading.Event) -> Iterator[Event]:
        import torch

        with self.lock:
            s = gen.sampling
            saved = (s.max_new_tokens, s.temperature, s.top_p)
            s.max_new_tokens = params.max_tokens
            s.temperature = self.cfg.temperature if params.temperature is None else params.temperature
            s.top_p = self.cfg.top_p if params.top_p is None else params.top_p
            try:
                prompt = gen.prompt_ids(messages)
                logits: list[Any] = []
                ids: list[int] = []
                shown, logp, finish = "", 0.0, "length"
                for (tok,) in gen.steps([prompt], logits_out=logits):
                    if tok is None:
                        break
                    logp += float(torch.log_softmax(logits[-1][0], -1)[tok])
                    logits.clear()
                    if tok in gen.stops:
                        finish = "stop"
                        break
                    ids.append(tok)
                    text = gen.tokenizer.decode(ids, skip_special_tokens=True)
                    if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte char
                        yield Delta(text[len(shown):])
                        shown = text
                    if stop.is_set():  # the client went away
                        break
                n = len(ids) + (finish == "stop")
                yield Final(finish, len(prompt), len(ids), math.exp(logp / n) if n else None)
            finally:
                s.max_new_tokens, s.temperature, s.top_p = saved


class OpenAIBackend(Backend):
    """An OpenAI-compatible upstream (llama.cpp server, vLLM --enable-lora, Ollama ...)."""

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg, self.served_name, self.slots = cfg, cfg.served_name, cfg.slots
        self.client: Any = None

    def models(self) -> list[str]:
        return list(self.cfg.upstream_models) or [self.served_name]

    async def start(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url=self.cfg.base_url.rstrip("/"), timeout=60.0)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
                     ) -> AsyncIterator[Event]:
        body = {"model": model, "messages": messages, "stream": True, "max_tokens": params.max_tokens,
                "temperature": self.cfg.temperature if params.temperature is None else params.temperature,
                "top_p": self.cfg.top_p if params.top_p is None else params.top_p,
                "stream_options": {"include_usage": True}}
        finish, usage, n = "stop", {}, 0
        async with self.client.stream("POST", "/chat/completions", json=body) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    if text:
                        n += 1
                        yield Delta(text)
                    finish = choice.get("finish_reason") or finish
        yield Final(finish, int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or n), None)


async def _threaded(make: Any) -> AsyncIterator[Event]:
    """Run a blocking generator in a thread and yield its events here, without blocking the loop."""
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    done = object()

    def work() -> None:
        try:
            for ev in make(stop):
                loop.call_soon_threadsafe(q.put_nowait, ev)
        except BaseException as exc:  # handed to the async side, raised there
            loop.call_soon_threadsafe(q.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(q.put_nowait, done)

    thread = threading.Thread(target=work, name="end-model", daemon=True)
    thread.start()
    try:
        while (item := await q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # a disconnected client stops the generation at the next token


BACKENDS: dict[str, type[Backend]] = {"fake": FakeBackend, "transformers": TransformersBackend,
                                      "openai": OpenAIBackend}


def build_backend(cfg: BackendConfig) -> Backend:
    return BACKENDS[cfg.kind](cfg)
