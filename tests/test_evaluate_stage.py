"""One command, tiny inputs: Table VI (md + csv), Fig. 3, scores.json, the store; `score`; humans."""

from __future__ import annotations

import csv
import json

import pytest

from endcloud.cli import main
from endcloud.evaluate.human import agreement, read_ratings, Rating
from endcloud.store import Store

pytestmark = pytest.mark.usefixtures("store_backend")  # every test on SQLite and PostgreSQL

CONVS = [
    ([("user", "您好")], "您好，请问有什么可以帮您？"),
    ([("user", "我的订单什么时候发货？")], "亲，今天下午就发货哦"),
    ([("user", "能便宜点吗"), ("assistant", "已经是最低价了"), ("user", "那送个赠品吧")], "可以给您备注赠品哦"),
    ([("user", "How long does shipping take?")], "Shipping usually takes 3-5 business days."),
]


def _queries(tmp_path):
    path = tmp_path / "test.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, (turns, reply) in enumerate(CONVS):
            msgs = [{"role": r, "content": t} for r, t in turns] + [{"role": "assistant", "content": reply}]
            fh.write(json.dumps({"messages": msgs, "meta": {"id": f"q{i}"}}, ensure_ascii=False) + "\n")
    return path


def _replies(tmp_path, name, replies, key="id"):
    path = tmp_path / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, ((turns, _), reply) in enumerate(zip(CONVS, replies)):
            row = {"id": f"q{i}"} if key == "id" else {"query": turns[-1][1]}
            fh.write(json.dumps({**row, "reply": reply, "latency_ms": 12.5}, ensure_ascii=False) + "\n")
    return path


