"""Helpers for the evolve tests: a recording loopback teacher whose reply depends on the topic,
two-topic traffic the tiny model can learn in seconds, fake adapter folders, the round's config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ContextManager

from endcloud.cloud.config import CloudConfig
from endcloud.cloud.server import LocalServer, fake_teacher
from endcloud.end.config import MethodConfig, ModelConfig
from endcloud.evolve.config import (EvolveConfig, GateConfig, RelabelConfig, RetrainConfig,
                                    SelectConfig)

SHIP = "Your parcel ships today, thanks!"
RETURN = "Sure, you can return it within 7 days."
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]


def query(i: int) -> str:
    return f"Question {i}: where is my parcel?" if i % 2 == 0 else f"Question {i}: can I return these shoes?"


def answer(text: str) -> str:
    return RETURN if "return" in text else SHIP


def write_pairs(path: Path, ids: range, shuffle_seed: int | None = None) -> Path:
    """Messages JSONL of (query i, teacher's answer); labels permuted when shuffle_seed is set."""
    import random

    replies = [answer(query(i)) for i in ids]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(replies)
    with path.open("w", encoding="utf-8") as fh:
        for i, reply in zip(ids, replies):
            fh.write(json.dumps({"messages": [{"role": "user", "content": query(i)},
                                              {"role": "assistant", "content": reply}],
                                 "meta": {"id": f"q{i}"}}) + "\n")
    return path


def teacher() -> ContextManager[LocalServer]:
    """The loopback test teacher (`cloud.server.fake_teacher`) answering by topic; `.bodies`."""
    return fake_teacher(answer)


def evolve_cfg(tmp: Path, model_dir: Path, heldout: Path, cloud_url: str = "http://127.0.0.1:9/v1",
               **train: Any) -> EvolveConfig:
    cloud = CloudConfig(base_url=cloud_url, model="teacher", deadline_s=5.0, max_attempts=2,
                        backoff_base_s=0.01, backoff_max_s=0.02, concurrency=2)
    t = dict(method=MethodConfig(name="lora", r=8, alpha=16, dropout=0.0, target_modules=ALL_LINEAR),
             steps=300, lr=0.03, scheduler="constant", batch_size=4, replay_share=0.0,
             max_input_tokens=64, max_output_tokens=32, threads=1, nice=0,
             # no system prompt: the 8-wide tiny model learns the two-answer task reliably only from
             # the short prompt (with the 24-character default, 300 steps leave it near chance)
             system="")
    t.update(train)
    return EvolveConfig(store=os.environ.get("ENDCLOUD_DB") or str(tmp / "serve.db"),
                        work_dir=str(tmp / "evolve"),
                        model=ModelConfig(name=str(model_dir)), select=SelectConfig(final_threshold=0.5),
                        relabel=RelabelConfig(cloud=cloud), train=RetrainConfig(**t),
                        gate=GateConfig(heldout=str(heldout), bootstrap=1000, max_new_tokens=16,
                                        max_input_tokens=64, regression_from_store=0))


def fake_adapter(folder: Path, tag: str) -> Path:
    """A folder that passes `verify` (config + safetensors + manifest), no model needed."""
    import numpy as np
    from safetensors.numpy import save_file

    from endcloud.end.adapters import MANIFEST, write_folder_atomically
    from endcloud.end.models import sha256_file

    def fill(tmp: Path) -> None:
        (tmp / "adapter_config.json").write_text(json.dumps({"tag": tag}))
        save_file({"w": np.zeros(4, dtype=np.float32)}, str(tmp / "adapter_model.safetensors"))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"format": "endcloud-adapter/1", "method": "lora",
                                                "base": {"id": "x", "sha256": "0" * 64},
                                                "files": files}))

    return write_folder_atomically(folder, fill)
