"""Retrieval behind one interface: `Retriever.search(query, k) -> [Hit]`.

    index = open_index("kb/")                 # the embedded hybrid index `endcloud kb build` wrote
    for hit in index.search("几点前下单当天发?", k=3):
        print(hit.chunk.title, hit.score, hit.dense)

The embedded index (`HybridIndex`) fuses two rankings by reciprocal rank (RRF, k0 = 60):
  lexical  BM25 (bm25s: sparse matrices, scored in numpy) over our tokens - a Chinese run gives
           its characters and character bigrams (no segmenter needed), Latin text its words;
  dense    cosine of the project's multilingual encoder (e5 by default) in a usearch HNSW index.
Why these libraries: bm25s and usearch are small wheels with no service to run, both save to
files that load memory-mapped, and usearch takes new vectors at run time (the answer memory's
fast path). A shop that outgrows one box replaces `HybridIndex` with a server (pgvector, Qdrant,
Milvus) behind the same `Retriever` interface; nothing else changes.

On disk an index folder holds versions (`v-<timestamp>/`) and a `CURRENT` file naming the live
one; a rebuild writes a new version, then replaces `CURRENT` atomically, so a reader opens an old
or a new index, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from endcloud.errors import KnowledgeError, MissingExtraError
from endcloud.knowledge.sources import Chunk

if TYPE_CHECKING:
    from types import ModuleType

    import bm25s
    from usearch.index import Index

    from endcloud.evaluate.encoders import Encoder

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every build at DEBUG

FORMAT = 1
RRF_K = 60
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:[.:][0-9]+)?")
STOPWORDS = frozenset("a an the is are was were be to of in on at for and or do does did i you "
                      "my your me we our it this that can could would will with how what".split())


@dataclass
class Hit:
    chunk: Chunk
    score: float  # fused (RRF) score: for ranking only
    dense: float  # cosine of query and chunk in the dense encoder's space: a relevance level
    lexical: float  # BM25 score (0 when the lexical ranking did not find it)


class Retriever(ABC):
    """A searchable collection of chunks."""

    @abstractmethod
    def search(self, query: str, k: int) -> list[Hit]:
        """The k best chunks for `query`, best first."""

    def __len__(self) -> int:
        return 0


def tokens(text: str) -> list[str]:
    """BM25 tokens: CJK characters and bigrams, Latin words and numbers (lower-cased, NFKC)."""
    text = unicodedata.normalize("NFKC", text).lower()
    out: list[str] = []
    pos = 0
    for m in _CJK_RUN.finditer(text):
        out += [w for w in _WORD.findall(text[pos:m.start()]) if w not in STOPWORDS]
        run = m.group()
        out += list(run) + [run[i:i + 2] for i in range(len(run) - 1)]
        pos = m.end()
    out += [w for w in _WORD.findall(text[pos:]) if w not in STOPWORDS]
    return out


def _bm25() -> ModuleType:
    try:
        import bm25s
    except ImportError:
        raise MissingExtraError("bm25s", "kb") from None
    return bm25s


def _usearch() -> type[Index]:
    try:
        from usearch.index import Index
    except ImportError:
        raise MissingExtraError("usearch", "kb") from None
    return Index


class HybridIndex(Retriever):
    """BM25 + dense vectors over one list of chunks; `add` makes new chunks searchable at once
    (dense at once; lexical after `refresh_lexical`, which `add` starts in a thread)."""

    def __init__(self, chunks: list[Chunk], vectors: np.ndarray, encoder: Encoder,
                 bm25: bm25s.BM25 | None = None, dense: Index | None = None) -> None:
        self.chunks = chunks
        self.encoder = encoder
        self.vectors = vectors  # (N, D) float32 unit rows, aligned with chunks
        self.lock = threading.Lock()
        self.bm25 = bm25 if bm25 is not None else self._build_bm25(chunks)
        self.n_lexical = len(chunks)  # chunks[:n_lexical] are in the BM25 index
        self.dense = dense if dense is not None else self._build_dense(vectors)
        self.dense_file: Path | None = None  # set when `dense` is a read-only memory map of it
        self.version = ""  # the version folder it was loaded from ("" when built in memory)
        self._refreshing = False

    def __len__(self) -> int:
        return len(self.chunks)

    @staticmethod
    def _build_bm25(chunks: Sequence[Chunk]) -> bm25s.BM25 | None:
        if not chunks:
            return None
        bm = _bm25().BM25(method="lucene")
        bm.index([tokens(c.search_text()) or [""] for c in chunks], show_progress=False)
        return bm

    @staticmethod
    def _build_dense(vectors: np.ndarray) -> Index:
        index = _usearch()(ndim=vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 1,
                           metric="cos", dtype="f32")
        if len(vectors):
            index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=1)
        return index

    # -- search -----------------------------------------------------------------------------------
    def search(self, query: str, k: int) -> list[Hit]:
        if not self.chunks or k <= 0 or not query.strip():
            return []
        with self.lock:  # a consistent view while `add` may append
            n, bm25, n_lex, vectors = len(self.chunks), self.bm25, self.n_lexical, self.vectors
        depth = min(n, max(4 * k, 20))
        q = self.encoder.encode([query], kind="query")[0]
        dense_ids = self._dense_ids(q, depth)
        lex_ids, lex_scores = self._lexical(bm25, n_lex, query, depth)
        fused: dict[int, float] = {}
        for ranking in (dense_ids, lex_ids):
            for rank, i in enumerate(ranking):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, i in enumerate(dense_ids):  # added since the last BM25 build: the dense rank
            if i >= n_lex:                     # stands in for the lexical one it cannot have yet
                fused[i] += 1.0 / (RRF_K + rank + 1)
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        cos = vectors[best] @ q if best else np.zeros(0)
        return [Hit(self.chunks[i], fused[i], float(c), lex_scores.get(i, 0.0))
                for i, c in zip(best, cos)]

    def _dense_ids(self, q: np.ndarray, depth: int) -> list[int]:
        if not np.any(q):
            return []
        matches = self.dense.search(q, depth, threads=1)
        return [int(key) for key in matches.keys]

    @staticmethod
    def _lexical(bm25: bm25s.BM25 | None, n_lex: int, query: str, depth: int
                 ) -> tuple[list[int], dict[int, float]]:
        if bm25 is None:
            return [], {}
        ids = bm25.get_tokens_ids(tokens(query))
        if not ids:
            return [], {}
        scores = bm25.get_scores_from_ids(ids)[:n_lex]
        top = np.argpartition(-scores, min(depth, len(scores) - 1))[:depth]
        top = top[np.argsort(-scores[top], kind="stable")]
        keep = [int(i) for i in top if scores[i] > 0]
        return keep, {i: float(scores[i]) for i in keep}

    # -- growth (answer memory) ---------------------------------------------------------------------
    def add(self, chunks: list[Chunk]) -> None:
        """Searchable by the dense ranking when this returns; by BM25 once the rebuild finishes."""
        if not chunks:
            return
        vecs = self.encoder.encode([c.search_text() for c in chunks], kind="passage")
        with self.lock:
            start = len(self.chunks)
            if self.dense_file is not None:  # a memory-mapped index is read-only: load a copy
                self.dense, self.dense_file = _usearch().restore(str(self.dense_file)), None
            if self.vectors.ndim != 2 or self.vectors.shape[1] != vecs.shape[1]:
                if self.chunks:
                    raise ValueError(f"{vecs.shape[1]}-dim vectors for a {self.vectors.shape[1]}-dim index")
                self.vectors = np.zeros((0, vecs.shape[1]), np.float32)  # an empty index takes any dim
                self.dense = self._build_dense(self.vectors)
            self.dense.add(np.arange(start, start + len(chunks), dtype=np.uint64), vecs, threads=1)
            self.vectors = np.concatenate([np.asarray(self.vectors), vecs])
            self.chunks = self.chunks + chunks  # a new list: searches in flight keep theirs
        self._start_refresh()

    def _start_refresh(self) -> None:
        if self._refreshing:
            return
        self._refreshing = True
        threading.Thread(target=self.refresh_lexical, name="bm25-refresh", daemon=True).start()

    def refresh_lexical(self) -> None:
        """Rebuild BM25 over every chunk (the dense ranking covers new ones meanwhile)."""
        try:
            while True:
                with self.lock:
                    chunks = list(self.chunks)
                bm = self._build_bm25(chunks)
                with self.lock:
                    self.bm25, self.n_lexical = bm, len(chunks)
                    if len(self.chunks) == len(chunks):
                        return
        finally:
            self._refreshing = False

    # -- files --------------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in self.chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        np.save(folder / "vectors.npy", np.asarray(self.vectors, dtype=np.float32))
        self.dense.save(str(folder / "dense.usearch"))
        if self.bm25 is not None:
            self.bm25.save(str(folder / "bm25"), show_progress=False)

    @classmethod
    def load(cls, folder: Path, encoder: Encoder) -> "HybridIndex":
        chunks, vectors = read_chunks(folder)
        dense = _usearch().restore(str(folder / "dense.usearch"), view=True) if chunks else None
        if chunks and (dense is None or len(dense) != len(chunks)):
            raise ValueError("the dense index does not match the chunks")
        bm25 = _bm25().BM25.load(str(folder / "bm25"), mmap=True) if chunks else None
        index = cls(chunks, vectors, encoder, bm25=bm25,
                    dense=dense if chunks else cls._build_dense(np.zeros((0, 1), np.float32)))
        index.dense_file = folder / "dense.usearch" if chunks else None
        return index


def read_chunks(folder: Path) -> tuple[list[Chunk], np.ndarray]:
    """The chunks of a version folder and their vectors (memory-mapped), checked to align."""
    chunks = [Chunk.from_dict(json.loads(line))
              for line in (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    if len(vectors) != len(chunks):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    return chunks, vectors


# -- index folders: versions + CURRENT --------------------------------------------------------------
def current_version(root: str | Path) -> Path:
    """The live version folder of index folder `root` (KnowledgeError naming the path if none)."""
    root = Path(root)
    pointer = root / "CURRENT"
    if not root.is_dir():
        raise KnowledgeError(f"{root}: no knowledge index here - build one: endcloud kb build "
                          f"--input DOCS --output {root}")
    if not pointer.is_file():
        raise KnowledgeError(f"{root}: not a knowledge index (no CURRENT file) - rebuild it: "
                          f"endcloud kb build --input DOCS --output {root}")
    version = root / pointer.read_text(encoding="utf-8").strip()
    if not (version / "manifest.json").is_file():
        raise KnowledgeError(f"{version}: the index version CURRENT names is missing or incomplete")
    return version


def read_manifest(version: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KnowledgeError(f"{version}/manifest.json: unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise KnowledgeError(f"{version}: index format {manifest.get('format')!r}, this endcloud "
                          f"reads {FORMAT} - rebuild it with endcloud kb build")
    return manifest


def open_index(root: str | Path, encoder: Encoder | None = None) -> HybridIndex:
    """Load the live version of an index folder; a missing, empty or corrupt one raises
    KnowledgeError with one line naming the path."""
    version = current_version(root)
    manifest = read_manifest(version)
    if encoder is None:
        from endcloud.evaluate.encoders import get_encoder

        encoder = get_encoder(manifest["encoder"])
    try:
        index = HybridIndex.load(version, encoder)
    except KnowledgeError:
        raise
    except Exception as exc:  # truncated numpy/usearch/bm25 files, a bad chunks line
        raise KnowledgeError(f"{version}: corrupt index ({type(exc).__name__}: {exc}) - rebuild it "
                          f"with endcloud kb build") from None
    if len(index) != manifest.get("chunks"):
        raise KnowledgeError(f"{version}: the manifest counts {manifest.get('chunks')} chunks, the "
                          f"files hold {len(index)} - rebuild it")
    if len(index) == 0 and manifest.get("kind", "knowledge") == "knowledge":
        raise KnowledgeError(f"{root}: the knowledge index is empty (no readable documents were "
                          f"given; see {version}/report.json)")
    index.version = version.name
    return index


def publish(root: Path, version: Path) -> None:
    """Make `version` (a folder inside `root`) the live one: one atomic rename of CURRENT."""
    tmp = root / f".CURRENT.{os.getpid()}.tmp"
    tmp.write_text(version.name + "\n", encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, root / "CURRENT")
