"""kill -9 the server 10 times during feedback writes: every acknowledged row is there and (SQLite)
`PRAGMA integrity_check` is ok, on both store backends (`bench/serve_durability.py --rounds 100`
is the full run)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from dbutil import open_conn

pytest.importorskip("fastapi")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_durability.py"


@pytest.mark.slow
def test_acknowledged_feedback_survives_kill_9(tmp_path, store_backend):
    spec = importlib.util.spec_from_file_location("serve_durability", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.kill_rounds(tmp_path, rounds=10, clients=3, store=store_backend)
    assert result["integrity_check"] == "ok"
    assert result["acknowledged"] > 0 and result["missing"] == 0, result
    assert result["stored"] >= result["acknowledged"]  # committed-but-unacknowledged rows may exist


@pytest.mark.slow
def test_acknowledged_staff_replies_survive_kill_9_and_reach_the_customer(tmp_path, monkeypatch,
                                                                          store_backend):
    """kill -9 the service while staff replies are being sent; after a restart every
    acknowledged reply is stored (as a staff exchange too) and the customer's poll shows it."""
    import os
    import random
    import signal
    import threading

    import httpx

    spec = importlib.util.spec_from_file_location("serve_durability", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("ENDCLOUD_ADMIN_TOKEN", "staff-kill-test")
    staff = {"authorization": "Bearer staff-kill-test"}
    (tmp_path / "serve.yaml").write_text(bench.CONFIG.format(store=store_backend), encoding="utf-8")
    rng, acked, lock = random.Random(1), {}, threading.Lock()
    me = conv = hid = None
    for _ in range(6):
        proc, url = bench.start(tmp_path)
        if me is None:
            me = {"authorization": f"Bearer {httpx.post(f'{url}/v1/customers').json()['token']}"}
            r = httpx.post(f"{url}/v1/chat/completions", headers=me,
                           json={"messages": [{"role": "user", "content": "给我转人工"}]})
            conv = r.headers["x-conversation-id"]
            hid = httpx.get(f"{url}/admin/handoffs", headers=staff).json()["data"][0]["id"]
            assert httpx.post(f"{url}/admin/handoffs/{hid}/claim", headers=staff,
                              json={"staff": "alice"}).status_code == 200
        stop = threading.Event()

        def send(n: int) -> None:
            with httpx.Client(base_url=url, headers=staff, timeout=5) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    text = f"reply {n}-{i}-{rng.random():.6f}"
                    try:
                        r = c.post(f"/admin/handoffs/{hid}/reply", json={"staff": "alice", "text": text})
                    except httpx.HTTPError:
                        return  # the server is gone: never acknowledged
                    if r.status_code == 201:
                        with lock:
                            acked[r.json()["id"]] = text

        threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
    proc, url = bench.start(tmp_path)
    got, cursor = {}, 0
    try:  # the customer pages through with the cursor, as a client that was offline would
        while True:
            page = httpx.get(f"{url}/v1/conversations/{conv}/handoff", headers=me, timeout=10,
                             params={"after": cursor}).json()
            if not page["messages"]:
                break
            got.update((m["id"], m["text"]) for m in page["messages"] if m["sender"] == "staff")
            cursor = page["cursor"]
    finally:
        proc.terminate()
        proc.wait()
    assert len(acked) > 0 and all(got.get(i) == t for i, t in acked.items())
    conn = open_conn(store_backend)
    try:
        staff_rows = {r for (r,) in conn.execute("SELECT reply FROM serve_exchanges WHERE answered_by = 'staff'")}
        if conn.dialect == "sqlite":
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert set(acked.values()) <= staff_rows
