"""Relabelling reuses what the cloud already answered while serving: escalated turns become
"served-cloud" labels from the stored masked reply, and only the rest is sent to the teacher.
Seeded through the real service (tiny model, escalation to a loopback teacher that counts)."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("fastapi")

from evolve_helpers import answer, evolve_cfg, query, teacher, write_pairs  # noqa: E402
from serve_helpers import new_customer, tiny_cfg  # noqa: E402

from endcloud.evolve.relabel import relabel  # noqa: E402
from endcloud.evolve.select import select  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import connect

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

PHONE = "13812345678"


def serve(cfg, texts: list[str]) -> list[str]:
    """One customer sends `texts`, each with a thumbs-down; the exchange ids."""
    ids = []
    with running(create_app(cfg)) as url:
        _, h = new_customer(url)
        for text in texts:
            r = httpx.post(f"{url}/v1/chat/completions", headers=h, timeout=60,
                           json={"messages": [{"role": "user", "content": text}], "max_tokens": 8})
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])
            fb = httpx.post(f"{url}/v1/feedback", headers=h, json={"reply_id": ids[-1], "thumb": "down"})
            assert fb.status_code == 201, fb.text
    return ids


def test_escalated_turns_reuse_the_served_cloud_reply(tiny_model_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    escalated = [query(0), query(1), f"{query(2)} call me at {PHONE}"]
    local = [query(10), query(11), query(12)]
    heldout = write_pairs(tmp_path / "heldout.jsonl", range(1000, 1004))
    with teacher() as cloud:
        # every reply's Match is below 1.0: the cloud takes each of these turns over
        esc_cfg = tiny_cfg(tmp_path, tiny_model_dir, escalation=True, cloud_url=cloud.url,
                           limits={"session_rate_per_minute": 0},
                           esc={"match_threshold": 1.0, "first_token_s": 10.0, "total_s": 20.0})
        served_ids = serve(esc_cfg, escalated)
        assert len(cloud.bodies) == 3
        assert all(PHONE not in str(b) for b in cloud.bodies)  # the service masked it
        serve(tiny_cfg(tmp_path, tiny_model_dir, limits={"session_rate_per_minute": 0}), local)
        with connect() as db:
            by = dict(db.execute("SELECT id, answered_by FROM serve_exchanges").fetchall())
        assert [by[i] for i in served_ids] == ["cloud"] * 3

        cfg = evolve_cfg(tmp_path, tiny_model_dir, heldout, cloud_url=cloud.url)
        with connect(cfg.store) as db:
            items, stats = select(db, cfg.select)
        assert len(items) == 6 and stats.disliked == 6
        assert sum(i.served_reply is not None for i in items) == 3
        round_dir = tmp_path / "round"
        round_dir.mkdir()
        rows, lab = relabel(items, cfg, round_dir, cfg.store)

    asked = [b["messages"][-1]["content"] for b in cloud.bodies[3:]]
    assert sorted(asked) == sorted(local)  # only the turns the cloud had not answered
    assert lab.served_cloud == 3 and lab.cloud == 3 and lab.cloud_calls == 3 and lab.labelled == 6
    source = {s.query: s.meta["label_source"] for s in rows}
    assert sorted(source.values()) == ["cloud"] * 3 + ["served-cloud"] * 3
    for s in rows:
        q, label = s.query, s.reply
        assert label == answer(q)  # the teacher's reply, whether stored or asked now
        assert source[q] == ("served-cloud" if s.meta["exchange_id"] in served_ids else "cloud")
        assert PHONE not in q and PHONE not in label  # masked: a placeholder, never the value
    assert any("call me at" in q and "[" in q for q in source)

    # the round's item log keeps the provenance too
    from endcloud.evolve.round import _record_items
    from endcloud.store import Store

    with Store.open(cfg.store) as store:
        store.conn.execute("INSERT INTO evolve_rounds (round_dir, status, started_at) VALUES ('r', 'refused', 't')")
        _record_items(store, 1, items, {s.id for s in rows})
        logged = dict(store.conn.execute("SELECT exchange_id, label_source FROM evolve_items").fetchall())
    assert logged == {i.exchange_id: "served-cloud" if i.exchange_id in served_ids else "cloud" for i in items}
