"""Hand-off to a person through the real API on loopback: the customer asks for one, staff claim
(exactly one wins) and reply, the customer receives it (long poll on its own token), the bot is
silent while a person holds the conversation and answers again once released; staff replies are
exchanges answered by `staff`; a customer token cannot reach the queue."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

pytest.importorskip("fastapi")

from serve_helpers import fake_cfg, new_customer  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import open_conn

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

ADMIN = "staff-token-handoff"
STAFF = {"authorization": f"Bearer {ADMIN}"}


@pytest.fixture()
def live(tmp_path):
    cfg = fake_cfg(tmp_path, limits={"session_rate_per_minute": 0})
    with running(create_app(cfg, admin_token=ADMIN)) as url:
        yield url, cfg.store


def say(url: str, headers: dict, text: str, conversation: str | None = None) -> httpx.Response:
    body = {"model": "end", "messages": [{"role": "user", "content": text}], "max_tokens": 16}
    if conversation:
        body["conversation_id"] = conversation
    r = httpx.post(f"{url}/v1/chat/completions", headers=headers, json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r


def queue(url: str) -> list[dict]:
    r = httpx.get(f"{url}/admin/handoffs", headers=STAFF, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_a_customer_asks_for_a_person_and_talks_to_one(live):
    url, db = live
    _, me = new_customer(url)
    first = say(url, me, "你好，我的快递三天没动了")
    conv = first.headers["x-conversation-id"]
    bot_reply = first.json()["choices"][0]["message"]["content"]
    asked = say(url, me, "给我转人工！", conv)
    promise = asked.json()["choices"][0]["message"]["content"]
    assert "人工客服" in promise and "3分钟" in promise  # the expected wait (the default: none answered yet)

    [item] = queue(url)
    assert item["conversation_id"] == conv and item["status"] == "waiting" and item["reason"] == "requested"
    texts = [m["text"] for m in item["messages"]]
    assert texts[:3] == ["你好，我的快递三天没动了", bot_reply, "给我转人工！"]  # the whole conversation

    # a staff reply to a conversation nobody claimed is refused
    r = httpx.post(f"{url}/admin/handoffs/{item['id']}/reply", headers=STAFF,
                   json={"staff": "alice", "text": "在的"})
    assert r.status_code == 409 and "claim it first" in r.text
    assert httpx.post(f"{url}/admin/handoffs/{item['id']}/claim", headers=STAFF,
                      json={"staff": "alice"}).json()["claimed_by"] == "alice"
    # the customer's long poll returns as soon as the staff reply is committed
    seen = httpx.get(f"{url}/v1/conversations/{conv}/handoff", headers=me).json()
    assert seen["handoff"] == {"id": item["id"], "status": "claimed", "claimed_by": "alice"}
    assert [m["text"] for m in seen["messages"]] == ["waiting", "claimed"]  # system events so far
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(httpx.get, f"{url}/v1/conversations/{conv}/handoff", headers=me,
                              params={"after": seen["cursor"], "wait": 20}, timeout=30)
        time.sleep(0.5)
        assert not waiting.done()  # nothing new yet: the poll holds
        t0 = time.monotonic()
        r = httpx.post(f"{url}/admin/handoffs/{item['id']}/reply", headers=STAFF,
                       json={"staff": "alice", "text": "您好，我是客服小王，马上帮您查物流"})
        assert r.status_code == 201, r.text
        got = waiting.result().json()
        assert time.monotonic() - t0 < 2
    assert [(m["sender"], m["staff"], m["text"]) for m in got["messages"]] == [
        ("staff", "alice", "您好，我是客服小王，马上帮您查物流")]
    cursor = got["cursor"]

    # while a person holds it, the customer's message goes to them: the bot says nothing
    held = say(url, me, "单号是 SF1234567890", conv)
    assert held.json()["choices"][0]["message"]["content"] == "" and held.headers["x-handoff"] == "claimed"
    [item] = queue(url)
    assert item["messages"][-1]["text"] == "单号是 SF1234567890"
    later = httpx.get(f"{url}/v1/conversations/{conv}/handoff", headers=me,
                      params={"after": 0}).json()
    assert [m["text"] for m in later["messages"] if m["sender"] == "staff"] == ["您好，我是客服小王，马上帮您查物流"]
    assert later["cursor"] >= cursor

    # release: the next message is answered by the model again
    assert httpx.post(f"{url}/admin/handoffs/{item['id']}/release", headers=STAFF,
                      json={"staff": "alice"}).status_code == 200
    assert queue(url) == []
    back = say(url, me, "好的谢谢", conv)
    assert back.json()["choices"][0]["message"]["content"] and "x-handoff" not in back.headers

    conn = open_conn(db)
    try:
        rows = conn.execute("SELECT answered_by, staff, query, reply FROM serve_exchanges "
                            "WHERE conversation_id = ? ORDER BY created_at, rowid", (conv,)).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == ["end", "handoff", "staff", "end"]
    assert rows[2][1:] == ("alice", "给我转人工！", "您好，我是客服小王，马上帮您查物流")

    # the report: one hand-off today, answered, its wait; staff replies are not counted as turns
    [day] = httpx.get(f"{url}/admin/report", headers=STAFF).json()["days"]
    assert day["turns"] == 3 and day["handoffs"] == 1 and day["handoffs_answered"] == 1
    assert 0 < day["handoff_wait_p50_s"] == day["handoff_wait_p95_s"] < 60 and day["handoffs_abandoned"] == 0


def test_exactly_one_of_two_staff_claims_a_conversation(live):
    url, _ = live
    _, me = new_customer(url)
    conv = say(url, me, "I want to talk to a human agent").headers["x-conversation-id"]
    [item] = queue(url)
    assert item["conversation_id"] == conv

    def claim(name: str) -> int:
        return httpx.post(f"{url}/admin/handoffs/{item['id']}/claim", headers=STAFF,
                          json={"staff": name}, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(claim, [f"staff-{i}" for i in range(8)]))
    assert sorted(codes) == [200] + [409] * 7
    winner = queue(url)[0]["claimed_by"]
    r = httpx.post(f"{url}/admin/handoffs/{item['id']}/reply", headers=STAFF,
                   json={"staff": "someone-else" if winner != "someone-else" else "x", "text": "hi"})
    assert r.status_code == 409  # only the holder replies


def test_a_customer_token_cannot_reach_the_queue_or_another_conversation(live):
    url, _ = live
    _, me = new_customer(url)
    _, other = new_customer(url)
    conv = say(url, me, "转人工").headers["x-conversation-id"]
    hid = queue(url)[0]["id"]
    assert httpx.get(f"{url}/admin/handoffs", headers=me).status_code == 403
    assert httpx.post(f"{url}/admin/handoffs/{hid}/claim", headers=me, json={"staff": "me"}).status_code == 403
    assert httpx.get(f"{url}/v1/conversations/{conv}/handoff", headers=other).status_code == 404
    assert httpx.get(f"{url}/v1/conversations/{conv}/handoff", headers=me).json()["handoff"]["status"] == "waiting"


def test_staff_take_a_conversation_over_and_close_it(live):
    url, _ = live
    _, me = new_customer(url)
    conv = say(url, me, "这个尺码偏大吗").headers["x-conversation-id"]
    assert queue(url) == []
    r = httpx.post(f"{url}/admin/conversations/{conv}/takeover", headers=STAFF, json={"staff": "bob"})
    assert r.status_code == 201 and r.json()["status"] == "claimed"
    assert httpx.post(f"{url}/admin/conversations/{conv}/takeover", headers=STAFF,
                      json={"staff": "carol"}).status_code == 409
    hid = r.json()["id"]
    assert httpx.post(f"{url}/admin/handoffs/{hid}/reply", headers=STAFF,
                      json={"staff": "bob", "text": "偏大半码，建议拍小一码"}).status_code == 201
    assert httpx.post(f"{url}/admin/handoffs/{hid}/close", headers=STAFF, json={"staff": "carol"}).status_code == 409
    assert httpx.post(f"{url}/admin/handoffs/{hid}/close", headers=STAFF, json={"staff": "bob"}).status_code == 200
    assert httpx.post(f"{url}/admin/handoffs/999/claim", headers=STAFF, json={"staff": "bob"}).status_code == 404
    assert httpx.post(f"{url}/admin/conversations/nope/takeover", headers=STAFF,
                      json={"staff": "bob"}).status_code == 404


def test_handoff_figures_per_day():
    """requested / answered / median and p95 wait / abandoned, from the store's own rows."""
    from datetime import datetime, timedelta, timezone

    from endcloud.store import Store
    from endcloud.store.report import handoffs

    store = Store.open()
    conn = store.conn
    conn.execute("INSERT INTO serve_customers VALUES ('c', 'h', '2026-01-01')")
    t0 = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    for i, (wait, ended) in enumerate([(10, None), (20, None), (30, None), (None, 5), (None, None)]):
        conn.execute("INSERT INTO serve_conversations VALUES (?, 'c', ?)", (f"v{i}", t0.isoformat()))
        conn.execute("INSERT INTO serve_handoffs (conversation_id, reason, status, requested_at, "
                     "first_reply_at, ended_at) VALUES (?, 'requested', 'closed', ?, ?, ?)",
                     (f"v{i}", t0.isoformat(),
                      None if wait is None else (t0 + timedelta(seconds=wait)).isoformat(),
                      None if ended is None else (t0 + timedelta(seconds=ended)).isoformat()))
    early = handoffs(conn, 1800, now=t0 + timedelta(seconds=60))
    late = handoffs(conn, 1800, now=t0 + timedelta(hours=1))
    store.close()
    day = early["2026-12-01"]
    assert (day["handoffs"], day["handoffs_answered"], day["handoff_wait_p50_s"]) == (5, 3, 20.0)
    assert day["handoff_wait_p95_s"] == 29.0 and day["handoffs_abandoned"] == 1  # one closed unanswered
    assert late["2026-12-01"]["handoffs_abandoned"] == 2  # and one nobody answered for an hour
