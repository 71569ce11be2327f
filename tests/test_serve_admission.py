"""Admission to the model's slots, against the real server on loopback: a turn gives its slot back
however it ends (its client hangs up in the queue or before its stream starts, the backend fails
at once), and a turn refused with 503 leaves no empty conversation behind."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import httpx
import pytest

pytest.importorskip("fastapi")

from serve_helpers import ask, count, fake_cfg, new_customer  # noqa: E402
from wait_helpers import wait_until, wait_until_async  # noqa: E402

from endcloud.serve.app import create_app, fastapi_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL


def raw_post(url: str, path: str, token: str, body: dict) -> socket.socket:
    """Send a whole POST on a bare socket and return it unread (the caller hangs up)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
                 f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def test_a_client_that_hangs_up_in_the_queue_gives_its_slot_back(tmp_path):
    # one slot, one queue place: a leaked slot would turn every later turn into a 503
    cfg = fake_cfg(tmp_path, backend={"fake_token_delay_s": 0.1},
                   limits={"queue_size": 1, "queue_timeout_s": 3, "session_rate_per_minute": 0})
    app = create_app(cfg)
    with running(app) as url:
        token, headers = new_customer(url)
        adm = fastapi_app(app).state.services.admission
        first = threading.Thread(target=httpx.post, args=(f"{url}/v1/chat/completions",),
                                 kwargs={"json": ask("先来的"), "headers": headers, "timeout": 30})
        first.start()  # holds the only slot for ~1.3 s
        assert wait_until(lambda: adm.inside == 1, 5)
        gone = raw_post(url, "/v1/chat/completions", token, {**ask("后来的"), "stream": True})
        assert wait_until(lambda: adm.inside == 2, 5)  # waiting in the queue...
        gone.close()  # ...when its client hangs up, before any byte of its stream was sent
        first.join(30)
        # the abandoned turn got the slot after the first one, and must have handed it back
        assert wait_until(lambda: adm.inside == 0, 5), f"{adm.inside} slot(s) still taken"
        r = httpx.post(f"{url}/v1/chat/completions", json=ask("还在吗"), headers=headers, timeout=30)
        assert r.status_code == 200, r.text


async def asgi_call(app, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                    send_fails: bool = False) -> list[dict]:
    """One request straight into the ASGI app as an ASGI 2.4 server makes it: `send` raises
    OSError once the client is gone (`send_fails`: gone before the response could start)."""
    sent: list[dict] = []
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5),
             "headers": [(k.encode(), v.encode()) for k, v in {
                 "content-type": "application/json", "content-length": str(len(body)),
                 **(headers or {})}.items()]}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if send_fails:
            raise OSError("the client has gone")
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception:  # the server's business; what matters here is the slot
        pass
    return sent


def test_a_client_gone_before_its_stream_starts_gives_the_slot_back(tmp_path):
    cfg = fake_cfg(tmp_path, limits={"queue_size": 0, "session_rate_per_minute": 0})
    app = create_app(cfg)
    inner = fastapi_app(app)

    async def scenario() -> None:
        async with inner.router.lifespan_context(inner):
            sent = await asgi_call(app, "POST", "/v1/customers")
            token = json.loads(sent[-1]["body"])["token"]
            auth = {"authorization": f"Bearer {token}"}
            body = json.dumps({**ask("在吗"), "stream": True}).encode()
            await asgi_call(app, "POST", "/v1/chat/completions", body, auth, send_fails=True)
            adm = inner.state.services.admission
            assert adm.inside == 0, "the abandoned stream kept its model slot"
            sent = await asgi_call(app, "POST", "/v1/chat/completions", body, auth)
            assert sent[0]["status"] == 200  # and the next customer is served, not refused

    asyncio.run(scenario())


def test_a_backend_that_fails_at_once_gives_its_slot_back(tmp_path):
    class Broken:
        served_name, slots = "end", 1

        def models(self) -> list[str]:
            return ["end"]

        async def start(self) -> None: ...

        async def close(self) -> None: ...

        def stream(self, model, messages, params):
            raise RuntimeError("the model is gone")  # before any token, not even a generator

    cfg = fake_cfg(tmp_path, limits={"queue_size": 0, "session_rate_per_minute": 0})
    app = create_app(cfg, backend=Broken())
    with running(app) as url:
        _, headers = new_customer(url)
        for stream in (False, True, False):  # a leaked slot: the next turn would get a 503
            r = httpx.post(f"{url}/v1/chat/completions", json={**ask("在吗"), "stream": stream},
                           headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        assert fastapi_app(app).state.services.admission.inside == 0


def test_a_refused_turn_leaves_no_empty_conversation(tmp_path):
    cfg = fake_cfg(tmp_path, backend={"fake_token_delay_s": 0.05},
                   limits={"queue_size": 1, "session_rate_per_minute": 0})
    app = create_app(cfg)

    async def scenario(url: str, headers: dict) -> list[int]:
        adm = fastapi_app(app).state.services.admission
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
            slow = [asyncio.create_task(c.post("/v1/chat/completions", json=ask("慢一点")))
                    for _ in range(2)]
            assert await wait_until_async(lambda: adm.inside == adm.capacity, 5)  # the queue is full
            refused = [(await c.post("/v1/chat/completions", json=ask("还有我"))).status_code
                       for _ in range(3)]
            return refused + [t.status_code for t in await asyncio.gather(*slow)]

    with running(app) as url:
        _, headers = new_customer(url)
        assert asyncio.run(scenario(url, headers)) == [503, 503, 503, 200, 200]
    assert count(cfg.store, "serve_exchanges") == 2
    assert count(cfg.store, "serve_conversations") == 2  # one per accepted turn, none for a 503
