"""ECD (Taobao) without Taobao training data: R10@1 and pairwise accuracy (real reply above each of
its 9 retrieved negatives) of every zero-shot scorer the project ships and of their rank fusions,
on the ECD sample's train part (77 contexts, 1 negative each) and test part (100 contexts x 10).
It shows why issue 14's ECD goal (R10@1 >= 0.30) is out of reach here: on test every scorer's
pairwise accuracy is about 0.5 (chance), and fusing them does not help.

    .venv/bin/python bench/ecd_fusion.py [--data ../shared/data] [--turns 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_matcher import ecd_groups, recall_at  # noqa: E402

from endcloud.evaluate.scorers import get_scorer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCORERS = ("match", "match-e5", "ngram", "similarity")
FUSIONS = (("match", "match-e5"), ("match", "ngram"), ("match", "similarity"), ("match", "match-e5", "ngram"),
           ("match", "match-e5", "similarity"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--turns", type=int, default=2)
    args = ap.parse_args()
    for split in ("train", "test"):
        path = args.data / "ecd_sample" / f"{split}.txt.gz"
        if not path.exists():
            print(f"{path} not found")
            return 2
        queries, cands, index, labels = ecd_groups(path, args.turns)
        labels = np.array(labels)
        scores = {name: np.asarray(get_scorer(name).score(queries, cands), dtype=float) for name in SCORERS}

        def ranks(s: np.ndarray) -> np.ndarray:
            out = np.zeros_like(s)
            for a, n in index:
                out[a:a + n] = s[a:a + n].argsort().argsort() / max(1, n - 1)
            return out

        def r_at_1(s: np.ndarray) -> float:
            return recall_at([(s[a:a + n], list(labels[a:a + n]).index(1)) for a, n in index])["R@1"]

        def pair_accuracy(s: np.ndarray) -> float:
            ok = total = 0
            for a, n in index:
                g, lab = s[a:a + n], labels[a:a + n]
                for i in np.where(lab == 1)[0]:
                    ok += int((g[i] > g[lab == 0]).sum())
                    total += int((lab == 0).sum())
            return round(ok / max(1, total), 3)

        print(f"ECD {split}: {len(index)} contexts, last {args.turns} turn(s)")
        for name, s in scores.items():
            print(f"  {name:<32} R10@1 {r_at_1(s):.2f}  pairwise {pair_accuracy(s):.3f}")
        for combo in FUSIONS:
            fused = sum(ranks(scores[k]) for k in combo)
            print(f"  {'rank fusion ' + '+'.join(combo):<32} R10@1 {r_at_1(fused):.2f}  pairwise {pair_accuracy(fused):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
