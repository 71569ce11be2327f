"""Export for serving: merge a LoRA adapter into its base (safetensors), or convert it to a llama.cpp
GGUF LoRA adapter that the quantized base GGUF loads at run time.

    endcloud end merge runs/end-train-X/adapter exports/shop-model
    endcloud end export-gguf runs/end-train-X/adapter exports/shop-a.gguf
    # then: llama-server -m qwen2.5-coder-0.5b-instruct-q4.gguf --lora exports/shop-a.gguf
    #   or: endcloud serve backend.kind=llama-cpp backend.adapters.shop-a=exports/shop-a.gguf

The GGUF adapter has the layout of llama.cpp's `convert_lora_to_gguf.py`: `general.type=adapter`,
`adapter.type=lora`, `adapter.lora.alpha`, and per target matrix `blk.N.attn_q.weight.lora_a`
(PEFT's A, (r, in)) and `.lora_b` (PEFT's B, (out, r)). llama.cpp scales B·A by alpha / r, as PEFT
does. Llama checkpoints store q/k rows in a rotary layout the HF->GGUF conversion permutes, so B's
rows of q_proj/k_proj get the same permutation; Qwen2 needs none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from endcloud.end.adapters import verify, write_folder_atomically
from endcloud.end.config import ModelConfig
from endcloud.end.models import load_base, save_plain
from endcloud.errors import AdapterError

if TYPE_CHECKING:
    import torch

# HF `config.model_type` -> llama.cpp architecture (of the base GGUF the adapter goes with)
GGUF_ARCH = {"qwen2": "qwen2", "llama": "llama"}
BASE_SHA_KEY = "endcloud.base.sha256"  # lets a server refuse an adapter made for another base


def merge_lora(adapter: str | Path, out: str | Path, model: str | None = None) -> Path:
    """Verify the adapter, merge it into the base weights, write a standalone model folder."""
    from endcloud.end.adapters import load_adapter

    manifest = verify(adapter)
    if manifest.get("method") != "lora":
        raise AdapterError(f"{adapter}: only LoRA can be merged (this is {manifest.get('method')}); "
                           "serve prefix methods with the adapter instead")
    base_model, tokenizer, base = load_base(ModelConfig(name=model or manifest["base"]["id"]))
    merged = load_adapter(base_model, adapter, base.sha256).merge_and_unload()
    return write_folder_atomically(Path(out), lambda tmp: save_plain(merged, tokenizer, tmp))


def export_lora_gguf(adapter: str | Path, out: str | Path, model: str | None = None) -> Path:
    """Convert a verified PEFT LoRA folder into a llama.cpp GGUF LoRA adapter (f32) at `out`."""
    adapter = Path(adapter)
    manifest = verify(adapter)
    if manifest.get("method") != "lora":
        raise AdapterError(f"{adapter}: only LoRA exports to GGUF (this is "
                           f"{manifest.get('method')}); serve prefix methods with backend "
                           "kind=transformers")
    hp, base_sha = base_shape(model or manifest["base"]["id"])
    verify(adapter, base_sha)  # the adapter was trained on this very base
    lcfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    pairs = lora_pairs(adapter, lcfg)
    return write_gguf_adapter(pairs, hp, float(lcfg["lora_alpha"]), Path(out), base_sha)


def base_shape(model: str) -> tuple[dict[str, Any], str]:
    """(architecture, layer and head counts, sha256) of a base model, without loading weights:
    from a GGUF file's metadata (packaged names resolve to their GGUF), or a folder's config.json."""
    from endcloud.end.models import cache_root, fetch_model, fingerprint, is_packaged

    source = Path(model).expanduser()
    if is_packaged(model) and not source.exists():
        source = fetch_model(model)
    digest = fingerprint(source, cache_root())
    if source.is_dir():
        c = json.loads((source / "config.json").read_text(encoding="utf-8"))
        arch = GGUF_ARCH.get(c.get("model_type", ""), c.get("model_type", ""))
        return {"arch": arch, "n_layer": c["num_hidden_layers"], "n_head": c["num_attention_heads"],
                "n_head_kv": c.get("num_key_value_heads") or c["num_attention_heads"]}, digest
    meta = gguf_scalars(source)
    arch = str(meta["general.architecture"])
    n_head = int(meta[f"{arch}.attention.head_count"])
    return {"arch": arch, "n_layer": int(meta[f"{arch}.block_count"]), "n_head": n_head,
            "n_head_kv": int(meta.get(f"{arch}.attention.head_count_kv", n_head))}, digest


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}


def gguf_scalars(path: Path) -> dict[str, Any]:
    """A GGUF file's scalar and string metadata, skipping arrays (the vocabulary): milliseconds,
    where gguf.GGUFReader parses all 150k tokens and merges first (~15 s)."""
    import struct

    def read(fmt: str) -> Any:
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]

    def string() -> str:
        return fh.read(read("<Q")).decode("utf-8", "replace")

    def value(kind: int) -> Any:
        if kind == 8:
            return string()
        if kind == 9:  # array: element type, count, elements - skipped
            item, n = read("<I"), read("<Q")
            if item in _SCALARS:
                fh.seek(n * struct.calcsize(_SCALARS[item]), 1)
            else:
                for _ in range(n):
                    value(item)
            return None
        return read(_SCALARS[kind])

    meta: dict[str, Any] = {}
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise AdapterError(f"{path}: not a GGUF file")
        read("<I"), read("<Q")  # version, tensor count
        for _ in range(read("<Q")):
            key = string()
            meta[key] = value(read("<I"))
    return meta


def lora_pairs(adapter: Path, lcfg: dict[str, Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{HF weight name: (A (r, in), B (out, r))} from a PEFT folder; refuses what llama.cpp lacks."""
    from safetensors.torch import load_file

    for key, bad in (("use_dora", True), ("use_rslora", True)):
        if lcfg.get(key) == bad:
            raise AdapterError(f"{adapter}: {key}=true has no llama.cpp equivalent")
    if lcfg.get("alpha_pattern") or lcfg.get("modules_to_save") or lcfg.get("bias", "none") != "none":
        raise AdapterError(f"{adapter}: per-module alpha, modules_to_save or LoRA biases cannot be "
                           "exported to a GGUF LoRA adapter")
    pairs: dict[str, list[torch.Tensor | None]] = {}
    for name, tensor in load_file(str(adapter / "adapter_model.safetensors")).items():
        for part, slot in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if name.endswith(part):
                base = name.removeprefix("base_model.model.")[: -len(part)] + ".weight"
                pairs.setdefault(base, [None, None])[slot] = tensor.float()
                break
        else:
            raise AdapterError(f"{adapter}: unexpected tensor {name!r} (not a LoRA A/B matrix)")
    incomplete = sorted(n for n, (a, b) in pairs.items() if a is None or b is None)
    if incomplete or not pairs:
        raise AdapterError(f"{adapter}: LoRA matrices missing their A or B half: {incomplete[:3]}")
    return {n: (a, b) for n, (a, b) in pairs.items()}


