"""`endcloud evaluate calibrate`: refit the Platt maps of the `match-e5` (zero-shot) and `similarity`
scorers and write the shipped `evaluate/calibration/<scorer>.json`.

    endcloud evaluate calibrate [--data ../shared/data] [--n 150] [--seed 0] [--out DIR]

match-e5: positives = real (customer query, agent reply) pairs from training splits - JDDC 2018
train (zh, the last customer turn as the query) and the even rows of Bitext (en); negatives = the
same queries with another pair's reply. similarity: positives = two Bitext responses of the same
intent (even rows), negatives = two responses of different intents. Both classes weigh the same,
so a calibrated 0.5 sits where a positive and a negative are equally likely. (The odd Bitext rows
and the JDDC 2018 test file are left for held-out checks: `bench/evaluate_matcher.py`.)
"""

from __future__ import annotations

import os
import random
from datetime import date
from pathlib import Path
from typing import Callable

from endcloud.data.loaders import iter_dialogues
from endcloud.evaluate.scorers import CALIBRATION_DIR, get_scorer
from endcloud.evaluate.scoring import Calibration, fit_platt

SCRIPT = "endcloud evaluate calibrate"  # written into each file's fitted_on.script


def default_data() -> Path:
    """$ENDCLOUD_DATA_DIR, else ../shared/data next to the checkout (as `endcloud data prepare`)."""
    from endcloud.data.config import default_data_dir

    return Path(os.environ.get("ENDCLOUD_DATA_DIR") or default_data_dir())


def jddc_pairs(data: Path, split: str, n: int, seed: int) -> list[tuple[str, str]]:
    """n shuffled (last customer turn, agent reply) pairs of JDDC 2018's `split` file (train/test)."""
    path = Path(data) / "jddc" / "jddc2018_baseline" / f"{split}.enc.gz"
    pairs = [(d.turns[-2].text, d.turns[-1].text) for d in iter_dialogues("jddc2018", path)
             if len(d.turns) >= 2 and d.turns[-2].role == "user"]
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


def bitext_rows(data: Path, half: int) -> list[tuple[str, str, str]]:
    """(instruction, response, intent) of the even (half=0, calibration) or odd (1, test) rows."""
    path = Path(data) / "bitext_customer_support" / "bitext_customer_support.csv.gz"
    rows = [(d.turns[0].text, d.turns[1].text, d.meta["intent"])
            for d in iter_dialogues("bitext", path)]
    return rows[half::2]


def negatives(pairs: list[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """Each query with another pair's reply (never its own)."""
    replies = [r for _, r in pairs]
    rng = random.Random(seed)
    out = []
    for i, (q, _) in enumerate(pairs):
        j = rng.randrange(len(pairs) - 1)
        out.append((q, replies[j if j < i else j + 1]))
    return out


def fit(name: str, pos: list[tuple[str, str]], neg: list[tuple[str, str]], about: str,
        out_dir: Path = CALIBRATION_DIR, echo: Callable[[str], None] = print) -> Calibration:
    """Fit scorer `name`'s Platt map on raw cosines of pos / neg pairs; write out_dir/<name>.json."""
    scorer = get_scorer(name)
    p = scorer.raw([a for a, _ in pos], [b for _, b in pos])  # type: ignore[attr-defined]
    q = scorer.raw([a for a, _ in neg], [b for _, b in neg])  # type: ignore[attr-defined]
    a, b = fit_platt(p, q)
    cal = Calibration("platt", a, b, {
        "data": about, "positives": len(pos), "negatives": len(neg),
        "raw_cosine_mean": {"positive": round(float(p.mean()), 4), "negative": round(float(q.mean()), 4)},
        "weights": scorer.describe()["weights"], "fitted": date.today().isoformat(),
        "script": SCRIPT})
    cal.save(Path(out_dir) / f"{name}.json")
    mid = -b / a
    echo(f"{name}: a={a:.3f} b={b:.3f} (0.5 at cosine {mid:.3f}); raw pos {p.mean():.3f} "
         f"neg {q.mean():.3f}")
    return cal


def calibrate(data: Path | None = None, n: int = 150, seed: int = 0, out_dir: Path = CALIBRATION_DIR,
              echo: Callable[[str], None] = print) -> dict[str, Calibration]:
    """Refit `match-e5` and `similarity` on n positives per language; write out_dir/<scorer>.json."""
    data = Path(data) if data else default_data()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Bootstrap: the scorers need a calibration file to load; start from the identity-like map.
    for name in ("match-e5", "similarity"):
        path = CALIBRATION_DIR / f"{name}.json"
        if not path.exists():
            Calibration("platt", 1.0, 0.0).save(path)
    rng = random.Random(seed)
    bitext = bitext_rows(data, 0)
    rng.shuffle(bitext)
    pos = jddc_pairs(data, "train", n, seed) + [(q, r) for q, r, _ in bitext[:n]]
    out = {"match-e5": fit("match-e5", pos, negatives(pos, seed),
                           f"{n} JDDC 2018 train (zh) + {n} Bitext even-row (en) query/reply pairs; "
                           "negatives: the same queries with another pair's reply", out_dir, echo)}
    by_intent: dict[str, list[str]] = {}
    for _, r, intent in bitext:
        by_intent.setdefault(intent, []).append(r)
    intents = sorted(by_intent)
    same, diff = [], []
    for _ in range(n * 2):
        i, j = rng.sample(intents, 2)
        a, b = rng.sample(by_intent[i], 2)
        same.append((a, b))
        diff.append((a, rng.choice(by_intent[j])))
    out["similarity"] = fit("similarity", same, diff,
                            f"{len(same)} Bitext even-row response pairs of the same intent "
                            f"vs {len(diff)} of different intents (en)", out_dir, echo)
    return out
