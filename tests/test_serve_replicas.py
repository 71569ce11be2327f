"""Two service replicas on one store (a SQLite file, or a PostgreSQL server as across boxes) act
as one service: a customer's token, conversation and feedback work on either, and a promotion or
rollback written by the evolve registry to the store reaches both (the adapter travels in the
store: each replica unpacks it into its own cache) within the polling bound."""

from __future__ import annotations

import os

import httpx
import pytest

pytest.importorskip("fastapi")

from end_helpers import tiny_train_config, write_samples  # noqa: E402
from serve_helpers import new_customer, tiny_cfg  # noqa: E402
from wait_helpers import wait_until  # noqa: E402

from endcloud.end.registry import Registry  # noqa: E402
from endcloud.serve.app import create_app, fastapi_app  # noqa: E402
from endcloud.serve.server import running  # noqa: E402

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

ADMIN = "staff-token-replicas"
POLL_S = 0.2


def chat(url: str, headers: dict, text: str, conversation: str | None = None) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 6}
    if conversation:
        body["conversation_id"] = conversation
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, json=body, timeout=60)


def test_two_replicas_share_customers_and_follow_the_champion_in_the_store(tiny_model_dir, tmp_path):
    from endcloud.end.train import run as train

    store = os.environ["ENDCLOUD_DB"]
    adapter = train(tiny_train_config(tiny_model_dir, write_samples(tmp_path / "s.jsonl"),
                                      tmp_path / "train", "lora", steps=2)).adapter
    apps = []
    for i in range(2):
        cfg = tiny_cfg(tmp_path / f"r{i}", tiny_model_dir, limits={"session_rate_per_minute": 0})
        cfg.backend.registry, cfg.backend.registry_poll_s = "store", POLL_S
        cfg.backend.registry_cache = str(tmp_path / f"cache{i}")  # nothing shared but the store
        apps.append(create_app(cfg, admin_token=ADMIN))
    with running(apps[0]) as a, running(apps[1]) as b:
        _, h = new_customer(a)  # a token made on one replica works on the other
        first = chat(a, h, "我的订单什么时候发货？")
        assert first.status_code == 200
        conv = first.headers["x-conversation-id"]
        second = chat(b, h, "还没收到", conv)  # the conversation continues on the other one
        assert second.status_code == 200 and second.headers["x-conversation-id"] == conv
        r = httpx.post(f"{b}/v1/feedback", headers=h, json={"reply_id": first.json()["id"], "thumb": "down"})
        assert r.status_code == 201
        turns = httpx.get(f"{a}/v1/conversations/{conv}", headers=h).json()
        assert len(turns["turns"]) == 2

        base = chat(a, h, "Question 7").json()["choices"][0]["message"]["content"]
        reg = Registry(tmp_path / "registry", store)  # what evolve writes
        aid = reg.add(adapter)
        reg.promote(aid, "test promotion")
        watchers = [fastapi_app(app).state.champion for app in apps]
        assert wait_until(lambda: all(w.champion == aid for w in watchers), 30, every_s=0.05)
        assert all(len(list((tmp_path / f"cache{i}").glob(f"{aid}-*/adapter_model.safetensors"))) == 1
                   for i in range(2))  # each replica's own copy, named by id and content
        tuned = [chat(u, h, "Question 7").json()["choices"][0]["message"]["content"] for u in (a, b)]
        assert tuned[0] == tuned[1] != base  # both answer with the promoted adapter

        reg.rollback("test rollback")
        assert wait_until(lambda: all(w.champion is None for w in watchers), 30, every_s=0.05)
        assert chat(b, h, "Question 7").json()["choices"][0]["message"]["content"] == base
        assert [w.swaps for w in watchers] == [2, 2]
        assert reg.pointer()["seq"] == 2 and reg.champion() is None
        from endcloud.store import Store
        from endcloud.store.champion import latest_loads

        assert wait_until(lambda: len(Store.open(store).conn.execute(
            "SELECT id FROM champion_loads").fetchall()) == 4, 10)  # 2 replicas x (promote, rollback)
        with Store.open(store) as st:
            rows = st.conn.execute("SELECT version, adapter_id, status FROM champion_loads ORDER BY id").fetchall()
            last = latest_loads(st.conn)
        assert sorted(tuple(r) for r in rows) == [(1, aid, "loaded")] * 2 + [(2, None, "loaded")] * 2
        assert len(last) == 2 and all(x["version"] == 2 for x in last)


def test_a_champion_a_replica_cannot_load_is_reported_failed_and_the_current_one_stays(tmp_path):
    from endcloud.store import Store

    store = os.environ["ENDCLOUD_DB"]
    cfg = tiny_cfg(tmp_path / "r", tmp_path / "no-model-needed")
    cfg.backend = type(cfg.backend)(kind="fake", registry="store", registry_poll_s=POLL_S,
                                    registry_cache=str(tmp_path / "cache"))
    from evolve_helpers import fake_adapter

    reg = Registry(tmp_path / "registry", store)
    aid = reg.add(fake_adapter(tmp_path / "good", "g"))
    def outcomes() -> list:
        with Store.open(store) as st:
            return [tuple(r) for r in st.conn.execute(
                "SELECT adapter_id, status FROM champion_loads ORDER BY id")]

    app = create_app(cfg, admin_token=ADMIN)
    with running(app):
        reg.promote(aid, "fine")
        assert wait_until(lambda: outcomes() == [(aid, "loaded")], 20)
        with Store.open(store) as st:  # then a champion whose stored archive is corrupt
            bad = reg.add(fake_adapter(tmp_path / "bad", "b"))
            from endcloud.end.registry import pack_adapter
            from endcloud.store import champion

            data, sha = pack_adapter(reg.path(bad))
            champion.switch(st.conn, bad, [aid], "corrupt", (data[:-20] + b"x" * 20, sha))
        assert wait_until(lambda: len(outcomes()) == 2, 20)
        (first, second) = outcomes()
        assert first == (aid, "loaded") and second == (bad, "failed")
        assert fastapi_app(app).state.champion.champion == aid  # still serving the good one
        with Store.open(store) as st:
            err = st.conn.execute("SELECT error FROM champion_loads WHERE status = 'failed'").fetchone()[0]
        assert "sha256 mismatch" in err


def test_a_corrupt_adapter_in_the_store_is_refused_and_the_replica_keeps_serving(tiny_model_dir, tmp_path):
    from endcloud.end.registry import unpack_adapter
    from endcloud.errors import RegistryError
    from evolve_helpers import fake_adapter

    from endcloud.end.registry import pack_adapter

    data, sha = pack_adapter(fake_adapter(tmp_path / "a", "x"))
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        unpack_adapter(data[:-10] + b"0" * 10, sha, tmp_path / "cache" / "a0001")
    assert not (tmp_path / "cache" / "a0001").exists()
    assert unpack_adapter(data, sha, tmp_path / "cache" / "a0001").is_dir()
