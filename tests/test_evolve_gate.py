"""The gate: decision rules on their own, and a degraded candidate (trained on shuffled labels)
refused against a champion trained on the right ones, in every trial."""

from __future__ import annotations

import numpy as np
import pytest

from evolve_helpers import evolve_cfg, write_pairs

from endcloud.evolve.config import GateConfig
from endcloud.evolve.gate import Side, bootstrap_lower, decide, gate, norm_query, read_pairs


def sides(champ, cand, **kw):
    return Side(list(champ), kw.get("reg_a", []), kw.get("pii_a", 0), 0), \
        Side(list(cand), kw.get("reg_b", []), kw.get("pii_b", 0), kw.get("unsafe_b", 0))


def test_clear_gain_promotes_noise_does_not():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, 60)
    assert decide(GateConfig(), *sides(base, base + 0.1)).promote
    noise = base + rng.normal(0, 0.1, 60)  # no real gain: the lower bound stays <= 0
    r = decide(GateConfig(), *sides(base, noise - noise.mean() + base.mean()))
    assert not r.promote and "lower bound" in r.reason
    assert not decide(GateConfig(delta=0.2), *sides(base, base + 0.1)).promote


def test_pii_safety_regression_and_leak_refuse_despite_a_gain():
    a, b = [0.2] * 20, [0.6] * 20
    assert "PII" in decide(GateConfig(), *sides(a, b, pii_b=1)).reason
    assert "safety" in decide(GateConfig(), *sides(a, b, unsafe_b=2)).reason
    assert "regression" in decide(GateConfig(), *sides(a, b, reg_a=[0.9], reg_b=[0.5])).reason
    assert "training data" in decide(GateConfig(), *sides(a, b), leaked=3).reason


def test_bootstrap_lower_bound_is_below_the_mean():
    d = np.random.default_rng(1).normal(0.05, 0.1, 100)
    assert bootstrap_lower(d, 1000, 0.95, 0) < d.mean()


TRIALS = 3


@pytest.fixture(scope="module")
def champion(tiny_model_dir, tmp_path_factory):
    import torch

    from endcloud.evolve.retrain import train_config
    from endcloud.end.train import run

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("gate")
    heldout = write_pairs(tmp / "heldout.jsonl", range(1000, 1016))
    cfg = evolve_cfg(tmp, tiny_model_dir, heldout)
    write_pairs(tmp / "new.jsonl", range(24))
    adapter = run(train_config(cfg, tmp, False, None, "")).adapter
    return cfg, tmp, adapter


def test_a_candidate_trained_on_shuffled_labels_is_refused_every_time(champion):
    from endcloud.evolve.retrain import train_config
    from endcloud.end.train import run

    cfg, tmp, champ = champion
    trained_on = {norm_query(m) for m, _ in read_pairs(tmp / "new.jsonl")}
    decisions = []
    for trial in range(TRIALS):
        d = tmp / f"trial-{trial}"
        d.mkdir()
        write_pairs(d / "new.jsonl", range(24), shuffle_seed=trial)
        cfg.train.seed = trial
        bad = run(train_config(cfg, d, False, None, "")).adapter
        result, _ = gate(cfg.gate, cfg.model, champ, bad, [], trained_on)
        decisions.append(result)
    assert [r.promote for r in decisions] == [False] * TRIALS, [r.reason for r in decisions]
    assert all(r.candidate_final < r.champion_final for r in decisions)


def test_gate_cache_reuses_replies_only_for_identical_inputs(tmp_path, monkeypatch):
    """The champion's greedy replies are kept by (model, adapter bytes, inputs, settings):
    asked again only when one of those changes."""
    from evolve_helpers import fake_adapter

    from endcloud.end.config import ModelConfig
    from endcloud.evolve import gate as gate_mod

    calls = []

    def fake_replies(model_cfg, adapter, cfg, convs):
        calls.append(adapter)
        return [f"reply {len(calls)} to {c[-1]['content']}" for c in convs]

    monkeypatch.setattr(gate_mod, "replies_of", fake_replies)
    model, cfg, cache = ModelConfig(name="m"), GateConfig(), tmp_path / "cache"
    convs = [[{"role": "user", "content": "q1"}], [{"role": "user", "content": "q2"}]]
    a = fake_adapter(tmp_path / "a", "a")
    first = gate_mod.cached_replies(model, a, cfg, convs, cache)
    assert gate_mod.cached_replies(model, a, cfg, convs, cache) == first and len(calls) == 1
    gate_mod.cached_replies(model, a, GateConfig(max_new_tokens=8), convs, cache)  # settings
    gate_mod.cached_replies(model, a, cfg, convs[:1], cache)  # inputs
    gate_mod.cached_replies(model, None, cfg, convs, cache)  # no adapter
    gate_mod.cached_replies(model, fake_adapter(tmp_path / "b", "b"), cfg, convs, cache)  # bytes
    gate_mod.cached_replies(ModelConfig(name="m", dtype="bfloat16"), a, cfg, convs, cache)
    assert len(calls) == 6
    gate_mod.cached_replies(model, a, cfg, convs, None)  # no cache dir: always asked
    assert len(calls) == 7
