"""The data stage end to end: demo corpus, CLI, bad input, atomic outputs, real corpora."""

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from endcloud.config import load_config
from endcloud.data.config import PrepareConfig, SourceConfig
from endcloud.data.prepare import run
from endcloud.store import Store

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SPLITS = ("train", "validation", "test")


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _sessions(run_dir, split):
    return {r["meta"]["session_id"] for r in _rows(run_dir / f"{split}.jsonl")}


def _assert_no_overlap(run_dir):
    s = {split: _sessions(run_dir, split) for split in SPLITS}
    assert not (s["train"] & s["validation"]) and not (s["train"] & s["test"])
    assert not (s["validation"] & s["test"])


def test_demo_corpus_end_to_end(tmp_path):
    cfg = load_config(PrepareConfig, CONFIGS / "data.yaml",
                      [f"output_root={tmp_path / 'runs'}", "output_formats=[messages,sharegpt]"])
    result = run(cfg)
    d = result.run_dir
    for name in ["config.yaml", "stats.json", "summary.md"] + [f"{s}.jsonl" for s in SPLITS]:
        assert (d / name).is_file(), name
    train = _rows(d / "train.jsonl")
    assert len(train) > 100
    assert any(len(r["messages"]) > 2 for r in train), "multi-turn context expected"
    for r in train:
        roles = [m["role"] for m in r["messages"]]
        assert roles[-2:] == ["user", "assistant"] and all(m["content"] for m in r["messages"])
    sg = _rows(d / "train.sharegpt.jsonl")
    assert len(sg) == len(train) and sg[0]["conversations"][-1]["from"] == "gpt"
    _assert_no_overlap(d)
    # Nothing personal in the outputs: the demo corpus holds fake phones, e-mails, order numbers.
    text = "".join((d / f"{s}.jsonl").read_text(encoding="utf-8") for s in SPLITS)
    assert "@" not in text and not re.search(r"\d{7,}", text)
    assert result.stats["pii"], "the demo corpus contains personal data that must be counted"
    report = json.loads((d / "stats.json").read_text())
    assert report["totals"]["samples_train"] == len(train)
    assert report["lengths"]["input_tokens"]["max"] <= 256
    with Store.open() as store:
        (row,) = store.runs("data")
        assert row["status"] == "ok" and row["run_dir"] == str(d)


def test_same_seed_same_output(tmp_path):
    a = run(PrepareConfig(output_root=str(tmp_path / "a")))
    b = run(PrepareConfig(output_root=str(tmp_path / "b")))
    for s in SPLITS:
        assert (a.run_dir / f"{s}.jsonl").read_bytes() == (b.run_dir / f"{s}.jsonl").read_bytes()


def _jddc_rows(n_sessions, bad_row_at=None):
    lines = []
    for s in range(n_sessions):
        for i in range(3):
            lines.append(f"sess{s}\tU{s}\t0\t0\t0\tnan\t第{i}个问题，订单什么时候发货？")
            lines.append(f"sess{s}\tU{s}\t1\t0\t0\tnan\t亲，您的订单{i}会在48小时内发货哦")
    if bad_row_at is not None:
        lines.insert(bad_row_at, "sessX\tU\t0\t0\tonly five columns")
    return "\n".join(lines) + "\n"


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "endcloud", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_cli_bad_input_fails_cleanly_and_writes_no_partial_output(tmp_path):
    src = tmp_path / "chat.tsv"
    src.write_text(_jddc_rows(20, bad_row_at=7), encoding="utf-8")
    out = tmp_path / "runs"
    args = ["data", "prepare", "sources=[{format: jddc2019, path: %s}]" % src,
            f"output_root={out}", f"store={tmp_path / 'e.db'}"]
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert str(src) in err[0] and ":8" in err[0] and "column" in err[0]
    (run_dir,) = out.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]  # nothing half-written
    with Store.open(tmp_path / "e.db") as store:
        assert store.runs("data")[0]["status"] == "failed"

    proc = _cli(*args, "on_error=skip", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = max(out.iterdir())
    report = json.loads((run_dir / "stats.json").read_text())
    assert sum(report["loaders"]["jddc2019"]["skipped"].values()) == 1
    assert report["totals"]["dialogues_loaded"] == 20


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"s\tu\t0\t0\t0\tnan\t\xff\xfe bad\n", "UTF-8"),
    (b"s\tu\t0\t0\t0\tnan\t" + b"x" * 10_000_000 + b"\n", "longer than"),
])
def test_cli_bad_files(tmp_path, content, problem):
    src = tmp_path / "bad.tsv"
    src.write_bytes(content)
    proc = _cli("data", "prepare", "sources=[{format: jddc2019, path: %s}]" % src,
                f"output_root={tmp_path / 'runs'}", f"store={tmp_path / 'e.db'}", cwd=tmp_path)
    assert proc.returncode == 3 and problem in proc.stderr and "Traceback" not in proc.stderr


