"""`endcloud experiment`: the seed paper's experiment (Tables V and VI, Fig. 3) as one command.

    endcloud experiment --config configs/paper.yaml            # CPU profile, JDDC samples, < 1 h
    endcloud experiment --config configs/paper-gpu.yaml        # paper scale: 30,000 steps, N = 500
    endcloud experiment --config configs/tiny.yaml             # the same recipe on a tiny model (CI)
    endcloud experiment --config configs/paper.yaml run_dir=runs/experiment-X resume=true

Top to bottom, every stage through its own `run(cfg)`:
  1. prepare   corpora -> clean, masked `messages` splits           (endcloud.data.prepare)
  2. held-out  a fixed set of test queries, one per session          (here)
  3. teacher   cloud labels for the training queries with the N-example prompt of Table II, and
               the cloud's reply to every held-out query: the reference of Sim in Eq. 1
                                                                     (endcloud.cloud.label)
  4. train     Prefix-Tuning, P-Tuning v2 and LoRA on the labels, checkpoints at the configured
               steps                                                 (endcloud.end.train)
  5. evaluate  the original model and every checkpoint on the held-out queries: Table VI, Fig. 3,
               BLEU / ROUGE-L / distinct-n                           (endcloud.evaluate.stage)
  6. report    Table V-style replies side by side, metrics per system, the loss and
               Final-vs-step plot, summary.json                      (here)

Everything lands in one run folder beside the resolved `config.yaml`. With a fixed `run_dir` and
`resume=true`, a rerun reuses the prepared data, gets finished labels from the store's cache
without calling the teacher, skips finished trainings and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from endcloud.cloud.config import CloudConfig, LabelConfig, PromptConfig
from endcloud.config import check, to_dict
from endcloud.data.config import DataConfig as PrepareConfig
from endcloud.end.config import DataConfig as TrainDataConfig
from endcloud.end.config import MethodConfig, ModelConfig, TrainConfig
from endcloud.errors import EndcloudError
from endcloud.evaluate.config import EvalConfig, GenerationConfig, SystemConfig
from endcloud.runs import atomic_write, new_run_dir, save_config, write_json, write_jsonl

log = logging.getLogger(__name__)

TINY = "tiny"  # train.model.name: build `endcloud.tiny` into the run folder (no download)
ORIGINAL = "original"


# -- configuration ------------------------------------------------------------------------------
@dataclass
class HeldOutConfig:
    """Which test queries every system answers (the rows of Table VI)."""

    split: Literal["train", "validation", "test"] = "test"
    n: int = 8
    min_query_chars: int = 4  # skip "嗯", "ok": nothing to judge
    one_per_session: bool = True  # no session dominates the table
    seed: int = 42
    reference: Literal["cloud", "human"] = "cloud"  # Sim against: the teacher (paper) or the agent

    def __post_init__(self) -> None:
        check(self.n > 0, "heldout.n", "must be > 0")
        check(self.min_query_chars >= 1, "heldout.min_query_chars", "must be >= 1")


@dataclass
class TeacherConfig:
    """The cloud teacher: endpoint and Table II prompt (N = prompt.n_examples)."""

    train_queries: int = 64  # training samples labelled (0 = the whole train split)
    seed: int = 42  # which training samples, when not all
    max_item_failures: int = 3
    cloud: CloudConfig = field(default_factory=lambda: CloudConfig(base_url="local"))
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        check(self.train_queries >= 0, "teacher.train_queries", "must be >= 0 (0 = all)")


def _paper_methods() -> list[MethodConfig]:
    return [MethodConfig(name="prefix-tuning"), MethodConfig(name="p-tuning-v2"),
            MethodConfig(name="lora")]


@dataclass
class TrainSettings:
    """One recipe for every method (Table IV); a method's own knobs live in `methods[]`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    methods: list[MethodConfig] = field(default_factory=_paper_methods)
    checkpoints: list[int] = field(default_factory=lambda: [3000, 5000, 15000, 30000])
    lr: float = 5e-5
    lr_per_method: dict[str, float] = field(default_factory=dict)
    scheduler: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 1
    grad_accum: int = 1
    natural: bool = False  # also train on the human replies of the train split
    label_ratio: float = 0.5  # share of cloud labels when `natural` is on
    max_input_tokens: int = 256
    max_output_tokens: int = 512
    log_every: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        check(bool(self.methods), "train.methods", "list at least one method")
        names = [m.name for m in self.methods]
        check(len(set(names)) == len(names), "train.methods", "each method at most once")
        check(bool(self.checkpoints) and all(s > 0 for s in self.checkpoints),
              "train.checkpoints", "list the steps to evaluate, e.g. [3000, 5000, 15000]")
        self.checkpoints = sorted(set(self.checkpoints))

    @property
    def steps(self) -> int:
        return self.checkpoints[-1]


