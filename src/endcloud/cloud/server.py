"""`endcloud cloud serve-local`: an OpenAI-compatible chat-completions server on 127.0.0.1.

    endcloud cloud serve-local                       # the embedded teacher (fetched if missing)
    endcloud cloud serve-local --model path/to/hf-model --port 8765
    endcloud cloud serve-local --model qwen2.5-coder-0.5b-instruct-q4 --backend transformers
    python -m endcloud.cloud.server --model fake --record requests.jsonl --port 0 --port-file p

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (plain JSON, or SSE with
`"stream": true`, `stream_options.include_usage`). With no --model it serves the embedded
default teacher (`endcloud.models.DEFAULT_TEACHER`, a Q4_K_M GGUF) through llama-cpp-python
when that is installed (`endcloud[cloud-local]`), else through transformers (dequantized, slower;
logged). The model is run by the end-model runtime (`end/runtime.py`, the classes the service
uses); it loads once and is warmed up before the port is announced (the first generation after
loading can be very slow); generations run one at a time. Standard library HTTP only, so the
server needs no web framework; the protocol is `endcloud.wire`'s.

`--model fake` answers with a fixed shop-style reply that repeats the query's placeholders, and
`--record FILE` appends every request's headers and body to FILE: together they are the
recording teacher the privacy tests inspect. `fake_teacher()` runs the same in this process
(any reply function; the request bodies kept in memory) for tests and benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

from endcloud import wire
from endcloud.end.backend import Delta, Event, Final, GenParams, LocalBackend

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024


# -- the model: the end-model runtime's in-process backends (end/runtime.py) ---------------------
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


def load_backend(model: str, fake_delay: float = 0.0, backend: str = "auto",
                 reply: Callable[[list[dict[str, str]]], str] | None = None) -> LocalBackend:
    """`model`: 'fake', a packaged model name or '' (the embedded default), a .gguf, or an HF folder.

    The teacher sees whole few-shot prompts: its context is `$ENDCLOUD_N_CTX` (8192) tokens and
    its input is not cut (the service cuts the end model's at `max_input_tokens`)."""
    from endcloud.end.config import BackendConfig, ModelConfig
    from endcloud.end.runtime import FakeBackend, LlamaCppBackend, TransformersBackend, shop_reply

    if model == "fake":
        cfg = BackendConfig(kind="fake", served_name="local", fake_delay_s=fake_delay, slots=64)
        return FakeBackend(cfg, reply or shop_reply)
    model = resolve_model(model)
    n_ctx = int(os.environ.get("ENDCLOUD_N_CTX", "8192"))
    kind = "transformers"
    if model.endswith(".gguf"):
        if backend == "llama-cpp" or (backend == "auto" and llama_cpp_available()):
            kind = "llama-cpp"
        elif backend == "auto":
            log.warning("llama-cpp-python is not installed: serving %s through transformers "
                        "(dequantized to fp32, several times slower); pip install 'endcloud[cloud-local]'",
                        Path(model).name)
    elif not Path(model, "config.json").is_file():
        from endcloud.errors import ConfigError

        raise ConfigError(f"--model: {model} is neither a Hugging Face model folder, a .gguf, "
                          "a packaged model name (endcloud models list), nor 'fake'")
    log.info("backend: %s on %s", kind, model)
    cfg = BackendConfig(kind=kind, model=ModelConfig(name=model), served_name="local", n_ctx=n_ctx,
                        max_input_tokens=n_ctx)
    return LlamaCppBackend(cfg) if kind == "llama-cpp" else TransformersBackend(cfg)


# -- HTTP ------------------------------------------------------------------------------------------
class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], backend: LocalBackend, served_name: str,
                 record: str | None = None) -> None:
        super().__init__(addr, Handler)
        self.backend = backend
        self.served_name = served_name
        self.record = record
        self.bodies: list[dict[str, Any]] = []  # every request body, for an in-process test teacher
        # one generation at a time for a model in this process (not reentrant); the fake answers many
        self.gen_lock = threading.BoundedSemaphore(backend.slots)
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
            self._json(404, wire.error_body(f"no route {self.path}"))

    def do_POST(self) -> None:
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            return self._json(404, wire.error_body(f"no route {self.path}"))
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._json(413, wire.error_body("request too large"))
        raw = self.rfile.read(length)
        self._record(raw)
        try:
            req = wire.read_request(raw)
        except ValueError as exc:
            return self._json(400, wire.error_body(f"bad request: {exc}"))
        backend = self.server.backend
        params = GenParams(req.max_tokens, req.temperature, req.top_p)
        stop = threading.Event()
        with self.server.gen_lock:
            events = backend.generate(backend.served_name, req.messages, params, stop)
            try:
                if req.stream:
                    self._stream(events, req.include_usage)
                else:
                    self._complete(events)
            finally:
                stop.set()

    def _complete(self, events: Iterator[Event]) -> None:
        parts, end = [], Final("stop", 0, 0)
        for ev in events:
            if isinstance(ev, Delta):
                parts.append(ev.text)
            else:
                end = ev
        self._json(200, wire.completion_body(wire.completion_id(), self.server.served_name, "".join(parts),
                                             end.finish_reason, end.prompt_tokens, end.completion_tokens))

    def _stream(self, events: Iterator[Event], include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.close_connection = True
        cid, name = wire.completion_id(), self.server.served_name
        self._event(wire.chunk_body(cid, name, {"role": "assistant", "content": ""}))
        for ev in events:
            if isinstance(ev, Delta):
                self._event(wire.chunk_body(cid, name, {"content": ev.text}))
                continue
            self._event(wire.chunk_body(cid, name, {}, ev.finish_reason))
            if include_usage:
                self._event(wire.chunk_body(cid, name, None, usage=wire.usage_body(
                    ev.prompt_tokens, ev.completion_tokens)))
        self.wfile.write(wire.SSE_DONE)
        self.wfile.flush()

    def _event(self, obj: dict[str, Any]) -> None:
        self.wfile.write(wire.sse_event(obj))
        self.wfile.flush()

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, raw: bytes) -> None:
        with self.server.record_lock:
            try:
                self.server.bodies.append(json.loads(raw))
            except ValueError:
                pass
            if not self.server.record:
                return
            line = json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                               "body": raw.decode("utf-8", errors="replace")}, ensure_ascii=False)
            with open(self.server.record, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


@contextlib.contextmanager
def fake_teacher(reply: Callable[[str], str] | None = None, delay_s: float = 0.0) -> Iterator[LocalServer]:
    """The test and benchmark teacher, in this process: `reply(last user message)` (default: the
    shop-style reply of `--model fake`) over the real HTTP handler. Yields the server: `.url`,
    `.bodies` (every request body, in order)."""
    from endcloud.end.runtime import shop_reply

    answer = (lambda messages: reply(messages[-1]["content"] if messages else "")) if reply else shop_reply
    with serving(LocalServer(("127.0.0.1", 0), load_backend("fake", delay_s, reply=answer), "teacher")) as server:
        yield server


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[Any]:
    """Serve `server` from a thread while the block runs (`.url`: its loopback base URL)."""
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


WARMUP = [{"role": "system", "content": "你是一名电商客服。"},
          {"role": "user", "content": "你好，我的订单什么时候发货？"}]


def serve(model: str = "", host: str = "127.0.0.1", port: int = 8765, served_name: str = "local",
          port_file: str | None = None, warmup: bool = True, record: str | None = None,
          fake_delay: float = 0.0, backend: str = "auto") -> None:
    """Load the model ('' = the embedded default teacher), warm it up, then serve until interrupted."""
    t0 = time.monotonic()
    engine = load_backend(model, fake_delay, backend)
    engine.load()
    log.info("model loaded in %.1f s", time.monotonic() - t0)
    if warmup:  # pages the weights in and sizes the buffers: the first real call is otherwise slow
        t0 = time.monotonic()
        for _ in engine.generate(engine.served_name, WARMUP, GenParams(8, 0.0, 1.0), threading.Event()):
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
