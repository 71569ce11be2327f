"""The review console's report view: `GET /admin/report` (JSON) and `/admin/report.png`, staff
only, built by the evolve stage's own report queries over the service's store - per evolve
round and per day: turns, share answered locally, escalation rate, cloud calls, cloud cost."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("fastapi")

from serve_helpers import ask, fake_cfg, new_customer  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import connect, open_conn

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

ADMIN = "report-staff-token"
STAFF = {"authorization": f"Bearer {ADMIN}"}
# two rounds as `endcloud evolve run` leaves them: one promoted, one refused by the gate
ROUNDS = [
    {"status": "promoted", "selected": 12, "corrections": 2, "labelled": 10, "train_new": 12,
     "train_replay": 36, "cloud_calls": 10, "cloud_cost": 0.0125, "champion_final": 0.41,
     "candidate_final": 0.47, "diff_lower": 0.012, "champion_after": "adapter-0001", "reason": "lower bound > 0"},
    {"status": "refused", "selected": 5, "corrections": 0, "labelled": 5, "train_new": 5,
     "train_replay": 15, "cloud_calls": 5, "cloud_cost": 0.005, "champion_final": 0.47,
     "candidate_final": 0.46, "diff_lower": -0.03, "champion_after": "adapter-0001", "reason": "no gain"},
]


def seed_rounds(db: str) -> None:
    with connect(db) as conn:
        for i, r in enumerate(ROUNDS):
            cols = ["round_dir", "started_at", *r]
            conn.execute(f"INSERT INTO evolve_rounds ({', '.join(cols)}) VALUES "
                         f"({', '.join('?' * len(cols))})",
                         [f"runs/evolve/round-{i}", f"2026-11-2{i}T10:00:00Z", *r.values()])


def test_report_per_round_and_per_day(tmp_path):
    # escalation on, a cloud that refuses connections: the hard query is handed off, the others
    # stay local (match_threshold 0: no reply is ever "low")
    cfg = fake_cfg(tmp_path, escalation=True, esc={"match_threshold": 0.0})
    with running(create_app(cfg, admin_token=ADMIN)) as url:
        _, headers = new_customer(url)
        for text in ("我的订单什么时候发货？", "可以开发票吗？", "我要投诉，你们太慢了"):
            r = httpx.post(f"{url}/v1/chat/completions", json=ask(text), headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        seed_rounds(cfg.store)

        assert httpx.get(f"{url}/admin/report").status_code == 401
        assert httpx.get(f"{url}/admin/report", headers=headers).status_code == 403  # a customer
        assert httpx.get(f"{url}/admin/report.png", headers=headers).status_code == 403
        rep = httpx.get(f"{url}/admin/report", headers=STAFF)
        assert rep.status_code == 200, rep.text
        png = httpx.get(f"{url}/admin/report.png", headers=STAFF, timeout=60)
    body = rep.json()
    assert [r["id"] for r in body["rounds"]] == [1, 2]
    for got, want in zip(body["rounds"], ROUNDS):
        assert {k: got[k] for k in want} == want
    conn = open_conn(cfg.store)
    try:  # the day's figures, counted here independently of the report's own query
        by = [b for (b,) in conn.execute("SELECT answered_by FROM serve_exchanges")]
        calls = conn.execute("SELECT COUNT(*) FROM serve_exchanges WHERE cloud_status IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    assert sorted(by) == ["end", "end", "handoff"]
    (day,) = body["days"]
    assert day["turns"] == 3 and day["cloud_calls"] == calls == 1
    assert day["local_share"] == pytest.approx(2 / 3) and day["escalation_rate"] == pytest.approx(1 / 3)
    assert day["cloud_cost"] == 0.0
    assert day["handoffs"] == 1 and day["handoffs_answered"] == 0  # the failed escalation promised a person
    pytest.importorskip("matplotlib")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n") and len(png.content) > 5000


def test_an_empty_store_gives_an_empty_report(tmp_path):
    with running(create_app(fake_cfg(tmp_path), admin_token=ADMIN)) as url:
        assert httpx.get(f"{url}/admin/report", headers=STAFF).json() == {"rounds": [], "days": []}


def test_a_low_score_only_recorded_is_not_an_escalation(tmp_path):
    # record mode: every reply scores "low" (threshold 1.0) but streams live; the cloud is never asked
    cfg = fake_cfg(tmp_path, escalation=True, esc={"match_threshold": 1.0, "after_mode": "record"})
    with running(create_app(cfg, admin_token=ADMIN)) as url:
        _, headers = new_customer(url)
        for text in ("我的订单什么时候发货？", "可以开发票吗？"):
            r = httpx.post(f"{url}/v1/chat/completions", json=ask(text), headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        rep = httpx.get(f"{url}/admin/report", headers=STAFF)
    conn = open_conn(cfg.store)
    try:
        reasons = [e for (e,) in conn.execute("SELECT escalation FROM serve_exchanges")]
    finally:
        conn.close()
    assert len(reasons) == 2 and all(e and e.endswith(":recorded") for e in reasons)
    (day,) = rep.json()["days"]
    assert day["turns"] == 2 and day["escalation_rate"] == 0.0 and day["local_share"] == 1.0
    assert day["cloud_calls"] == 0
