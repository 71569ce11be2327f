"""Reports of an evaluation run: Table VI (Markdown + CSV), Fig. 3 (PNG) and scores.json.

Table VI as in the paper: one row per user input, one column per system, cells = Final, plus a
mean row; the Markdown adds a second table with the other metrics per system. Fig. 3: one panel
per system (the paper's (a)...(f)) with a bar per input, coloured by the rule that produced the
score, and a last panel comparing the systems' means.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from endcloud.runs import atomic_write, write_json

RULE_COLOURS = {"eq1": "#3b75af", "sim_only": "#ef8636", "match_only": "#519e3e"}
METRIC_COLUMNS = [("final_mean", "Final"), ("grounded_mean", "Grounded"),
                  ("ungrounded_share", "Ungrounded share"), ("sim_mean", "Sim"), ("match_mean", "Match"),
                  ("bleu_mean", "BLEU"), ("rouge_l_mean", "ROUGE-L"), ("distinct_1", "distinct-1"),
                  ("distinct_2", "distinct-2"), ("length_tokens_mean", "length (tokens)"),
                  ("latency_ms_mean", "latency (ms)")]


def write_reports(run_dir: Path, results: dict[str, Any], figure_max_queries: int = 30) -> None:
    write_json(run_dir / "scores.json", results)
    with atomic_write(run_dir / "table_vi.csv") as fh:
        fh.write(table_csv(results))
    with atomic_write(run_dir / "table_vi.md") as fh:
        fh.write(table_markdown(results))
    figure(results, run_dir / "fig3.png", figure_max_queries)


def _grid(results: dict[str, Any]) -> tuple[list[str], list[str], list[list[float]], list[float]]:
    names = list(results["systems"])
    queries = [q["query"] for q in results["queries"]]
    rows = [[results["systems"][s]["per_query"][i]["final"] for s in names]
            for i in range(len(queries))]
    means = [results["systems"][s]["summary"]["final_mean"] for s in names]
    return names, queries, rows, means


def table_csv(results: dict[str, Any]) -> str:
    names, queries, rows, means = _grid(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "user_input", *names])
    for q, row in zip(results["queries"], rows):
        w.writerow([q["id"], q["query"], *[f"{x:.4f}" for x in row]])
    w.writerow(["mean", "", *[f"{x:.4f}" for x in means]])
    return buf.getvalue()


def _cell(text: str, width: int = 60) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _bold_best(values: list[float]) -> list[str]:
    """Cells with the best value in bold (when there is more than one system to compare)."""
    top = max(values, default=0.0)
    return [f"**{x:.3f}**" if x == top and len(values) > 1 else f"{x:.3f}" for x in values]


def table_markdown(results: dict[str, Any]) -> str:
    names, queries, rows, means = _grid(results)
    lines = [f"# Table VI - Final score per user input (α = {results['alpha']}, "
             f"Θ = {results['theta']})", "",
             "| # | User input | " + " | ".join(names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for i, (q, row) in enumerate(zip(queries, rows), 1):
        lines.append(f"| {i} | {_cell(q)} | " + " | ".join(_bold_best(row)) + " |")
    lines.append("| | **mean** | " + " | ".join(_bold_best(means)) + " |")
    lines += ["", "Cells: Final = α·Sim(reply, cloud reply) + (1−α)·Match(input, reply); "
              "Sim alone where Match(input, cloud reply) < Θ. "
              f"Reference (cloud) replies: {results['reference']}.", "",
              "## Other metrics per system", "",
              "| System | " + " | ".join(t for _, t in METRIC_COLUMNS) + " | Eq. 1 / Sim only |",
              "|---|" + "---:|" * (len(METRIC_COLUMNS) + 1)]
    for name in names:
        s = results["systems"][name]["summary"]
        vals = [("–" if s.get(k) is None else f"{s[k]:.3f}" if k not in
                 ("length_tokens_mean", "latency_ms_mean") else f"{s[k]:.1f}")
                for k, _ in METRIC_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(vals) +
                     f" | {s['rules']['eq1']} / {s['rules']['sim_only']} |")
    lines += ["", "BLEU: JDDC style, mean sentence-BLEU-4 against each human reference; "
              "char-level tokens for Chinese, words for Latin script. ROUGE-L: LCS F1. "
              "distinct-n: unique / all n-grams over the system's replies. "
              "Grounded: the share of a reply's checkable facts (amounts, numbers, named policies) "
              "that the cloud reply, the input or the knowledge given support, over replies with one; "
              "Ungrounded share: replies with a fact nothing supports. Non-answers (echo, restatement, "
              "stock filler, empty) are capped (endcloud.evaluate.nonanswer).", ""]
    return "\n".join(lines)


def figure(results: dict[str, Any], path: Path, max_queries: int = 30) -> None:
    """Fig. 3: a panel per system, bars per input (first `max_queries`), and a means panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names, queries, rows, means = _grid(results)
    n = min(len(queries), max_queries)
    panels = len(names) + 1
    cols = min(panels, 4)
    nrows = math.ceil(panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    xs = list(range(1, n + 1))
    for k, name in enumerate(names):
        ax = flat[k]
        per_q = results["systems"][name]["per_query"][:n]
        ax.bar(xs, [q["final"] for q in per_q],
               color=[RULE_COLOURS[q["rule"]] for q in per_q], width=0.8)
        ax.axhline(means[k], color="black", lw=1, ls="--")
        ax.set_ylim(0, 1)
        g = results["systems"][name]["summary"].get("grounded_mean")
        ax.set_title(f"({chr(97 + k)}) {name}\nmean Final {means[k]:.3f}"
                     + (f" · grounded {g:.2f}" if g is not None else ""), fontsize=10)
        for x, q in zip(xs, per_q):  # a reply with a fact nothing supports: a red mark above its bar
            if q.get("unsupported"):
                ax.plot(x, min(q["final"] + 0.05, 0.97), marker="v", color="#c0392b", ms=4)
        ax.set_xlabel("input #")
        if n <= 15:
            ax.set_xticks(xs)
        if k % cols == 0:
            ax.set_ylabel("Final score")
        ax.grid(axis="y", alpha=0.3)
    ax = flat[len(names)]
    ax.bar(range(len(names)), means, color="#7f7f7f")
    for i, m in enumerate(means):
        ax.text(i, m + 0.02, f"{m:.3f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), [f"({chr(97 + i)})" for i in range(len(names))])
    ax.set_ylim(0, 1)
    ax.set_title("mean Final per system", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    for ax in flat[panels:]:
        ax.axis("off")
    shown = f"first {n} of {len(queries)} inputs" if n < len(queries) else f"{n} inputs"
    fig.legend(handles=[Patch(color=c, label=r) for r, c in RULE_COLOURS.items()]
               + [plt.Line2D([], [], color="black", ls="--", label="system mean"),
                  plt.Line2D([], [], color="#c0392b", marker="v", ls="", label="ungrounded fact")],
               loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.suptitle(f"Fig. 3 - Final score per input and system ({shown}; "
                 f"α = {results['alpha']}, Θ = {results['theta']})", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
