"""`endcloud evolve watch`: a round as soon as enough new data waits, another when the schedule is
due, and no more than `watch.max_rounds`. Tiny model, real service traffic, loopback teacher;
time is a fake clock so the test never sleeps."""

from __future__ import annotations

import os
import json
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")

from evolve_helpers import evolve_cfg, query, teacher, write_pairs  # noqa: E402
from serve_helpers import new_customer, tiny_cfg  # noqa: E402

from endcloud.evolve.round import watch  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import connect

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parents[1]


def test_watch_runs_on_new_data_then_on_schedule_and_stops(tiny_model_dir, tmp_path):
    import torch

    torch.set_num_threads(1)
    heldout = write_pairs(tmp_path / "heldout.jsonl", range(1000, 1008))
    with teacher() as cloud, running(create_app(tiny_cfg(
            tmp_path, tiny_model_dir, limits={"session_rate_per_minute": 0}))) as url:
        cfg = evolve_cfg(tmp_path, tiny_model_dir, heldout, cloud_url=cloud.url, steps=20,
                         subprocess=False)
        cfg.select.final_threshold = 1.01  # every served end reply is selectable
        cfg.watch.interval_s, cfg.watch.min_new, cfg.watch.poll_s = 3600.0, 4, 7.0
        cfg.watch.max_rounds = 2
        now, sleeps = [0.0], []

        def sleep(s: float) -> None:
            sleeps.append((now[0], s))
            if len(sleeps) == 1:  # while watch waits, customers talk: 4 new exchanges
                _, h = new_customer(url)
                for i in range(4):
                    r = httpx.post(f"{url}/v1/chat/completions", headers=h, timeout=60, json={
                        "messages": [{"role": "user", "content": query(i)}], "max_tokens": 8})
                    assert r.status_code == 200
            else:  # nothing new: time passes until the schedule is due
                now[0] += 3600.0

        import endcloud.evolve.round as rnd

        selects = []
        real_select = rnd.select
        rnd.select = lambda *a, **k: selects.append(1) or real_select(*a, **k)
        try:
            results = watch(cfg, sleep=sleep, clock=lambda: now[0])
        finally:
            rnd.select = real_select

    # sleep 1 (no data yet) -> 4 items wait -> round 1 at t=0; sleep 2 -> t=3600 -> round 2
    assert sleeps == [(0.0, 7.0), (0.0, 7.0)]
    # scored only when 4 exchanges waited: the poll that found none, and the one after round 1
    # had used them, cost a COUNT (rounds 1 and 2 select once each; the busy poll once)
    assert len(selects) == 3
    assert len(results) == 2
    first, second = results
    assert first.status in ("promoted", "refused") and first.stats["selected"] == 4
    assert first.stats["cloud_calls"] == 4 and len(cloud.bodies) == 4
    assert second.status == "skipped" and second.stats["selected"] == 0  # used items not reused
    with connect(cfg.store) as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM evolve_rounds ORDER BY id")]
    assert statuses == [first.status, "skipped"]


def test_watch_cli_is_bounded_by_max_rounds(tmp_path, capsys):
    from endcloud.cli import main

    heldout = write_pairs(tmp_path / "heldout.jsonl", range(4))
    rc = main(["evolve", "watch", "--config", str(ROOT / "configs" / "evolve.yaml"),
               f"store={os.environ['ENDCLOUD_DB']}", f"work_dir={tmp_path / 'evolve'}",
               f"gate.heldout={heldout}", "watch.interval_s=0", "watch.max_rounds=2"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["status"] for x in lines] == ["skipped", "skipped"]  # an empty store: nothing to learn
    assert [x["round"] for x in lines] == [1, 2]
