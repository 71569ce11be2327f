"""Loss curves of the three PEFT methods on JDDC: at the paper's lr, and at each one's own lr.

    nice -n 5 .venv/bin/python bench/end_curves.py --train <jddc2019>/train.jsonl \
        --runs lora:5e-5:200,prefix-tuning:5e-5:200,p-tuning-v2:5e-5:200 \
        --runs-lr p-tuning-v2:1e-2:200 --runs-check prefix-tuning:1e-3:60 \
        --run-dir "final run"=runs/end-train-X
    .venv/bin/python bench/end_curves.py --plot-only ...  # redraw from the run folders

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
import re
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
           "lr_per_method={}",  # this run's lr, whatever train.yaml recommends per method
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


def info_from_config(run_dir: Path) -> dict:
    """bench.json's fields for a run folder trained outside this script (peak RSS unknown)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    return {"method": cfg["method"]["name"], "lr": float(cfg["lr"]), "steps": cfg["steps"],
            "peak_rss_gb": float("nan"), "cmd": f"(run folder {run_dir})"}


def ema(values: list[float], alpha: float = 0.1) -> list[float]:
    out, s = [], values[0]
    for v in values:
        s = alpha * v + (1 - alpha) * s
        out.append(s)
    return out


def mean_loss(losses: list[float], upto: int) -> float:
    """Mean loss over steps upto-19..upto (nan when the run is shorter)."""
    if len(losses) < upto:
        return float("nan")
    return sum(losses[upto - 20: upto]) / 20


def summarise(run_dir: Path, info: dict, horizons: list[int]) -> dict:
    rows = load_log(run_dir)
    cfg = (run_dir / "config.yaml").read_text()
    losses = [r["loss"] for r in rows]
    last = rows[-1]
    elapsed = last["tokens"] / last["tokens_per_s"]  # training time, model load excluded
    lengths = "/".join(re.findall(r"max_(?:in|out)put_tokens: (\d+)", cfg))
    schedule = re.search(r"^scheduler: (\w+)", cfg, re.M).group(1)
    return {**info, "first20": sum(losses[:20]) / len(losses[:20]),
            "last20": sum(losses[-20:]) / len(losses[-20:]),
            "at": {h: mean_loss(losses, h) for h in horizons}, "lengths": lengths,
            "mean_all": {h: sum(losses[:h]) / h if len(losses) >= h else float("nan")
                         for h in horizons[-1:]},  # over the same examples for every run
            "schedule": schedule, "s_per_step": elapsed / last["step"],
            "tokens_per_s": last["tokens_per_s"], "rows": rows}


