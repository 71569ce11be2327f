"""Selection from the service's store: low Final, dislikes and corrections; corrections win;
masked; deduplicated; provenance; exchanges used by a round are not selected again."""

from __future__ import annotations

import os
import pytest

import json

from endcloud.evolve.config import SelectConfig
from endcloud.evolve.select import select
from endcloud.records import Exchange
from endcloud.store.conversations import add_exchange, new_conversation, new_customer
from endcloud.store.feedback import add_feedback, add_review
from endcloud.store import Store

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL


def seed(conn, i, query, match, reply="ok"):
    cid = new_conversation(conn, "c1")
    add_exchange(conn, Exchange(f"x{i}", cid, "end", [], query, reply, "end", "stop", 5.0,
                                end_reply=reply, match_score=match))
    return f"x{i}"


def test_reasons_masking_dedup_and_corrections(tmp_path):
    store = Store.open()
    conn = store.conn
    new_customer(conn, "c1", "tok")
    seed(conn, 1, "where is my parcel? call 13800138000", 0.1)  # low Final, has PII
    seed(conn, 2, "fine question", 0.9)  # good and liked: not selected
    add_feedback(conn, "x2", "up", None, None)
    seed(conn, 3, "bad answer here", 0.9)
    add_feedback(conn, "x3", "down", None, None)
    seed(conn, 4, "rated low", 0.9)
    add_feedback(conn, "x4", None, 2, None)
    seed(conn, 5, "dup   question", 0.1)
    seed(conn, 6, "dup question", 0.1)
    add_review(conn, "x6", None, None, "corrected: mail me at a.b@example.com", "staff")
    items, stats = select(conn, SelectConfig(final_threshold=0.3))
    by = {i.exchange_id: i for i in items}
    assert set(by) == {"x1", "x3", "x4", "x6"} and stats.duplicates == 1
    assert "13800138000" not in by["x1"].messages[-1]["content"]
    assert "[PHONE_1]" in by["x1"].messages[-1]["content"]
    assert by["x3"].reasons == ["disliked"] and by["x4"].reasons == ["disliked"]
    assert by["x6"].reasons[0] == "correction" and "a.b@example.com" not in by["x6"].correction
    assert by["x1"].meta["exchange_id"] == "x1" and by["x1"].final == 0.1
    # used by a round: never selected again
    conn.execute("INSERT INTO evolve_rounds (round_dir, status, started_at) VALUES ('', 'refused', '')")
    conn.execute("INSERT INTO evolve_items (round_id, exchange_id, reasons, label_source) "
                 "VALUES (1, 'x1', 'low_final', 'cloud')")
    assert "x1" not in {i.exchange_id for i in select(conn, SelectConfig(final_threshold=0.3))[0]}
    store.close()


def test_a_corrected_cloud_turn_keeps_the_correction_with_its_own_masking(tmp_path):
    store = Store.open()
    conn = store.conn
    new_customer(conn, "c1", "tok")
    cid = new_conversation(conn, "c1")
    sent = json.dumps([{"role": "user", "content": "call [PHONE_1] about my parcel"}])  # as served
    add_exchange(conn, Exchange("x1", cid, "end", [], "call 13900139000 about my parcel", "on its way",
                                "cloud", "stop", 5.0, end_reply="hm", match_score=0.1,
                                escalation="low_match", cloud_status="ok", cloud_request_masked=sent,
                                cloud_reply_masked="we will call [PHONE_1]"))
    add_review(conn, "x1", None, None, "we will call 13900139000 today", "staff")
    (item,), _ = select(conn, SelectConfig(final_threshold=0.3))
    assert item.correction is not None and item.served_reply is None  # the correction wins
    # question and correction masked in one conversation: the same placeholder names the same phone
    assert "[PHONE_1]" in item.messages[-1]["content"] and "[PHONE_1]" in item.correction
    assert "13900139000" not in item.messages[-1]["content"] + item.correction
    store.close()


def test_ungrounded_and_non_answer_drafts_are_relabelled(tmp_path):
    """The service stores each end draft's groundedness and non-answer kind; a draft that stated
    a fact its prompt did not hold, or echoed the customer, is relabelled even with a fine Match."""
    store = Store.open()
    conn = store.conn
    new_customer(conn, "c1", "tok")
    cid = new_conversation(conn, "c1")
    for i, (grounded, kind) in enumerate([(0.0, None), (None, "echo"), (1.0, None), (None, None)]):
        add_exchange(conn, Exchange(f"x{i}", cid, "end", [], f"question {i}", "reply", "end", "stop", 5.0,
                                    end_reply="reply", match_score=0.9, grounded=grounded, nonanswer=kind))
    items, stats = select(conn, SelectConfig(final_threshold=0.3))
    assert {i.exchange_id: i.reasons for i in items} == {"x0": ["ungrounded"], "x1": ["nonanswer"]}
    assert stats.ungrounded == 1 and stats.nonanswer == 1
    assert select(conn, SelectConfig(final_threshold=0.3, relabel_ungrounded=False))[0] == []
    store.close()


def test_a_staff_reply_from_a_handoff_is_the_label_and_wins_over_a_cloud_relabel(tmp_path):
    """After a hand-off, the person's reply is selected as a human label (never sent to the cloud),
    and it beats a low-scored end reply to the same question."""
    from evolve_helpers import evolve_cfg, teacher

    from endcloud.evolve.relabel import relabel
    from endcloud.store import handoffs as handoff

    store = Store.open()
    conn = store.conn
    new_customer(conn, "c1", "tok")
    seed(conn, 1, "how much is shipping to 13800138000?", 0.1)  # a low-scored end reply
    cid = new_conversation(conn, "c1")
    hid, _ = handoff.open_handoff(conn, cid, "taken_over", "alice")
    handoff.add_message(conn, hid, cid, "customer", "how much is shipping to 13800138000?")
    handoff.staff_reply(conn, hid, "alice", "Shipping is 9 yuan; we will text 13800138000 when it ships.")
    items, stats = select(conn, SelectConfig(final_threshold=0.3))
    store.close()
    assert stats.staff == 1 and stats.duplicates == 1
    [item] = items  # the same masked question: the person's answer wins
    assert item.reasons == ["staff"] and item.meta["answered_by"] == "staff"
    assert item.correction == "Shipping is 9 yuan; we will text [PHONE_1] when it ships."  # masked
    with teacher() as cloud:
        cfg = evolve_cfg(tmp_path, tmp_path, tmp_path / "heldout.jsonl", cloud.url)
        rows, lab = relabel(items, cfg, tmp_path, os.environ["ENDCLOUD_DB"])
        assert cloud.bodies == []  # nothing went to the cloud
    assert lab.human == 1 and rows[0].meta["label_source"] == "human"
    assert rows[0].reply == item.correction
