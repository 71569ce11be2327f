"""Generation: our own sampling loop (chat template, top-p, temperature, streaming, batches).

Why not `model.generate()`: with transformers 5.x + peft 0.21, `generate()` on a Prefix-Tuning or
P-Tuning v2 model silently drops the prefix (PEFT injects `past_key_values`, which the new
generation code no longer reads as the prompt cache), so it samples from the *base* model.
Here the prefix is built explicitly as the starting KV cache, and positions continue after it,
exactly as in PEFT's training forward; `tests/test_end_generate.py` checks every step's logits
against a full forward pass of the PEFT model.

    gen = Generator(model, tokenizer)
    for piece in gen.stream([{"role": "user", "content": "发货了吗"}]): print(piece, end="")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from endcloud.end.models import stop_token_ids

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import Cache, PreTrainedModel, PreTrainedTokenizerBase
    from transformers.utils import ModelOutput

    from endcloud.end.config import GenerateConfig


# transformers 5 renamed the forward keyword `past_key_values` to `cache` (the old name still
# works with a warning); the output field moved the same way.
CACHE_KWARG = "cache"


def out_cache(out: ModelOutput) -> Cache | None:
    return getattr(out, "cache", None) or getattr(out, "past_key_values", None)


@dataclass
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.6  # 0 = greedy
    top_p: float = 0.8
    max_input_tokens: int = 256


def is_prefix_model(model: PreTrainedModel | PeftModel) -> bool:
    cfg = getattr(model, "active_peft_config", None)
    return bool(cfg is not None and getattr(cfg, "is_prompt_learning", False))


class Generator:
    """Samples replies from a base model or a PeftModel (LoRA or prefix methods)."""

    def __init__(self, model: PreTrainedModel | PeftModel, tokenizer: PreTrainedTokenizerBase,
                 sampling: Sampling | None = None,
                 seed: int | None = None) -> None:
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.sampling = sampling or Sampling()
        self.stops = stop_token_ids(model, tokenizer)
        self.rng = torch.Generator().manual_seed(seed) if seed is not None else None

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return list(ids[-self.sampling.max_input_tokens:])

    def generate(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        """One reply per conversation (batched, left-padded)."""
        outs: list[list[int]] = [[] for _ in conversations]
        for step_tokens in self.steps([self.prompt_ids(c) for c in conversations]):
            for i, tok in enumerate(step_tokens):
                if tok is not None:
                    outs[i].append(tok)
        return [self.tokenizer.decode(o, skip_special_tokens=True).strip() for o in outs]

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Yield the reply's text piece by piece as tokens are sampled."""
        ids: list[int] = []
        shown = ""
        for (tok,) in self.steps([self.prompt_ids(messages)]):
            if tok is None:
                continue
            ids.append(tok)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            yield text[len(shown):]
            shown = text

    def steps(self, prompts: list[list[int]], logits_out: list[torch.Tensor] | None = None
              ) -> Iterator[list[int | None]]:
        """Yield, per decoding step, each row's new token (None once the row has stopped).

        `logits_out`, if given, collects each step's (B, V) logits (tests use it)."""
        import torch

        batch = len(prompts)
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id or 0
        dev = next(self.model.parameters()).device
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=dev)  # (B, T)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=dev)
        lm, cache, n_prefix = self._start(batch)
        mask = torch.cat([torch.ones(batch, n_prefix, dtype=mask.dtype, device=dev), mask], dim=1)
        done = torch.zeros(batch, dtype=torch.bool)
        step_input = ids
        with torch.no_grad():
            for _ in range(self.sampling.max_new_tokens):
                n = step_input.shape[1]
                # positions count real tokens only and start after the prefix (as in training)
                pos = (mask[:, n_prefix:].cumsum(1) - 1).clamp(min=0)[:, -n:] + n_prefix
                out = lm(input_ids=step_input, attention_mask=mask, position_ids=pos,
                         use_cache=True, **{CACHE_KWARG: cache})
                cache = out_cache(out)
                logits = out.logits[:, -1, :].float()  # (B, V)
                if logits_out is not None:
                    logits_out.append(logits)
                tok = self._sample(logits)
                new = tok.tolist()
                yield [None if d else t for t, d in zip(new, done.tolist())]
                done |= torch.tensor([t in self.stops for t in new])
                if done.all():
                    return
                step_input = tok.unsqueeze(1)
                mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=dev)], dim=1)

    def _start(self, batch: int) -> tuple[torch.nn.Module, Cache | None, int]:
        """(the module to call, the initial KV cache, number of prefix positions)."""
        if not is_prefix_model(self.model):
            return self.model, None, 0
        cache = self.model.get_prompt(batch_size=batch)  # the trained prefix as a KV cache
        return self.model.get_base_model(), cache, self.model.active_peft_config.num_virtual_tokens

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        import torch

        s = self.sampling
        if s.temperature == 0:
            return logits.argmax(-1)
        probs = torch.softmax(logits / s.temperature, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < s.top_p  # smallest set with mass >= top_p
        sorted_p = sorted_p * keep
        probs = (sorted_p / sorted_p.sum(-1, keepdim=True)).cpu()  # seeded CPU generator
        choice = torch.multinomial(probs, 1, generator=self.rng).to(order.device)
        return order.gather(-1, choice).squeeze(-1)


# -- the CLI's entry points -----------------------------------------------------------------------
def load_generator(cfg: GenerateConfig) -> Generator:
    """Base model from `cfg.model`, plus `cfg.adapter` (verified against the base) if given."""
    from endcloud.end.adapters import load_adapter
    from endcloud.end.models import load_base

    model, tokenizer, base = load_base(cfg.model)
    if cfg.adapter:
        model = load_adapter(model, cfg.adapter, base.sha256)
    model.eval()
    sampling = Sampling(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.max_input_tokens)
    return Generator(model, tokenizer, sampling, seed=cfg.seed)


def read_conversations(path: str, system: str = "") -> list[tuple[dict[str, Any], list[dict]]]:
    """(meta row, messages without the final reply) per line of messages JSONL or plain text."""
    import json

    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                messages = list(obj["messages"])
            except (ValueError, KeyError, TypeError):
                obj, messages = {}, [{"role": "user", "content": line.strip()}]
            if messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            if system and messages[0]["role"] != "system":
                messages = [{"role": "system", "content": system}, *messages]
            rows.append((obj.get("meta", {}), messages))
    return rows


def run_file(cfg: GenerateConfig) -> int:
    """`endcloud end generate`: one JSON line {"meta", "query", "reply"} per input conversation."""
    import json
    import sys

    from endcloud.runs import atomic_write

    gen = load_generator(cfg)
    rows = read_conversations(cfg.input, cfg.system)
    out_rows = []
    for i in range(0, len(rows), cfg.batch_size):
        chunk = rows[i: i + cfg.batch_size]
        if cfg.stream and cfg.batch_size == 1 and not cfg.output:
            replies = ["".join(print(p, end="", flush=True, file=sys.stderr) or p
                               for p in gen.stream(chunk[0][1])).strip()]
            print(file=sys.stderr)
        else:
            replies = gen.generate([m for _, m in chunk])
        for (meta, messages), reply in zip(chunk, replies):
            out_rows.append({"meta": meta, "query": messages[-1]["content"], "reply": reply})
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out_rows)
    if cfg.output:
        with atomic_write(cfg.output) as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return len(out_rows)