def test_one_command_writes_table_vi_fig3_and_json(tmp_path, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("ENDCLOUD_CACHE", str(tmp_path / "cache"))
    q = _queries(tmp_path)
    good = _replies(tmp_path, "good", [r for _, r in CONVS])
    bad = _replies(tmp_path, "bad", ["", "😀😀😀", "订单 order 已经 shipped 🚚" * 500, "no"], key="query")
    cloud = _replies(tmp_path, "cloud", [r for _, r in CONVS])
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(
        f"queries: {q}\nreference: {cloud}\nsimilarity: ngram\nmatch: ngram\n"
        f"output_dir: {tmp_path / 'runs'}\n"
        f"generation: {{max_new_tokens: 4, temperature: 0, batch_size: 2}}\n"
        f"systems:\n  - {{name: tiny-original, model: {tiny_model_dir}}}\n"
        f"  - {{name: good, replies: {good}}}\n  - {{name: bad, replies: {bad}}}\n",
        encoding="utf-8")
    assert main(["evaluate", "--config", str(cfg), "limit=0"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    for name in ("table_vi.md", "table_vi.csv", "fig3.png", "scores.json", "replies.jsonl", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "fig3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.reader((run_dir / "table_vi.csv").open(encoding="utf-8")))
    assert rows[0] == ["id", "user_input", "tiny-original", "good", "bad"]
    assert len(rows) == len(CONVS) + 2 and rows[-1][0] == "mean"
    res = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    good_q = res["systems"]["good"]["per_query"]
    assert all(set(q) >= {"sim", "match", "match_reference", "final", "rule", "bleu", "rouge_l"}
               for q in good_q)
    assert [q["sim"] for q in good_q] == pytest.approx([1.0] * len(CONVS), abs=1e-6)  # same as cloud
    assert good_q[0]["bleu"] == pytest.approx(1.0)
    bad_q = res["systems"]["bad"]["per_query"]
    assert bad_q[0]["final"] == 0.0 and bad_q[0]["sim"] == 0.0 and bad_q[0]["match"] == 0.0
    summary = res["systems"]["good"]["summary"]
    assert summary["final_mean"] > res["systems"]["bad"]["summary"]["final_mean"]
    assert summary["latency_ms_mean"] == 12.5
    assert res["systems"]["tiny-original"]["summary"]["latency_ms_mean"] > 0  # generated here
    md = (run_dir / "table_vi.md").read_text(encoding="utf-8")
    assert "| | **mean** |" in md and "BLEU" in md
    with Store.open() as store:
        n = store.conn.execute("SELECT COUNT(*) FROM eval_scores").fetchone()[0]
        assert n == 3 * len(CONVS)
        assert store.runs("evaluate")[0]["status"] == "ok"


def test_evaluate_score_adds_the_fields(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": "什么时候发货", "reply": "今天发货", "reference": "今天下午发货"},
            {"query": "什么时候发货", "reply": "今天发货"},
            {"query": "x", "reply": "", "reference": "y", "extra": 1}]
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "scored.jsonl"
    assert main(["evaluate", "score", "--input", str(pairs), "--output", str(out),
                 "--similarity", "ngram", "--match", "ngram"]) == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert got[1]["rule"] == "match_only"  # no reference: Sim cannot be computed
    for g in (got[0], got[2]):  # the Θ rule decided by the reference's own Match
        assert g["rule"] == ("sim_only" if g["match_reference"] < 0.2 else "eq1")
    assert got[1]["sim"] is None and got[1]["final"] == got[1]["match"]
    assert got[2]["final"] == 0.0 and got[2]["extra"] == 1
    assert main(["evaluate", "score", "--input", str(pairs), "--similarity", "ngram",
                 "--match", "ngram"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_bad_config_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("queries: q.jsonl\nsystems: [{name: a, replies: a.jsonl, model: m}]\n")
    assert main(["evaluate", "--config", str(cfg)]) == 2
    assert "systems.a" in capsys.readouterr().err


def test_human_ratings_import_and_agreement(tmp_path, capsys):
    jl = tmp_path / "r.jsonl"
    jl.write_text(json.dumps({"query": "发货了吗", "reply": "今天发货", "rating": 5}, ensure_ascii=False)
                  + "\n" + json.dumps({"query": "发货了吗", "reply": "天气不错", "rating": "bad"},
                                      ensure_ascii=False) + "\n", encoding="utf-8")
    cv = tmp_path / "r.csv"
    cv.write_text("query,reply,rating,corrected_reply\n发货了吗,发货了吗亲 今天发货,4,\n发货了吗,嗯,1,今天发货哦\n",
                  encoding="utf-8")
    assert len(read_ratings(cv)) == 2 and read_ratings(cv)[1].corrected_reply == "今天发货哦"
    for path in (jl, cv):
        assert main(["evaluate", "human", "import", "--input", str(path)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "human", "agree", "--similarity", "ngram", "--match", "ngram",
                 "--threshold", "0.3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 4 and -1 <= res["spearman"] <= 1 and 0 <= res["accuracy"] <= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "reply": "b", "rating": 7}\n')
    assert main(["evaluate", "human", "import", "--input", str(bad)]) == 3


def test_agreement_hand_computed():
    ratings = [Rating("q", "r", rating=x) for x in (1, 2, 4, 5)]
    res = agreement([0.1, 0.2, 0.6, 0.9], ratings, threshold=0.5)
    assert res["spearman"] == pytest.approx(1.0) and res["kendall"] == pytest.approx(1.0)
    assert res["accuracy"] == 1.0
    res = agreement([0.9, 0.6, 0.2, 0.1], ratings, threshold=0.5)
    assert res["spearman"] == pytest.approx(-1.0) and res["accuracy"] == 0.0


def test_shipped_config_loads_and_checks_itself():
    from pathlib import Path

    from endcloud.config import load_config
    from endcloud.errors import ConfigError
    from endcloud.evaluate.config import EvalConfig

    path = Path(__file__).parents[1] / "configs" / "eval.yaml"
    cfg = load_config(EvalConfig, path)
    assert cfg.alpha == 0.8 and cfg.theta == 0.2 and [s.name for s in cfg.systems] == ["original", "lora"]
    for bad, key in (["alpha=1.5"], "alpha"), (["systems=[]"], "systems"), (["theta=-0.1"], "theta"):
        with pytest.raises(ConfigError, match=key):
            load_config(EvalConfig, path, bad)


def test_table_vi_bolds_only_the_best_cell_per_row():
    from endcloud.evaluate.report import _bold_best

    assert _bold_best([0.2, 0.4, 0.1]) == ["0.200", "**0.400**", "0.100"]
    assert _bold_best([0.3]) == ["0.300"]  # one system: nothing to compare
