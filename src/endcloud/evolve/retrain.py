"""The training step of a round: new labels + replay, the end-model recipe, in its own process.

    adapter, counts = retrain(cfg, round_dir, new_rows, earlier_files, champion_path)

The training data is this round's labels (plus `carried`: labels of recent refused rounds, which
the champion never learned) and a replay pool (earlier natural data and the labels
of earlier rounds), drawn with probability `replay_share` so the model does not forget. Training
continues from the champion adapter (`from_champion`) or starts a new one on the base. It runs as
`python -m endcloud end train` in a child process at lower priority, so the service (another
process, or this one in `watch`) keeps its CPU and never waits on the optimizer.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from endcloud.config import dump_yaml
from endcloud.end.config import DataConfig, TrainConfig
from endcloud.errors import EndcloudError
from endcloud.evolve.config import EvolveConfig
from endcloud.records import Sample
from endcloud.runs import write_jsonl


def replay_pool(cfg: EvolveConfig, earlier: list[Path], seed: int) -> list[dict[str, Any]]:
    """Earlier natural data and earlier rounds' labels, a seeded sample of `replay_max`."""
    rows: list[dict[str, Any]] = []
    for path in ([Path(cfg.train.natural)] if cfg.train.natural else []) + earlier:
        if path.is_file():
            rows += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    random.Random(seed).shuffle(rows)
    return rows[: cfg.train.replay_max]


def train_config(cfg: EvolveConfig, round_dir: Path, has_replay: bool, init: Path | None,
                 store: str, labels: str = "new.jsonl") -> TrainConfig:
    t = cfg.train
    data = DataConfig(labels=str(round_dir / labels),
                      natural=str(round_dir / "replay.jsonl") if has_replay else "",
                      label_ratio=1.0 - t.replay_share, system=t.system,
                      max_input_tokens=t.max_input_tokens, max_output_tokens=t.max_output_tokens)
    return TrainConfig(model=cfg.model, method=t.method, data=data, steps=t.steps, lr=t.lr,
                       scheduler=t.scheduler, batch_size=t.batch_size, grad_accum=t.grad_accum,
                       save_steps=[], save_every=0, log_every=max(1, t.steps // 10), seed=t.seed,
                       run_dir=str(round_dir / "train"), store=bool(store),
                       init_adapter=str(init) if init else "")


def retrain(cfg: EvolveConfig, round_dir: Path, new: list[Sample],
            earlier: list[Path], champion: Path | None, store: str,
            carried: list[dict[str, Any]] | None = None) -> tuple[Path, dict[str, int]]:
    """Train the candidate on this round's labelled samples (+ carried rows, + replay); return
    its adapter folder and the data counts."""
    new_rows = [s.to_messages() for s in new]
    write_jsonl(round_dir / "new.jsonl", new_rows)  # this round's labels only (later replay)
    labels = "new.jsonl"
    if carried:
        labels = "labels.jsonl"
        write_jsonl(round_dir / labels, new_rows + carried)
    replay = replay_pool(cfg, earlier, cfg.train.seed) if cfg.train.replay_share > 0 else []
    if replay:
        write_jsonl(round_dir / "replay.jsonl", replay)
    init = champion if (cfg.train.from_champion and champion is not None) else None
    tcfg = train_config(cfg, round_dir, bool(replay), init, store, labels)
    counts = {"train_new": len(new_rows), "train_carried": len(carried or []),
              "train_replay": len(replay)}
    if not cfg.train.subprocess:
        from endcloud.end.train import run

        return run(tcfg).adapter, counts
    (round_dir / "train.yaml").write_text(dump_yaml(tcfg), encoding="utf-8")
    env = dict(os.environ, ENDCLOUD_PROGRESS="0")
    if store:
        env["ENDCLOUD_DB"] = store
    if cfg.train.threads:
        env.update(OMP_NUM_THREADS=str(cfg.train.threads), MKL_NUM_THREADS=str(cfg.train.threads))
    nice = cfg.train.nice
    with open(round_dir / "train.log", "wb") as log:
        proc = subprocess.run([sys.executable, "-m", "endcloud", "end", "train", "--config",
                               str(round_dir / "train.yaml")], stdout=log, stderr=subprocess.STDOUT,
                              env=env, timeout=cfg.train.timeout_s,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    if proc.returncode != 0:
        tail = (round_dir / "train.log").read_text(errors="replace").splitlines()[-6:]
        raise EndcloudError(f"training failed (exit {proc.returncode}); log {round_dir}/train.log:\n"
                            + "\n".join(tail))
    return round_dir / "train" / "adapter", counts
