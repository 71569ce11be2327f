"""SFT examples: chat template, loss on the reply tokens only, natural + label mixing.

An example is (input_ids, labels): the prompt (system, context, query, rendered by the model's
chat template up to the assistant header) followed by the reply and its end-of-turn tokens.
Labels are -100 on the prompt, so the loss covers only what the agent said.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from endcloud.end.config import DataConfig
from endcloud.errors import DataFormatError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_reply(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def read_messages(path: str | Path, limit: int = 0) -> list[list[dict[str, str]]]:
    """Read `messages` JSONL; each conversation must end with a user then an assistant message."""
    out: list[list[dict[str, str]]] = []
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, "file not found (run `endcloud data prepare` first?)")
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                messages = json.loads(line)["messages"]
                roles = [m["role"] for m in messages]
                str(messages[-1]["content"])
            except (ValueError, KeyError, TypeError, IndexError):
                raise DataFormatError(path, n, 'expected {"messages": [{"role", "content"}, ...]}')
            if roles[-2:] != ["user", "assistant"]:
                raise DataFormatError(path, n, "the last two messages must be user, assistant")
            out.append(messages)
            if limit and len(out) >= limit:
                break
    return out


def encode(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], cfg: DataConfig) -> Example:
    """Render with the chat template; keep the last `max_input_tokens` of the prompt (the query
    is at the end) and the first `max_output_tokens` of the reply."""
    if cfg.system and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": cfg.system}, *messages]
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):  # templates that rewrite history; rare
        full = prompt + messages[-1]["content"] + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids[-cfg.max_input_tokens:]
    reply_ids = tokenizer(full[len(prompt):].rstrip("\n"), add_special_tokens=False).input_ids
    reply_ids = reply_ids[: cfg.max_output_tokens]
    return Example(prompt_ids + reply_ids, [IGNORE] * len(prompt_ids) + reply_ids)


class Mixture:
    """A deterministic stream of examples: each draw is a cloud label with probability
    `label_ratio` (when both pools exist), else a natural sample; each pool is reshuffled per pass.

    `at(k)` is the k-th draw, so a resumed run sees exactly the examples it would have seen.
    """

    def __init__(self, natural: list[Example], labels: list[Example], ratio: float, seed: int):
        if not natural and not labels:
            raise DataFormatError("data", None, "no training examples")
        self.pools = [p for p in (natural, labels) if p]
        self.ratio = ratio if natural and labels else (1.0 if labels else 0.0)
        self.seed = seed
        self._order: list[tuple[int, int]] = []  # (pool, index) per draw, grown lazily
        self._cursors: list[tuple[int, list[int]]] = [(0, []) for _ in self.pools]

    def at(self, k: int) -> Example:
        while len(self._order) <= k:
            self._extend()
        pool, index = self._order[k]
        return self.pools[pool][index]

    def _extend(self, n: int = 4096) -> None:
        rng = random.Random(f"{self.seed}:{len(self._order)}")
        for _ in range(n):
            pool = (len(self.pools) - 1) if rng.random() < self.ratio else 0
            pos, order = self._cursors[pool]
            if pos >= len(order):  # a new pass over this pool
                order = list(range(len(self.pools[pool])))
                rng.shuffle(order)
                pos = 0
            self._order.append((pool, order[pos]))
            self._cursors[pool] = (pos + 1, order)


def load_mixture(tokenizer: PreTrainedTokenizerBase, cfg: DataConfig, seed: int) -> tuple[Mixture, str]:
    """Encode both files and return the mixture and a hash of the data (for the manifest)."""
    h = hashlib.sha256()
    pools: list[list[Example]] = []
    for path in (cfg.natural, cfg.labels):
        examples = []
        if path:
            for messages in read_messages(path, cfg.limit):
                h.update(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode())
                examples.append(encode(tokenizer, messages, cfg))
        h.update(b"\x00pool\x00")
        pools.append([e for e in examples if e.n_reply > 0])
    h.update(json.dumps([cfg.label_ratio, cfg.system, cfg.max_input_tokens,
                         cfg.max_output_tokens]).encode())
    return Mixture(pools[0], pools[1], cfg.label_ratio, seed), h.hexdigest()


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch: input_ids, attention_mask, labels as (B, T) tensors."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(mix: Mixture, start_draw: int, batch_size: int) -> Iterator[list[Example]]:
    k = start_draw
    while True:
        yield [mix.at(k + i) for i in range(batch_size)]
        k += batch_size