@dataclass
class EvalSettings:
    """How systems are scored (Eq. 1) and sampled; every checkpoint of every method is a system."""

    similarity: str = "similarity"
    match: str = "match"
    alpha: float = 0.8
    theta: float = 0.2
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    figure_max_queries: int = 30
    table_v_queries: int = 5  # queries shown with every system's reply (Table V)


@dataclass
class ExperimentConfig:
    """`endcloud experiment`: prepare -> labels -> train x methods -> evaluate -> report."""

    data: PrepareConfig = field(default_factory=PrepareConfig)
    prepared: str = ""  # an existing data run folder (train.jsonl, test.jsonl): skips `prepare`
    heldout: HeldOutConfig = field(default_factory=HeldOutConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    evaluate: EvalSettings = field(default_factory=EvalSettings)
    output_root: str = "runs"
    run_dir: str = ""  # a fixed run folder (needed for resume); default runs/experiment-<time>
    resume: bool = False

    def __post_init__(self) -> None:
        check(not self.resume or bool(self.run_dir), "run_dir",
              "resume=true needs the run folder to continue: run_dir=runs/experiment-...")


@dataclass
class ExperimentResult:
    run_dir: Path
    finals: dict[str, float]  # system -> mean Final (Table VI's mean row)
    files: dict[str, Path]
    timings: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)


# -- the recipe ---------------------------------------------------------------------------------
def run(cfg: ExperimentConfig) -> ExperimentResult:
    """Run the whole experiment into one run folder; return the mean Final per system."""
    run_dir = Path(cfg.run_dir) if cfg.run_dir else new_run_dir(cfg.output_root, "experiment")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(run_dir, cfg)
    timings: dict[str, float] = {}
    _say(f"experiment -> {run_dir}")
    model = resolve_model(cfg.train.model, run_dir)
    with _stage(1, "prepare", "prepare the corpora", timings):
        data_dir = prepare(cfg, run_dir)
    with _stage(2, "heldout", f"pick {cfg.heldout.n} held-out queries", timings):
        heldout = pick_heldout(data_dir / f"{cfg.heldout.split}.jsonl", cfg.heldout, run_dir)
    with _stage(3, "label", f"teacher labels (Table II prompt, N = "
                            f"{cfg.teacher.prompt.n_examples})", timings):
        labels, reference = label(cfg, data_dir, heldout, run_dir)
    trained: dict[str, Path] = {}
    for m in cfg.train.methods:
        with _stage(4, f"train.{m.name}", f"train {m.name} for {cfg.train.steps} steps", timings):
            trained[m.name] = train(cfg, model, m, labels, data_dir, run_dir)
    with _stage(5, "evaluate", "evaluate the original model and every checkpoint", timings):
        eval_dir, results = evaluate(cfg, model, trained, reference, run_dir)
    with _stage(6, "report", "reports", timings):
        files = write_reports(cfg, run_dir, eval_dir, results, trained, timings)
    finals = {name: s["summary"]["final_mean"] for name, s in results["systems"].items()}
    summary = json.loads(files["summary"].read_text(encoding="utf-8"))
    return ExperimentResult(run_dir, finals, files, timings, summary)


def resolve_model(model: ModelConfig, run_dir: Path) -> ModelConfig:
    """`tiny` -> a tiny Llama built in the run folder (CI); anything else is left to `endcloud.end`."""
    if model.name != TINY:
        return model
    from endcloud.tiny import build_tiny_model

    return dataclasses.replace(model, name=str(build_tiny_model(run_dir / "tiny-model")))


def prepare(cfg: ExperimentConfig, run_dir: Path) -> Path:
    """The data stage's run folder (reused from `prepared`, or from an earlier try on resume)."""
    if cfg.prepared:
        return Path(cfg.prepared)
    done = sorted(run_dir.glob("data-*/train.jsonl"))
    if cfg.resume and done:
        return done[-1].parent
    from endcloud.data.prepare import run as prepare_run

    result = prepare_run(dataclasses.replace(cfg.data, output_root=str(run_dir)))
    totals = result.stats["totals"]
    _say("  samples: " + ", ".join(f"{s} {totals.get(f'samples_{s}', 0)}"
                                   for s in ("train", "validation", "test")))
    return result.run_dir


