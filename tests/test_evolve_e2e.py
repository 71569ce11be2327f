"""End to end on the tiny model: real requests to the service seed the store, a round relabels
through a loopback teacher, trains a candidate in a child process, the gate promotes it, the
running service answers with it without a restart and without a failed request, then rolls back."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

pytest.importorskip("fastapi")

from evolve_helpers import SHIP, answer, evolve_cfg, query, teacher, write_pairs  # noqa: E402
from serve_helpers import new_customer, tiny_cfg  # noqa: E402
from wait_helpers import wait_until  # noqa: E402

from endcloud.end.registry import Registry  # noqa: E402
from endcloud.evolve.round import run  # noqa: E402
from endcloud.serve.app import create_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402
from dbutil import connect

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

ADMIN = "staff-token-evolve-1"


def chat(url: str, headers: dict, text: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60,
                      json={"messages": [{"role": "user", "content": text}], "max_tokens": 10})


def test_round_relabels_trains_gates_hot_swaps_and_rolls_back(tiny_model_dir, tmp_path):
    import torch

    torch.set_num_threads(1)  # a tiny model: threads only contend on a shared CI box
    heldout = write_pairs(tmp_path / "heldout.jsonl", range(1000, 1012))
    cfg = evolve_cfg(tmp_path, tiny_model_dir, heldout)
    serve_cfg = tiny_cfg(tmp_path, tiny_model_dir, limits={"session_rate_per_minute": 0})
    serve_cfg.backend.registry, serve_cfg.backend.registry_poll_s = cfg.registry_dir, 0.1
    cfg.train.system = serve_cfg.system
    probe = "Question 777: where is my parcel?"
    with running(create_app(serve_cfg, admin_token=ADMIN)) as url:
        _, h = new_customer(url)
        ids = [chat(url, h, query(i)).json()["id"] for i in range(24)]
        base_reply = chat(url, h, probe).json()["choices"][0]["message"]["content"]
        r = httpx.post(f"{url}/v1/feedback", headers=h, json={"reply_id": ids[1], "thumb": "down"})
        assert r.status_code == 201
        r = httpx.post(f"{url}/admin/reviews", headers={"authorization": f"Bearer {ADMIN}"},
                       json={"exchange_id": ids[2], "corrected_reply": SHIP})
        assert r.status_code == 201, r.text

        failures, served, stop = [], [], threading.Event()

        def traffic() -> None:  # customers keep talking through training, gate and swap
            _, hh = new_customer(url)
            while not stop.is_set():
                resp = chat(url, hh, probe)
                (served if resp.status_code == 200 else failures).append(resp)

        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        with teacher() as cloud:
            cfg.relabel.cloud.base_url = cloud.url
            result = run(cfg)
        assert result.status == "promoted", result.reason
        reg = Registry(cfg.registry_dir)
        assert reg.champion() == result.candidate
        assert wait_until(lambda: chat(url, h, probe).json()["choices"][0]["message"]["content"]
                          != base_reply, 30, every_s=0.05)
        swapped = len(served) + len(failures)  # customers keep talking on the promoted model
        assert wait_until(lambda: len(served) + len(failures) >= swapped + 2, 30)
        stop.set()
        t.join(60)
        assert failures == [] and len(served) >= 2
        promoted_reply = chat(url, h, probe).json()["choices"][0]["message"]["content"]
        assert promoted_reply != base_reply

        # labels: every selected exchange (the 24 seeds, and the probe traffic deduplicated to
        # one item) via the cloud, except the one with a human correction, which won
        with connect(cfg.store) as db:
            row = db.execute("SELECT status, selected, corrections, labelled, cloud_calls, "
                             "champion_final, candidate_final, diff_lower FROM evolve_rounds").fetchone()
            used = db.execute("SELECT COUNT(*) FROM evolve_items").fetchone()[0]
        n = row[1]
        assert n in (24, 25) and row[0] == "promoted" and row[2:5] == (1, n, n - 1) and used == n
        assert len(cloud.bodies) == n - 1
        assert all(b["messages"][-1]["content"].startswith("Question") for b in cloud.bodies)
        new = [json.loads(x) for x in (result.round_dir / "new.jsonl").read_text().splitlines()]
        assert sorted(r["meta"]["label_source"] for r in new) == ["cloud"] * (n - 1) + ["human"]
        assert all(r["messages"][-1]["content"] == answer(r["messages"][-2]["content"]) for r in new)
        assert all(r["meta"]["exchange_id"] for r in new)  # provenance
        assert (result.round_dir / "train" / "adapter" / "manifest.json").is_file()
        assert row[6] > row[5] and row[7] > 0  # candidate better, bootstrap lower bound > 0

        # too little new traffic for another round: skipped, recorded, champion unchanged
        cfg.select.min_new = 100
        again = run(cfg)
        assert again.status == "skipped" and reg.champion() == result.candidate

        # roll back: the service follows within the poll interval
        assert reg.rollback("test") is None
        assert wait_until(lambda: chat(url, h, probe).json()["choices"][0]["message"]["content"]
                          == base_reply, 30, every_s=0.05)
