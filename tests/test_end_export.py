"""GGUF LoRA export (end/export.py): the file layout llama.cpp expects, checked tensor by tensor on
the tiny Llama model; refusals; and on the real packaged Qwen2.5 GGUF, that llama.cpp with the
exported adapter moves the next-token logits the same way transformers + PEFT does."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from endcloud.end.adapters import save_adapter
from endcloud.end.config import MethodConfig, ModelConfig
from endcloud.end.export import BASE_SHA_KEY, export_lora_gguf, rotary_permute
from endcloud.end.methods import wrap
from endcloud.end.models import load_base
from endcloud.errors import AdapterError

gguf = pytest.importorskip("gguf")


def make_adapter(model_cfg: ModelConfig, folder: Path, method: str = "lora", b_std: float = 0.0,
                 targets: list[str] | None = None) -> tuple[Path, object, object, object]:
    """A saved adapter on `model_cfg`'s base; LoRA B drawn N(0, b_std) with a fixed seed."""
    model, tok, base = load_base(model_cfg)
    torch.manual_seed(0)
    peft = wrap(model, MethodConfig(name=method, num_virtual_tokens=4, init_lora_weights=False,
                                    target_modules=targets or []), tok)
    if b_std:
        with torch.no_grad():
            for name, p in peft.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, b_std)
    info = {"base": {"id": model_cfg.name, "sha256": base.sha256}, "method": method, "step": 0}
    return save_adapter(peft, folder, info), peft.eval(), tok, base


def read_gguf(path: Path) -> tuple[dict, dict]:
    r = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items()}, {t.name: np.array(t.data) for t in r.tensors}


@pytest.fixture(scope="module")
def tiny_lora(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    cfg = ModelConfig(name=str(tiny_model_dir), cache_dir=str(tmp / "cache"))
    folder, peft, _, base = make_adapter(cfg, tmp / "adapter")
    return folder, peft, base


def test_tiny_llama_export_has_llama_cpp_layout(tiny_lora, tmp_path):
    folder, peft, base = tiny_lora
    out = export_lora_gguf(folder, tmp_path / "a.gguf")
    fields, tensors = read_gguf(out)
    assert fields["general.architecture"] == "llama" and fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora" and fields["adapter.lora.alpha"] == 32.0
    assert fields[BASE_SHA_KEY] == base.sha256
    cfg = peft.base_model.model.config
    state = {k: v for k, v in peft.state_dict().items() if "lora_" in k}
    assert len(tensors) == len(state) > 0
    for layer in range(cfg.num_hidden_layers):
        for hf, gg, heads in [("self_attn.q_proj", "attn_q", cfg.num_attention_heads),
                              ("self_attn.k_proj", "attn_k", cfg.num_key_value_heads),
                              ("self_attn.v_proj", "attn_v", None),
                              ("mlp.down_proj", "ffn_down", None)]:
            key = f"base_model.model.model.layers.{layer}.{hf}"
            a, b = state[f"{key}.lora_A.default.weight"], state[f"{key}.lora_B.default.weight"]
            want_b = rotary_permute(b, heads) if heads else b
            assert np.array_equal(tensors[f"blk.{layer}.{gg}.weight.lora_a"], a.numpy())
            assert np.array_equal(tensors[f"blk.{layer}.{gg}.weight.lora_b"], want_b.numpy())
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_endcloud_end_export_gguf_command(tiny_lora, tmp_path, capsys):
    from endcloud.cli import main

    folder, _, _ = tiny_lora
    assert main(["end", "export-gguf", str(folder), str(tmp_path / "cmd.gguf")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cmd.gguf")
    assert (tmp_path / "cmd.gguf").read_bytes() == export_lora_gguf(folder, tmp_path / "api.gguf").read_bytes()


def test_rotary_permute_is_the_row_order_of_the_converted_weight():
    # llama.cpp computes W_gguf x + B_gguf A x; W_gguf has q/k rows permuted, so B must be too
    torch.manual_seed(1)
    b, a = torch.randn(16, 2), torch.randn(2, 8)
    assert torch.allclose(rotary_permute(b, 2) @ a, rotary_permute(b @ a, 2))
    perm = rotary_permute(torch.arange(16.0)[:, None], 2)[:, 0].long().tolist()
    assert sorted(perm) == list(range(16)) and perm != list(range(16))
    assert perm[:4] == [0, 4, 1, 5]  # head 0: the two rotary halves interleaved


def test_refuses_prefix_methods_and_other_bases(tiny_model_dir, tiny_lora, tmp_path):
    folder, _, _ = tiny_lora
    cfg = ModelConfig(name=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"))
    prefix, *_ = make_adapter(cfg, tmp_path / "prefix", method="prefix-tuning")
    with pytest.raises(AdapterError, match="only LoRA exports"):
        export_lora_gguf(prefix, tmp_path / "p.gguf")
    other = Path(shutil.copytree(tiny_model_dir, tmp_path / "other"))
    conf = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**conf, "rope_theta": 1234.0}))
    with pytest.raises(AdapterError, match="trained on base model"):
        export_lora_gguf(folder, tmp_path / "o.gguf", model=str(other))
    assert not (tmp_path / "p.gguf").exists() and not (tmp_path / "o.gguf").exists()


# -- the real packaged model ------------------------------------------------------------------------
REAL = "qwen2.5-coder-0.5b"
PROMPTS = ["<|im_start|>user\n我的订单什么时候发货？<|im_end|>\n<|im_start|>assistant\n",
           "<|im_start|>user\n可以退货吗？<|im_end|>\n<|im_start|>assistant\n亲",
           "<|im_start|>user\nWhere is my package?<|im_end|>\n<|im_start|>assistant\n"]


def real_gguf() -> Path:
    """The cached packaged GGUF and its dequantized safetensors, or skip saying how to get them."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python not installed (pip install 'endcloud[cloud-local]')")
    from endcloud.end.models import cache_root
    from endcloud.models import path_of

    path = path_of(REAL)
    dequantized = list((cache_root() / "dequantized").glob(f"{path.stem}-*/config.json"))
    if not path.is_file() or not dequantized:
        pytest.skip(f"{REAL} not cached: run `endcloud end dequantize {REAL}` once")
    return path


def llama_logits(path: Path, lora: Path | None) -> np.ndarray:
    """Next-token logits after each prompt, through llama.cpp (base GGUF + optional GGUF adapter)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False,
                          lora_path=str(lora) if lora else None)
    rows = []
    for text in PROMPTS:
        llm.reset()
        llm.eval(llm.tokenize(text.encode(), add_bos=False, special=True))
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        rows.append(np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy())
    llm.close()
    return np.stack(rows)


