"""A customer and a staff member in headless Chromium (Debian's `chromium` driven by Playwright):
chat, see a streamed reply, thumbs-down, open the review console with the staff token, write a
correction, find it in the SQLite file, and open the report view (table and plot)."""

from __future__ import annotations

import os
import sqlite3

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import fake_cfg  # noqa: E402

from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402

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

    conn = sqlite3.connect(cfg.store)
    try:
        (down,) = conn.execute("SELECT COUNT(*) FROM serve_feedback WHERE thumb = 'down'").fetchone()
        corrections = conn.execute("SELECT query, reply FROM serve_corrections").fetchall()
    finally:
        conn.close()
    assert down == 1
    assert corrections == [("我的订单什么时候发货？", "亲，您的订单会在24小时内发货哦~")]
