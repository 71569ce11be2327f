"""`endcloud cloud serve-local`: an OpenAI-compatible chat-completions server on 127.0.0.1.

    endcloud cloud serve-local                       # the embedded teacher (fetched if missing)
    endcloud cloud serve-local --model path/to/hf-model --port 8765
    endcloud cloud serve-local --model qwen2.5-coder-0.5b-instruct-q4 --backend transformers
    python -m endcloud.cloud.server --model fake --record requests.jsonl --port 0 --port-file p

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (plain JSON, or SSE with
`"stream": true`, `stream_options.include_usage`). With no --model it serves the embedded
default teacher (`endcloud.models.DEFAULT_TEACHER`, a Q4_K_M GGUF) through llama-cpp-python
when that is installed (`endcloud[cloud-local]`), else through transformers (dequantized, slower;
logged). The model loads once and is warmed up before the port is announced (the first
generation after loading can be very slow); generations run one at a time behind a lock. Standard library HTTP only, so the server needs no web framework.

`--model fake` answers with a fixed shop-style reply that repeats the query's placeholders, and
`--record FILE` appends every request's headers and body to FILE: together they are the
recording teacher the privacy tests inspect.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
Event = tuple[str, Any]  # ("delta", text) ... then ("end", (finish_reason, prompt_tok, completion_tok))


# -- backends: one method, `generate`, yielding text pieces then the end ---------------------------
class FakeBackend:
    """A deterministic teacher for tests and benchmarks: no model, replies after `delay` s."""

    serial = False  # like a real cloud, it answers many requests at once

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                 top_p: float) -> Iterator[Event]:
        query = messages[-1]["content"] if messages else ""
        time.sleep(self.delay)
        held = " ".join(dict.fromkeys(re.findall(r"\[[A-Z]+_[0-9]+\]", query)))
        reply = "亲，您好！关于您的问题我们已经记录" + (f"（{held}）" if held else "") + "，会尽快为您处理哦~"
        for piece in re.findall(r".{1,4}", reply):
            yield "delta", piece
        yield "end", ("stop", sum(len(m["content"]) for m in messages), len(reply))


class HFBackend:
    """A transformers causal LM with its chat template (CPU is fine for small models)."""

    serial = True

    def __init__(self, path: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if path.endswith(".gguf"):  # dequantized to fp32 once, then loaded from the cache
            from endcloud.end.config import ModelConfig
            from endcloud.end.models import resolve

            path = str(resolve(ModelConfig(name=path))[0])
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self.model.eval()

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                 top_p: float) -> Iterator[Event]:
        from transformers import TextIteratorStreamer

        tok = self.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tok(text, return_tensors="pt", add_special_tokens=False)
        n_prompt = int(inputs["input_ids"].shape[1])
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else {
            "do_sample": False}
        out: dict[str, Any] = {}

        def work() -> None:
            with self.torch.no_grad():
                out["ids"] = self.model.generate(**inputs, max_new_tokens=max_tokens, streamer=streamer,
                                                 pad_token_id=tok.pad_token_id, **sampling)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield "delta", piece
        thread.join()
        new = out["ids"][0, n_prompt:].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        finish = "stop" if (new and new[-1] in eos_ids) or len(new) < max_tokens else "length"
        yield "end", (finish, n_prompt, len(new))


class LlamaCppBackend:
    """A GGUF file through llama-cpp-python: quantized kernels, several times faster than fp32 on CPU.

    The prompt is rendered with the GGUF's own chat template and tokenized here, so the prompt
    token count is exact; llama.cpp keeps the KV cache of the longest common prefix with the
    previous request, so a prompt whose examples come first (prompt.py) is only evaluated once.
    """

    serial = True

    def __init__(self, path: str) -> None:
        from endcloud.llama import open_gguf

        self.llm, self.formatter = open_gguf(path, n_ctx=int(os.environ.get("ENDCLOUD_N_CTX", "8192")),
                                             what="--model")

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                 top_p: float) -> Iterator[Event]:
        rendered = self.formatter(messages=messages)
        prompt = self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                   special=True)
        finish, parts = "stop", []
        for chunk in self.llm.create_completion(prompt=prompt, max_tokens=max_tokens, stop=rendered.stop,
                                                temperature=temperature, top_p=top_p, stream=True):
            choice = chunk["choices"][0]
            if choice.get("text"):
                parts.append(choice["text"])
                yield "delta", choice["text"]
            finish = choice.get("finish_reason") or finish
        # Streamed pieces are not tokens (a CJK character can span two); re-tokenizing the reply
        # gives its token count (exact for text the model produced, up to BPE merge ambiguity).
        n_out = len(self.llm.tokenize("".join(parts).encode("utf-8"), add_bos=False, special=True))
        yield "end", (finish, len(prompt), n_out)


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


BACKENDS = ("auto", "llama-cpp", "transformers")


def resolve_model(model: str) -> str:
    """'' -> the embedded default teacher; a packaged name -> its fetched file; else unchanged."""
    from endcloud import models

    if not model:
        model = models.DEFAULT_TEACHER
    if models.canonical(model) and not Path(model).exists():  # a registry name or a short alias
        return str(models.fetch(model))
    return model


def load_backend(model: str, fake_delay: float = 0.0, backend: str = "auto") -> Any:
    """`model`: 'fake', a packaged model name or '' (the embedded default), a .gguf, or an HF folder."""
    if model == "fake":
        return FakeBackend(fake_delay)
    model = resolve_model(model)
    if model.endswith(".gguf"):
        if backend == "llama-cpp" or (backend == "auto" and llama_cpp_available()):
            log.info("backend: llama-cpp-python on %s", model)
            return LlamaCppBackend(model)
        if backend == "auto":
            log.warning("llama-cpp-python is not installed: serving %s through transformers "
                        "(dequantized to fp32, several times slower); pip install 'endcloud[cloud-local]'",
                        Path(model).name)
        log.info("backend: transformers on %s", model)
        return HFBackend(model)
    if not Path(model, "config.json").is_file():
        from endcloud.errors import ConfigError

        raise ConfigError(f"--model: {model} is neither a Hugging Face model folder, a .gguf, "
                          "a packaged model name (endcloud models list), nor 'fake'")
    return HFBackend(model)


# -- HTTP ------------------------------------------------------------------------------------------
class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], backend: Any, served_name: str,
                 record: str | None = None) -> None:
        super().__init__(addr, Handler)
        self.backend = backend
        self.served_name = served_name
        self.record = record
        self.gen_lock = threading.Lock()  # one generation at a time: the model is not reentrant
        self.record_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # no request lines on stderr
        log.debug(format, *args)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok", "model": self.server.served_name})
        elif self.path in ("/v1/models", "/models"):
            self._json(200, {"object": "list", "data": [
                {"id": self.server.served_name, "object": "model", "owned_by": "endcloud"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            return self._error(404, f"no route {self.path}")
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._error(413, "request too large")
        raw = self.rfile.read(length)
        self._record(raw)
        try:
            req = json.loads(raw)
            messages = [{"role": str(m["role"]), "content": _text(m.get("content"))} for m in req["messages"]]
            max_tokens = int(req.get("max_tokens") or req.get("max_completion_tokens") or 256)
            temperature, top_p = float(req.get("temperature", 0.7)), float(req.get("top_p", 1.0))
        except (ValueError, KeyError, TypeError) as exc:
            return self._error(400, f"bad request: {type(exc).__name__}: {exc}")
        if not messages:
            return self._error(400, "messages is empty")
        lock = self.server.gen_lock if self.server.backend.serial else contextlib.nullcontext()
        with lock:
            events = self.server.backend.generate(messages, max_tokens, temperature, top_p)
            if req.get("stream"):
                self._stream(events, bool((req.get("stream_options") or {}).get("include_usage")))
            else:
                self._complete(events)

    def _complete(self, events: Iterator[Event]) -> None:
        parts, end = [], ("stop", 0, 0)
        for kind, value in events:
            if kind == "delta":
                parts.append(value)
            else:
                end = value
        finish, n_prompt, n_completion = end
        self._json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": self.server.served_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                      "total_tokens": n_prompt + n_completion}})

    def _stream(self, events: Iterator[Event], include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.close_connection = True
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.server.served_name}
        self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]})
        for kind, value in events:
            if kind == "delta":
                self._event({**base, "choices": [{"index": 0, "delta": {"content": value},
                                                  "finish_reason": None}]})
                continue
            finish, n_prompt, n_completion = value
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if include_usage:
                self._event({**base, "choices": [], "usage": {
                    "prompt_tokens": n_prompt, "completion_tokens": n_completion,
                    "total_tokens": n_prompt + n_completion}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, obj: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n")
        self.wfile.flush()

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def _record(self, raw: bytes) -> None:
        if not self.server.record:
            return
        line = json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                           "body": raw.decode("utf-8", errors="replace")}, ensure_ascii=False)
        with self.server.record_lock, open(self.server.record, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


WARMUP = [{"role": "system", "content": "你是一名电商客服。"},
          {"role": "user", "content": "你好，我的订单什么时候发货？"}]


def serve(model: str = "", host: str = "127.0.0.1", port: int = 8765, served_name: str = "local",
          port_file: str | None = None, warmup: bool = True, record: str | None = None,
          fake_delay: float = 0.0, backend: str = "auto") -> None:
    """Load the model ('' = the embedded default teacher), warm it up, then serve until interrupted."""
    t0 = time.monotonic()
    engine = load_backend(model, fake_delay, backend)
    log.info("model loaded in %.1f s", time.monotonic() - t0)
    if warmup:  # pages the weights in and sizes the buffers: the first real call is otherwise slow
        t0 = time.monotonic()
        for _ in engine.generate(WARMUP, 8, 0.0, 1.0):
            pass
        log.info("warm-up generation took %.1f s", time.monotonic() - t0)
    server = LocalServer((host, port), engine, served_name, record)
    bound = server.server_address[1]
    print(f"endcloud serve-local: http://{host}:{bound}/v1 serving {served_name!r}", flush=True)
    if port_file:  # written last and atomically: its presence means "ready"
        tmp = f"{port_file}.tmp"
        Path(tmp).write_text(str(bound), encoding="utf-8")
        os.replace(tmp, port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextlib.contextmanager
def server_process(model: str, *, record: str | None = None, fake_delay: float = 0.0,
                   served_name: str = "local", warmup: bool = True, timeout_s: float = 120.0,
                   log_path: str | None = None, backend: str = "auto") -> Iterator[str]:
    """Start `python -m endcloud.cloud.server` on a free loopback port; yield its base URL.

    Readiness is the port file the server writes after loading and warming up (no sleeping
    and hoping); the process is terminated on exit.
    """
    with tempfile.TemporaryDirectory(prefix="endcloud-serve-") as tmp:
        port_file = os.path.join(tmp, "port")
        cmd = [sys.executable, "-m", "endcloud.cloud.server", "--model", model, "--port", "0",
               "--port-file", port_file, "--served-name", served_name,
               "--fake-delay", str(fake_delay), "--backend", backend]
        cmd += ["--record", record] if record else []
        cmd += [] if warmup else ["--no-warmup"]
        cmd += ["--exit-with", str(os.getpid())]  # a parent killed outright leaves no teacher behind
        out = open(log_path or os.path.join(tmp, "server.log"), "ab")
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            end = time.monotonic() + timeout_s
            while not os.path.exists(port_file):
                if proc.poll() is not None:
                    raise RuntimeError(f"the local server exited with code {proc.returncode}")
                if time.monotonic() > end:
                    raise TimeoutError(f"the local server was not ready within {timeout_s} s")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{int(Path(port_file).read_text())}/v1"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()


def _exit_with(parent: int, poll_s: float = 0.5) -> None:
    """Exit once `parent` is gone: a parent killed with SIGKILL runs no cleanup, and the teacher
    (a GB of weights) would otherwise live on. Re-parenting shows in getppid (Linux, macOS)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("parent %d is gone: exiting", parent)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endcloud.cloud.server", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="", help="'' = the embedded default teacher (fetched if missing)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="for a .gguf: auto = llama-cpp-python when installed, else transformers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--served-name", default="local")
    p.add_argument("--port-file")
    p.add_argument("--record", help="append every request (headers + body) to this JSONL file")
    p.add_argument("--fake-delay", type=float, default=0.0, help="seconds per reply of --model fake")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--exit-with", type=int, default=0, metavar="PID",
                   help="exit as soon as this process (the parent that started us) is gone")
    args = p.parse_args(argv)
    if args.exit_with:
        _exit_with(args.exit_with)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    serve(args.model, args.host, args.port, args.served_name, args.port_file, not args.no_warmup,
          args.record, args.fake_delay, args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
