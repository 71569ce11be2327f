"""Helpers for the serve tests: configs, customers, and stdlib fake clouds that hang or 503."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx

from endcloud.end.config import ModelConfig
from endcloud.end.config import BackendConfig
from endcloud.serve.config import EscalationConfig, LimitsConfig, ServeConfig
from dbutil import count  # noqa: F401 - the serve tests import it from here

DEAD_CLOUD = "http://127.0.0.1:9/v1"  # discard port: connection refused at once


def fake_cfg(tmp_path: Path, *, escalation: bool = False, cloud_url: str = DEAD_CLOUD,
             backend: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
             esc: dict[str, Any] | None = None, store: str | None = None) -> ServeConfig:
    """A service on the fake backend; its store is `store`, else $ENDCLOUD_DB (the test's own
    file, or the database `store_backend` made)."""
    e = EscalationConfig(**{"enabled": escalation, "scorer": "ngram", "match_threshold": 0.05,
                            "first_token_s": 0.5, "total_s": 1.5, **(esc or {})})
    e.cloud.base_url, e.cloud.model = cloud_url, "local"
    e.cloud.breaker_open_s = 30.0
    return ServeConfig(store=store or os.environ.get("ENDCLOUD_DB") or str(tmp_path / "serve.db"),
                       backend=BackendConfig(kind="fake", **(backend or {})),
                       limits=LimitsConfig(**(limits or {})), escalation=e)


def tiny_cfg(tmp_path: Path, model_dir: Path, **kw: Any) -> ServeConfig:
    cfg = fake_cfg(tmp_path, **kw)
    cfg.backend = BackendConfig(kind="transformers", model=ModelConfig(name=str(model_dir)),
                                temperature=0.0, max_input_tokens=128)
    return cfg


def new_customer(url: str) -> tuple[str, dict[str, str]]:
    r = httpx.post(f"{url}/v1/customers")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    return token, {"authorization": f"Bearer {token}"}


def ask(text: str) -> dict[str, Any]:
    return {"model": "end", "messages": [{"role": "user", "content": text}], "max_tokens": 8}


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FaultServer"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.lock:
            self.server.requests += 1
        if self.server.mode == "hang":
            self.server.stop.wait(60)  # never answers while the test runs
            return
        body = b'{"error": {"message": "overloaded"}}'
        self.send_response(503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        self.mode, self.requests = mode, 0
        self.lock, self.stop = threading.Lock(), threading.Event()


@contextlib.contextmanager
def fault_cloud(mode: str) -> Iterator[FaultServer]:
    """A loopback 'cloud' that hangs (`hang`) or answers 503 (`503`); `.url`, `.requests`."""
    from endcloud.cloud.server import serving

    with serving(FaultServer(mode)) as server:
        try:
            yield server
        finally:
            server.stop.set()  # release the hanging handlers before the server stops




def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn(*args, **kw)
    return out, time.monotonic() - t0


def handoff_promise(cfg: ServeConfig, lang: str = "zh") -> str:
    """What a customer is told when a person takes over (no hand-off answered yet: the default wait)."""
    from endcloud.serve.handoff import customer_message

    return customer_message(cfg.handoff, lang, cfg.handoff.expected_wait_min)
