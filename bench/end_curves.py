"""Loss curves of the three PEFT methods on JDDC, and a short lr check for the prefix methods.

    nice -n 5 .venv/bin/python bench/end_curves.py --train /tmp/jddc/data-X/train.jsonl \
        --runs lora:5e-5:200,prefix-tuning:5e-5:200,p-tuning-v2:5e-5:200 \
        --runs-lr prefix-tuning:1e-3:100,p-tuning-v2:1e-2:100
    .venv/bin/python bench/end_curves.py --plot-only      # redraw from the run folders

Every run is the real recipe (`endcloud end train`, one process each, so peak RSS is per run)
with log_every=1 and a constant lr (a short window of the paper's long run). All runs draw the same
examples in the same order (seed 42), so per-step losses are comparable across runs. Writes
`<prefix>.csv` (every logged step), `<prefix>.png` (raw + EMA-smoothed) and `<prefix>.md` (table).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLORS = {"lora": "tab:blue", "prefix-tuning": "tab:orange", "p-tuning-v2": "tab:green"}


def parse_runs(spec: str) -> list[tuple[str, float, int]]:
    """"lora:5e-5:200,p-tuning-v2:1e-2:100" -> [(method, lr, steps), ...]."""
    out = []
    for item in filter(None, spec.split(",")):
        method, lr, steps = item.split(":")
        out.append((method, float(lr), int(steps)))
    return out


def run_name(method: str, lr: float, steps: int) -> str:
    return f"{method}-lr{lr:g}-{steps}"


def train(args: argparse.Namespace, method: str, lr: float, steps: int) -> dict:
    """One `endcloud end train` process; returns its wall time and peak RSS (from wait4)."""
    run_dir = Path(args.runs_dir) / run_name(method, lr, steps)
    if (run_dir / "adapter" / "manifest.json").is_file() and not args.force:
        return json.loads((run_dir / "bench.json").read_text())
    cmd = [sys.executable, "-m", "endcloud", "end", "train", "--config", "configs/train.yaml",
           f"model.name={args.model}", f"model.dtype={args.dtype}", f"method.name={method}",
           f"data.natural={args.train}", f"data.max_input_tokens={args.max_input}",
           f"data.max_output_tokens={args.max_output}", f"steps={steps}", f"lr={lr:.2e}",  # YAML 1.1 reads 5e-05 as a string
           "scheduler=constant", f"grad_accum={args.grad_accum}", "batch_size=1",
           "save_steps=[]", "save_every=0", "log_every=1", "store=false", f"seed={args.seed}",
           f"run_dir={run_dir}"]
    if run_dir.exists():  # a stale, unfinished run of the same name
        import shutil

        shutil.rmtree(run_dir)
    print("$ " + " ".join(cmd), flush=True)
    env = {**os.environ, "ENDCLOUD_PROGRESS": "0"}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{method} lr {lr} failed (status {status})")
    info = {"method": method, "lr": lr, "steps": steps, "wall_s": time.perf_counter() - t,
            "peak_rss_gb": usage.ru_maxrss / 2**20, "cmd": " ".join(cmd[1:])}
    (run_dir / "bench.json").write_text(json.dumps(info))
    return info


def load_log(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines() if x]


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    out, s = [], values[0]
    for v in values:
        s = alpha * v + (1 - alpha) * s
        out.append(s)
    return out


def summarise(run_dir: Path, info: dict, window: int) -> dict:
    rows = load_log(run_dir)
    losses = [r["loss"] for r in rows]
    last = rows[-1]
    elapsed = last["tokens"] / last["tokens_per_s"]  # training time, model load excluded
    at = losses[max(0, window - 20): window]  # same steps for every run: the lr check's horizon
    return {**info, "first20": sum(losses[:20]) / len(losses[:20]), "at_window": sum(at) / len(at),
            "last20": sum(losses[-20:]) / len(losses[-20:]), "s_per_step": elapsed / last["step"],
            "tokens_per_s": last["tokens_per_s"], "rows": rows}


def plot(summaries: list[dict], png: Path, base_runs: set[str], window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, alpha, title, pick in (
            (axes[0], 0.05, "All methods at the paper's lr 5e-5 (batch 1; EMA 0.05)",
             lambda s: s["name"] in base_runs),
            (axes[1], 0.1, "lr check, prefix methods: other lr (solid) vs 5e-5 (dashed); EMA 0.1",
             lambda s: s["method"] != "lora")):
        for s in filter(pick, summaries):
            steps = [r["step"] for r in s["rows"]]
            losses = [r["loss"] for r in s["rows"]]
            style = "--" if ax is axes[1] and s["lr"] == 5e-5 else "-"
            color = COLORS.get(s["method"], "k")
            ax.plot(steps, losses, color=color, alpha=0.15, lw=0.7, ls=style)
            ax.plot(steps, ema(losses, alpha), color=color, lw=2, ls=style,
                    label=f"{s['method']} lr {s['lr']:g}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss (reply tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if axes[1].lines:
        axes[1].set_xlim(0, window + 2)
    fig.suptitle("Qwen2.5-Coder-0.5B (bf16) on JDDC 2019 train, same examples in the same order "
                 "for every run; faint = raw per-step loss, bold = smoothed", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", default="")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--runs", default="lora:5e-5:200,prefix-tuning:5e-5:200,p-tuning-v2:5e-5:200")
    p.add_argument("--runs-lr", default="prefix-tuning:1e-3:100,p-tuning-v2:1e-2:100",
                   help="extra runs for the lr check")
    p.add_argument("--max-input", type=int, default=256)
    p.add_argument("--max-output", type=int, default=512)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runs-dir", default="runs/bench-curves")
    p.add_argument("--prefix", default="bench/results/end_curves")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    args = p.parse_args()

    base, extra = parse_runs(args.runs), parse_runs(args.runs_lr)
    window = min(s for _, _, s in extra or base)  # the lr check compares losses up to this step
    summaries = []
    for method, lr, steps in base + extra:
        run_dir = Path(args.runs_dir) / run_name(method, lr, steps)
        if args.plot_only:
            if not (run_dir / "bench.json").is_file():
                continue
            info = json.loads((run_dir / "bench.json").read_text())
        else:
            info = train(args, method, lr, steps)
        summaries.append({**summarise(run_dir, info, window), "name": run_name(method, lr, steps)})

    prefix = Path(args.prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{prefix}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "method", "lr", "step", "loss", "tokens", "tokens_per_s"])
        for s in summaries:
            for r in s["rows"]:
                w.writerow([s["name"], s["method"], s["lr"], r["step"], r["loss"], r["tokens"],
                            r["tokens_per_s"]])
    plot(summaries, Path(f"{prefix}.png"), {run_name(*b) for b in base}, window)
    head = ("| method | lr | steps | first-20 mean loss | last-20 mean loss "
            f"| mean loss steps {window - 19}-{window} | s/step | tokens/s | peak RSS GB |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    table = head + "".join(
        f"| {s['method']} | {s['lr']:g} | {s['steps']} | {s['first20']:.3f} | {s['last20']:.3f} "
        f"| {s['at_window']:.3f} | {s['s_per_step']:.2f} | {s['tokens_per_s']:.0f} "
        f"| {s['peak_rss_gb']:.2f} |\n"
        for s in summaries)
    Path(f"{prefix}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
