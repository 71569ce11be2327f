"""SFT examples: loss only on the reply, truncation, deterministic natural/label mixing; bad
train settings are named (that every shipped config loads: test_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from endcloud.config import load_config
from endcloud.end.config import DataConfig, TrainConfig
from endcloud.end.data import IGNORE, Example, Mixture, encode, load_mixture
from endcloud.errors import ConfigError
from end_helpers import write_samples

REPO = Path(__file__).resolve().parents[1]
MESSAGES = [{"role": "user", "content": "您好"}, {"role": "assistant", "content": "您好"},
            {"role": "user", "content": "可以退货吗？"},
            {"role": "assistant", "content": "可以的亲，七天无理由退换货。"}]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_loss_covers_exactly_the_reply_and_its_end_token(tokenizer):
    ex = encode(tokenizer, MESSAGES, DataConfig(natural="x"))
    reply = [t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE]
    assert tokenizer.decode(reply) == "可以的亲，七天无理由退换货。<|im_end|>"
    prompt = tokenizer.decode(ex.input_ids[: len(ex.input_ids) - len(reply)])
    assert prompt.endswith("<|im_start|>assistant\n") and "可以退货吗？" in prompt


def test_truncation_keeps_the_query_and_the_start_of_the_reply(tokenizer):
    full = encode(tokenizer, MESSAGES, DataConfig(natural="x"))
    ex = encode(tokenizer, MESSAGES, DataConfig(natural="x", max_input_tokens=6,
                                                max_output_tokens=3))
    n_prompt = len(full.input_ids) - full.n_reply
    assert len(ex.input_ids) == 9 and ex.n_reply == 3
    assert ex.input_ids[:6] == full.input_ids[n_prompt - 6: n_prompt]  # the prompt's end
    assert ex.input_ids[6:] == full.input_ids[n_prompt: n_prompt + 3]  # the reply's start


def test_mixture_ratio_and_determinism():
    nat = [Example([i], [i]) for i in range(10)]
    lab = [Example([100 + i], [100 + i]) for i in range(10)]
    draws = [Mixture(nat, lab, 0.3, seed=1).at(k).input_ids[0] for k in range(2000)]
    assert draws == [Mixture(nat, lab, 0.3, seed=1).at(k).input_ids[0] for k in range(2000)]
    share = sum(d >= 100 for d in draws) / len(draws)
    assert 0.25 < share < 0.35
    first_pass = [d for d in draws if d < 100][:10]
    assert sorted(first_pass) == list(range(10))  # each pass covers every natural sample once


def test_load_mixture_hash_changes_with_the_data(tokenizer, tmp_path):
    path = write_samples(tmp_path / "a.jsonl")
    _, h1 = load_mixture(tokenizer, DataConfig(natural=str(path)), seed=0)
    _, h2 = load_mixture(tokenizer, DataConfig(natural=str(path), limit=2), seed=0)
    assert h1 != h2 and len(h1) == 64


@pytest.mark.parametrize("override, key", [
    ("method.name=adapterx", "method.name"), ("lr_per_method={lorax: 1.0}", "lr_per_method.lorax"),
    ("data.label_ratio=1.5", "data.label_ratio"), ("resume=true", "run_dir"),
    ("method.bogus=1", "method.bogus")])
def test_bad_train_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(TrainConfig, REPO / "configs" / "train.yaml", [override])