def write_gguf_adapter(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], hp: dict[str, Any],
                       alpha: float, out: Path, base_sha256: str) -> Path:
    """Write the GGUF adapter under a temporary name and rename it into place."""
    import gguf

    arch = hp["arch"]
    if arch not in GGUF_ARCH.values():
        raise AdapterError(f"GGUF LoRA export supports {sorted(GGUF_ARCH.values())} bases, not "
                           f"{arch!r}; merge the adapter instead (endcloud end merge)")
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.get_tensor_name_map(arch_enum, int(hp["n_layer"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(tmp, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_string(BASE_SHA_KEY, base_sha256)
    for hf_name, (a, b) in sorted(pairs.items()):
        target = names.get_name(hf_name, try_suffixes=(".weight",))
        if target is None or target.startswith(("token_embd", "output.")):
            raise AdapterError(f"{hf_name}: llama.cpp has no LoRA slot for this module "
                               "(export supports attention and MLP projections)")
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = hp["n_head_kv" if hf_name.endswith("k_proj.weight") else "n_head"]
            b = rotary_permute(b, heads)
        writer.add_tensor(f"{target}.lora_a", a.contiguous().numpy())  # (r, in) -> ggml [in, r]
        writer.add_tensor(f"{target}.lora_b", b.contiguous().numpy())  # (out, r) -> ggml [r, out]
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def rotary_permute(rows: torch.Tensor, n_head: int) -> torch.Tensor:
    """The row order HF->GGUF conversion gives Llama's q/k weights (interleaved rotary halves)."""
    shape = rows.shape  # (n_head * head_dim, r)
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)

