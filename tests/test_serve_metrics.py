"""Operations routes on the real server: /metrics in the Prometheus text format (staff token),
counting what the service did by route template, escalation reason and hand-off; the liveness and
readiness probes."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("fastapi")
prom = pytest.importorskip("prometheus_client.parser")

from serve_helpers import ask, fake_cfg, new_customer  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402

ADMIN = "staff-token-metrics"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in prom.text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_turns_escalations_and_handoffs(tmp_path):
    cfg = fake_cfg(tmp_path, escalation=True, limits={"session_rate_per_minute": 0})
    with running(create_app(cfg, admin_token=ADMIN)) as url:
        _, me = new_customer(url)
        for text in ("在吗", "我要投诉", "给我转人工"):  # end model, hard -> dead cloud -> person, person
            assert httpx.post(f"{url}/v1/chat/completions", json=ask(text), headers=me).status_code == 200
        httpx.get(f"{url}/v1/conversations/conv-nope", headers=me)  # 404: its own template, not the path
        for i in range(3):  # methods a client makes up: one bounded label, not a series each
            httpx.request(f"BREW{i}", f"{url}/health")
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics", headers=me).status_code == 403
        r = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        assert httpx.get(f"{url}/health/live").json() == {"status": "live"}
        assert httpx.get(f"{url}/health/ready").json() == {"status": "ready"}
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    chat = ("endcloud_requests_total", (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200")))
    assert got[chat] == 3
    assert got[("endcloud_requests_total", (("method", "GET"), ("route", "/v1/conversations/{conversation_id}"),
                                            ("status", "404")))] == 1
    assert not any("conv-nope" in str(k) for k in got)  # no raw paths as labels
    assert not any("BREW" in str(k) for k in got)
    assert sum(v for (name, labels), v in got.items()
               if name == "endcloud_requests_total" and ("method", "OTHER") in labels) == 3
    assert got[("endcloud_escalations_total", (("reason", "hard"),))] == 1
    assert got[("endcloud_escalations_total", (("reason", "person"),))] == 1
    assert got[("endcloud_cloud_calls_total", (("status", "connection"),))] >= 1  # the dead cloud
    assert got[("endcloud_handoffs_total", (("reason", "requested"),))] == 1
    assert got[("endcloud_handoffs_total", (("reason", "hard"),))] == 1  # the failed escalation promised a person
    assert got[("endcloud_turn_seconds_count", (("answered_by", "handoff"), ("model", "end")))] == 2
    assert got[("endcloud_queue_depth", ())] == 0
    assert ("endcloud_champion_version", ()) in got


def test_not_ready_while_the_store_does_not_answer(tmp_path):
    cfg = fake_cfg(tmp_path)
    app = create_app(cfg)
    with running(app) as url:
        from endcloud.serve.app import fastapi_app

        svc = fastapi_app(app).state.services

        async def broken(fn):
            raise OSError("disk gone")

        real, svc.store.read = svc.store.read, broken
        try:
            r = httpx.get(f"{url}/health/ready")
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert httpx.get(f"{url}/health/live").status_code == 200
        finally:
            svc.store.read = real
        assert httpx.get(f"{url}/health/ready").status_code == 200


def test_json_logs_one_object_per_line(tmp_path):
    """$ENDCLOUD_LOG_FORMAT=json: every stderr line of the service (ours and uvicorn's) is JSON."""
    import json as _json
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "ENDCLOUD_LOG_FORMAT": "json", "ENDCLOUD_ADMIN_TOKEN": "staff-json-logs-1"}
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "endcloud", "-v", "serve", "backend.kind=fake",
                             f"store={tmp_path / 's.db'}", "--port", "0", "--port-file", str(port_file)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < end, "server did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/nope").status_code == 404
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines, "no log lines at -v"
    records = [_json.loads(x) for x in lines]  # every line parses
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert "staff-json-logs-1" not in err
