"""End-cloud collaboration per turn against real loopback clouds: healthy (`serve-local` on the
tiny model), hanging, and answering 503. The customer always gets an answer within the deadline;
the breaker stops cloud calls during an outage; only masked text leaves the machine."""

from __future__ import annotations

from typing import Any
import json

import httpx
import pytest

pytest.importorskip("fastapi")

from serve_helpers import ask, fake_cfg, fault_cloud, handoff_promise, new_customer, timed  # noqa: E402

from endcloud.config import ConfigError  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.config import EscalationConfig  # noqa: E402
from endcloud.serve.escalation import Policy  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import open_conn

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

HARD = "我要投诉，电话 13800138000，快递一直不到"
NORMAL = "我的订单什么时候发货？"


def row(db: str, reply_id: str) -> Any:
    conn = open_conn(db)
    try:
        return conn.execute("SELECT * FROM serve_exchanges WHERE id = ?", (reply_id,)).fetchone()
    finally:
        conn.close()


def chat(url: str, headers: dict, text: str) -> tuple[dict, float]:
    r, took = timed(httpx.post, f"{url}/v1/chat/completions", json=ask(text), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json(), took


def test_policy_before_and_after():
    policy = Policy(EscalationConfig(scorer="ngram", match_threshold=0.2, confidence_threshold=0.3))
    assert policy.before("我要投诉你们") == "hard"
    assert policy.before("帮我写一首诗") == "out_of_scope"
    assert policy.before("x" * 601) == "too_long"
    assert policy.before(NORMAL) is None
    assert policy.after(0.1, 0.9) == "low_match" and policy.after(0.5, 0.1) == "low_confidence"
    assert policy.after(0.5, 0.9) is None
    assert policy.match(NORMAL, "") == 0.0
    assert Policy(EscalationConfig(enabled=False, scorer="ngram")).before("我要投诉") is None
    with pytest.raises(ConfigError, match="first_token_s"):
        EscalationConfig(first_token_s=20, total_s=15)


@pytest.mark.slow
def test_healthy_cloud_answers_hard_queries_with_masked_egress(tiny_model_dir, tmp_path):
    from endcloud.cloud.server import server_process

    with server_process(str(tiny_model_dir), warmup=False, timeout_s=120,
                        record=str(tmp_path / "egress.jsonl")) as cloud_url:
        cfg = fake_cfg(tmp_path, escalation=True, cloud_url=cloud_url,
                       esc={"first_token_s": 5.0, "total_s": 15.0})
        cfg.escalation.cloud.max_tokens = 6
        with running(create_app(cfg)) as url:
            _, headers = new_customer(url)
            # a name and an address only the trained tagger finds, with the phone the rules find
            body, took = chat(url, headers, HARD + "，让禤志强放南苑小区东门菜鸟驿站")
            ex = row(cfg.store, body["id"])
            assert took < 15 and ex["escalation"] == "hard" and ex["cloud_status"] == "ok"
            assert ex["answered_by"] == "cloud" and ex["reply"] == body["choices"][0]["message"]["content"]
            # what left the machine is masked, and the store says so
            assert "13800138000" not in ex["cloud_request_masked"] and "[PHONE_1]" in ex["cloud_request_masked"]
            sent = (tmp_path / "egress.jsonl").read_text(encoding="utf-8")
            assert "13800138000" not in sent and "[PHONE_1]" in sent
            for value in ("禤志强", "南苑小区东门菜鸟驿站"):
                assert value not in sent and value not in ex["cloud_request_masked"]
            assert "[NAME_1]" in ex["cloud_request_masked"] and "[ADDRESS_1]" in ex["cloud_request_masked"]
            assert ex["cloud_completion_tokens"] > 0
            conn = open_conn(cfg.store)
            assert conn.execute("SELECT COUNT(*) FROM cloud_egress WHERE status = 'ok'").fetchone()[0] >= 1
            conn.close()


def test_hanging_cloud_the_customer_still_gets_an_answer_in_time(tmp_path):
    with fault_cloud("hang") as cloud:
        cfg = fake_cfg(tmp_path, escalation=True, cloud_url=cloud.url,
                       esc={"match_threshold": 0.99})  # every end reply scores "low"
        with running(create_app(cfg)) as url:
            _, headers = new_customer(url)
            body, took = chat(url, headers, HARD)  # before generation -> hand-off
            assert took < cfg.escalation.total_s + 1.0
            assert body["choices"][0]["message"]["content"] == handoff_promise(cfg)
            assert row(cfg.store, body["id"])["cloud_status"] == "timeout"
            body, took = chat(url, headers, NORMAL)  # after generation -> the local reply
            ex = row(cfg.store, body["id"])
            assert took < cfg.escalation.total_s + 1.0
            assert ex["escalation"] == "low_match" and ex["answered_by"] == "end"
            assert body["choices"][0]["message"]["content"] == ex["end_reply"] == ex["reply"]


def test_503_cloud_opens_the_breaker_and_stops_calling(tmp_path):
    with fault_cloud("503") as cloud:
        cfg = fake_cfg(tmp_path, escalation=True, cloud_url=cloud.url,
                       esc={"first_token_s": 1.0, "total_s": 2.0})
        cfg.escalation.cloud.max_attempts = 1
        with running(create_app(cfg), timeout_s=30) as url:
            _, headers = new_customer(url)
            statuses = []
            for _ in range(8):
                body, took = chat(url, headers, HARD)
                assert took < cfg.escalation.total_s + 1.0
                assert body["choices"][0]["message"]["content"] == handoff_promise(cfg)
                statuses.append(row(cfg.store, body["id"])["cloud_status"])
            assert statuses[:3] == ["http_503"] * 3  # breaker_consecutive = 3
            assert set(statuses[3:]) == {"circuit_open"}
            assert cloud.requests == 3  # nothing more was sent during the outage
            assert httpx.get(f"{url}/health").json()["cloud"] == "open"
            # nothing left the machine while the breaker was open
            assert row(cfg.store, body["id"])["cloud_request_masked"] is None


def test_good_replies_stay_local_and_record_mode_streams_live(tmp_path):
    cfg = fake_cfg(tmp_path, escalation=True, esc={"match_threshold": 0.0, "after_mode": "record"})
    with running(create_app(cfg)) as url:
        _, headers = new_customer(url)
        body, _ = chat(url, headers, NORMAL)
        ex = row(cfg.store, body["id"])
        assert ex["answered_by"] == "end" and ex["escalation"] is None and ex["cloud_status"] is None
        assert ex["match_score"] is not None and ex["cost"] == 0


def test_unsendable_text_is_never_sent(tmp_path):
    with fault_cloud("503") as cloud:
        cfg = fake_cfg(tmp_path, escalation=True, cloud_url=cloud.url)
        with running(create_app(cfg)) as url:
            _, headers = new_customer(url)
            body, _ = chat(url, headers, "我要投诉，单号 12345678901234567890123 联系 a@b")
            ex = row(cfg.store, body["id"])
            assert ex["cloud_status"] == "privacy" and ex["cloud_request_masked"] is None
            assert cloud.requests == 0 and ex["answered_by"] == "handoff"
            json.loads(ex["context_json"])
