"""Export for serving: merge a LoRA adapter into its base model as plain safetensors.

    endcloud end merge runs/end-train-X/adapter exports/shop-model
"""

from __future__ import annotations

from pathlib import Path

from endcloud.end.adapters import AdapterError, verify, write_folder_atomically
from endcloud.end.config import ModelConfig
from endcloud.end.models import load_base, save_plain


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
