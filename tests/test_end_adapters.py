"""Adapters on disk: corrupt, unsafe or mismatched ones are refused; LoRA merges exactly."""

from __future__ import annotations

import json

import pytest
import torch

from endcloud.end.adapters import load_adapter, verify
from endcloud.errors import AdapterError
from endcloud.end.config import ModelConfig
from endcloud.end.models import load_base
from endcloud.end.train import run
from endcloud.tiny import build_tiny_model
from end_helpers import tiny_train_config, write_samples


@pytest.fixture(scope="module")
def adapter(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapter")
    data = write_samples(tmp / "train.jsonl")
    return run(tiny_train_config(tiny_model_dir, data, tmp / "run", "lora", steps=2)).adapter


def _copy(adapter, tmp_path):
    import shutil

    return shutil.copytree(adapter, tmp_path / "copy")


def _base(path, tmp_path):
    return load_base(ModelConfig(name=str(path), cache_dir=str(tmp_path / "cache")))


def test_a_flipped_byte_is_refused(adapter, tiny_model_dir, tmp_path):
    folder = _copy(adapter, tmp_path)
    weights = folder / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    model, _, info = _base(tiny_model_dir, tmp_path)
    with pytest.raises(AdapterError, match="sha256 does not match"):
        load_adapter(model, folder, info.sha256)


def test_an_adapter_for_another_base_model_is_refused(adapter, tmp_path):
    other = build_tiny_model(tmp_path / "other-tiny", seed=1)
    model, _, info = _base(other, tmp_path)
    with pytest.raises(AdapterError, match="load the base model it was trained on"):
        load_adapter(model, adapter, info.sha256)


@pytest.mark.parametrize("damage", ["pickle", "no-manifest", "extra-file", "missing-file"])
def test_unsafe_or_incomplete_folders_are_refused(damage, adapter, tmp_path):
    folder = _copy(adapter, tmp_path)
    if damage == "pickle":
        (folder / "adapter_model.bin").write_bytes(b"\x80\x04.")
    elif damage == "no-manifest":
        (folder / "manifest.json").unlink()
    elif damage == "extra-file":
        (folder / "notes.json").write_text("{}")
    else:
        (folder / "adapter_config.json").unlink()
    with pytest.raises(AdapterError):
        verify(folder)


def test_the_manifest_describes_the_adapter(adapter, tiny_model_dir, tmp_path):
    _, _, info = _base(tiny_model_dir, tmp_path)
    manifest = verify(adapter, info.sha256)
    assert manifest["base"] == {"id": str(tiny_model_dir), "sha256": info.sha256}
    assert manifest["method"] == "lora" and manifest["step"] == 2
    assert len(manifest["data_sha256"]) == 64
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8


def test_merged_lora_gives_the_adapter_logits(adapter, tiny_model_dir, tmp_path):
    from endcloud.end.export import merge_lora
    from transformers import AutoModelForCausalLM

    out = merge_lora(adapter, tmp_path / "merged")
    assert not list(out.glob("*.bin"))
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    model, tokenizer, info = _base(tiny_model_dir, tmp_path)
    peft_model = load_adapter(model, adapter, info.sha256).eval()
    ids = tokenizer("可以退货吗？", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, peft_model(input_ids=ids).logits,
                              atol=1e-5)


def test_prefix_adapters_cannot_be_merged(tiny_model_dir, tmp_path):
    from endcloud.end.export import merge_lora

    data = write_samples(tmp_path / "train.jsonl")
    folder = run(tiny_train_config(tiny_model_dir, data, tmp_path / "r", "prefix-tuning",
                                   steps=1)).adapter
    with pytest.raises(AdapterError, match="only LoRA"):
        merge_lora(folder, tmp_path / "merged")
