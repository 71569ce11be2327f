"""A customer and a staff member in headless Chromium (Debian's `chromium` driven by Playwright):
chat, see a streamed reply, thumbs-down, open the review console with the staff token, write a
correction, find it in the SQLite file, and open the report view (table and plot); and a
hand-off to a person, the customer on the chat page and a staff member in the console."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import fake_cfg  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import open_conn

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN = "browser-staff-token"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not found: apt-get install -y chromium")]


def test_chat_thumbs_down_then_review_and_correct(tmp_path):
    # a slow fake reply, so the page visibly streams it piece by piece
    cfg = fake_cfg(tmp_path, backend={"fake_token_delay_s": 0.03})
    with running(create_app(cfg, admin_token=ADMIN)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            page.fill("#input", "我的订单什么时候发货？")
            page.click("#send")
            reply = page.locator(".msg.assistant .text").first
            # streaming: a part of the reply is on screen before the whole of it
            page.wait_for_function("() => { const t = document.querySelector('.msg.assistant .text');"
                                   " return t && t.textContent.length > 0 && !t.closest('.msg').dataset.done; }")
            page.wait_for_selector(".msg.assistant[data-done='1']")
            assert reply.text_content() == cfg.backend.fake_reply[: 2 * 128]
            page.click("[data-testid=thumb-down]")
            page.wait_for_selector(".thumbs[data-state='sent-down']")

            console = browser.new_page()
            console.goto(f"{url}/review")
            console.fill("#token", "wrong")
            console.click("#load")
            console.wait_for_function("() => document.getElementById('status').textContent.includes('token')")
            console.fill("#token", ADMIN)
            console.select_option("#filter", "disliked")
            console.click("#load")
            row = console.locator("#rows tr").first
            row.wait_for()
            assert "我的订单什么时候发货？" in row.text_content()
            row.locator("[data-testid=correction]").fill("亲，您的订单会在24小时内发货哦~")
            row.locator("[data-testid=save-correction]").click()
            console.wait_for_selector("#rows tr[data-saved='1']")

            # the report view: today's serving figures from the store, and the plot
            console.click("#report-load")
            day = console.locator("#report-days tbody tr").first
            day.wait_for()
            cells = day.locator("td").all_text_contents()
            assert cells[1:3] == ["1", "100.0 %"]  # one turn, answered locally
            console.wait_for_function("() => { const i = document.getElementById('report-plot');"
                                      " return !i.hidden && i.complete && i.naturalWidth > 0; }")
        finally:
            browser.close()

    conn = open_conn(cfg.store)
    try:
        (down,) = conn.execute("SELECT COUNT(*) FROM serve_feedback WHERE thumb = 'down'").fetchone()
        corrections = [tuple(r) for r in conn.execute("SELECT query, reply FROM serve_corrections")]
    finally:
        conn.close()
    assert down == 1
    assert corrections == [("我的订单什么时候发货？", "亲，您的订单会在24小时内发货哦~")]


def test_a_customer_asks_for_a_person_and_staff_answer_from_the_console(tmp_path):
    """The console's queue (a long poll) shows the conversation within 2 s of the request; staff
    claim and reply, the reply is on the customer's page within 2 s; the customer's answer reaches
    the console; once released, the model answers the next message on the page again."""
    cfg = fake_cfg(tmp_path)
    expect = sync_api.expect
    bot = cfg.backend.fake_reply
    staff_text = "您好，我是客服小王，马上帮您查物流"
    with running(create_app(cfg, admin_token=ADMIN)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            errors: list = []  # uncaught script errors on either page (a CSP refusal among them)
            console = browser.new_page()
            console.on("pageerror", lambda e: errors.append(str(e)))
            console.goto(f"{url}/review")
            console.fill("#token", ADMIN)
            console.fill("#staff-name", "alice")
            console.click("#handoff-load")
            expect(console.locator("#handoff-status")).to_have_text("0 open, 0 waiting", timeout=2000)
            console.reload()  # the name is remembered, the token kept for the tab: watching again
            expect(console.locator("#staff-name")).to_have_value("alice", timeout=2000)
            expect(console.locator("#handoff-status")).to_have_text("0 open, 0 waiting", timeout=2000)

            page = browser.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/")
            page.fill("#input", "你好，我的快递三天没动了")
            page.click("#send")
            expect(page.locator(".msg.assistant[data-done='1'] .text")).to_have_text([bot], timeout=5000)
            page.fill("#input", "给我转人工！")
            page.click("#send")
            replies = page.locator(".msg.assistant[data-done='1'] .text")
            expect(replies).to_have_count(2, timeout=5000)
            promise = replies.nth(1).text_content()
            assert "人工客服" in promise

            # the queue shows the whole conversation, its reason and how long it has waited
            card = console.locator(".handoff")
            expect(card).to_have_attribute("data-status", "waiting", timeout=2000)
            expect(card.locator(".handoff-log .text")).to_have_text(
                ["你好，我的快递三天没动了", bot, "给我转人工！", promise], timeout=2000)
            expect(card.locator("header")).to_contain_text("requested", timeout=2000)
            expect(card.locator("header")).to_contain_text("asked", timeout=2000)
            expect(card.locator("[data-testid=handoff-send]")).to_be_disabled(timeout=2000)  # claim first

            card.locator("[data-testid=claim]").click()
            expect(card).to_have_attribute("data-claimed-by", "alice", timeout=2000)
            expect(page.locator(".msg.event[data-event=claimed]")).to_contain_text("alice", timeout=2000)
            card.locator("[data-testid=handoff-text]").fill(staff_text)
            card.locator("[data-testid=handoff-send]").click()
            staff_bubble = page.locator(".msg.staff")
            expect(staff_bubble.locator(".text")).to_have_text(staff_text, timeout=2000)
            expect(staff_bubble.locator(".who")).to_contain_text("alice", timeout=2000)

            # the customer answers: it goes to alice, and no (empty) bot bubble appears
            page.fill("#input", "单号是 SF1234567890")
            page.click("#send")
            expect(page.locator(".msg.user").last).to_have_attribute("data-delivered", "person", timeout=2000)
            expect(page.locator(".msg.assistant")).to_have_count(2, timeout=2000)
            expect(card.locator(".handoff-log li[data-sender=customer] .text").last).to_have_text(
                "单号是 SF1234567890", timeout=2000)
            expect(card.locator(".handoff-log li[data-sender=staff] .text")).to_have_text(
                [staff_text], timeout=2000)

            # released: off the queue, the customer is told, and the model answers again
            card.locator("[data-testid=release]").click()
            expect(console.locator(".handoff")).to_have_count(0, timeout=2000)
            expect(page.locator(".msg.event[data-event=released]")).to_have_count(1, timeout=2000)
            page.fill("#input", "好的谢谢")
            page.click("#send")
            expect(replies).to_have_count(3, timeout=5000)
            expect(replies.last).to_have_text(bot, timeout=2000)
            shown = page.evaluate("() => Array.from(document.querySelectorAll('#log > .msg'), (e) =>"
                                  " e.className.slice(4) + (e.dataset.event ? ':' + e.dataset.event : ''))")
            assert shown == ["user", "assistant", "user", "assistant", "event:waiting", "event:claimed",
                             "staff", "user", "event:released", "user", "assistant"]
            assert errors == []
        finally:
            browser.close()

    conn = open_conn(cfg.store)
    try:
        rows = conn.execute("SELECT answered_by, staff, reply FROM serve_exchanges "
                            "ORDER BY created_at, rowid").fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == ["end", "handoff", "staff", "end"]
    assert rows[2][1:] == ("alice", staff_text)
