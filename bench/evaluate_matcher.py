"""Does the score mean something? For the default `match` (the shipped trained matcher), the zero-shot
`match-e5` it replaced and `ngram`: on the JDDC 2019 test split, how often the real reply beats
another session's reply, an echo of its query and a stock filler the matcher never trained on
(model alone, and with the non-answer guard Eq. 1 applies); ECD test R10@1; Bitext right-vs-wrong;
JDDC 2018 test R10; similarity ROC-AUC; Eq. 1 throughput, cold and warm, against `match-e5` in the
same run.

    nice -n 10 .venv/bin/python bench/evaluate_matcher.py [--data ../shared/data] \
        [--jddc2019-test 'runs/prep-jddc2019/data-*/test.jsonl']

The JDDC 2019 split comes from `endcloud data prepare` (configs/matcher.yaml says how); its test
part was never trained on. Prints one figure per line; writes runs/bench-evaluate-matcher.json.
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
from evaluate_paraphrase_set import labelled_pairs  # noqa: E402

from endcloud.data.loaders import iter_dialogues  # noqa: E402
from endcloud.evaluate.calibrate import bitext_rows, jddc_pairs  # noqa: E402
from endcloud.evaluate.scorers import get_scorer  # noqa: E402
from endcloud.evaluate.stage import score_pairs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def recall_at(scores_by_group: list[tuple[np.ndarray, int]], ks: tuple[int, ...] = (1, 2, 5)) -> dict:
    """R10@k: the right candidate ranks in the top k (ties count against it)."""
    ranks = np.array([int((s > s[right]).sum() + (s == s[right]).sum() - 1) for s, right in scores_by_group])
    return {f"R@{k}": round(float((ranks < k).mean()), 3) for k in ks}


def ecd_groups(path: Path, turns: int) -> tuple[list[str], list[str], list[tuple[int, int]], list[int]]:
    """ECD candidates flattened: queries (the last `turns` turns), candidates, (start, count) per
    context, and each candidate's label."""
    groups: dict[str, list] = defaultdict(list)
    for d in iter_dialogues("ecd", path, keep_negatives=True):
        groups[d.meta["context_id"]].append(d)
    queries, cands, index, labels = [], [], [], []
    for items in groups.values():
        ctx = " ".join(t.text for t in items[0].turns[:-1][-turns:])
        index.append((len(cands), len(items)))
        for d in items:
            queries.append(ctx)
            cands.append(d.turns[-1].text)
            labels.append(d.meta["label"])
    return queries, cands, index, labels


def ecd(data: Path, scorer: str, turns: int) -> dict:
    queries, cands, index, labels = ecd_groups(data / "ecd_sample" / "test.txt.gz", turns)
    s = get_scorer(scorer).score(queries, cands)
    return {"contexts": len(index), **recall_at([(s[a: a + n], labels[a:a + n].index(1)) for a, n in index])}


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


def throughput(data: Path, n: int, seed: int, match: str) -> dict:
    """Eq. 1 pairs per second, cold caches (all texts new to the encoders), then warm (again)."""
    from endcloud.evaluate import encoders

    for enc in encoders._LOADED.values():  # cold: forget what earlier figures encoded
        enc._cache.clear()
    head = getattr(getattr(get_scorer(match), "matcher", None), "backbone", None)
    getattr(head, "_offsets", {}).clear()  # and the trained matcher's per-query offsets
    pairs = jddc_pairs(data, "test", 2 * n, seed + 1)
    queries = [q for q, _ in pairs[:n]]
    replies = [r for _, r in pairs[:n]]
    refs = [r for _, r in pairs[n: 2 * n]]
    out = {"pairs": n}
    for run in ("cold", "warm"):
        t0 = time.perf_counter()
        score_pairs(queries, replies, refs, match=match)
        dt = time.perf_counter() - t0
        out[f"{run}_pairs_per_s"] = round(n / dt, 1)
    return out


def jddc2019(split: str, scorer: str, seed: int) -> dict:
    """The real reply vs another session's, an echo, a held-out filler - model alone and guarded."""
    from endcloud.evaluate import nonanswer
    from endcloud.evaluate.matcher import SHIPPED_DIR
    from endcloud.evaluate.matcher.data import held_out_fillers, read_pairs
    from endcloud.evaluate.matcher.train import figures

    pairs, _ = read_pairs([split], 0, seed)
    meta = json.loads((SHIPPED_DIR / "matcher.json").read_text(encoding="utf-8"))
    fillers = [f for f in held_out_fillers() if f not in set(meta["fillers"]["trained_on"])]
    s = get_scorer(scorer)
    alone = figures(s.score, pairs, fillers, seed)
    guarded = figures(lambda q, r: nonanswer.guard(q, r, s.score(q, r))[0], pairs, fillers, seed)
    return {"model": alone, "with_guard": guarded}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--jddc2019-test", default=str(REPO / "runs/prep-jddc2019/data-*/test.jsonl"))
    ap.add_argument("--bitext", type=int, default=300)
    ap.add_argument("--jddc", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from endcloud.evaluate.matcher.data import expand

    res: dict = {}
    for scorer in ("similarity", "ngram"):
        res[f"similarity_auc[{scorer}]"] = similarity_auc(scorer)
        print(f"similarity ROC-AUC [{scorer}]", res[f"similarity_auc[{scorer}]"], flush=True)
    for scorer in ("match", "match-e5"):
        get_scorer(scorer)  # load the model before timing
        res[f"throughput[{scorer}]"] = throughput(args.data, 200, args.seed, scorer)
        print(f"throughput (Eq. 1 pairs/s) [{scorer}]", res[f"throughput[{scorer}]"], flush=True)
    split = expand(args.jddc2019_test)
    for scorer in ("match", "match-e5", "ngram"):
        res[f"jddc2019_test[{scorer}]"] = jddc2019(str(split), scorer, args.seed)
        print(f"jddc2019 test [{scorer}]", res[f"jddc2019_test[{scorer}]"], flush=True)
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
