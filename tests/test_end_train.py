"""The training recipe on the tiny model, for each method: invariants, save/load, resume after kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from endcloud.end.adapters import load_adapter
from endcloud.end.methods import expected_trainable, wrap
from endcloud.end.models import load_base
from endcloud.end.data import collate, encode, read_messages
from endcloud.end.train import KILL_ENV, latest_checkpoint, lr_at, reply_loss, run
from end_helpers import METHODS, tiny_train_config, write_samples

# Trainable parameters of the tiny model (hidden 8, intermediate 16, 2 layers, 2 KV heads of 4),
# worked out by hand: LoRA r=8 on q,k,v,o (8->8), gate,up (8->16), down (16->8);
# 4 virtual tokens, K and V of width 8 in each of 2 layers.
HAND_COUNTS = {
    "lora": 2 * 8 * (4 * (8 + 8) + 3 * (8 + 16)),  # 2176
    "prefix-tuning": 4 * 8 + (8 * 8 + 8) + (8 * 32 + 32),  # embedding + MLP 8 -> 8 -> 2*2*8
    "p-tuning-v2": 4 * 2 * 2 * 8,  # the prompts themselves
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp("data") / "train.jsonl")


@pytest.fixture(scope="module", params=METHODS)
def trained(request, tiny_model_dir, samples, tmp_path_factory):
    """(method, cfg, result) of a 4-step run; shared by the invariant tests of each method."""
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    cfg = tiny_train_config(tiny_model_dir, samples, run_dir, request.param)
    return request.param, cfg, run(cfg)


def _initial_trainable(cfg):
    """The adapter as `run` initialises it (same seed, same order of RNG use)."""
    model, tokenizer, _ = load_base(cfg.model)
    torch.manual_seed(cfg.seed)
    peft_model = wrap(model, cfg.method, tokenizer)
    return {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def test_frozen_base_weights_are_bit_identical(trained, tiny_model_dir):
    _, _, result = trained
    original = load_file(str(tiny_model_dir / "model.safetensors"))
    after = {n.replace(".base_layer", ""): p for n, p in
             result.model.get_base_model().named_parameters() if not p.requires_grad}
    assert set(original) <= set(after)
    for name, tensor in original.items():
        assert torch.equal(after[name], tensor), name


def test_adapter_weights_moved(trained):
    _, cfg, result = trained
    before = _initial_trainable(cfg)
    after = {n: p for n, p in result.model.named_parameters() if p.requires_grad}
    assert before.keys() == after.keys()
    for name in before:
        assert not torch.equal(before[name], after[name]), f"{name} did not move"


def test_exact_trainable_parameter_count(trained):
    method, cfg, result = trained
    base, _, _ = load_base(cfg.model)
    n = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
    assert n == expected_trainable(base, cfg.method) == HAND_COUNTS[method]


def test_save_load_gives_identical_logits(trained):
    _, cfg, result = trained
    base, tokenizer, info = load_base(cfg.model)
    loaded = load_adapter(base, result.adapter, info.sha256).eval()
    ids = tokenizer("我的订单什么时候发货？", return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = result.model(input_ids=ids).logits, loaded(input_ids=ids).logits
    # prefix-tuning saves the MLP's output, not the MLP: equal up to float rounding
    assert torch.allclose(want, got, atol=1e-6, rtol=0)


def test_checkpoints_manifest_and_log(trained):
    method, cfg, result = trained
    manifest = json.loads((result.adapter / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["step"] == cfg.steps
    assert set(manifest["files"]) >= {"adapter_config.json", "adapter_model.safetensors"}
    assert [p.name for p in result.checkpoints] == ["step-0000002", "step-0000004"]
    rows = [json.loads(x) for x in (result.run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    assert not list(result.run_dir.glob("checkpoints/.*"))  # no temp folders left behind


def test_reply_loss_is_the_token_weighted_validation_loss(trained, samples):
    _, cfg, result = trained
    base, tokenizer, _ = load_base(cfg.model)
    examples = [encode(tokenizer, m, cfg.data) for m in read_messages(samples)]
    a, b = examples[1], examples[3]
    assert a.n_reply != b.n_reply  # else weighting could not be told from a plain mean
    with torch.no_grad():
        la, lb = (float(base(**collate([e], tokenizer.pad_token_id)).loss) for e in (a, b))
    base.train()
    got = reply_loss(base, [a, b], tokenizer.pad_token_id)
    assert got == pytest.approx((la * a.n_reply + lb * b.n_reply) / (a.n_reply + b.n_reply))
    assert got != pytest.approx((la + lb) / 2)
    assert base.training  # the caller's mode is restored
    # 4 steps at lr 1e-2 on these very samples: the trained adapter scores them better than
    # the adapter it started from (LoRA here starts with B != 0, so not from the base model)
    torch.manual_seed(cfg.seed)
    start = wrap(base, cfg.method, tokenizer)
    assert reply_loss(result.model, examples, tokenizer.pad_token_id) < reply_loss(
        start, examples, tokenizer.pad_token_id)


def test_lr_schedule():
    from endcloud.end.config import DataConfig, TrainConfig

    cfg = TrainConfig(data=DataConfig(natural="x"), steps=10, warmup_steps=2, lr=1.0)
    assert [round(lr_at(cfg, s), 3) for s in (1, 2, 6, 10)] == [0.5, 1.0, 0.5, 0.0]
    cfg.lr_per_method = {"lora": 0.1}
    assert lr_at(cfg, 2) == pytest.approx(0.1)


def _final_params(adapter_dir):
    return load_file(str(adapter_dir / "adapter_model.safetensors"))


@pytest.mark.parametrize("method", METHODS)
def test_resume_after_kill_reaches_the_same_weights(method, tiny_model_dir, samples, tmp_path):
    """kill -9 after step 3 (checkpoint at 2), --resume: same final weights as an unbroken run."""
    whole = run(tiny_train_config(tiny_model_dir, samples, tmp_path / "whole", method, steps=5))
    run_dir = tmp_path / "killed"
    args = [f"model.name={tiny_model_dir}", f"model.cache_dir={tmp_path / 'cache'}",
            f"data.natural={samples}", f"method.name={method}", "method.num_virtual_tokens=4",
            "method.init_lora_weights=false", "steps=5", "grad_accum=2", "save_steps=[]",
            "save_every=2", "log_every=1", "seed=7", "lr_per_method={lora: 0.01, prefix-tuning: 0.01, "
            "p-tuning-v2: 0.01}", "store=false", f"run_dir={run_dir}"]
    cmd = [sys.executable, "-m", "endcloud", "end", "train", "--config", "configs/train.yaml"]
    env = {**os.environ, KILL_ENV: "3"}
    killed = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "adapter").exists()
    # a checkpoint that was being written when the process died must never be picked
    (run_dir / "checkpoints" / "step-0000003").mkdir()
    assert latest_checkpoint(run_dir).name == "step-0000002"

    resumed = subprocess.run(cmd + args + ["--resume"], capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    want, got = _final_params(whole.adapter), _final_params(run_dir / "adapter")
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    rows = [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # step 3's row before the kill was dropped


def test_a_run_folder_with_checkpoints_needs_resume(tiny_model_dir, samples, tmp_path):
    from endcloud.errors import EndcloudError

    cfg = tiny_train_config(tiny_model_dir, samples, tmp_path / "r", "lora", steps=2)
    run(cfg)
    with pytest.raises(EndcloudError, match="--resume"):
        run(cfg)


def test_training_logs_to_the_store(tiny_model_dir, samples, tmp_path):
    from endcloud.store import Store

    cfg = tiny_train_config(tiny_model_dir, samples, tmp_path / "r", "lora", steps=2, store=True)
    result = run(cfg)
    with Store.open() as store:
        (row,) = store.runs("end-train")
        assert row["status"] == "ok"
        steps = [r[0] for r in store.conn.execute("SELECT step FROM end_train_log ORDER BY id")]
        (adapter,) = store.conn.execute("SELECT path, method FROM end_adapters").fetchall()
    assert steps == [1, 2] and adapter[0] == str(result.adapter) and adapter[1] == "lora"
