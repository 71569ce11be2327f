"""`endcloud experiment`'s reports: Table V-style replies, metrics per system, the loss and
Final-vs-step plot, summary.json."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from endcloud.runs import atomic_write, write_json
from endcloud.experiment.config import ORIGINAL, ExperimentConfig, ExperimentResult, system_name

log = logging.getLogger(__name__)

# -- reports ------------------------------------------------------------------------------------
REPORT_FILES = ("table_vi.md", "table_vi.csv", "fig3.png", "scores.json")


def write_reports(cfg: ExperimentConfig, run_dir: Path, eval_dir: Path, results: dict[str, Any],
                  trained: dict[str, Path], timings: dict[str, float]) -> dict[str, Path]:
    """Copy the evaluation's headline files up, then write Table V, metrics, loss and summary."""
    for name in REPORT_FILES:
        shutil.copyfile(eval_dir / name, run_dir / name)
    training = {m: training_stats(out) for m, out in trained.items()}
    rows = metrics(results)
    loss_rows = [{"method": m, **r} for m, out in trained.items() for r in _train_log(out)]
    texts = {"table_v.md": table_v(results, cfg.evaluate.table_v_queries),
             "metrics.md": metrics_markdown(rows, training), "metrics.csv": _csv(rows),
             "loss.csv": _csv(loss_rows)}
    for name, text in texts.items():
        with atomic_write(run_dir / name) as fh:
            fh.write(text)
    plot_training(results, trained, cfg.train.checkpoints, run_dir / "loss.png")
    files = {"config": run_dir / "config.yaml", "table_vi": run_dir / "table_vi.md",
             "table_vi_csv": run_dir / "table_vi.csv", "fig3": run_dir / "fig3.png",
             "scores": run_dir / "scores.json", "table_v": run_dir / "table_v.md",
             "metrics": run_dir / "metrics.md", "metrics_csv": run_dir / "metrics.csv",
             "loss": run_dir / "loss.png", "loss_csv": run_dir / "loss.csv",
             "evaluate_dir": eval_dir, "summary": run_dir / "summary.json"}
    write_json(files["summary"], summary(cfg, results, training, timings, files))
    return files


def training_stats(out: Path) -> dict[str, Any]:
    rows = _train_log(out)
    state = {}
    ckpts = sorted((out / "checkpoints").glob("step-*/trainer_state.json"))
    if ckpts:
        state = json.loads(ckpts[-1].read_text(encoding="utf-8"))
    steps, seconds = state.get("step", 0), state.get("elapsed_s", 0.0)
    return {"steps": steps, "seconds": round(seconds, 1),
            "s_per_step": round(seconds / steps, 3) if steps else None,
            "tokens_per_s": rows[-1]["tokens_per_s"] if rows else None,
            "first_loss": rows[0]["loss"] if rows else None,
            "final_loss": rows[-1]["loss"] if rows else None, "run_dir": str(out)}


def _train_log(out: Path) -> list[dict[str, Any]]:
    path = out / "train_log.jsonl"
    if not path.is_file():
        return []
    return [{k: r[k] for k in ("step", "loss", "lr", "tokens_per_s")}
            for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r]


