"""The service with the shop's knowledge: chunks in the end model's prompt, approved answers
served at once (the correction fast path), placeholders never shown, privacy across customers,
a bad index refused at start, a rebuild picked up while serving."""

from __future__ import annotations

from typing import Any
import json
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("bm25s")

from serve_helpers import fake_cfg, handoff_promise, new_customer  # noqa: E402
from wait_helpers import wait_until  # noqa: E402

from endcloud.knowledge.build import run as build  # noqa: E402
from endcloud.knowledge.config import KBConfig, KnowledgeConfig  # noqa: E402
from endcloud.errors import KnowledgeError  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.end.runtime import FakeBackend  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import open_conn

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

STAFF = "staff-token-for-tests"
POLICY = """# 政策
## 发货
每天16:30前付款的订单当天发出，16:30以后付款的次日发出。
## 退货
签收后11天内可无理由退货，运费9元。
"""


class RecordingBackend(FakeBackend):
    """The fake end model, keeping every prompt it was given (the boundary we check)."""

    def __init__(self, cfg, reply: str | None = None) -> None:
        if reply is not None:
            cfg.fake_reply = reply
        super().__init__(cfg)
        self.prompts: list[list[dict[str, str]]] = []

    def stream(self, model, messages, params):
        self.prompts.append(messages)
        return super().stream(model, messages, params)


def kb_cfg(tmp_path: Path, docs: str = POLICY, **knowledge) -> object:
    d = tmp_path / "docs"
    d.mkdir(exist_ok=True)
    (d / "policy.md").write_text(docs, encoding="utf-8")
    build(KBConfig(input=[str(d)], output=str(tmp_path / "kb"), encoder="ngram"))
    cfg = fake_cfg(tmp_path, **{k: knowledge.pop(k) for k in ("escalation", "cloud_url") if k in knowledge})
    cfg.knowledge = KnowledgeConfig(index=str(tmp_path / "kb"), **{
        "memory_threshold": 0.6, "memory_context_threshold": 0.3, **knowledge})
    return cfg


def chat(url: str, headers: dict, text: str) -> tuple[str, str]:
    r = httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=30,
                   json={"model": "end", "messages": [{"role": "user", "content": text}], "max_tokens": 64})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"], r.headers["x-reply-id"]


