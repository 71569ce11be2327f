"""The dequantized-weights cache: two processes filling it at once must both end with a usable copy."""

from __future__ import annotations

import json

import pytest
import transformers

from endcloud.end import models


def test_losing_the_dequantize_race_keeps_the_winners_copy(tmp_path, monkeypatch):
    folder = tmp_path / "dequantized" / "m-123"

    def save_plain(model, tokenizer, out):  # our copy, written while the other process wins
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"who": "loser"}))
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"who": "winner"}))
        (folder / "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(models, "save_plain", save_plain)
    models._dequantize(tmp_path / "m.gguf", folder)
    assert json.loads((folder / "config.json").read_text()) == {"who": "winner"}
    assert [p.name for p in folder.parent.iterdir()] == ["m-123"]  # no temporary folder left


def test_a_failed_replace_without_a_winner_still_raises(tmp_path, monkeypatch):
    folder = tmp_path / "dequantized" / "m-123"
    folder.mkdir(parents=True)
    (folder / "stray").write_text("not a model")  # a non-empty folder, but no config.json

    def save_plain(model, tokenizer, out):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: object())
    monkeypatch.setattr(models, "save_plain", save_plain)
    with pytest.raises(OSError):
        models._dequantize(tmp_path / "m.gguf", folder)
