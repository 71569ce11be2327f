"""Generation uses the adapter: every step's logits equal a full forward pass of the PEFT model."""

from __future__ import annotations

import json

import pytest
import torch

from endcloud.end.config import MethodConfig, ModelConfig
from endcloud.end.generate import Generator, Sampling
from endcloud.end.methods import wrap
from endcloud.end.models import load_base
from end_helpers import METHODS

CHAT = [{"role": "user", "content": "您好"}, {"role": "assistant", "content": "您好，请问有什么可以帮您？"},
        {"role": "user", "content": "我的订单什么时候发货？"}]


def _trained_like(tiny_model_dir, tmp_path, method):
    """A PEFT model whose adapter is far from its init (as after training), in eval mode."""
    model, tokenizer, _ = load_base(ModelConfig(name=str(tiny_model_dir), cache_dir=str(tmp_path)))
    torch.manual_seed(0)
    peft_model = wrap(model, MethodConfig(name=method, num_virtual_tokens=4,
                                          init_lora_weights=False), tokenizer)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    return peft_model.eval(), tokenizer


@pytest.mark.parametrize("method", METHODS)
def test_generation_logits_match_a_full_forward_of_the_adapter(method, tiny_model_dir, tmp_path):
    model, tokenizer = _trained_like(tiny_model_dir, tmp_path, method)
    gen = Generator(model, tokenizer, Sampling(max_new_tokens=8, temperature=0))
    prompt = gen.prompt_ids(CHAT)
    logits: list[torch.Tensor] = []
    new = [t for (t,) in gen.steps([prompt], logits_out=logits)]
    seq = torch.tensor([prompt + new[:-1]])
    with torch.no_grad():
        full = model(input_ids=seq).logits[0, len(prompt) - 1:]  # (steps, V)
        with model.disable_adapter():
            base = model(input_ids=seq).logits[0, len(prompt) - 1:]
    steps = torch.stack([row[0] for row in logits])
    assert torch.allclose(steps, full, atol=1e-5, rtol=0)
    # and the adapter matters: the base model alone gives clearly different logits
    assert (steps - base).abs().max() > 1e-2


@pytest.mark.parametrize("method", METHODS)
def test_batch_generation_equals_one_by_one(method, tiny_model_dir, tmp_path):
    model, tokenizer = _trained_like(tiny_model_dir, tmp_path, method)
    gen = Generator(model, tokenizer, Sampling(max_new_tokens=6, temperature=0))
    convs = [CHAT, [{"role": "user", "content": "可以退货吗？"}]]  # different lengths: left padding
    assert gen.generate(convs) == [gen.generate([c])[0] for c in convs]


def test_stream_pieces_join_to_the_reply_and_sampling_is_seeded(tiny_model_dir, tmp_path):
    model, tokenizer = _trained_like(tiny_model_dir, tmp_path, "lora")
    greedy = Generator(model, tokenizer, Sampling(max_new_tokens=8, temperature=0))
    assert "".join(greedy.stream(CHAT)).strip() == greedy.generate([CHAT])[0]
    sample = lambda: Generator(model, tokenizer, Sampling(max_new_tokens=8), seed=3).generate([CHAT])
    assert sample() == sample()


def test_generate_cli_with_and_without_adapter(tiny_model_dir, tmp_path):
    from endcloud.cli import main
    from end_helpers import tiny_train_config, write_samples
    from endcloud.end.train import run

    data = write_samples(tmp_path / "train.jsonl")
    adapter = run(tiny_train_config(tiny_model_dir, data, tmp_path / "run", "p-tuning-v2")).adapter
    common = [f"model.name={tiny_model_dir}", f"model.cache_dir={tmp_path / 'c'}",
              f"input={data}", "max_new_tokens=4", "temperature=0"]
    for name, extra in (("base", []), ("tuned", [f"adapter={adapter}"])):
        assert main(["end", "generate", *common, *extra, f"output={tmp_path / name}.jsonl"]) == 0
    base = [json.loads(x) for x in (tmp_path / "base.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (tmp_path / "tuned.jsonl").read_text().splitlines()]
    assert len(base) == len(tuned) == 5 and base[0]["meta"]["id"] == "s0"
    assert base[0]["query"] == "我的订单什么时候发货？"
