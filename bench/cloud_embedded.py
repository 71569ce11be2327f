"""Benchmark the embedded default cloud teacher (no key, no internet) on JDDC queries.

    .venv/bin/endcloud data prepare --config configs/data.yaml corpus=jddc2019 output_root=runs/prep-jddc2019
    nice -n 10 .venv/bin/python bench/cloud_embedded.py --input runs/prep-jddc2019/data-*/train.jsonl \\
        --queries 500 --budget-s 480 [--backend auto|llama-cpp|transformers] [--speed-only]

1. starts `serve-local` (the packaged Qwen2.5-Coder-1.5B-Instruct Q4_K_M unless --model) and
   times load + warm-up;
2. speed: time to first token and decode tok/s for a short zh customer-service question,
   streamed from the server, and a non-streamed call through our CloudClient;
3. labels: runs the real label job (`endcloud.cloud.label.run`) against that server in chunks,
   resuming through the store, until --queries are labelled or --budget-s is spent; prints time
   per label, tok/s, latency p50/p95 and a few replies. Any figure for more queries than were
   actually labelled is printed as an extrapolation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from endcloud import wire
from endcloud.cloud.client import CloudClient
from endcloud.cloud.config import CloudConfig, LabelConfig, PromptConfig
from endcloud.cloud.label import run as label_run
from endcloud.cloud.server import resolve_model, server_process

QUESTION = [{"role": "system", "content": "你是一名电商客服，请礼貌、简短地回答顾客的问题。"},
            {"role": "user", "content": "你好，我昨天下的订单还没发货，请问什么时候能发货？"}]


def stream_once(url: str, max_tokens: int) -> dict[str, float]:
    """One streamed request: seconds to the first content piece, and decode tok/s after it."""
    body = {"model": "local", "messages": QUESTION, "max_tokens": max_tokens, "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    usage: dict = {}
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=600) as resp:
        stream = wire.Stream()
        for event in wire.sse_events(resp.iter_lines()):
            if stream.feed(event) and first is None:
                first = time.perf_counter() - t0
        usage = dict(stream.usage)
    total = time.perf_counter() - t0
    n = int(usage.get("completion_tokens", 0))
    first = first if first is not None else total
    return {"ttft_s": first, "total_s": total, "completion_tokens": n, "prompt_tokens": usage.get("prompt_tokens", 0),
            "decode_tok_s": (n - 1) / (total - first) if n > 1 and total > first else 0.0}


def speed(url: str, repeats: int, max_tokens: int) -> dict[str, float]:
    runs = [stream_once(url, max_tokens) for _ in range(repeats)]
    cfg = CloudConfig(base_url=url, model="local", max_tokens=max_tokens, temperature=0.0,
                      reject_truncated=False, deadline_s=600, read_timeout_s=600)
    with CloudClient(cfg) as client:
        reply = client.chat(QUESTION)
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["ttft_first_s"] = runs[0]["ttft_s"]  # the only one whose prompt is not in the KV cache yet
    out["client_latency_s"] = reply.latency_s
    out["client_tok_s"] = reply.completion_tokens / reply.latency_s if reply.latency_s else 0.0
    out["client_reply"] = reply.text  # type: ignore[assignment]
    return out


def label_bench(url: str, args: argparse.Namespace, work: Path) -> dict:
    """Label in chunks (each a resumed run of the real job) until done or out of time."""
    base = LabelConfig(input=args.input, output=str(work / "labels.jsonl"), output_root=str(work / "runs"),
                       store=str(work / "bench.db"), limit=0,
                       cloud=CloudConfig(base_url=url, model="local", concurrency=1, max_tokens=args.max_tokens,
                                         deadline_s=600, read_timeout_s=600),
                       prompt=PromptConfig(n_examples=args.n_examples, n_retrieved=args.n_retrieved,
                                           examples=args.examples or ""))
    t0, done, rows = time.perf_counter(), 0, []
    totals = {"new": 0, "cached": 0, "quarantined": 0, "prompt_tokens": 0, "completion_tokens": 0}
    while done < args.queries and time.perf_counter() - t0 < args.budget_s:
        limit = min(args.queries, done + args.chunk)
        cfg = LabelConfig(**{**vars(base), "limit": limit})
        result = label_run(cfg)
        for k in totals:
            totals[k] += getattr(result, k)
        done = limit
        print(f"  {result.labelled} labelled, {totals['quarantined']} quarantined after "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in Path(base.output).read_text(encoding="utf-8").splitlines()]
    lat = sorted(r["meta"]["teacher"]["latency_ms"] / 1000 for r in rows if "meta" in r) or [0.0]
    n = max(totals["new"], 1)
    return {"queries_attempted": done, "labelled": totals["new"], "cached": totals["cached"],
            "quarantined": totals["quarantined"],
            "wall_s": wall, "s_per_label": wall / n, "latency_p50_s": statistics.median(lat),
            "latency_p95_s": lat[min(len(lat) - 1, int(0.95 * len(lat)))],
            "prompt_tokens_per_label": totals["prompt_tokens"] / n,
            "completion_tokens_per_label": totals["completion_tokens"] / n,
            "completion_tok_s": totals["completion_tokens"] / wall,
            "extrapolated_500_min": 500 * wall / n / 60, "rows": rows}


def _examples(rows: list[dict], k: int) -> list[tuple[str, str]]:
    out = []
    for r in rows[:k]:
        msgs = r["messages"] if isinstance(r, dict) and "messages" in r else r
        out.append((msgs[-2]["content"], msgs[-1]["content"]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", help="prepared JDDC `messages` JSONL (queries to label)")
    p.add_argument("--examples", default="", help="example pool JSONL ('' = the input's train split)")
    p.add_argument("--model", default="", help="'' = the embedded default teacher")
    p.add_argument("--backend", default="auto", choices=("auto", "llama-cpp", "transformers"))
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--budget-s", type=float, default=480.0, help="stop starting new chunks after this")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--n-examples", type=int, default=8)
    p.add_argument("--n-retrieved", type=int, default=0, help="0 keeps the prompt prefix cacheable")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--speed-only", action="store_true")
    p.add_argument("--speed-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not args.speed_only and not args.input:
        p.error("--input is required unless --speed-only")

    model = resolve_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    t0 = time.perf_counter()
    with server_process(model, backend=args.backend, timeout_s=1800,
                        log_path=str(work / "server.log")) as url:
        startup = time.perf_counter() - t0
        print(f"server: {Path(model).name} backend={args.backend} ready in {startup:.1f} s (load + warm-up)")
        print((work / "server.log").read_text(errors="replace").strip())
        s = speed(url, args.repeats, args.speed_tokens)
        print(f"speed (median of {args.repeats}, greedy, max_tokens={args.speed_tokens}, prompt "
              f"{s['prompt_tokens']:.0f} tok): TTFT {s['ttft_first_s']:.2f} s first / {s['ttft_s']:.2f} s median, decode {s['decode_tok_s']:.1f} tok/s, "
              f"{s['completion_tokens']:.0f} tokens in {s['total_s']:.1f} s")
        print(f"  our CloudClient (non-stream): {s['client_latency_s']:.1f} s, {s['client_tok_s']:.1f} tok/s "
              f"end to end; reply: {s['client_reply']}")
        if args.speed_only:
            return 0
        r = label_bench(url, args, work)
    print(f"\nlabel job, N={args.n_examples} fixed examples + {args.n_retrieved} retrieved, concurrency 1:")
    print(f"  MEASURED: {r['labelled']} teacher labels (+{r['cached']} reused for an identical prompt, "
          f"+{r['quarantined']} quarantined) of {r['queries_attempted']} "
          f"queries in {r['wall_s']:.0f} s = {r['s_per_label']:.1f} s/label; latency p50 "
          f"{r['latency_p50_s']:.1f} s, p95 {r['latency_p95_s']:.1f} s; {r['prompt_tokens_per_label']:.0f} prompt + "
          f"{r['completion_tokens_per_label']:.0f} completion tokens per label; {r['completion_tok_s']:.1f} "
          f"completion tok/s over the run")
    if r["queries_attempted"] < 500:
        print(f"  EXTRAPOLATED (not measured): 500 queries ≈ {r['extrapolated_500_min']:.0f} min at this rate")
    for q, a in _examples(r["rows"], 4):
        print(f"  Q: {q[:80]}\n  A: {a[:160]}")
    print(f"(work folder: {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
