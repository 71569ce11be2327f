"""Counters and length histograms of the data stage, reported as JSON and Markdown."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

BUCKETS = [8, 16, 32, 64, 128, 256, 512, 1024]


@dataclass
class Histogram:
    """Counts per bucket `<= edge`, plus overflow; O(1) memory."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    n: int = 0
    total: int = 0
    max: int = 0

    def add(self, value: int) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.n += 1
        self.total += value
        self.max = max(self.max, value)

    def as_dict(self) -> dict[str, Any]:
        labels = [f"<={b}" for b in BUCKETS] + [f">{BUCKETS[-1]}"]
        return {"buckets": dict(zip(labels, self.counts)), "n": self.n,
                "mean": round(self.total / self.n, 1) if self.n else 0.0, "max": self.max}


class Stats:
    def __init__(self) -> None:
        self.sources: dict[str, Counter[str]] = {}
        self.loaders: dict[str, Any] = {}  # source name -> loaders.LoadStats
        self.pii: Counter[str] = Counter()
        self.unsendable_reasons: Counter[str] = Counter()
        self.lengths = {k: Histogram() for k in ("input_tokens", "output_tokens", "context_turns")}
        self.sessions: Counter[str] = Counter()
        self._last_session: dict[str, str] = {}

    def source(self, name: str) -> Counter[str]:
        return self.sources.setdefault(name, Counter())

    def record_split(self, split: str, session_id: str) -> None:
        # Samples of one session arrive together, so counting changes counts sessions.
        if self._last_session.get(split) != session_id:
            self._last_session[split] = session_id
            self.sessions[split] += 1

    def report(self, elapsed_s: float, tokenizer: str) -> dict[str, Any]:
        totals: Counter[str] = Counter()
        for c in self.sources.values():
            totals.update(c)
        loaders = {name: _loader_dict(ls) for name, ls in self.loaders.items()}
        utterances = totals.get("utterances_loaded", 0)
        return {
            "totals": dict(sorted(totals.items())),
            "sources": {k: dict(sorted(v.items())) for k, v in self.sources.items()},
            "loaders": loaders,
            "sessions": dict(self.sessions),
            "pii": dict(self.pii.most_common()),
            "unsendable_reasons": dict(self.unsendable_reasons.most_common()),
            "lengths": {k: h.as_dict() for k, h in self.lengths.items()},
            "tokenizer": tokenizer,
            "elapsed_s": round(elapsed_s, 3),
            "utterances_per_s": round(utterances / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        }

    @staticmethod
    def markdown(report: dict[str, Any]) -> str:
        t = report["totals"]
        lines = ["# Data stage summary", "",
                 f"{t.get('dialogues_loaded', 0)} dialogues and {t.get('utterances_loaded', 0)} "
                 f"utterances in {report['elapsed_s']} s ({report['utterances_per_s']} utterances/s); "
                 f"lengths in tokens of `{report['tokenizer']}`.", "",
                 "| split | samples | sessions |", "|---|---:|---:|"]
        for split in ("train", "validation", "test"):
            lines.append(f"| {split} | {t.get(f'samples_{split}', 0)} | "
                         f"{report['sessions'].get(split, 0)} |")
        lines += ["", "## Counts per step", "", "| step | count |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in t.items()]
        for name, ls in report["loaders"].items():
            if ls.get("skipped"):
                lines += ["", f"Skipped records in `{name}`: "
                          + ", ".join(f"{k} {v}" for k, v in ls["skipped"].items())]
        lines += ["", "## Personal data masked", ""]
        lines += [f"- {k}: {v}" for k, v in report["pii"].items()] or ["- none found"]
        if report["unsendable_reasons"]:
            lines += ["", "Not sendable after masking: "
                      + ", ".join(f"{k} {v}" for k, v in report["unsendable_reasons"].items())]
        lines += ["", "## Lengths", "", "| | n | mean | max |", "|---|---:|---:|---:|"]
        for k, h in report["lengths"].items():
            lines.append(f"| {k} | {h['n']} | {h['mean']} | {h['max']} |")
        return "\n".join(lines) + "\n"


def _loader_dict(ls: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("files", "records", "dialogues", "turns", "bytes"):
        if hasattr(ls, key):
            out[key] = getattr(ls, key)
    if hasattr(ls, "skipped"):
        out["skipped"] = dict(ls.skipped)
    if hasattr(ls, "filtered"):
        out["filtered"] = dict(ls.filtered)
    return out
