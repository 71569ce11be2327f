"""Adapters on disk: PEFT's `adapter_config.json` + safetensors weights + our `manifest.json`.

    save_adapter(peft_model, "runs/x/checkpoints/step-003000", manifest_fields)
    model = load_adapter(base_model, "runs/x/adapter", base_sha256)

A folder is written under a temporary name and renamed into place, so a crash never leaves a
half-written adapter that looks complete. The manifest records the base model (id + sha256), the
method, the step, the data hash and the sha256 of every file; loading checks all of it first and
refuses anything that is not safetensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from endcloud.end.models import sha256_file
from endcloud.errors import AdapterError
from endcloud.runs import write_json

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

MANIFEST = "manifest.json"
FORMAT = "endcloud-adapter/1"
ALLOWED_SUFFIXES = {".json", ".safetensors", ".jsonl", ".md"}


def write_folder_atomically(final: Path, fill: Callable[[Path], object]) -> Path:
    """Call `fill(tmp_dir)`, write the manifest over its files, fsync, rename to `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        fill(tmp)
        for p in tmp.iterdir():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # replacing an older folder of the same name: move it aside first
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_adapter(peft_model: PeftModel, folder: str | Path, info: dict[str, Any],
                 extra: Callable[[Path], object] | None = None) -> Path:
    """Save the adapter (safetensors), `extra(tmp_dir)` files, and a manifest hashing them all."""

    def fill(tmp: Path) -> None:
        peft_model.save_pretrained(tmp, safe_serialization=True)
        if extra is not None:
            extra(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.name != MANIFEST}
        write_json(tmp / MANIFEST, {"format": FORMAT, **info, "files": files})

    return write_folder_atomically(Path(folder), fill)


def verify(folder: str | Path, base_sha256: str | None = None) -> dict[str, Any]:
    """Check an adapter folder; return its manifest or raise AdapterError saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterError(f"{folder}: adapter folder not found")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise AdapterError(f"{folder}: no valid {MANIFEST}; not an endcloud adapter, or a "
                           "checkpoint that was never completed") from None
    present = {p.name for p in folder.iterdir() if p.name != MANIFEST and not p.name.startswith(".")}
    unsafe = sorted(n for n in present if Path(n).suffix not in ALLOWED_SUFFIXES)
    if unsafe:
        raise AdapterError(f"{folder}: refusing non-safetensors files {unsafe} (pickles can run code)")
    missing, unlisted = sorted(set(files) - present), sorted(present - set(files))
    if missing or unlisted:
        raise AdapterError(f"{folder}: files do not match the manifest "
                           f"(missing {missing}, not listed {unlisted})")
    for name, digest in files.items():
        if sha256_file(folder / name) != digest:
            raise AdapterError(f"{folder}/{name}: sha256 does not match the manifest - the file is "
                               "corrupt or was edited; use another checkpoint")
    if "adapter_config.json" not in files or not any(n.endswith(".safetensors") for n in files):
        raise AdapterError(f"{folder}: needs adapter_config.json and safetensors weights")
    want = manifest.get("base", {}).get("sha256")
    if base_sha256 is not None and want != base_sha256:
        raise AdapterError(
            f"{folder}: trained on base model {manifest.get('base', {}).get('id')!r} "
            f"(sha256 {str(want)[:12]}...), but the loaded base has sha256 {base_sha256[:12]}...; "
            "load the base model it was trained on (model.name=...)")
    return dict(manifest)


def load_adapter(base_model: PreTrainedModel, folder: str | Path, base_sha256: str | None,
                 trainable: bool = False) -> PeftModel:
    """Verify, then wrap `base_model` with the adapter (a PeftModel)."""
    from peft import PeftModel

    verify(folder, base_sha256)
    # verify() refused any pickle, so PEFT can only find safetensors weights here
    return PeftModel.from_pretrained(base_model, str(folder), is_trainable=trainable)