def test_truncated_gzip_is_reported(tmp_path):
    data = gzip.compress(_jddc_rows(200).encode("utf-8"))
    src = tmp_path / "cut.tsv.gz"
    src.write_bytes(data[: len(data) // 2])
    proc = _cli("data", "prepare", "sources=[{format: jddc2019, path: %s}]" % src,
                f"output_root={tmp_path / 'runs'}", f"store={tmp_path / 'e.db'}", cwd=tmp_path)
    assert proc.returncode == 3 and "gzip" in proc.stderr and "Traceback" not in proc.stderr


def test_limit_and_context_window(tmp_path):
    src = tmp_path / "chat.tsv"
    src.write_text(_jddc_rows(30), encoding="utf-8")
    cfg = PrepareConfig(sources=[SourceConfig(format="jddc2019", path=str(src), limit=10)],
                     output_root=str(tmp_path), context_turns=2,
                     clean=PrepareConfig().clean.__class__(dedup="none"))
    result = run(cfg)
    assert result.stats["totals"]["dialogues_loaded"] == 10
    rows = [r for s in SPLITS for r in _rows(result.run_dir / f"{s}.jsonl")]
    assert len(rows) == 30 and max(len(r["messages"]) for r in rows) == 4  # 2 context + q + a


# -- real corpora (../shared/data) ----------------------------------------------------------

def _real(tmp_path, corpus, *overrides):
    cfg = load_config(PrepareConfig, CONFIGS / "data.yaml",
                      [f"corpus={corpus}", "on_error=skip", f"output_root={tmp_path}", *overrides])
    return run(cfg)


@pytest.mark.shared_data
def test_jddc2019_real(shared_data, tmp_path):
    result = _real(tmp_path, "jddc2019", f"data_dir={shared_data}", "output_formats=[messages,sharegpt]")
    train = _rows(result.run_dir / "train.jsonl")
    assert len(train) >= 10_000, len(train)
    # Only a session's first reply lacks history (about one sample per session).
    with_context = [r for r in train if len(r["messages"]) > 2]
    assert len(with_context) >= len(train) - result.stats["sessions"]["train"]
    _assert_no_overlap(result.run_dir)
    assert result.stats["totals"]["dialogues_loaded"] == 1960  # 966 + 994 sessions
    text = (result.run_dir / "train.jsonl").read_text(encoding="utf-8")
    assert "[姓名x]" not in text and "[NAME_" in text  # corpus placeholders on our scheme


@pytest.mark.shared_data
@pytest.mark.parametrize("corpus, min_train", [("jddc2018", 8000), ("ecd", 100), ("bitext", 3000)])
def test_other_real_corpora(shared_data, tmp_path, corpus, min_train):
    result = _real(tmp_path, corpus, f"data_dir={shared_data}")
    assert result.stats["totals"]["samples_train"] >= min_train
    _assert_no_overlap(result.run_dir)