def pick_heldout(split_file: Path, hcfg: HeldOutConfig, run_dir: Path) -> Path:
    """`heldout.jsonl`: `n` samples of the split, seeded, one per session, query long enough."""
    rows = [json.loads(x) for x in split_file.read_text(encoding="utf-8").splitlines() if x.strip()]
    random.Random(hcfg.seed).shuffle(rows)
    picked, sessions = [], set()
    for row in rows:
        query = [m for m in row["messages"] if m["role"] == "user"][-1]["content"]
        session = row.get("meta", {}).get("session_id", "")
        if len(query.strip()) < hcfg.min_query_chars or (hcfg.one_per_session and session in sessions):
            continue
        sessions.add(session)
        picked.append(row)
        if len(picked) == hcfg.n:
            break
    if not picked:
        raise EndcloudError(f"{split_file}: no {hcfg.split} sample has a query of "
                            f">= {hcfg.min_query_chars} characters; lower heldout.min_query_chars")
    if len(picked) < hcfg.n:
        log.warning("only %d held-out queries available (heldout.n=%d)", len(picked), hcfg.n)
    path = run_dir / "heldout.jsonl"
    write_jsonl(path, picked)
    return path


def label(cfg: ExperimentConfig, data_dir: Path, heldout: Path,
          run_dir: Path) -> tuple[Path, Path | None]:
    """Cloud labels for the training queries and (reference=cloud) for the held-out ones.

    One teacher serves both jobs; with `cloud.base_url: local` it is started once, here.
    Returns (training labels JSONL, reference replies JSONL or None for the human reference).
    """
    from endcloud.cloud.label import local_teacher

    train_file = data_dir / "train.jsonl"
    subset = _training_subset(train_file, cfg.teacher, run_dir)
    teacher = cfg.teacher
    with contextlib.ExitStack() as stack:
        cloud = (stack.enter_context(local_teacher(teacher.cloud)) if teacher.cloud.is_local
                 else teacher.cloud)
        # examples come from the whole train split (never the held-out one); a sample's own
        # session is left out of its prompt by the prompt builder
        prompt = dataclasses.replace(teacher.prompt, examples=str(train_file))
        labels = _label_job(cfg, cloud, prompt, subset, run_dir / "labels-train.jsonl", "training")
        reference = None
        if cfg.heldout.reference == "cloud":
            ref_labels = _label_job(cfg, cloud, prompt, heldout, run_dir / "labels-heldout.jsonl",
                                    "held-out")
            reference = _reference_file(heldout, ref_labels, run_dir)
    return labels, reference


def _training_subset(train_file: Path, teacher: TeacherConfig, run_dir: Path) -> Path:
    lines = [x for x in train_file.read_text(encoding="utf-8").splitlines() if x.strip()]
    if teacher.train_queries and teacher.train_queries < len(lines):
        lines = random.Random(teacher.seed).sample(lines, teacher.train_queries)
    path = run_dir / "train-queries.jsonl"
    with atomic_write(path) as fh:
        fh.write("".join(x + "\n" for x in lines))
    return path


def _label_job(cfg: ExperimentConfig, cloud: CloudConfig, prompt: PromptConfig, samples: Path,
               output: Path, what: str) -> Path:
    from endcloud.cloud.label import run as label_run

    res = label_run(LabelConfig(input=str(samples), output=str(output),
                                output_root=str(output.parent), cloud=cloud, prompt=prompt,
                                max_item_failures=cfg.teacher.max_item_failures))
    _say(f"  {what}: {res.labelled} labels ({res.new} new, {res.cached} cached, "
         f"{res.quarantined} quarantined, {res.pending} pending)")
    if res.labelled == 0:
        raise EndcloudError(f"the teacher produced no {what} label (quarantine: "
                            f"{res.run_dir / 'quarantine.jsonl'}); check cloud.* in the config")
    return output


