"""`endcloud demo --tiny`: the whole loop (data -> masked labels -> LoRA -> Table VI -> a chat
through the real service with one escalation and one thumbs-down -> a relabel) on the tiny model
and the project's own loopback teacher, asserting every output it promises."""

from __future__ import annotations

import json

import pytest

from endcloud.cli import main
from endcloud.demo import ChatScript, load_demo_config


def test_tiny_demo_runs_the_whole_loop(tmp_path, capsys):
    pytest.importorskip("fastapi")  # the service part (endcloud[serve])
    assert main(["demo", "--tiny", "--output-root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "runs").glob("demo-*")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))

    # 1-4: the experiment recipe with LoRA only: original vs fine-tuned, Table VI printed
    exp = run_dir / "experiment"
    for name in ("table_vi.md", "table_vi.csv", "fig3.png", "table_v.md", "scores.json",
                 "metrics.md", "loss.png", "config.yaml", "labels-train.jsonl"):
        assert (exp / name).is_file(), name
    assert set(summary["experiment"]["finals"]) == {"original", "lora@4"}
    assert all(0.0 <= v <= 1.0 for v in summary["experiment"]["finals"].values())
    assert "# Table VI" in out and "original" in out and "fine-tuned (lora@4)" in out
    labels = (exp / "labels-train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(labels) == 8 and all(json.loads(x)["meta"]["label_source"] == "cloud" for x in labels)
    assert (exp / "train" / "lora" / "adapter" / "manifest.json").is_file()

    # 5: the demo shop's knowledge base was built and served; its fact question was asked
    assert summary["knowledge"]["chunks"] >= 50 and (run_dir / "kb" / "CURRENT").is_file()
    assert summary["fact"]["question"] == ChatScript().fact_question and summary["fact"]["reply"]
    # the chat went through the service; the complaint was escalated before generation
    chat = [json.loads(x) for x in (run_dir / "chat.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(chat) == 3
    complaint = next(r for r in chat if r["query"] == ChatScript().complaint)
    assert complaint["answered_by"] == "cloud" and complaint["escalation"] == "hard"
    assert summary["chat"]["escalated"]
    # the request for a person went to the staff queue; the scripted staff reply reached the customer
    person = next(r for r in chat if r["query"] == ChatScript().person)
    assert person["answered_by"] == "handoff" and person["escalation"] == "person"
    assert summary["handoff"]["reply"] == ChatScript().staff_reply and "小李" in out
    first = next(r for r in chat if r["query"] == ChatScript().question)
    assert first["downs"] == 1 and summary["chat"]["disliked"] == [first["id"]]

    # 6: the disliked exchange was relabelled by the cloud teacher
    relabel = [json.loads(x) for x in (run_dir / "labels-feedback.jsonl").read_text(
        encoding="utf-8").splitlines()]
    assert len(relabel) == 1 and relabel[0]["meta"]["exchange_id"] == first["id"]
    assert relabel[0]["messages"][-1]["content"] and summary["relabel"]["new"] == 1

    # 7: the summary says where everything is and what to run next
    assert str(run_dir) in out and "next:" in out and "endcloud serve" in out and "/review" in out
    assert summary["wall_s"] > 0


def test_profiles_merge_in_order(tmp_path):
    real = load_demo_config()
    assert [m.name for m in real.experiment.train.methods] == ["lora"]
    assert real.experiment.train.model.name == "qwen2.5-coder-0.5b"
    assert real.experiment.teacher.cloud.is_local and real.experiment.evaluate.match == "match"
    tiny = load_demo_config(tiny=True)
    assert tiny.experiment.train.model.name == "tiny"
    assert tiny.experiment.teacher.cloud.local_model == "fake"
    assert tiny.experiment.teacher.prompt.n_examples == real.experiment.teacher.prompt.n_examples
    extra = tmp_path / "mine.yaml"
    extra.write_text("experiment: {heldout: {n: 3}}\n", encoding="utf-8")
    mine = load_demo_config(str(extra), ["chat.max_tokens=5"], tiny=True)
    assert mine.experiment.heldout.n == 3 and mine.chat.max_tokens == 5
    assert mine.experiment.train.model.name == "tiny"  # the file merged over the profile


def test_print_config_shows_the_resolved_profile(capsys):
    assert main(["demo", "--tiny", "--print-config", "experiment.heldout.n=2"]) == 0
    out = capsys.readouterr().out
    assert "local_model: fake" in out and "n: 2" in out
