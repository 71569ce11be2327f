"""Labels of refused rounds are not lost: the champion never learned them, so the next candidates
train on them again (up to `train.carry_refused` rounds since the champion's own round)."""

from __future__ import annotations

import json

import httpx
import pytest

pytest.importorskip("fastapi")

from evolve_helpers import evolve_cfg, query, teacher, write_pairs  # noqa: E402
from serve_helpers import new_customer, tiny_cfg  # noqa: E402

from endcloud.evolve.round import _carried, run  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from endcloud.store import Store  # noqa: E402
from dbutil import connect

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL


def test_carried_labels_since_the_champion(tmp_path):
    with Store.open() as store:
        for i, (status, cand) in enumerate([("refused", "a1"), ("promoted", "a2"), ("refused", "a3"),
                                            ("skipped", None), ("refused", "a4"),
                                            ("refused", "a5")], start=1):
            d = tmp_path / f"round-{i}"
            d.mkdir()
            (d / "new.jsonl").write_text(json.dumps({"meta": {"id": f"r{i}"}}) + "\n")
            store.conn.execute("INSERT INTO evolve_rounds (id, round_dir, status, started_at, "
                               "candidate) VALUES (?, ?, ?, 'x', ?)", (i, str(d), status, cand))
        ids = lambda rows: [r["meta"]["id"] for r in rows]  # noqa: E731
        assert ids(_carried(store, "a2", 3)) == ["r3", "r5", "r6"]  # not before a2, not skipped
        assert ids(_carried(store, "a2", 2)) == ["r5", "r6"]  # the most recent N
        assert ids(_carried(store, None, 9)) == ["r1", "r3", "r5", "r6"]  # the base: all refused
        assert _carried(store, "a2", 0) == []


def test_a_refused_rounds_labels_are_trained_on_in_the_next_round(tiny_model_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    heldout = write_pairs(tmp_path / "heldout.jsonl", range(1000, 1004))
    with teacher() as cloud, running(create_app(tiny_cfg(
            tmp_path, tiny_model_dir, limits={"session_rate_per_minute": 0}))) as url:
        cfg = evolve_cfg(tmp_path, tiny_model_dir, heldout, cloud_url=cloud.url, steps=4,
                         subprocess=False)
        cfg.select.final_threshold = 1.01  # every served end reply is selectable
        cfg.gate.delta = 10.0  # nothing clears it: every round is refused
        _, h = new_customer(url)
        results = []
        for batch in (range(0, 3), range(3, 5)):
            for i in batch:
                r = httpx.post(f"{url}/v1/chat/completions", headers=h, timeout=60, json={
                    "messages": [{"role": "user", "content": query(i)}], "max_tokens": 8})
                assert r.status_code == 200
            results.append(run(cfg))
    first, second = results
    assert first.status == second.status == "refused"
    assert first.stats["train_carried"] == 0 and second.stats["train_carried"] == 3
    trained = [json.loads(x)["messages"][-2]["content"]
               for x in (second.round_dir / "labels.jsonl").read_text().splitlines()]
    assert sorted(trained) == sorted(query(i) for i in range(5))
    new = (second.round_dir / "new.jsonl").read_text().splitlines()
    assert len(new) == 2  # this round's own labels; the carried ones stay in their round
    with connect(cfg.store) as db:
        assert db.execute("SELECT COUNT(*) FROM evolve_items").fetchone()[0] == 5