def plot(summaries: list[dict], png: Path) -> None:
    """Left: every method at the paper's lr. Right: each method at its recommended lr (solid),
    the paper's lr (dashed) and other lrs checked (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    right = [s for s in summaries if s["role"] != "paper"]
    fig, axes = plt.subplots(1, 2 if right else 1, figsize=(13 if right else 7, 4.8), squeeze=False)
    panels = [(axes[0][0], "All methods at the paper's lr 5e-5 (EMA 0.05)", 0.05,
               [s for s in summaries if s["role"] == "paper"])]
    own = {s["method"] for s in summaries if s["role"] == "rec"}  # methods with an own lr
    if right:
        panels.append((axes[0][1], "Own lr (solid), paper's 5e-5 (dashed), other lr tried (dotted)", 0.05,
                       right + [s for s in summaries if s["role"] == "paper"]))
    for i, (ax, title, alpha, runs) in enumerate(panels):
        for s in runs:
            steps = [r["step"] for r in s["rows"]]
            losses = [r["loss"] for r in s["rows"]]
            style = "-" if i == 0 else {"paper": "--" if s["method"] in own else "-",
                                        "rec": "-", "check": ":"}[s["role"]]
            color = COLORS.get(s["method"], "k")
            if style == "-":
                ax.plot(steps, losses, color=color, alpha=0.12, lw=0.7, ls=style)
            label = f"{s['method']} lr {s['lr']:g}" + (f" ({s['label']})" if s.get("label") else "")
            ax.plot(steps, ema(losses, alpha), color=color, lw=2 if style == "-" else 1.4,
                    ls=style, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step (batch 1)")
        ax.set_ylabel("training loss (reply tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Qwen2.5-Coder-0.5B (bf16) on JDDC 2019 train, same examples in the same order "
                 "for every run; faint = raw per-step loss, bold = smoothed", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def num(x: float, fmt: str = ".3f") -> str:
    return "-" if x != x else format(x, fmt)  # nan: not measured, or the run is shorter


def table(summaries: list[dict], horizons: list[int]) -> str:
    role = {"paper": "paper lr", "rec": "recommended lr", "check": "lr check"}
    cols = [f"mean loss steps {h - 19}-{h}" for h in horizons] + [f"mean loss steps 1-{horizons[-1]}"]
    head = ["run", "method", "lr", "schedule", "in/out tokens", "steps", "first-20 mean loss",
            *cols, "last-20 mean loss", "s/step", "tokens/s", "peak RSS GB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [role[s["role"]], s["method"], f"{s['lr']:g}", s["schedule"], s["lengths"],
                 str(s["steps"]), num(s["first20"]), *map(num, s["at"].values()),
                 *map(num, s["mean_all"].values()), num(s["last20"]), num(s["s_per_step"], ".2f"),
                 num(s["tokens_per_s"], ".0f"), num(s["peak_rss_gb"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", default="")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--runs", default="lora:5e-5:200,prefix-tuning:5e-5:200,p-tuning-v2:5e-5:200",
                   help="runs at the paper's lr (left panel)")
    p.add_argument("--runs-lr", default="p-tuning-v2:1e-2:200",
                   help="runs at each method's recommended lr (right panel, solid)")
    p.add_argument("--runs-check", default="", help="other lrs tried (right panel, dotted)")
    p.add_argument("--run-dir", action="append", default=[], metavar="LABEL=PATH",
                   help="an existing run folder drawn as a recommended-lr curve, e.g. the "
                        "final LoRA run (its config.yaml says method, lr, lengths)")
    p.add_argument("--horizons", default="60,200", help="steps at which runs are compared")
    p.add_argument("--max-input", type=int, default=256)
    p.add_argument("--max-output", type=int, default=512)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runs-dir", default="runs/bench-curves")
    p.add_argument("--prefix", default="bench/results/end_curves")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--force", action="store_true", help="retrain runs that already finished")
    args = p.parse_args()

    horizons = [int(h) for h in args.horizons.split(",") if h]
    specs = [(role, *run) for role, spec in (("paper", args.runs), ("rec", args.runs_lr),
                                             ("check", args.runs_check)) for run in parse_runs(spec)]
    summaries = []
    for role, method, lr, steps in specs:
        run_dir = Path(args.runs_dir) / run_name(method, lr, steps)
        if args.plot_only:
            if not (run_dir / "bench.json").is_file():
                continue
            info = json.loads((run_dir / "bench.json").read_text())
        else:
            info = train(args, method, lr, steps)
        summaries.append({**summarise(run_dir, info, horizons), "role": role,
                          "name": run_name(method, lr, steps)})
    for item in args.run_dir:
        label, path = item.split("=", 1)
        summaries.append({**summarise(Path(path), info_from_config(Path(path)), horizons),
                          "role": "rec", "name": Path(path).name, "label": label})

    prefix = Path(args.prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{prefix}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "role", "method", "lr", "step", "loss", "tokens", "tokens_per_s"])
        for s in summaries:
            for r in s["rows"]:
                w.writerow([s["name"], s["role"], s["method"], s["lr"], r["step"], r["loss"],
                            r["tokens"], r["tokens_per_s"]])
    plot(summaries, Path(f"{prefix}.png"))
    text = table(summaries, horizons)
    Path(f"{prefix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