def rows(db: str, sql: str, *args) -> list[Any]:
    conn = open_conn(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_chunks_reach_the_prompt_and_are_recorded(tmp_path):
    cfg = kb_cfg(tmp_path)
    backend = RecordingBackend(cfg.backend)
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        _, rid = chat(url, headers, "今天几点前下单能当天发货？")
    system = backend.prompts[-1][0]
    assert system["role"] == "system" and "16:30前付款" in system["content"]
    assert system["content"].startswith(cfg.system)  # the shop's instruction stays first
    (row,) = rows(cfg.store, "SELECT knowledge_json, answered_from FROM serve_exchanges WHERE id = ?", rid)
    k = json.loads(row["knowledge_json"])
    assert row["answered_from"] == "model" and k["chunks"] and k["version"].startswith("v-")


def test_correction_serves_the_next_customer_at_once_and_keeps_privacy(tmp_path):
    """Staff correct a reply; a paraphrase from another customer gets the corrected fact from
    the answer memory (no model, no retraining); A's phone and name reach nobody else."""
    cfg = kb_cfg(tmp_path)
    backend = RecordingBackend(cfg.backend, reply="亲，这个要问一下仓库哦")
    staff = {"authorization": f"Bearer {STAFF}"}
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, a = new_customer(url)
        _, rid = chat(url, a, "我叫张伟，电话13912345678，周日你们发货吗？")
        r = httpx.post(f"{url}/admin/reviews", headers=staff, json={
            "exchange_id": rid, "corrected_reply": "周日仓库休息不发货，周一上午统一发出哦。"})
        assert r.status_code == 201, r.text
        committed = time.monotonic()
        _, b = new_customer(url)
        reply, rid_b = chat(url, b, "周日你们发货吗？")
        first_use_ms = (time.monotonic() - committed) * 1000
        prompts_before = len(backend.prompts)
        reply_c, _ = chat(url, b, "请问周日会发货吗")
    print(f"correction commit -> first use: {first_use_ms:.0f} ms")
    assert reply == "周日仓库休息不发货，周一上午统一发出哦。"
    (row,) = rows(cfg.store, "SELECT answered_from, knowledge_json FROM serve_exchanges WHERE id = ?", rid_b)
    assert row["answered_from"] == "memory" and json.loads(row["knowledge_json"])["memory"]
    (mem,) = rows(cfg.store, "SELECT query_masked, reply_masked, origin FROM knowledge_memory")
    assert mem["origin"] == "correction" and "13912345678" not in mem["query_masked"]
    assert "张伟" not in mem["query_masked"] and "[PHONE_1]" in mem["query_masked"]
    # whatever B got or the model was shown after the approval holds none of A's values
    # a paraphrase below the as-is threshold: the model answers, with the correction in its prompt
    assert len(backend.prompts) == prompts_before + 1
    assert "周日仓库休息不发货" in backend.prompts[-1][0]["content"]
    seen = json.dumps(backend.prompts[prompts_before:], ensure_ascii=False) + reply + reply_c
    assert "13912345678" not in seen and "张伟" not in seen


def test_raw_placeholders_never_reach_the_customer(tmp_path):
    cfg = kb_cfg(tmp_path, escalation=True)  # the cloud is down: a hand-off, never the placeholder
    backend = RecordingBackend(cfg.backend, reply="亲，[数字x]点前下单当天发货，订单[ORDER_1]已发出")
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        reply, rid = chat(url, headers, "我的订单什么时候发？")
        mine, rid2 = chat(url, headers, "订单号 250101123456789 发了吗？")
    assert "[数字x]" not in reply and "[ORDER_1]" not in reply
    (row,) = rows(cfg.store, "SELECT answered_by, escalation, end_reply FROM serve_exchanges WHERE id = ?", rid)
    assert row["escalation"] == "placeholder" and row["answered_by"] == "handoff"
    assert "[数字x]" in row["end_reply"]  # staff still see what the model said
    assert "[数字x]" not in mine  # [数字x] has nothing behind it, even with an order in the chat


def test_own_placeholder_is_restored(tmp_path):
    cfg = kb_cfg(tmp_path, escalation=True)
    backend = RecordingBackend(cfg.backend, reply="亲，订单[ORDER_1]已经发出啦")
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        reply, _ = chat(url, headers, "订单号 250101123456789 发了吗？")
    assert reply == "亲，订单250101123456789已经发出啦"


def test_uncovered_fact_question_goes_to_a_person(tmp_path):
    cfg = kb_cfg(tmp_path, on_missing="handoff", min_relevance=0.5)
    backend = RecordingBackend(cfg.backend)
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        reply, rid = chat(url, headers, "可以用花呗分期付款吗？多少期？")
        hello, _ = chat(url, headers, "你好呀")  # not a fact question: the model answers
    assert reply == handoff_promise(cfg) and len(backend.prompts) == 1
    (row,) = rows(cfg.store, "SELECT escalation, answered_by FROM serve_exchanges WHERE id = ?", rid)
    assert row["escalation"] == "no_knowledge" and row["answered_by"] == "handoff"


def test_bad_index_refuses_to_start_unless_not_required(tmp_path, caplog):
    cfg = fake_cfg(tmp_path)
    cfg.knowledge = KnowledgeConfig(index=str(tmp_path / "missing"))
    with pytest.raises(KnowledgeError, match=str(tmp_path / "missing")):
        create_app(cfg)
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "CURRENT").write_text("v-gone\n")
    with pytest.raises(KnowledgeError, match="v-gone"):
        create_app(cfg)
    cfg.knowledge = KnowledgeConfig(index=str(tmp_path / "missing"), required=False)
    with running(create_app(cfg, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        chat(url, headers, "几点发货？")
    assert "serving without the knowledge base" in caplog.text


def test_rebuild_while_serving_is_picked_up(tmp_path):
    cfg = kb_cfg(tmp_path, reload_s=0.05)
    backend = RecordingBackend(cfg.backend)
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        chat(url, headers, "退货运费多少？")
        assert "运费9元" in backend.prompts[-1][0]["content"]
        (tmp_path / "docs" / "policy.md").write_text(POLICY.replace("运费9元", "运费6元"), encoding="utf-8")
        build(KBConfig(input=[str(tmp_path / "docs")], output=str(tmp_path / "kb"), encoder="ngram"))

        def picked_up() -> bool:
            chat(url, headers, "退货运费多少？")
            return "运费6元" in backend.prompts[-1][0]["content"]

        assert wait_until(picked_up, 10, every_s=0.05)
        system = backend.prompts[-1][0]["content"]
    assert "运费6元" in system and "运费9元" not in system  # the new index, not a mix


def test_invented_number_is_not_served(tmp_path):
    """The shop says 11 days; a reply saying 7 is ungrounded and goes to the cloud (down here: a
    hand-off); so is "30元": 30 occurs in the shop's text (16:30), "30元" does not (the demo once
    answered "1元"); a reply with the shop's own number is served."""
    cfg = kb_cfg(tmp_path, escalation=True, quote=False)
    for reply, served in (("亲，签收后7天内可以退哦", False), ("退货运费为30元。", False),
                          ("亲，签收后11天内可以退哦", True)):
        backend = RecordingBackend(cfg.backend, reply=reply)
        with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
            _, headers = new_customer(url)
            got, rid = chat(url, headers, "收到货几天内可以退货？")
        (row,) = rows(cfg.store, "SELECT escalation FROM serve_exchanges WHERE id = ?", rid)
        assert (got == reply) is served and (row["escalation"] == "ungrounded") is (not served)
        assert served or got == handoff_promise(cfg)


def test_unserved_fact_answer_quotes_the_shop(tmp_path):
    """With quoting on, a fact question whose draft invents a number, states no number while
    the shop's closest sentence holds one, or states a number that sentence does not hold, gets that sentence (answered_from 'quote'), not the
    cloud; a draft with the shop's number is served as it is; a question that is not about shop
    facts is never quoted. (quote_min 0: the test index uses the n-gram encoder.)"""
    cfg = kb_cfg(tmp_path, escalation=True, quote_min=0.0, quote_units=1)
    cases = (("亲，签收后7天内可以退哦", "收到货几天内可以退货？", "ungrounded", "quote"),
             ("可以退的哦，请放心", "收到货几天内可以退货？", "no_fact", "quote"),
             # a number from the other chunk (shown to the model, so not "ungrounded") that the
             # closest sentence does not hold
             ("亲，16:30前申请就可以退哦", "收到货几天内可以退货？", "off_evidence", "quote"),
             ("亲，签收后11天内可以退哦", "收到货几天内可以退货？", None, "model"),
             ("亲，祝您生活愉快7", "你好呀", "not a fact question", None))
    for reply, question, reason, source in cases:
        backend = RecordingBackend(cfg.backend, reply=reply)
        with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
            _, headers = new_customer(url)
            got, rid = chat(url, headers, question)
        (row,) = rows(cfg.store, "SELECT escalation, answered_by, answered_from, cloud_status FROM "
                                 "serve_exchanges WHERE id = ?", rid)
        if source == "quote":
            assert row["escalation"] == reason and row["answered_from"] == "quote", dict(row)
            assert got.startswith("亲，店铺资料里是这样写的") and "签收后11天内可无理由退货" in got
            assert "核实" in got and row["answered_by"] == "end" and row["cloud_status"] is None
        elif source == "model":
            assert row["escalation"] is None and row["answered_from"] == "model" and got == reply
        else:  # escalated (the cloud is down here), never quoted
            assert row["escalation"] and row["answered_from"] != "quote" and "店铺资料" not in got


def test_handoff_speaks_the_customers_language(tmp_path):
    cfg = kb_cfg(tmp_path, escalation=True, quote=False)
    backend = RecordingBackend(cfg.backend, reply="You have 7 days to return it.")
    with running(create_app(cfg, backend=backend, admin_token=STAFF)) as url:
        _, headers = new_customer(url)
        got, _ = chat(url, headers, "How many days do I have to return an item?")
        got_zh, _ = chat(url, headers, "收到货几天内可以退货？")
    assert got == handoff_promise(cfg, "en") and got_zh == handoff_promise(cfg)


def test_cloud_gets_only_the_retrieved_chunks_masked_and_audited(tmp_path):
    """An escalated turn sends the turn's retrieved chunks inside the masked request (never the
    whole knowledge base); the egress audit names them; a customer's approved phone number and
    name reach no other customer's cloud request."""
    from evolve_helpers import teacher

    extra = "\n## 发票\n签收后5个工作日内开具电子发票。\n## 积分\n每消费1元得1积分。\n"
    with teacher() as cloud:
        cfg = kb_cfg(tmp_path, docs=POLICY + extra, escalation=True, cloud_url=cloud.url, k=1)
        staff = {"authorization": f"Bearer {STAFF}"}
        with running(create_app(cfg, backend=RecordingBackend(cfg.backend), admin_token=STAFF)) as url:
            _, a = new_customer(url)
            _, rid = chat(url, a, "我叫张伟，电话13912345678，退货运费多少？")
            httpx.post(f"{url}/admin/reviews", headers=staff, json={
                "exchange_id": rid, "verdict": "approve"}).raise_for_status()
            _, b = new_customer(url)
            _, rid_b = chat(url, b, "退货运费多少？我要投诉")  # hard: the cloud answers
        bodies = list(cloud.bodies)
    sent = json.dumps(bodies[-1], ensure_ascii=False)
    assert "运费9元" in sent and "电子发票" not in sent and "积分" not in sent  # k=1: one chunk
    assert all("13912345678" not in json.dumps(b, ensure_ascii=False) and "张伟" not in
               json.dumps(b, ensure_ascii=False) for b in bodies)
    (row,) = rows(cfg.store, "SELECT knowledge_json FROM serve_exchanges WHERE id = ?", rid_b)
    audited = [json.loads(r["knowledge_ids"]) for r in rows(cfg.store, "SELECT knowledge_ids FROM cloud_egress")
               if r["knowledge_ids"]]
    assert audited and audited[-1] == json.loads(row["knowledge_json"])["chunks"]



def test_groundedness_and_non_answers_are_stored_and_escalate(tmp_path):
    """Every end draft is checked against its prompt: its groundedness and non-answer kind are
    stored per turn; `escalation.min_grounded` holds back a draft stating an unsupported fact
    (no knowledge base needed), and an echo's Match is capped so it escalates as low_match."""
    cases = [  # (reply, min_grounded, served, escalation, grounded, nonanswer)
        ("亲，退货运费是15元哦", 1.0, False, "ungrounded", 0.0, None),
        ("亲，退货运费是15元哦", 0.0, True, None, 0.0, None),
        ("亲，请您在订单页申请退货", 1.0, True, None, None, None),
        ("退货运费多少钱", 0.0, False, "low_match", None, "echo"),
    ]
    for i, (reply, min_grounded, served, escalation, grounded, kind) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        cfg = fake_cfg(d, escalation=True, esc={"min_grounded": min_grounded})
        with running(create_app(cfg, backend=RecordingBackend(cfg.backend, reply=reply),
                                admin_token=STAFF)) as url:
            _, headers = new_customer(url)
            got, rid = chat(url, headers, "退货运费多少钱")
            listed = httpx.get(f"{url}/admin/exchanges?filter=low", timeout=10,
                               headers={"authorization": f"Bearer {STAFF}"}).json()
        (row,) = rows(cfg.store, "SELECT escalation, grounded, nonanswer FROM serve_exchanges WHERE id = ?", rid)
        assert (got == reply) is served, (reply, got)
        assert served or got == handoff_promise(cfg)  # the dead cloud: a person, never the draft
        assert row["escalation"] == escalation and row["grounded"] == grounded and row["nonanswer"] == kind
        if grounded == 0.0 or kind:  # the review console's "low" list shows it
            assert rid in [e["id"] for e in listed["data"]]
