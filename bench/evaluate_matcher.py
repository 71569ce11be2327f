"""Does the score mean something? Matcher recall on ECD, Bitext right-vs-wrong, similarity ROC-AUC,
and scoring throughput on this CPU.

    nice -n 10 .venv/bin/python bench/evaluate_matcher.py [--data ../shared/data] [--bitext 300]

Prints one figure per line and writes them as JSON to runs/bench-evaluate-matcher.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_calibrate import bitext_rows, jddc_pairs  # noqa: E402
from evaluate_paraphrase_set import labelled_pairs  # noqa: E402

from endcloud.data.loaders import iter_dialogues  # noqa: E402
from endcloud.evaluate.scorers import get_scorer  # noqa: E402
from endcloud.evaluate.stage import score_pairs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def recall_at(scores_by_group: list[tuple[np.ndarray, int]], ks: tuple[int, ...] = (1, 2, 5)) -> dict:
    """R10@k: the right candidate ranks in the top k (ties count against it)."""
    ranks = np.array([int((s > s[right]).sum() + (s == s[right]).sum() - 1) for s, right in scores_by_group])
    return {f"R@{k}": round(float((ranks < k).mean()), 3) for k in ks}


def ecd(data: Path, scorer: str, turns: int) -> dict:
    groups: dict[str, list] = defaultdict(list)
    for d in iter_dialogues("ecd", data / "ecd_sample" / "test.txt.gz", keep_negatives=True):
        groups[d.meta["context_id"]].append(d)
    queries, cands, index = [], [], []
    for items in groups.values():
        ctx = " ".join(t.text for t in items[0].turns[:-1][-turns:])
        start = len(cands)
        for d in items:
            queries.append(ctx)
            cands.append(d.turns[-1].text)
        index.append((start, len(items), [d.meta["label"] for d in items].index(1)))
    s = get_scorer(scorer).score(queries, cands)
    return {"contexts": len(index), **recall_at([(s[a: a + n], r) for a, n, r in index])}


def bitext(data: Path, scorer: str, n: int, seed: int) -> dict:
    rows = bitext_rows(data, 1)  # odd rows: never used for calibration
    rng = random.Random(seed)
    rows = rng.sample(rows, min(n, len(rows)))
    pool = bitext_rows(data, 1)
    wrong = []
    for _, _, intent in rows:
        while True:
            cand = rng.choice(pool)
            if cand[2] != intent:
                wrong.append(cand[1])
                break
    s = get_scorer(scorer)
    right = s.score([q for q, _, _ in rows], [r for _, r, _ in rows])
    other = s.score([q for q, _, _ in rows], wrong)
    return {"queries": len(rows), "right_beats_other": round(float((right > other).mean()), 3)}


def jddc_recall(data: Path, scorer: str, n: int, seed: int) -> dict:
    """JDDC 2018 test: the agent's real reply among 9 other test replies (random negatives)."""
    pairs = jddc_pairs(data, "test", n, seed)
    rng = random.Random(seed)
    queries, cands, groups = [], [], []
    for i, (q, r) in enumerate(pairs):
        others = rng.sample([p[1] for j, p in enumerate(pairs) if j != i], 9)
        start = len(cands)
        queries += [q] * 10
        cands += [r] + others
        groups.append((start, 0))
    s = get_scorer(scorer).score(queries, cands)
    return {"queries": len(pairs), **recall_at([(s[a: a + 10], r) for a, r in groups])}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count 1/2)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def similarity_auc(scorer: str) -> dict:
    pairs = labelled_pairs()
    s = get_scorer(scorer).score([a for a, *_ in pairs], [b for _, b, *_ in pairs])
    y = np.array([p[2] for p in pairs])
    lang = np.array([p[3] for p in pairs])
    out = {"pairs": len(pairs), "auc_all": round(roc_auc(s, y), 3)}
    for code in ("zh", "en"):
        m = lang == code
        out[f"auc_{code}"] = round(roc_auc(s[m], y[m]), 3)
        out[f"mean_{code}"] = {"paraphrase": round(float(s[m & (y == 1)].mean()), 3),
                               "unrelated": round(float(s[m & (y == 0)].mean()), 3)}
    return out


def throughput(data: Path, n: int, seed: int) -> dict:
    """Eq. 1 pairs per second with cold caches (query, end reply, cloud reply all new texts)."""
    pairs = jddc_pairs(data, "test", 2 * n, seed + 1)
    queries = [q for q, _ in pairs[:n]]
    replies = [r for _, r in pairs[:n]]
    refs = [r for _, r in pairs[n: 2 * n]]
    t0 = time.perf_counter()
    score_pairs(queries, replies, refs)
    dt = time.perf_counter() - t0
    return {"pairs": n, "seconds": round(dt, 2), "pairs_per_s": round(n / dt, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--bitext", type=int, default=300)
    ap.add_argument("--jddc", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    res: dict = {}
    for scorer in ("similarity", "ngram"):
        res[f"similarity_auc[{scorer}]"] = similarity_auc(scorer)
        print(f"similarity ROC-AUC [{scorer}]", res[f"similarity_auc[{scorer}]"], flush=True)
    get_scorer("similarity"), get_scorer("match")  # load models before timing
    res["throughput"] = throughput(args.data, 50, args.seed)
    print("throughput (Eq. 1 pairs, cold cache)", res["throughput"], flush=True)
    for scorer in ("match", "ngram"):
        for turns in (1, 2):
            key = f"ecd[{scorer}, last {turns} turn(s)]"
            res[key] = ecd(args.data, scorer, turns)
            print(key, res[key], flush=True)
        res[f"bitext[{scorer}]"] = bitext(args.data, scorer, args.bitext, args.seed)
        print(f"bitext [{scorer}]", res[f"bitext[{scorer}]"], flush=True)
        res[f"jddc2018_test[{scorer}]"] = jddc_recall(args.data, scorer, args.jddc, args.seed)
        print(f"jddc2018 test R10 [{scorer}]", res[f"jddc2018_test[{scorer}]"], flush=True)
    out = REPO / "runs" / "bench-evaluate-matcher.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
