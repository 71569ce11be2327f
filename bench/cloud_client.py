"""Benchmark the teacher client: throughput and latency by concurrency, prompt tokens by N.

    python bench/cloud_client.py                               # fake teacher (50 ms per reply)
    python bench/cloud_client.py --model path/to/hf-model      # a real local model (slow on CPU)
    python bench/cloud_client.py --examples runs/data-X/train.jsonl --tokens-only \
        [--tokenizer ~/.cache/endcloud/dequantized/qwen2.5-coder-0.5b-instruct-*]

Part 1 starts `endcloud cloud serve-local` on loopback and sends the same labelling prompts at
concurrency 1, 4 and 16 through CloudClient (masking, audit and retries included), printing
labels/s, p50/p95 latency and the speed-up over sequential. A single local model serves one
request at a time, so only the fake teacher (or a real cloud) shows the concurrency gain.
Part 2 builds Table II prompts for N = 8, 64, 500 fixed examples, with and without 8
retrieval-chosen ones, and prints the prompt tokens per label: counted with a real tokenizer and
its chat template when --tokenizer names an HF folder (the Qwen2.5 tokenizer is the same for the
0.5B end model and the 1.5B embedded teacher), else estimated (1 token per CJK character/word/mark).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from endcloud.cloud.client import CloudClient
from endcloud.cloud.config import CloudConfig, PromptConfig
from endcloud.cloud.prompt import ExamplePool, PromptBuilder
from endcloud.records import read_samples
from endcloud.text import estimate_tokens
from endcloud.cloud.server import server_process
from endcloud.records import Sample


def demo_samples(n: int) -> list[Sample]:
    from endcloud.data.demo_corpus import demo_dialogues

    out: list[Sample] = []
    for d in demo_dialogues(seed=0):
        turns = d.turns
        for i in range(1, len(turns)):
            if turns[i].role == "assistant" and turns[i - 1].role == "user":
                out.append(Sample(f"{d.id}-{i}", d.id, turns[: i - 1], turns[i - 1].text, turns[i].text,
                                  d.source, "train"))
    return (out * (n // max(1, len(out)) + 1))[:n] if n > len(out) else out


def throughput(model: str, samples: list[Sample], n: int, fake_delay: float) -> None:
    builder = PromptBuilder(PromptConfig(n_examples=8), ExamplePool.from_samples(samples))
    prompts = [builder.messages(s) for s in samples[:n]]
    with server_process(model, fake_delay=fake_delay, warmup=True) as url:
        base = None
        print(f"teacher={model} prompts={len(prompts)}")
        print("concurrency  labels/s   p50_ms   p95_ms  speedup  failures")
        for conc in (1, 4, 16):
            cfg = CloudConfig(base_url=url, model="local", concurrency=conc, max_tokens=32,
                              reject_truncated=False, deadline_s=300)
            lat: list[float] = []
            failures, kinds = 0, set()
            with CloudClient(cfg) as client:
                def one(msgs):
                    try:
                        return client.chat(msgs).latency_s
                    except Exception as exc:  # PrivacyError: refused before sending
                        kinds.add(type(exc).__name__)
                        return None
                t0 = time.monotonic()
                with ThreadPoolExecutor(conc) as ex:
                    for r in ex.map(one, prompts):
                        if r is None:
                            failures += 1
                        else:
                            lat.append(r)
                wall = time.monotonic() - t0
            rate = len(lat) / wall
            base = base or rate
            q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else [lat[0]] * 19
            print(f"{conc:>11} {rate:>9.1f} {statistics.median(lat) * 1000:>8.1f} {q[18] * 1000:>8.1f} "
                  f"{rate / base:>8.2f} {failures:>9} {','.join(sorted(kinds))}")


def token_counter(tokenizer: str | None):
    """messages -> prompt tokens: the real chat-templated count, or the estimate."""
    if not tokenizer:
        return "estimated: 1 per CJK char/word/mark", lambda msgs: sum(estimate_tokens(m["content"]) for m in msgs)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tokenizer)

    def count(msgs: list[dict]) -> int:
        ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
        return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    return f"counted with {Path(tokenizer).name} + its chat template", count


def prompt_tokens(samples: list[Sample], queries: int, tokenizer: str | None = None) -> None:
    pool = ExamplePool.from_samples(samples)
    how, count = token_counter(tokenizer)
    print(f"\nexample pool={len(pool)}  queries={queries}  ({how})")
    print("    N  retrieved  prompt_tokens/label  shared_prefix_tokens")
    for n in (8, 64, 500):
        for k in (0, 8):
            builder = PromptBuilder(PromptConfig(n_examples=n, n_retrieved=k), pool)
            toks, prefix = [], []
            for s in samples[:queries]:
                msgs = builder.messages(s)
                toks.append(count(msgs))
                fixed = msgs[0]["content"].split("Examples similar to the customer's question:")[0]
                prefix.append(count([{"role": "system", "content": fixed}]))
            print(f"{n:>5} {k:>10} {statistics.mean(toks):>20.0f} {statistics.mean(prefix):>21.0f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fake", help="'fake', an HF model folder or a .gguf")
    p.add_argument("--fake-delay", type=float, default=0.05)
    p.add_argument("--n", type=int, default=64, help="prompts per concurrency level")
    p.add_argument("--examples", help="train-split messages JSONL (default: the demo corpus)")
    p.add_argument("--tokens-only", action="store_true")
    p.add_argument("--tokenizer", help="HF folder whose tokenizer + chat template count the prompt tokens")
    args = p.parse_args()
    samples = list(read_samples(args.examples)) if args.examples else demo_samples(600)
    if not args.tokens_only:
        throughput(args.model, samples, args.n, args.fake_delay)
    prompt_tokens(samples, 50, args.tokenizer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