def hf_logits(model, tok) -> np.ndarray:
    with torch.no_grad():
        return np.stack([model(tok(t, return_tensors="pt").input_ids).logits[0, -1].numpy()
                         for t in PROMPTS])


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_real_qwen_export_matches_transformers_peft(tmp_path):
    path = real_gguf()
    # q/v LoRA with B ~ N(0, 0.01): strong enough (several logits) that the quantized kernels'
    # rounding noise (~0.3-1.3 logits between the two runtimes) cannot hide or fake its direction
    folder, peft, tok, _ = make_adapter(ModelConfig(name=REAL), tmp_path / "adapter", b_std=0.01,
                                        targets=["q_proj", "v_proj"])
    out = export_lora_gguf(folder, tmp_path / "shop.gguf")
    with_adapter = hf_logits(peft, tok)
    with peft.disable_adapter():
        plain = hf_logits(peft, tok)
    del peft
    lc_plain, lc_adapter = llama_logits(path, None), llama_logits(path, out)
    v = min(plain.shape[1], lc_plain.shape[1])  # the GGUF vocab may be padded differently
    d_hf = log_softmax(with_adapter[:, :v]) - log_softmax(plain[:, :v])
    d_lc = log_softmax(lc_adapter[:, :v]) - log_softmax(lc_plain[:, :v])
    for i in range(len(PROMPTS)):
        a, b = d_hf[i] - d_hf[i].mean(), d_lc[i] - d_lc[i].mean()
        assert np.abs(a).max() > 2.0, "adapter too weak to tell anything"
        assert np.abs(b).max() > 2.0, "llama.cpp ignored the adapter"
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert cos > 0.95, f"prompt {i}: the adapter moves llama.cpp differently (cos {cos:.3f})"
        ratio = float(np.linalg.norm(b) / np.linalg.norm(a))  # alpha / r scaling carried over
        assert 0.75 < ratio < 1.33, f"prompt {i}: llama.cpp moves {ratio:.2f}x as far"
        top_hf, top_lc = np.argsort(-with_adapter[i, :v])[:5], np.argsort(-lc_adapter[i, :v])[:5]
        assert top_hf[0] == top_lc[0] and len(set(top_hf) & set(top_lc)) >= 3
