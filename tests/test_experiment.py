"""`endcloud experiment` end to end on the tiny model, a demo-corpus slice and the loopback teacher.

The same recipe as configs/paper.yaml (prepare -> labels -> three methods x checkpoints ->
evaluate -> reports); only the sizes differ. Asserts every output file, that every system has a
score in [0, 1] for every held-out query, and that a resumed run reuses labels and adapters.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from endcloud.cli import main
from endcloud.config import load_config
from endcloud.errors import ConfigError
from endcloud.experiment.config import ExperimentConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = ["prefix-tuning", "p-tuning-v2", "lora"]
STEPS = [2, 4]
SYSTEMS = ["original"] + [f"{m}@{s}" for m in METHODS for s in STEPS]
TOP_FILES = ["config.yaml", "table_vi.md", "table_vi.csv", "fig3.png", "scores.json", "table_v.md",
             "metrics.md", "metrics.csv", "loss.png", "loss.csv", "summary.json", "heldout.jsonl",
             "references.jsonl", "labels-train.jsonl", "labels-heldout.jsonl", "train-queries.jsonl"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One tiny experiment for every test in this module (about half a minute)."""
    root = tmp_path_factory.mktemp("experiment")
    mp = pytest.MonkeyPatch()
    mp.setenv("ENDCLOUD_PROGRESS", "0")
    mp.setenv("ENDCLOUD_DB", str(root / "endcloud.db"))
    mp.setenv("ENDCLOUD_CACHE", str(root / "cache"))
    run_dir = root / "runs" / "exp"
    try:
        assert main(["experiment", "--config", str(CONFIGS / "tiny.yaml"),
                     f"run_dir={run_dir}"]) == 0
        yield root, run_dir
    finally:
        mp.undo()


def test_every_output_file_is_there(experiment):
    _, run_dir = experiment
    for name in TOP_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    for name in ("fig3.png", "loss.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data_dir = sorted(run_dir.glob("data-*"))[0]
    assert (data_dir / "train.jsonl").is_file() and (data_dir / "test.jsonl").is_file()
    eval_dir = sorted(run_dir.glob("evaluate-*"))[0]
    assert (eval_dir / "replies.jsonl").is_file()
    for method in METHODS:
        out = run_dir / "train" / method
        assert (out / "adapter" / "manifest.json").is_file()
        assert (out / "train_log.jsonl").is_file()
        for step in STEPS:
            assert (out / "checkpoints" / f"step-{step:07d}" / "adapter_config.json").is_file()
    resolved = load_config(ExperimentConfig, run_dir / "config.yaml")  # the config reloads as is
    assert resolved.train.checkpoints == STEPS


def test_each_system_has_a_score_in_range_for_every_query(experiment):
    _, run_dir = experiment
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    assert list(scores["systems"]) == SYSTEMS
    n = len(scores["queries"])
    assert n == len((run_dir / "heldout.jsonl").read_text(encoding="utf-8").splitlines()) > 0
    for name, system in scores["systems"].items():
        assert len(system["per_query"]) == n, name
        for q in system["per_query"]:
            assert 0.0 <= q["final"] <= 1.0 and 0.0 <= q["match"] <= 1.0
            assert q["sim"] is None or 0.0 <= q["sim"] <= 1.0
            assert 0.0 <= q["bleu"] <= 1.0 and 0.0 <= q["rouge_l"] <= 1.0
        assert 0.0 <= system["summary"]["final_mean"] <= 1.0
    # the reference is the cloud's reply (the paper's setup), so Sim is computed for every query
    assert all(q["reference"] for q in scores["queries"])

    rows = list(csv.reader((run_dir / "table_vi.csv").open(encoding="utf-8")))
    assert rows[0] == ["id", "user_input", *SYSTEMS] and rows[-1][0] == "mean"
    assert len(rows) == n + 2
    metrics = list(csv.DictReader((run_dir / "metrics.csv").open(encoding="utf-8")))
    assert [r["system"] for r in metrics] == SYSTEMS
    assert all(0.0 <= float(r[k]) <= 1.0 for r in metrics for k in ("Final", "BLEU", "ROUGE-L"))
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["finals"]) == set(SYSTEMS)
    assert summary["shape"]["best_method_at_last_step"] in METHODS
    assert set(summary["training"]) == set(METHODS)
    for t in summary["training"].values():
        assert t["steps"] == STEPS[-1] and t["final_loss"] > 0


def test_reports_name_every_system(experiment):
    _, run_dir = experiment
    table_v = (run_dir / "table_v.md").read_text(encoding="utf-8")
    assert "cloud teacher (reference)" in table_v
    assert all(f"| {s} |" in table_v for s in SYSTEMS)
    table_vi = (run_dir / "table_vi.md").read_text(encoding="utf-8")
    assert "| | **mean** |" in table_vi and "BLEU" in table_vi and "ROUGE-L" in table_vi
    loss = list(csv.DictReader((run_dir / "loss.csv").open(encoding="utf-8")))
    assert {r["method"] for r in loss} == set(METHODS)
    assert {int(r["step"]) for r in loss if r["method"] == "lora"} == set(range(1, STEPS[-1] + 1))
    labels = (run_dir / "labels-train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(labels) == 12  # teacher.train_queries
    assert all(json.loads(x)["meta"]["label_source"] == "cloud" for x in labels)


def test_resume_reuses_labels_and_adapters(experiment, monkeypatch):
    root, run_dir = experiment
    monkeypatch.setenv("ENDCLOUD_DB", str(root / "endcloud.db"))  # the first run's store
    monkeypatch.setenv("ENDCLOUD_CACHE", str(root / "cache"))
    adapter = run_dir / "train" / "lora" / "adapter" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    assert main(["experiment", "--config", str(CONFIGS / "tiny.yaml"), f"run_dir={run_dir}",
                 "resume=true"]) == 0
    assert adapter.stat().st_mtime_ns == before  # not trained again
    newest = sorted(run_dir.glob("label-*/stats.json"))[-2:]  # this rerun's two label jobs
    stats = [json.loads(p.read_text(encoding="utf-8")) for p in newest]
    assert [s["new"] for s in stats] == [0, 0]  # no teacher call: every label is in the store
    assert sorted(s["labelled"] for s in stats) == [4, 12]
    assert len(list(run_dir.glob("data-*"))) == 1  # the prepared data was reused
    assert len(list(run_dir.glob("evaluate-*"))) == 1  # and the finished evaluation


@pytest.mark.parametrize("override, key", [
    ("train.checkpoints=[]", "train.checkpoints"),
    ("heldout.n=0", "heldout.n"),
    ("resume=true", "run_dir"),
    ("train.methods=[{name: lora}, {name: lora}]", "train.methods"),
    ("teacher.train_queries=-1", "teacher.train_queries"),
    ("train.stepz=3", "train.stepz"),
])
def test_bad_settings_are_named(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(ExperimentConfig, CONFIGS / "tiny.yaml", [override])


@pytest.mark.parametrize("name", ["paper.yaml", "paper-gpu.yaml", "tiny.yaml"])
def test_profiles_are_sized_as_documented(name):
    cfg = load_config(ExperimentConfig, CONFIGS / name)
    assert [m.name for m in cfg.train.methods] == METHODS
    raw = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    assert raw["evaluate"].get("alpha", 0.8) == 0.8 and raw["evaluate"].get("theta", 0.2) == 0.2
    if name == "paper-gpu.yaml":  # the paper's Table IV and N
        assert cfg.train.checkpoints == [3000, 5000, 15000, 30000]
        assert cfg.teacher.prompt.n_examples == 500 and cfg.train.lr == 5e-5