def _reference_file(heldout: Path, labels: Path, run_dir: Path) -> Path:
    """`references.jsonl` ({id, query, reply}); held-out queries without a cloud reply are dropped
    from `heldout.jsonl` (Eq. 1 needs the cloud's reply) and listed in `heldout-dropped.jsonl`."""
    replies = {}
    for line in labels.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        replies[row["meta"]["id"]] = (row["messages"][-2]["content"], row["messages"][-1]["content"])
    rows = [json.loads(x) for x in heldout.read_text(encoding="utf-8").splitlines() if x.strip()]
    kept = [r for r in rows if r["meta"]["id"] in replies]
    if len(kept) < len(rows):
        write_jsonl(run_dir / "heldout-dropped.jsonl", [r for r in rows if r not in kept])
        write_jsonl(heldout, kept)
        log.warning("%d held-out queries have no cloud reply and were dropped", len(rows) - len(kept))
    path = run_dir / "references.jsonl"
    write_jsonl(path, ({"id": r["meta"]["id"], "query": replies[r["meta"]["id"]][0],
                        "reply": replies[r["meta"]["id"]][1]} for r in kept))
    return path


def train(cfg: ExperimentConfig, model: ModelConfig, method: MethodConfig, labels: Path,
          data_dir: Path, run_dir: Path) -> Path:
    """Train one method to the last checkpoint; return its training run folder."""
    from endcloud.end.train import run as train_run

    t = cfg.train
    out = run_dir / "train" / method.name
    if (out / "adapter" / "manifest.json").is_file() and cfg.resume:
        _say(f"  {method.name}: already trained ({out / 'adapter'})")
        return out
    resume = cfg.resume and (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir())
    if out.exists() and not resume:
        shutil.rmtree(out)  # a half-finished try with no checkpoint: start it again cleanly
    tcfg = TrainConfig(
        model=model, method=method,
        data=TrainDataConfig(natural=str(data_dir / "train.jsonl") if t.natural else "",
                             labels=str(labels), label_ratio=t.label_ratio,
                             max_input_tokens=t.max_input_tokens, max_output_tokens=t.max_output_tokens),
        steps=t.steps, lr=t.lr, lr_per_method=t.lr_per_method, scheduler=t.scheduler,
        warmup_steps=t.warmup_steps, weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        batch_size=t.batch_size, grad_accum=t.grad_accum, save_steps=t.checkpoints, save_every=0,
        log_every=t.log_every, seed=t.seed, run_dir=str(out), resume=resume)
    res = train_run(tcfg)
    _say(f"  {method.name}: final loss {res.final_loss:.3f}, {res.tokens_per_s:.0f} tokens/s")
    return out


def system_name(method: str, step: int) -> str:
    return f"{method}@{step}"


def evaluate(cfg: ExperimentConfig, model: ModelConfig, trained: dict[str, Path],
             reference: Path | None, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Table VI, Fig. 3 and every score through the evaluation stage."""
    from endcloud.evaluate.stage import run as eval_run

    e = cfg.evaluate
    systems = [SystemConfig(name=ORIGINAL, model=model.name)]
    for method, out in trained.items():
        for step in cfg.train.checkpoints:
            systems.append(SystemConfig(name=system_name(method, step), model=model.name,
                                        adapter=str(out / "checkpoints" / f"step-{step:07d}")))
    gen = dataclasses.replace(e.generation, dtype=model.dtype)
    ecfg = EvalConfig(queries=str(run_dir / "heldout.jsonl"), reference=str(reference or ""),
                      systems=systems, similarity=e.similarity, match=e.match, alpha=e.alpha,
                      theta=e.theta, generation=gen, output_dir=str(run_dir),
                      figure_max_queries=e.figure_max_queries)
    if cfg.resume:  # an evaluation of exactly this config that finished its reports is kept
        for done in sorted(run_dir.glob("evaluate-*/scores.json"), reverse=True):
            results = json.loads(done.read_text(encoding="utf-8"))
            if results.get("config") == to_dict(ecfg):
                _say(f"  reusing the finished evaluation {done.parent}")
                return done.parent, results
    res = eval_run(ecfg)
    return res.run_dir, res.results


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


# -- plumbing -----------------------------------------------------------------------------------
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stage(n: int, key: str, title: str, timings: dict[str, float]) -> Iterator[None]:
    _say(f"[{n}/6] {title}")
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    timings[key] = seconds
    _say(f"      done in {seconds:.0f} s")


def register(sub: argparse._SubParsersAction) -> None:
    from endcloud.cli import add_config_args

    p = sub.add_parser("experiment", help="the paper's experiment end to end: Tables V/VI, Fig. 3",
                       description=__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, default_config="configs/paper.yaml")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from endcloud.config import load_config

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per teacher call hides the bars
    result = run(load_config(ExperimentConfig, args.config, args.overrides))
    print_summary(result)
    return 0
