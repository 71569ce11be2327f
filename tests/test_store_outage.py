"""PostgreSQL goes away while the service runs: writes get 503 with Retry-After (never an error
page, never an acknowledgement for a row that was not committed), and the service reconnects by
itself when the server is back. Down at start: `endcloud serve` refuses with one line, exit 5."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

from pg import PostgresServer, binaries  # noqa: E402
from serve_helpers import ask, fake_cfg, new_customer  # noqa: E402
from wait_helpers import wait_until  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from endcloud.store import Store  # noqa: E402
from endcloud.store.postgres import close_pool  # noqa: E402

needs_pg = pytest.mark.skipif(binaries() is None, reason="PostgreSQL server binaries not found")


@needs_pg
def test_a_postgresql_outage_gives_503_and_the_service_reconnects(tmp_path):
    server = PostgresServer().start()
    url = server.new_database()
    try:
        cfg = fake_cfg(tmp_path, store=url, limits={"session_rate_per_minute": 0})
        with running(create_app(cfg, admin_token="staff-outage-1")) as base:
            _, h = new_customer(base)
            r = httpx.post(f"{base}/v1/chat/completions", json=ask("在吗"), headers=h, timeout=30)
            reply_id = r.json()["id"]

            def feedback(i: int) -> httpx.Response:
                return httpx.post(f"{base}/v1/feedback", headers=h, timeout=30,
                                  json={"reply_id": reply_id, "comment": f"c{i}"})

            acked = {feedback(i).json()["id"]: f"c{i}" for i in range(5)}
            server.halt()  # as a crash of the database server
            down = feedback(99)
            assert down.status_code == 503 and down.headers["retry-after"] == "2"
            assert "try again" in down.json()["error"]["message"]
            chat = httpx.post(f"{base}/v1/chat/completions", json=ask("还在吗"), headers=h, timeout=30)
            assert chat.status_code == 503
            server.resume()
            assert wait_until(lambda: feedback(100).status_code == 201, 30, every_s=0.2)
            for i in range(101, 104):
                r = feedback(i)
                assert r.status_code == 201
                acked[r.json()["id"]] = f"c{i}"
            assert httpx.post(f"{base}/v1/chat/completions", json=ask("好了吗"), headers=h,
                              timeout=30).status_code == 200
        with Store.open(url) as store:
            stored = {r[0]: r[1] for r in store.conn.execute("SELECT id, comment FROM serve_feedback")}
        assert all(stored.get(i) == c for i, c in acked.items())
        assert "c99" not in stored.values()  # the refused write was not made
    finally:
        close_pool(url)
        server.stop()


def test_serve_with_an_unreachable_postgresql_exits_5_with_one_line():
    out = subprocess.run([sys.executable, "-m", "endcloud", "serve", "backend.kind=fake",
                          "store=postgresql://shop:pw-canary@127.0.0.1:9/endcloud", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 5
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the store" in lines[0] and "127.0.0.1:9" in lines[0]
    assert "pw-canary" not in out.stderr + out.stdout
