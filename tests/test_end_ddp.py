"""`endcloud end train` under torchrun: two CPU processes (gloo) with the config's global batch
follow the loss of one process; rank 0 alone writes the run folder and the adapter."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from end_helpers import tiny_train_config, write_samples  # noqa: E402

from endcloud.config import dump_yaml  # noqa: E402


def train(tmp: Path, cfg_file: Path, run_dir: Path, procs: int) -> list[dict]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
              "-m"] if procs > 1 else [sys.executable, "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ENDCLOUD_PROGRESS": "0"}
    out = subprocess.run([*launch, "endcloud", "end", "train", "--config", str(cfg_file),
                          f"run_dir={run_dir}"], cwd=tmp, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]


def weights(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def distance(a: dict, b: dict) -> float:
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a) ** 0.5)


@pytest.mark.slow
def test_two_processes_follow_one_with_the_same_global_batch(tiny_model_dir, tmp_path):
    data = write_samples(tmp_path / "train.jsonl")
    cfg = tiny_train_config(tiny_model_dir, data, tmp_path / "unused", "lora", steps=8, batch_size=4,
                            grad_accum=2, save_every=4, keep_last=1)
    cfg.method.dropout = 0.0  # no random masks: the two runs differ only in how they split the work
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(dump_yaml(cfg), encoding="utf-8")
    one = train(tmp_path, cfg_file, tmp_path / "one", 1)
    two = train(tmp_path, cfg_file, tmp_path / "two", 2)
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 9))
    # the same examples per step, split over two processes: the same tokens, a close loss
    assert [r["tokens"] for r in one] == [r["tokens"] for r in two]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4), (a, b)  # float summation order only
    assert one[-1]["loss"] < one[0]["loss"] and two[-1]["loss"] < two[0]["loss"]  # both learn
    # the weights, too: two processes end where one process does (the gradient is the same mean
    # over the micro-batch's reply tokens), unlike a run that saw only one process's share
    half = tmp_path / "half.yaml"
    half.write_text(dump_yaml(dataclasses.replace(cfg, batch_size=2)), encoding="utf-8")
    train(tmp_path, half, tmp_path / "half", 1)
    w1, w2, wh = (weights(tmp_path / d / "adapter") for d in ("one", "two", "half"))
    assert distance(w2, w1) < 1e-3 < 0.1 < distance(wh, w1), (distance(w2, w1), distance(wh, w1))
    # rank 0 alone wrote: one log (8 rows, not 16), the checkpoints and the adapter
    assert (tmp_path / "two" / "adapter" / "manifest.json").is_file()
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-0000008"]


def test_batch_size_must_split_evenly(monkeypatch):
    from endcloud.end.distributed import Dist
    from endcloud.errors import ConfigError

    assert list(Dist(rank=1, world=2).shard(4)) == [1, 3]
    with pytest.raises(ConfigError, match="batch_size: 3 is not a multiple of the 2"):
        Dist(rank=0, world=2).shard(3)
