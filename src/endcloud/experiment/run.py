"""`endcloud experiment`'s recipe: each stage through its own `run(cfg)`, into one run folder."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from endcloud.cloud.config import CloudConfig, LabelConfig, PromptConfig
from endcloud.config import to_dict
from endcloud.end.config import DataConfig as TrainDataConfig
from endcloud.end.config import MethodConfig, ModelConfig, TrainConfig
from endcloud.errors import EndcloudError
from endcloud.evaluate.config import EvalConfig, SystemConfig
from endcloud.runs import atomic_write, new_run_dir, save_config, write_jsonl
from endcloud.experiment.config import (ORIGINAL, TINY, ExperimentConfig, ExperimentResult, HeldOutConfig,
                                         TeacherConfig, system_name)
from endcloud.experiment.report import write_reports

log = logging.getLogger(__name__)

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
