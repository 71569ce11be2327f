"""The manual review track: human ratings into the store, and how well Final agrees with them.

    endcloud evaluate human import --input ratings.jsonl      # or .csv
    endcloud evaluate human agree --threshold 0.5

A rating row has `query`, `reply` and `rating` (an integer 1-5, or "good"/"bad"), and optionally
`reference` (the cloud reply), `corrected_reply`, `id`, `rater`. The service's web console writes
the same `human_ratings` records. Agreement: Spearman's ρ and Kendall's τ between Final and the
human score (1-5 mapped to (r-1)/4; good = 1, bad = 0), and accuracy of "Final >= threshold"
against "good" (a rating of 4 or 5, or the verdict good).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endcloud.errors import DataFormatError, MissingExtraError
from endcloud.store import feedback
from endcloud.store.db import Store, write_transaction

GOOD_FROM = 4  # a 1-5 rating of 4 or 5 counts as "good"


@dataclass
class Rating:
    query: str
    reply: str
    rating: int | None = None  # 1-5
    verdict: str | None = None  # "good" | "bad"
    reference: str | None = None
    corrected_reply: str | None = None
    sample_id: str | None = None
    rater: str = ""

    @property
    def human_score(self) -> float:
        if self.rating is not None:
            return (self.rating - 1) / 4
        return 1.0 if self.verdict == "good" else 0.0

    @property
    def good(self) -> bool:
        return self.rating >= GOOD_FROM if self.rating is not None else self.verdict == "good"


def read_ratings(path: str | Path) -> list[Rating]:
    """Ratings from JSONL or CSV (by extension; `.csv` = CSV with a header)."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(p, None, "file not found")
    with p.open(encoding="utf-8", newline="") as fh:
        if p.suffix.lower() == ".csv":
            rows = [(i, row) for i, row in enumerate(csv.DictReader(fh), 2)]
        else:
            rows = []
            for i, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append((i, json.loads(line)))
                    except json.JSONDecodeError as exc:
                        raise DataFormatError(p, i, f"not valid JSON: {exc.msg}") from None
    return [_rating(p, i, row) for i, row in rows]


def _rating(path: Path, line: int, row: Any) -> Rating:
    if not isinstance(row, dict):
        raise DataFormatError(path, line, "expected an object with query, reply and rating")
    query, reply, raw = row.get("query"), row.get("reply"), row.get("rating")
    if not isinstance(query, str) or not isinstance(reply, str):
        raise DataFormatError(path, line, "`query` and `reply` must be strings")
    rating, verdict = None, None
    text = str(raw).strip().lower() if raw is not None else ""
    if text in ("good", "bad"):
        verdict = text
    elif text.isdigit() and 1 <= int(text) <= 5:
        rating = int(text)
    else:
        raise DataFormatError(path, line, f"rating must be 1-5 or good/bad, got {raw!r}")
    opt = {k: (str(row[k]) if row.get(k) not in (None, "") else None)
           for k in ("reference", "corrected_reply")}
    sid = row.get("id") or row.get("sample_id")
    return Rating(query, reply, rating, verdict, opt["reference"], opt["corrected_reply"],
                  str(sid) if sid else None, str(row.get("rater") or ""))


def import_ratings(store: Store, ratings: list[Rating], source: str) -> int:
    """Insert `ratings` in one transaction; return how many."""
    with write_transaction(store.conn) as conn:
        feedback.add_human_ratings(conn, [(r.sample_id, r.query, r.reply, r.reference, r.rating,
                                           r.verdict, r.corrected_reply, r.rater) for r in ratings],
                                   source)
    return len(ratings)


def stored_ratings(store: Store) -> list[Rating]:
    rows = feedback.human_ratings(store.conn)
    return [Rating(r["query"], r["reply"], r["rating"], r["verdict"], r["reference"],
                   r["corrected_reply"], r["sample_id"], r["rater"]) for r in rows]


def agreement(finals: list[float], ratings: list[Rating], threshold: float = 0.5) -> dict[str, Any]:
    """Spearman ρ, Kendall τ (with p-values) and accuracy of Final >= threshold vs good."""
    try:
        from scipy.stats import kendalltau, spearmanr
    except ImportError:
        raise MissingExtraError("scipy", "eval") from None
    human = [r.human_score for r in ratings]
    n = len(finals)
    out: dict[str, Any] = {"n": n, "threshold": threshold}
    if n >= 2 and len(set(human)) > 1 and len(set(finals)) > 1:
        rho, rho_p = spearmanr(finals, human)
        tau, tau_p = kendalltau(finals, human)
        out.update(spearman=float(rho), spearman_p=float(rho_p), kendall=float(tau),
                   kendall_p=float(tau_p))
    else:  # a constant side has no rank correlation
        out.update(spearman=None, spearman_p=None, kendall=None, kendall_p=None)
    hits = sum((f >= threshold) == r.good for f, r in zip(finals, ratings))
    out["accuracy"] = hits / n if n else None
    out["good_share"] = sum(r.good for r in ratings) / n if n else None  # the majority baseline
    return out


def agree(store: Store, similarity: str, match: str, alpha: float, theta: float,
          threshold: float, matcher_weights: str | None = None) -> dict[str, Any]:
    """Score every stored rating's pair with Eq. 1 and compare with the humans."""
    from endcloud.evaluate.stage import score_pairs

    ratings = stored_ratings(store)
    scored = score_pairs([r.query for r in ratings], [r.reply for r in ratings],
                         [r.reference for r in ratings], similarity, match, alpha, theta,
                         matcher_weights)
    return agreement([s["final"] for s in scored], ratings, threshold)
