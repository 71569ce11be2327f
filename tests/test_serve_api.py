"""The OpenAI-compatible API against the real server on loopback, with the official `openai`
SDK as the client and the tiny model in process: streaming and not, conversations that only
their customer can read, feedback acknowledged after commit, the max_tokens cap, no secrets in logs."""

from __future__ import annotations

from typing import Any
import logging

import httpx
import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from serve_helpers import new_customer, tiny_cfg  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from conftest import STORE_BACKENDS
from dbutil import open_conn


ADMIN = "staff-secret-token-123"
MSGS = [{"role": "user", "content": "我的订单什么时候发货？"}]


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def live(request, tiny_model_dir, tmp_path_factory):
    """One service per store backend for the whole module."""
    tmp = tmp_path_factory.mktemp("serve-api")
    store = (request.getfixturevalue("pg_server").new_database() if request.param == "postgresql"
             else str(tmp / "serve.db"))
    cfg = tiny_cfg(tmp, tiny_model_dir, limits={"max_tokens_cap": 6, "default_max_tokens": 4},
                   store=store)
    with running(create_app(cfg, admin_token=ADMIN), cfg.host) as url:  # the config's own bind
        yield url, cfg.store


def sdk(url: str, token: str) -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=30)


def rows(db: str, sql: str, *args) -> list[Any]:
    conn = open_conn(db)
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def test_models_health_and_default_bind(live):
    url, _ = live
    assert url.startswith("http://127.0.0.1:")
    token, _ = new_customer(url)
    assert [m.id for m in sdk(url, token).models.list()] == ["end"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_non_streaming_with_the_openai_sdk(live):
    url, db = live
    token, _ = new_customer(url)
    resp = sdk(url, token).chat.completions.create(model="end", messages=MSGS, max_tokens=4)
    assert resp.id.startswith("chatcmpl-") and resp.object == "chat.completion"
    assert isinstance(resp.choices[0].message.content, str)
    assert resp.usage.completion_tokens <= 4 and resp.usage.prompt_tokens > 0
    (row,) = rows(db, "SELECT * FROM serve_exchanges WHERE id = ?", resp.id)
    assert row["reply"] == resp.choices[0].message.content
    assert row["answered_by"] == "end" and row["query"] == MSGS[0]["content"]
    assert row["latency_ms"] > 0 and row["confidence"] is not None
    assert row["conversation_id"] == resp.model_extra["conversation_id"]


def test_streaming_with_the_openai_sdk(live):
    url, db = live
    token, _ = new_customer(url)
    stream = sdk(url, token).chat.completions.create(
        model="end", messages=MSGS, max_tokens=5, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 5
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    # the exchange is committed before the stream ends: it is there when the client sees [DONE]
    (row,) = rows(db, "SELECT reply, first_token_ms FROM serve_exchanges WHERE id = ?", chunks[0].id)
    assert row["reply"] == text and row["first_token_ms"] is not None


def test_max_tokens_is_capped_by_the_server(live):
    url, _ = live
    token, _ = new_customer(url)
    resp = sdk(url, token).chat.completions.create(model="end", messages=MSGS, max_tokens=100000)
    assert resp.usage.completion_tokens <= 6


def test_a_customer_reads_only_its_own_conversations(live):
    url, db = live
    token_a, h_a = new_customer(url)
    _, h_b = new_customer(url)
    first = sdk(url, token_a).chat.completions.create(model="end", messages=MSGS, max_tokens=3)
    conv = first.model_extra["conversation_id"]
    second = sdk(url, token_a).chat.completions.create(
        model="end", max_tokens=3, extra_body={"conversation_id": conv},
        messages=[*MSGS, {"role": "assistant", "content": first.choices[0].message.content},
                  {"role": "user", "content": "可以退货吗？"}])
    assert second.model_extra["conversation_id"] == conv
    mine = httpx.get(f"{url}/v1/conversations/{conv}", headers=h_a).json()
    assert [t["reply_id"] for t in mine["turns"]] == [first.id, second.id]
    assert [c["id"] for c in httpx.get(f"{url}/v1/conversations", headers=h_a).json()["data"]] == [conv]
    # another customer: cannot read it, continue it, or rate its replies
    assert httpx.get(f"{url}/v1/conversations/{conv}", headers=h_b).status_code == 404
    assert httpx.get(f"{url}/v1/conversations", headers=h_b).json()["data"] == []
    r = httpx.post(f"{url}/v1/chat/completions", headers=h_b, json={**{"messages": MSGS},
                                                                     "conversation_id": conv})
    assert r.status_code == 404
    r = httpx.post(f"{url}/v1/feedback", headers=h_b, json={"reply_id": first.id, "thumb": "down"})
    assert r.status_code == 404
    assert rows(db, "SELECT COUNT(*) AS n FROM serve_feedback WHERE exchange_id = ?", first.id)[0]["n"] == 0


def test_feedback_is_stored_before_it_is_acknowledged(live):
    url, db = live
    token, headers = new_customer(url)
    reply = sdk(url, token).chat.completions.create(model="end", messages=MSGS, max_tokens=3)
    r = httpx.post(f"{url}/v1/feedback", headers=headers,
                   json={"reply_id": reply.id, "thumb": "down", "rating": 2, "comment": "没回答我的问题"})
    assert r.status_code == 201
    (row,) = rows(db, "SELECT * FROM serve_feedback WHERE id = ?", r.json()["id"])
    assert (row["exchange_id"], row["thumb"], row["rating"]) == (reply.id, "down", 2)
    bad = httpx.post(f"{url}/v1/feedback", headers=headers, json={"reply_id": reply.id, "rating": 9})
    assert bad.status_code == 422
    empty = httpx.post(f"{url}/v1/feedback", headers=headers, json={"reply_id": reply.id})
    assert empty.status_code == 422


def test_unknown_model_and_bad_token(live):
    url, _ = live
    token, _ = new_customer(url)
    with pytest.raises(openai.NotFoundError):
        sdk(url, token).chat.completions.create(model="nope", messages=MSGS)
    with pytest.raises(openai.AuthenticationError):
        sdk(url, "ec-wrong").chat.completions.create(model="end", messages=MSGS)


def test_staff_sees_exchanges_and_stores_corrections(live):
    url, db = live
    token, _ = new_customer(url)
    reply = sdk(url, token).chat.completions.create(model="end", messages=MSGS, max_tokens=3)
    staff = {"authorization": f"Bearer {ADMIN}"}
    listed = httpx.get(f"{url}/admin/exchanges", headers=staff, params={"limit": 500}).json()["data"]
    assert reply.id in [x["id"] for x in listed]
    r = httpx.post(f"{url}/admin/reviews", headers=staff, json={
        "exchange_id": reply.id, "corrected_reply": "亲，订单将在48小时内发货哦~", "verdict": "reject"})
    assert r.status_code == 201
    (row,) = rows(db, "SELECT * FROM serve_corrections WHERE exchange_id = ?", reply.id)
    assert row["reply"] == "亲，订单将在48小时内发货哦~" and row["query"] == MSGS[0]["content"]
    missing = httpx.post(f"{url}/admin/reviews", headers=staff, json={"exchange_id": "x", "rating": 3})
    assert missing.status_code == 404


def test_secrets_never_reach_the_logs(live, caplog):
    url, _ = live
    caplog.set_level(logging.DEBUG)
    token, headers = new_customer(url)
    sdk(url, token).chat.completions.create(model="end", messages=MSGS, max_tokens=2)
    httpx.get(f"{url}/admin/exchanges", headers={"authorization": f"Bearer {ADMIN}"})
    httpx.get(f"{url}/admin/exchanges", headers={"authorization": "Bearer wrong-guess"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and ADMIN not in text and "wrong-guess" not in text


def test_openai_compatible_upstream_backend(tmp_path):
    """kind=openai: the end model behind any OpenAI-compatible server (llama.cpp, vLLM)."""
    from endcloud.cloud.server import server_process
    from endcloud.end.config import BackendConfig

    with server_process("fake", warmup=False, served_name="shop-a") as upstream:
        cfg = tiny_cfg(tmp_path, tmp_path)  # the model folder is not used by this backend
        cfg.backend = BackendConfig(kind="openai", base_url=upstream, upstream_models=["shop-a"])
        with running(create_app(cfg)) as url:
            token, _ = new_customer(url)
            client = sdk(url, token)
            assert [m.id for m in client.models.list()] == ["shop-a"]
            text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model="shop-a", messages=MSGS, stream=True) if c.choices)
            assert text.startswith("亲，您好")
