"""The end-model interface: one `Backend` streams replies, whatever runs the model.

    async for ev in backend.stream("end", messages, GenParams(max_tokens=64)):
        ...  # Delta(text) ... then one Final(finish_reason, tokens, confidence)

`LocalBackend` is a model in this process: a blocking `generate` (the local teacher server calls it
from its threads), streamed to the event loop by `threaded`. The backends: `end/runtime.py`
(fake, transformers, llama-cpp) and `end/upstream.py` (any OpenAI-compatible server).
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

from endcloud.errors import AdapterError


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
    served_name: str = "end"
    champion: str | None = None  # the adapter `use_adapter` last put in place (None: the base)

    def models(self) -> list[str]:
        """The model names this backend answers to (the first is the default)."""
        return [self.served_name]

    async def start(self) -> None:
        """Load weights, open connections (called once, from the app's lifespan)."""

    async def close(self) -> None:
        """Release what `start` took."""

    @abstractmethod
    def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
               ) -> AsyncIterator[Event]:
        """Yield Delta pieces, then exactly one Final."""

    def use_adapter(self, source: str | Path | None, name: str | None = None) -> None:
        """Hot swap (serve/hotswap.py): answer as `served_name` with this adapter (None: the base).
        Loaded beside the current one; a generation that already started finishes on its own."""
        raise AdapterError(f"the {type(self).__name__} cannot swap adapters at run time "
                           "(an upstream server loads its own)")


class LocalBackend(Backend):
    """A model in this process: a blocking `run`, called directly by `generate` (the teacher
    server's threads) or in a worker thread by `stream` (the service)."""

    def select(self, model: str) -> Any:
        """What a request for `model` runs on (a generator, an adapter), fixed when the request
        arrives: a hot swap after that does not change it. Default: the name itself."""
        return model

    @abstractmethod
    def run(self, selected: Any, messages: list[dict[str, str]], params: GenParams,
            stop: threading.Event) -> Iterator[Event]:
        """Delta pieces, then one Final; checks `stop` (the client went away) between tokens."""

    def generate(self, model: str, messages: list[dict[str, str]], params: GenParams,
                 stop: threading.Event) -> Iterator[Event]:
        return self.run(self.select(model), messages, params, stop)

    def stream(self, model: str, messages: list[dict[str, str]], params: GenParams
               ) -> AsyncIterator[Event]:
        selected = self.select(model)
        return threaded(lambda stop: self.run(selected, messages, params, stop))

    def load(self) -> None:
        """What `start` does, callable from a thread (the teacher server loads this way)."""

    async def start(self) -> None:
        await asyncio.to_thread(self.load)


async def threaded(make: Callable[[threading.Event], Iterator[Event]]) -> AsyncIterator[Event]:
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
