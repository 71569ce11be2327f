"""The end-model runtime's `openai` backend: the teacher client's retries, through the real
loopback teacher server (`cloud/server.py`), with faults injected at the HTTP boundary."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from endcloud.cloud.server import Handler, LocalServer, load_backend
from endcloud.end.config import BackendConfig
from endcloud.end.backend import Delta, Final, GenParams
from endcloud.end.runtime import FakeBackend
from endcloud.end.upstream import OpenAIBackend
from endcloud.errors import AdapterError, TransientError

pytest.importorskip("httpx")


class Flaky(Handler):
    """Answers 503 (Retry-After: 0) to the first `server.failures` requests, then as the teacher."""

    def do_POST(self) -> None:
        with self.server.record_lock:
            self.server.seen += 1
            fail = self.server.seen <= self.server.failures
        if not fail:
            return super().do_POST()
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"error": {"message": "overloaded"}}'
        self.send_response(503)
        self.send_header("retry-after", "0")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def upstream(failures: int) -> LocalServer:
    server = LocalServer(("127.0.0.1", 0), load_backend("fake"), "shop-a")
    server.RequestHandlerClass = Flaky
    server.seen, server.failures = 0, failures  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


async def collect(backend: OpenAIBackend) -> list:
    await backend.start()
    try:
        return [ev async for ev in backend.stream("shop-a", [{"role": "user", "content": "在吗"}],
                                                  GenParams(max_tokens=64))]
    finally:
        await backend.close()


def backend_for(server: LocalServer, attempts: int) -> OpenAIBackend:
    cfg = BackendConfig(kind="openai", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                        upstream_models=["shop-a"], upstream_max_attempts=attempts, upstream_deadline_s=10)
    return OpenAIBackend(cfg, rng=random.Random(0))


def test_an_upstream_503_is_retried_before_the_first_piece():
    server = upstream(failures=2)
    try:
        events = asyncio.run(collect(backend_for(server, attempts=3)))
    finally:
        server.shutdown()
        server.server_close()
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert text.startswith("亲，您好") and isinstance(events[-1], Final)
    assert events[-1].finish_reason == "stop" and events[-1].completion_tokens > 0
    assert server.seen == 3  # type: ignore[attr-defined]


def test_an_upstream_that_keeps_failing_raises_after_max_attempts():
    server = upstream(failures=10)
    try:
        with pytest.raises(TransientError) as err:
            asyncio.run(collect(backend_for(server, attempts=2)))
    finally:
        server.shutdown()
        server.server_close()
    assert err.value.kind == "http_503" and server.seen == 2  # type: ignore[attr-defined]


def test_an_upstream_that_is_down_is_a_transient_error():
    cfg = BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", upstream_max_attempts=2,
                        upstream_deadline_s=5)
    with pytest.raises(TransientError) as err:
        asyncio.run(collect(OpenAIBackend(cfg, rng=random.Random(0))))
    assert err.value.kind == "connection"


def test_use_adapter_is_on_every_backend_and_refused_where_it_cannot_work(tmp_path):
    from evolve_helpers import fake_adapter

    with pytest.raises(AdapterError):  # an upstream without upstream_adapters loads its own
        OpenAIBackend(BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1")).use_adapter("x")
    fake = FakeBackend(BackendConfig(kind="fake"))  # follows champions: verified, recorded
    fake.use_adapter(fake_adapter(tmp_path / "a0001", "x"), "a0001")
    assert fake.champion == "a0001"
    with pytest.raises(AdapterError, match="not found"):
        fake.use_adapter(tmp_path / "missing", "a0002")
    assert fake.champion == "a0001"
    fake.use_adapter(None)
    assert fake.champion is None


def test_the_fake_stops_when_its_client_goes_away():
    fake = FakeBackend(BackendConfig(kind="fake", fake_token_delay_s=0.01))
    stop = threading.Event()
    events = fake.generate("end", [{"role": "user", "content": "q"}], GenParams(64), stop)
    first = next(events)
    stop.set()
    assert isinstance(first, Delta) and list(events) == []


def test_an_upstream_that_hangs_is_cut_at_the_deadline_retries_included():
    import time

    from serve_helpers import fault_cloud

    from endcloud.errors import CloudError

    with fault_cloud("hang") as hung:
        cfg = BackendConfig(kind="openai", base_url=hung.url, upstream_max_attempts=5, upstream_deadline_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(CloudError):
            asyncio.run(collect(OpenAIBackend(cfg, rng=random.Random(0))))
        took = time.monotonic() - t0
    assert took < 2.0, took  # not 5 attempts x a full read timeout
