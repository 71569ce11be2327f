"""Training throughput of each PEFT method on a real model: ours vs a plain HF Trainer + PEFT.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/end_train.py --dtype bfloat16 --steps 20 \
        --accum 1 --repeats 2 --data <jddc2019>/train.jsonl --max-input 128 --max-output 128

Each (method, implementation, repeat) runs in its own process so peak RSS is per run; the
implementations alternate (ours, hf, ours, hf, ...) so a change in machine load hits both, and the
table reports the median tokens/s of the repeats. Both sides see the same encoded examples (the
first steps*accum*batch draws of our mixture; HF's sampler shuffles their order) and exclude
model loading from the timing. Without --data, samples are built here from the raw JDDC 2019
sample (context, query, reply), so the bench does not depend on the data stage.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

JDDC = Path(__file__).resolve().parents[2] / "shared/data/jddc/jddc2019_chat_sample_v1.tsv.gz"
METHODS = ["lora", "prefix-tuning", "p-tuning-v2"]


def build_samples(out: Path, n: int = 400, context_turns: int = 4) -> Path:
    """(context, query, reply) from JDDC: consecutive same-speaker lines merged, agent replies."""
    sessions: dict[str, list[tuple[str, str]]] = {}
    with gzip.open(JDDC, "rt", encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 7:
                continue
            role = "assistant" if row[2] == "1" else "user"
            turns = sessions.setdefault(row[0], [])
            if turns and turns[-1][0] == role:
                turns[-1] = (role, turns[-1][1] + " " + row[6].strip())
            else:
                turns.append((role, row[6].strip()))
    rows = []
    for turns in sessions.values():
        for i in range(1, len(turns)):
            if turns[i][0] == "assistant" and turns[i - 1][0] == "user" and len(turns[i][1]) > 4:
                ctx = turns[max(0, i - 1 - context_turns): i - 1]
                while ctx and ctx[0][0] != "user":
                    ctx = ctx[1:]
                msgs = [{"role": r, "content": t} for r, t in ctx + turns[i - 1: i + 1]]
                rows.append({"messages": msgs, "meta": {"id": f"jddc-{len(rows)}"}})
    with open(out, "w", encoding="utf-8") as fh:
        for r in rows[:n]:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return out


def data_config(args: argparse.Namespace, data: Path):
    from endcloud.end.config import DataConfig

    return DataConfig(natural=str(data), max_input_tokens=args.max_input,
                      max_output_tokens=args.max_output, limit=args.limit)


def ours(args: argparse.Namespace, data: Path, work: Path) -> dict:
    from endcloud.end.config import MethodConfig, ModelConfig, TrainConfig
    from endcloud.end.train import run

    cfg = TrainConfig(model=ModelConfig(name=args.model, dtype=args.dtype),
                      method=MethodConfig(name=args.method), data=data_config(args, data),
                      steps=args.steps, batch_size=args.batch, grad_accum=args.accum,
                      lr_per_method=json.loads(args.lr_per_method), save_steps=[],
                      save_every=0, log_every=1, store=False, run_dir=str(work / "run"))
    import endcloud.end.train as recipe

    # CPU seconds of the training loop (load excluded): the progress bar is made just before it
    bar, cpu0 = recipe._bar, []
    recipe._bar = lambda *a: cpu0.append(time.process_time()) or bar(*a)
    t = time.perf_counter()
    result = run(cfg)
    cpu = time.process_time() - cpu0[0]
    rows = [json.loads(x) for x in (result.run_dir / "train_log.jsonl").read_text().splitlines()]
    return {"tokens_per_s": result.tokens_per_s, "losses": [r["loss"] for r in rows],
            "wall_s": time.perf_counter() - t, "cpu_s": cpu, "tokens": rows[-1]["tokens"]}


def hf_trainer(args: argparse.Namespace, data: Path, work: Path) -> dict:
    """The plain recipe most tutorials show: Trainer + get_peft_model, same examples and batch."""
    import torch
    from transformers import Trainer, TrainingArguments

    from endcloud.end.config import MethodConfig, ModelConfig
    from endcloud.end.data import collate, load_mixture
    from endcloud.end.methods import peft_config
    from endcloud.end.models import load_base
    from peft import get_peft_model

    model, tok, _ = load_base(ModelConfig(name=args.model, dtype=args.dtype))
    mix, _ = load_mixture(tok, data_config(args, data), 42)
    n = args.steps * args.accum * args.batch
    examples = [mix.at(k) for k in range(n)]
    model = get_peft_model(model, peft_config(model, MethodConfig(name=args.method)))
    tokens = sum(len(e.input_ids) for e in examples)
    targs = TrainingArguments(output_dir=str(work / "hf"), max_steps=args.steps,
                              per_device_train_batch_size=args.batch,
                              gradient_accumulation_steps=args.accum, learning_rate=5e-5,
                              logging_steps=1, save_strategy="no", report_to=[],
                              dataloader_num_workers=0, use_cpu=True, seed=42,
                              bf16=args.dtype == "bfloat16", remove_unused_columns=False)
    trainer = Trainer(model=model, args=targs, train_dataset=examples,
                      data_collator=lambda b: collate(b, tok.pad_token_id))
    torch.manual_seed(42)
    t, cpu = time.perf_counter(), time.process_time()
    out = trainer.train()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {"tokens_per_s": tokens / wall, "loss": out.training_loss, "wall_s": wall,
            "cpu_s": cpu, "tokens": tokens}


def one(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="end-bench-"))
    data = Path(args.data) if args.data else build_samples(work / "jddc.jsonl")
    fn = ours if args.impl == "ours" else hf_trainer
    res = fn(args, data, work)
    res.update(method=args.method, impl=args.impl, model=args.model, dtype=args.dtype,
               batch=args.batch, accum=args.accum, steps=args.steps,
               lengths=f"{args.max_input}/{args.max_output}",
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print("RESULT " + json.dumps(res, ensure_ascii=False), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--accum", type=int, default=4)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--impls", default="ours,hf")
    p.add_argument("--lr-per-method", default="{}")
    p.add_argument("--data", default="", help="messages JSONL (e.g. `endcloud data prepare` train)")
    p.add_argument("--limit", type=int, default=400, help="encode only the first N lines")
    p.add_argument("--max-input", type=int, default=256)
    p.add_argument("--max-output", type=int, default=512)
    p.add_argument("--repeats", type=int, default=1, help="runs per (method, impl), alternating")
    p.add_argument("--lengths", default="", help='e.g. "128/128,256/512": max input/output '
                   "token caps to alternate (default: --max-input/--max-output)")
    p.add_argument("--out", default="", help="also append the JSON lines to this file")
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.method:
        return one(args)
    results = []
    lengths = [tuple(map(int, x.split("/"))) for x in filter(None, args.lengths.split(","))]
    for method in args.methods.split(","):
        for rep in range(args.repeats):
            for (max_in, max_out), impl in product(lengths or [(args.max_input, args.max_output)],
                                                   args.impls.split(",")):
                skip = ("method", "impl", "methods", "impls", "repeats", "out", "lengths",
                        "max_input", "max_output")
                cmd = [sys.executable, __file__, "--method", method, "--impl", impl,
                       f"--max-input={max_in}", f"--max-output={max_out}",
                       *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                         if k not in skip]]
                out = subprocess.run(cmd, capture_output=True, text=True)
                line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    print(f"{method}/{impl} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                    continue
                res = {**json.loads(line[0][7:]), "repeat": rep}
                results.append(res)
                print(json.dumps(res, ensure_ascii=False), flush=True)
                if args.out:
                    with open(args.out, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(res, ensure_ascii=False) + "\n")
    table(results)


def table(results: list[dict]) -> None:
    """Median tokens/s over the repeats per (method, impl), and ours/hf of the medians."""
    from statistics import median

    print("\nmethod          in/out   impl  runs  tokens/s (median; each run)  "
          "s/step (median)  peak RSS GB  ours/hf")
    for method, lengths in dict.fromkeys((r["method"], r.get("lengths", "")) for r in results):
        med = {}
        for impl in dict.fromkeys(r["impl"] for r in results):
            runs = [r for r in results if r["method"] == method and r["impl"] == impl
                    and r.get("lengths", "") == lengths]
            if not runs:
                continue
            speeds = [r["tokens_per_s"] for r in runs]
            med[impl] = median(speeds)
            step_s = median(r["tokens"] / r["tokens_per_s"] / r["steps"] for r in runs)
            ratio = (f"{med['ours'] / med['hf']:.2f}" if impl == "hf" and "ours" in med else "")
            each = ", ".join(f"{x:.1f}" for x in speeds)
            print(f"{method:15} {lengths:8} {impl:5} {len(runs):4}  {med[impl]:8.1f} ({each:16})"
                  f"  {step_s:15.2f}  {max(r['peak_rss_gb'] for r in runs):11.2f}  {ratio}")


if __name__ == "__main__":
    main()
