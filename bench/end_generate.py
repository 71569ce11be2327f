"""Generation tokens/s on the default end model with no adapter, a LoRA and a prefix adapter.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/end_generate.py \
        --queries bench/results/end_queries.jsonl \
        --adapters none,runs/bench-curves/lora-lr5e-05-300/adapter,runs/.../adapter

Every (adapter, round) runs in its own process (a LoRA adapter is injected into the base model's
modules, so a fresh base per run keeps runs independent); rounds alternate the adapters so load
changes hit all of them. Each prompt generates exactly `--tokens` tokens (stop tokens ignored),
batch 1, with our sampler (Table IV: top-p 0.8, temperature 0.6, seed 42); tokens/s counts new
tokens over prefill + decode time. Unmerged LoRA costs extra matmuls per layer; a prefix adds
`num_virtual_tokens` cached positions to every attention.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def one(args: argparse.Namespace) -> None:
    from endcloud.end.adapters import load_adapter
    from endcloud.end.config import ModelConfig
    from endcloud.end.generate import Generator, Sampling, read_conversations
    from endcloud.end.models import load_base

    model, tok, base = load_base(ModelConfig(name=args.model, dtype=args.dtype))
    if args.adapter != "none":
        model = load_adapter(model, args.adapter, base.sha256)
    model.eval()
    gen = Generator(model, tok, Sampling(max_new_tokens=args.tokens), seed=42)
    gen.stops = set()  # a fixed number of tokens per prompt, whatever the adapter says
    convs = [m for _, m in read_conversations(args.queries)][: args.n]
    n_tok, secs = 0, 0.0
    for conv in convs:
        t = time.perf_counter()
        n_tok += sum(1 for _ in gen.steps([gen.prompt_ids(conv)]))
        secs += time.perf_counter() - t
    method = json.loads((Path(args.adapter) / "manifest.json").read_text())["method"] \
        if args.adapter != "none" else "none"
    print("RESULT " + json.dumps({"adapter": args.adapter, "method": method, "tokens": n_tok,
                                  "seconds": secs, "tokens_per_s": n_tok / secs,
                                  "peak_rss_gb": resource.getrusage(
                                      resource.RUSAGE_SELF).ru_maxrss / 2**20}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--queries", required=True, help="messages JSONL (replies are dropped)")
    p.add_argument("--adapters", default="none", help="comma-separated folders; none = base")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--n", type=int, default=5, help="prompts used")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="")
    p.add_argument("--adapter", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.adapter:
        return one(args)
    results = []
    for rnd in range(args.rounds):
        for adapter in args.adapters.split(","):
            cmd = [sys.executable, __file__, "--adapter", adapter, "--queries", args.queries,
                   "--model", args.model, "--dtype", args.dtype, "--tokens", str(args.tokens),
                   "--n", str(args.n)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(f"{adapter} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            res = {**json.loads(line[0][7:]), "round": rnd}
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in results))
    print(f"\nadapter method   tokens/s median (each round)   vs none   peak RSS GB   "
          f"[{args.model} {args.dtype}, {args.n} prompts x {args.tokens} tokens, batch 1]")
    med = {}
    for adapter in args.adapters.split(","):
        rs = [r for r in results if r["adapter"] == adapter]
        if not rs:
            continue
        med[adapter] = statistics.median(r["tokens_per_s"] for r in rs)
        rel = f"{med[adapter] / med['none']:.2f}" if "none" in med else ""
        each = ", ".join(f"{r['tokens_per_s']:.1f}" for r in rs)
        print(f"{rs[0]['method']:15} {med[adapter]:6.2f} ({each})   {rel:>6}   "
              f"{max(r['peak_rss_gb'] for r in rs):.2f}")


if __name__ == "__main__":
    main()
