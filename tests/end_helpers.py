"""Shared helpers for the end-model tests: a small messages JSONL and a tiny train config."""

from __future__ import annotations

import json
from pathlib import Path

from endcloud.end.config import DataConfig, MethodConfig, ModelConfig, TrainConfig

METHODS = ["lora", "prefix-tuning", "p-tuning-v2"]
DIALOGUES = [
    ("我的订单什么时候发货？", "亲，您的包裹已经在配送途中了，请耐心等待哦~"),
    ("可以退货吗？", "可以的亲，七天无理由退换货。"),
    ("优惠券怎么用？", "优惠券在结算页面使用，满减活动请关注店铺首页。"),
    ("Where is my package?", "Your refund has been processed and will arrive in 3-5 business days."),
    ("鞋子小了能换吗", "亲，可以换的，请在订单页面申请换货哦~"),
]


def write_samples(path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, (query, reply) in enumerate(DIALOGUES):
            messages = [{"role": "user", "content": "您好"},
                        {"role": "assistant", "content": "您好，请问有什么可以帮您？"},
                        {"role": "user", "content": query},
                        {"role": "assistant", "content": reply}]
            fh.write(json.dumps({"messages": messages, "meta": {"id": f"s{i}"}},
                                ensure_ascii=False) + "\n")
    return path


def tiny_train_config(model_dir: Path, data: Path, run_dir: Path, method: str, **kw) -> TrainConfig:
    """Few steps at a high lr so every method visibly moves; LoRA with B != 0 from the start."""
    defaults = dict(steps=4, grad_accum=2, save_steps=[], save_every=2, log_every=1, seed=7,
                    lr_per_method={m: 1e-2 for m in METHODS}, store=False)
    defaults.update(kw)
    return TrainConfig(
        model=ModelConfig(name=str(model_dir), cache_dir=str(run_dir.parent / "cache")),
        method=MethodConfig(name=method, num_virtual_tokens=4, init_lora_weights=False),
        data=DataConfig(natural=str(data)),
        run_dir=str(run_dir), **defaults)