def table_v(results: dict[str, Any], n: int) -> str:
    """Table V: the first `n` held-out queries with every system's reply and its Final."""
    lines = ["# Table V - replies of each system to held-out queries", ""]
    for i, q in enumerate(results["queries"][:n]):
        lines += [f"## {i + 1}. {_one_line(q['query'])}", "", "| System | Reply | Final |",
                  "|---|---|---:|"]
        if q.get("reference") is not None:
            lines.append(f"| cloud teacher (reference) | {_one_line(q['reference'])} | |")
        if q.get("human_reply"):
            lines.append(f"| human agent | {_one_line(q['human_reply'])} | |")
        for name, s in results["systems"].items():
            pq = s["per_query"][i]
            lines.append(f"| {name} | {_one_line(pq['reply']) or '(empty)'} | {pq['final']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _one_line(text: str | None, width: int = 160) -> str:
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


METRICS = [("final_mean", "Final"), ("grounded_mean", "Grounded"), ("ungrounded_share", "ungrounded"),
           ("sim_mean", "Sim"), ("match_mean", "Match"),
           ("bleu_mean", "BLEU"), ("rouge_l_mean", "ROUGE-L"), ("distinct_1", "distinct-1"),
           ("distinct_2", "distinct-2"), ("length_tokens_mean", "length"),
           ("latency_ms_mean", "latency_ms")]


def metrics(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, s in results["systems"].items():
        method, _, step = name.partition("@")
        row: dict[str, Any] = {"system": name, "method": method, "step": int(step or 0)}
        row.update({label: s["summary"].get(key) for key, label in METRICS})
        rows.append(row)
    return rows


def metrics_markdown(rows: list[dict[str, Any]], training: dict[str, dict[str, Any]]) -> str:
    labels = [label for _, label in METRICS]
    lines = ["# Metrics per system (held-out queries)", "",
             "| System | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    best = max(r["Final"] for r in rows)
    for r in rows:
        cells = [_fmt(r[k]) for k in labels]
        if r["Final"] == best:
            cells[0] = f"**{cells[0]}**"
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    lines += ["", "# Training per method", "",
              "| Method | steps | seconds | s/step | tokens/s | first loss | final loss |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for m, t in training.items():
        lines.append(f"| {m} | {t['steps']} | {t['seconds']} | {_fmt(t['s_per_step'])} | "
                     f"{_fmt(t['tokens_per_s'])} | {_fmt(t['first_loss'])} | {_fmt(t['final_loss'])} |")
    return "\n".join(lines) + "\n"


def _fmt(x: Any) -> str:
    """Scores with 3 decimals, large figures (latency, tokens/s) as integers."""
    if not isinstance(x, float):
        return "–" if x is None else str(x)
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.0f}"


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def plot_training(results: dict[str, Any], trained: dict[str, Path], checkpoints: list[int],
                  path: Path) -> None:
    """Left: training loss per method (raw, faint; smoothed). Right: mean Final vs step (the
    original model is step 0 of every method), i.e. which method converges faster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_final) = plt.subplots(1, 2, figsize=(11, 4))
    original = results["systems"][ORIGINAL]["summary"]["final_mean"]
    for k, (method, out) in enumerate(trained.items()):
        colour = f"C{k}"
        rows = _train_log(out)
        if rows:
            steps, losses = [r["step"] for r in rows], [r["loss"] for r in rows]
            ax_loss.plot(steps, losses, color=colour, alpha=0.25, lw=0.8)
            ax_loss.plot(steps, _ema(losses), color=colour, lw=1.8, label=method)
        finals = [results["systems"][system_name(method, s)]["summary"]["final_mean"]
                  for s in checkpoints]
        ax_final.plot([0, *checkpoints], [original, *finals], marker="o", color=colour, label=method)
    for s in checkpoints:
        ax_loss.axvline(s, color="grey", lw=0.6, ls=":")
    ax_loss.set(title="training loss (reply tokens)", xlabel="optimizer step", ylabel="loss")
    ax_final.axhline(original, color="black", ls="--", lw=1, label=f"{ORIGINAL} ({original:.3f})")
    ax_final.set(title="mean Final on held-out queries", xlabel="optimizer step",
                 ylabel="mean Final", ylim=(0, 1))
    for ax in (ax_loss, ax_final):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _ema(xs: list[float], weight: float = 0.9) -> list[float]:
    out, acc = [], xs[0]
    for i, x in enumerate(xs):
        acc = x if i == 0 else weight * acc + (1 - weight) * x
        out.append(acc)
    return out


def summary(cfg: ExperimentConfig, results: dict[str, Any], training: dict[str, dict[str, Any]],
            timings: dict[str, float], files: dict[str, Path]) -> dict[str, Any]:
    """The headline numbers, and the paper's expected shape checked against them (not asserted)."""
    finals = {n: s["summary"]["final_mean"] for n, s in results["systems"].items()}
    last = cfg.train.checkpoints[-1]
    at_last = {m.name: finals[system_name(m.name, last)] for m in cfg.train.methods}
    best_method = max(at_last, key=lambda m: at_last[m])
    return {
        "finals": finals,
        "queries": len(results["queries"]),
        "shape": {  # the paper: every method above the original, LoRA best and fastest
            "all_above_original_at_last_step": all(v > finals[ORIGINAL] for v in at_last.values()),
            "best_method_at_last_step": best_method,
            "first_checkpoint": {m.name: finals[system_name(m.name, cfg.train.checkpoints[0])]
                                 for m in cfg.train.methods},
        },
        "training": training,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0]},
        "files": {k: str(v) for k, v in files.items()},
    }


def print_summary(result: ExperimentResult) -> None:
    """What `endcloud experiment` prints at the end."""
    print((result.run_dir / "table_vi.md").read_text(encoding="utf-8").split("\n## ")[0].rstrip())
    print()
    print("mean Final per system:")
    for name, value in result.finals.items():
        print(f"  {name:<24} {value:.3f}")
    print(f"\nfinished in {sum(result.timings.values()) / 60:.1f} min; run folder {result.run_dir}")
    for key in ("table_vi", "fig3", "table_v", "metrics", "loss", "scores", "summary", "config"):
        print(f"  {key:<10} {result.files[key]}")
