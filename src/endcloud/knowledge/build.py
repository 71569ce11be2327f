"""`endcloud kb build`: a shop's documents (or approved answers) -> an index folder.

    endcloud kb build --input shop/policy.md shop/faq.csv shop/catalog.jsonl --output kb/
    endcloud kb build --memory runs/data-X/train.jsonl labels.jsonl shop/faq.csv --output memory/

Each build writes a new version folder (chunks, vectors, BM25, `manifest.json` with every source's
sha256, `report.json` with what was skipped and why) and then switches `CURRENT` to it atomically.
A rebuild embeds only the chunks of sources whose sha256 changed; the rest are copied from the
live version. The previous version is kept (a service still reading it finishes undisturbed).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from endcloud.errors import ConfigError, DataFormatError
from endcloud.knowledge.config import KBConfig
from endcloud.knowledge.index import (FORMAT, HybridIndex, current_version, publish, read_chunks,
                                      read_manifest)
from endcloud.knowledge.sources import (Chunk, SkipFile, Skipped, make_chunk, file_sha256, list_files,
                                        read_file)
from endcloud.progress import progress

if TYPE_CHECKING:
    from endcloud.evaluate.encoders import Encoder

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    root: Path
    version: Path
    chunks: int = 0
    embedded: int = 0  # chunks encoded by this build (the rest were reused)
    sources: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0


def run(cfg: KBConfig, *, encoder: Encoder | None = None) -> BuildResult:
    """Build (or rebuild) the index folder `cfg.output` from `cfg.input` (or `cfg.memory`)."""
    kind = "memory" if cfg.memory else "knowledge"
    inputs = cfg.memory or cfg.input
    if not inputs:
        raise ConfigError("input: name the shop's documents, e.g. --input shop/ (or --memory ...)")
    if not cfg.output:
        raise ConfigError("output: name the index folder, e.g. --output kb/")
    t0 = time.monotonic()
    if encoder is None:
        from endcloud.evaluate.encoders import get_encoder

        encoder = get_encoder(cfg.encoder)
    root = Path(cfg.output)
    root.mkdir(parents=True, exist_ok=True)
    reuse = _previous(root, encoder.name)
    try:
        files = list_files(inputs)
    except FileNotFoundError as exc:
        raise ConfigError(f"input: {exc}") from None
    chunks: list[Chunk] = []
    vectors: list[np.ndarray] = []
    sources: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    todo: list[int] = []  # positions in `chunks` still to embed
    for path, name in progress(files, "reading", total=len(files), unit="file"):
        sha = file_sha256(path)
        old = reuse.get((name, sha))
        if old is not None:
            chunks += old[0]
            vectors += list(old[1])
            sources.append({"path": name, "sha256": sha, "chunks": len(old[0]), "reused": True})
            continue
        try:
            new = (_memory_entries(path, name, cfg.max_file_bytes) if kind == "memory" else
                   read_file(path, name, cfg.max_chunk_chars, cfg.max_file_bytes))
        except SkipFile as exc:
            skipped.append(Skipped(name, str(exc)))
            log.warning("skipped %s: %s", name, exc)
            continue
        todo += range(len(chunks), len(chunks) + len(new))
        chunks += new
        vectors += [None] * len(new)  # type: ignore[list-item]
        sources.append({"path": name, "sha256": sha, "chunks": len(new), "reused": False})
    _embed(encoder, chunks, vectors, todo)
    dim = next((v.shape[0] for v in vectors if v is not None), 0) or encoder.dim()
    matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)
    version = root / f"v-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}"
    tmp = root / f".{version.name}.tmp"
    HybridIndex(chunks, matrix, encoder).save(tmp)
    result = BuildResult(root, version, len(chunks), len(todo), len(sources), skipped)
    result.seconds = round(time.monotonic() - t0, 3)
    manifest = {"format": FORMAT, "kind": kind, "encoder": encoder.name,
                "encoder_version": encoder.version, "dim": int(matrix.shape[1]),
                "chunks": len(chunks), "built_at": datetime.now(timezone.utc).isoformat(),
                "sources": sources}
    report = {"chunks": len(chunks), "embedded": len(todo), "reused": len(chunks) - len(todo),
              "seconds": result.seconds,
              "chunks_per_s": round(len(todo) / result.seconds, 1) if result.seconds else None,
              "skipped": [vars(s) for s in skipped],
              "by_kind": _count(c.kind for c in chunks)}
    (tmp / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    tmp.rename(version)
    publish(root, version)
    _prune(root, keep={version.name, *reuse.get("__version__", ())})
    return result


def _embed(encoder: Encoder, chunks: list[Chunk], vectors: list[np.ndarray], todo: list[int]) -> None:
    batch = 64
    steps = range(0, len(todo), batch)
    for start in progress(steps, "embedding", total=len(steps), unit="batch"):
        ids = todo[start:start + batch]
        vecs = encoder.encode([chunks[i].search_text() for i in ids], kind="passage")
        for i, v in zip(ids, vecs):
            vectors[i] = v


def _previous(root: Path, encoder_name: str) -> dict[Any, Any]:
    """(source name, sha256) -> (chunks, vectors) of the live version, when it used this encoder."""
    try:
        version = current_version(root)
        manifest = read_manifest(version)
        if manifest.get("encoder") != encoder_name:
            return {}
        chunks, vectors = read_chunks(version)  # no BM25 or HNSW needed to reuse them
    except Exception:  # nothing usable to reuse: embed everything
        return {}
    out: dict[Any, Any] = {"__version__": (version.name,)}
    start = 0
    for s in manifest["sources"]:
        end = start + s["chunks"]
        out[(s["path"], s["sha256"])] = (chunks[start:end], np.array(vectors[start:end]))
        start = end
    return out


def _prune(root: Path, keep: set[str]) -> None:
    """Remove versions other than the live and the previous one, and stale temp folders."""
    for p in root.iterdir():
        if p.is_dir() and (p.name.startswith("v-") or p.name.endswith(".tmp")) and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


# -- answer memory ----------------------------------------------------------------------------------
def _memory_entries(path: Path, name: str, max_file_bytes: int) -> list[Chunk]:
    """Approved (question, answer) pairs: `messages` JSONL (prepared samples, cloud labels) or a
    FAQ CSV/JSONL. Masked again here (idempotent), and an entry that is not safe is left out."""
    from endcloud.data.privacy import Masker

    if path.stat().st_size > max_file_bytes:
        raise SkipFile(f"{path.stat().st_size} bytes is larger than max_file_bytes={max_file_bytes}")
    if path.suffix.lower() == ".csv" or _is_faq_jsonl(path):
        pairs = [(c.meta["question"], c.meta["answer"], "faq", c.id)
                 for c in read_file(path, name, 10**9, max_file_bytes) if c.kind == "faq"]
    elif path.suffix.lower() == ".jsonl":
        pairs = list(_sample_pairs(path))
    else:
        raise SkipFile("answer memory reads `messages` JSONL or a FAQ CSV/JSONL")
    masker = Masker()
    out = []
    for query, reply, origin, ref in pairs:
        conv = masker.new_conversation()
        q, r = masker.mask(query, conv), masker.mask(reply, conv)
        if q.sendable and r.sendable and q.text.strip() and r.text.strip():
            out.append(make_chunk(name, "memory", q.text, r.text, {"origin": origin, "ref": ref}))
    return out


def _is_faq_jsonl(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and "question" in row and "answer" in row


def _sample_pairs(path: Path) -> Iterator[tuple[str, str, str, str]]:
    from endcloud.records import read_samples

    try:
        for s in read_samples(path):
            origin = "cloud" if s.meta.get("label_source") == "cloud" else "natural"
            yield s.query, s.reply, origin, s.id
    except DataFormatError as exc:
        raise SkipFile(str(exc.problem if hasattr(exc, "problem") else exc)) from None
    except UnicodeDecodeError:
        raise SkipFile("not UTF-8") from None


def print_summary(result: BuildResult) -> None:
    print(f"index: {result.root} (version {result.version.name})")
    print(f"  {result.chunks} chunks from {result.sources} sources; {result.embedded} embedded, "
          f"{result.chunks - result.embedded} reused; {result.seconds:.1f} s")
    for s in result.skipped:
        print(f"  skipped {s.path}: {s.reason}")
