"""Which packaged base model should be the default end model? Measure, per model:
Chinese replies to JDDC test queries, decode tokens/s, and one LoRA optimizer step (bf16, fp32).

    nice -n 5 .venv/bin/python bench/end_models.py --test <jddc2019>/test.jsonl \
        --train <jddc2019>/train.jsonl --out bench/results/end_models.jsonl

Each (model, dtype) runs in its own process so peak RSS is per run. A training step is one
optimizer step of `--accum` micro-batches of batch 1 (max input 256 / output 512 tokens), timed
after one untimed warm-up micro-batch; every model sees the same JDDC train samples.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

MODELS = ["qwen2.5-coder-0.5b", "gemma3-270m", "smollm2-135m"]


def pick_rows(test: Path, n: int = 5, min_chars: int = 8) -> list[dict]:
    """The first `n` test sessions' first turn whose query has >= `min_chars` characters and no
    mask placeholder (deterministic: file order)."""
    seen, out = set(), []
    for line in test.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        sid, query = row["meta"].get("session_id"), row["messages"][-2]["content"]
        if sid in seen or len(query) < min_chars or "[" in query:
            continue
        seen.add(sid)
        out.append({"messages": row["messages"], "meta": {"id": row["meta"]["id"]}})
        if len(out) == n:
            break
    return out


def pick_queries(test: Path, n: int = 5) -> list[list[dict[str, str]]]:
    """Context + query of each picked row, without the agent's reply."""
    return [r["messages"][:-1] for r in pick_rows(test, n)]


def decode(model, tok, queries, max_new: int, seed: int) -> tuple[list[str], float]:
    """Replies with Table IV sampling (seeded) and decode tokens/s over all generated tokens."""
    from endcloud.end.generate import Generator, Sampling

    gen = Generator(model, tok, Sampling(max_new_tokens=max_new), seed=seed)
    replies, n_tok, secs = [], 0, 0.0
    for q in queries:
        t = time.perf_counter()
        steps = list(gen.steps([gen.prompt_ids(q)]))  # prompt prefill + decode, batch 1
        secs += time.perf_counter() - t
        ids = [s[0] for s in steps if s[0] is not None]
        n_tok += len(ids)
        replies.append(tok.decode(ids, skip_special_tokens=True).strip())
    return replies, n_tok / secs


def train_step(model, tok, train: Path, accum: int) -> dict:
    """Time one LoRA optimizer step (`accum` micro-batches of 1) after a warm-up micro-batch."""
    import torch

    from endcloud.end.config import DataConfig, MethodConfig
    from endcloud.end.data import collate, load_mixture
    from endcloud.end.methods import wrap

    mix, _ = load_mixture(tok, DataConfig(natural=str(train), limit=64), 42)
    peft_model = wrap(model, MethodConfig(name="lora"), tok)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=5e-5)

    def micro(k: int) -> tuple[float, int]:
        batch = collate([mix.at(k)], tok.pad_token_id)
        loss = peft_model(**batch).loss / accum
        loss.backward()
        return float(loss), int(batch["attention_mask"].sum())

    micro(10_000)  # warm-up (allocator, kernels); not timed
    opt.zero_grad(set_to_none=True)
    t, cpu = time.perf_counter(), time.process_time()
    results = [micro(k) for k in range(accum)]
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    tokens = sum(n for _, n in results)
    return {"step_s": secs, "step_cpu_s": cpu, "step_tokens": tokens, "train_tok_s": tokens / secs,
            "loss": sum(x for x, _ in results)}


def one(args: argparse.Namespace) -> None:
    import torch

    from endcloud.end.config import ModelConfig
    from endcloud.end.models import load_base

    t = time.perf_counter()
    model, tok, _ = load_base(ModelConfig(name=args.model, dtype=args.dtype))
    res: dict = {"model": args.model, "dtype": args.dtype, "load_s": time.perf_counter() - t,
                 "threads": torch.get_num_threads(),
                 "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    queries = pick_queries(Path(args.test), args.n_queries)
    if not args.no_decode:  # fp32 skips decoding (time budget): replies are the same model's
        res["replies"], res["decode_tok_s"] = decode(model, tok, queries, args.max_new, 42)
        res["queries"] = [q[-1]["content"] for q in queries]
    res.update(train_step(model, tok, Path(args.train), args.accum))
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(res, ensure_ascii=False), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--test", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--out", default="bench/results/end_models.jsonl")
    p.add_argument("--n-queries", type=int, default=5)
    p.add_argument("--max-new", type=int, default=32)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--queries-out", default="", help="write the picked test rows (JSONL) and exit")
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--no-decode", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.model:
        return one(args)
    if args.queries_out:  # the same 5 conversations feed the before/after and generation benches
        rows = pick_rows(Path(args.test), args.n_queries)
        Path(args.queries_out).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return None
    results = []
    for model in args.models.split(","):
        for dtype in ("bfloat16", "float32"):
            cmd = [sys.executable, __file__, "--model", model, "--dtype", dtype,
                   "--test", args.test, "--train", args.train, "--n-queries", str(args.n_queries),
                   "--max-new", str(args.max_new), "--accum", str(args.accum)]
            if dtype == "float32":
                cmd.append("--no-decode")
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(f"{model}/{dtype} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            results.append(json.loads(line[0][7:]))
            print(line[0][7:], flush=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results),
                              encoding="utf-8")
    print("\nmodel                dtype     params M  load s  decode tok/s  LoRA step s "
          "(CPU s)  train tok/s  peak RSS GB")
    for r in results:
        dec = f"{r['decode_tok_s']:12.1f}" if "decode_tok_s" in r else f"{'-':>12}"
        print(f"{r['model']:20} {r['dtype']:9} {r['params_m']:8.0f}  {r['load_s']:6.1f}  {dec}  "
              f"{r['step_s']:11.1f} ({r['step_cpu_s']:5.1f})  {r['train_tok_s']:11.0f}  "
              f"{r['peak_rss_gb']:11.2f}")
    for r in results:
        for q, a in zip(r.get("queries", []), r.get("replies", [])):
            print(f"[{r['model']}] Q: {q}\n    A: {a}")


if __name__ == "__main__":
    main()
