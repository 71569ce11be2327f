"""PII masker benchmark: per-type recall/precision/F1 on the generated labelled set and on the
independent hand-written set (bench/pii_sets/independent.jsonl) and the held-out sets
(bench/pii_sets/holdout.jsonl ... holdout7.jsonl: each written blind and measured once before it was read; bench/results/pii_tagger.txt has those first figures), throughput on real
JDDC with the names model on and rules only.

    .venv/bin/python bench/pii.py [--seed 0] [--jddc PATH]

Prints figures only: never a raw utterance or value (not-sendable lines are counted by reason).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys
import time
from collections import Counter
from pathlib import Path

from endcloud.data.pii_testset import evaluate, generate
from endcloud.data.privacy import Masker

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ENDCLOUD_DATA_DIR", REPO.parent / "shared" / "data"))
DEFAULT_JDDC = DATA / "jddc" / "jddc2019_chat_sample_v1.tsv.gz"


def quality_table(masker: Masker, rows: list[dict]) -> None:
    print(f"labelled set: {len(rows)} messages, {sum(len(r['spans']) for r in rows)} gold spans, "
          f"{sum(1 for r in rows if not r['spans'])} hard negatives (no span)")
    print("matching: same type and overlapping span; 'exact' = found with identical boundaries")
    by_lang = {lang: evaluate(masker, rows, lang) for lang in ("zh", "en", None)}
    types = sorted({t for stats in by_lang.values() for t in stats})
    print(f"{'type':<9} {'lang':<4} {'gold':>5} {'pred':>5} {'recall':>7} {'prec':>7} {'F1':>7} {'exact':>6}")
    for t in types:
        for lang, stats in by_lang.items():
            s = stats.get(t)
            if not s:
                continue
            print(f"{t:<9} {lang or 'all':<4} {s['gold']:>5} {s['pred']:>5} {s['recall']:>7.3f} "
                  f"{s['precision']:>7.3f} {s['f1']:>7.3f} {s['exact']:>6}")
    sendable = sum(masker.mask(r["text"]).sendable for r in rows if not r["spans"])
    print(f"hard negatives left sendable: {sendable}/{sum(1 for r in rows if not r['spans'])} "
          "(the rest are bad-checksum IDs / Luhn-invalid numbers, failed closed by the residue rule)")


def independent_table(masker: Masker, path: Path) -> None:
    """Recall / precision per type, and kept values left alone, on a set built apart from the rules."""
    import json

    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    gold, pred, found, right, hidden = Counter(), Counter(), Counter(), Counter(), Counter()
    kept_total = kept_ok = 0
    for r in rows:
        res = masker.mask(r["text"])
        spans = [(s.type, s.start, s.end) for s in res.spans]
        for g in r["spans"]:
            gold[g["type"]] += 1
            found[g["type"]] += any(t == g["type"] and s < g["end"] and g["start"] < e for t, s, e in spans)
            # masked at all (under any placeholder type), or the line held back as not sendable
            hidden[g["type"]] += (not res.sendable) or any(s < g["end"] and g["start"] < e for _, s, e in spans)
        for t, s, e in spans:
            pred[t] += 1
            right[t] += any(g["type"] == t and s < g["end"] and g["start"] < e for g in r["spans"])
        for k in r.get("keep", []):
            kept_total += 1
            kept_ok += not any(s < k["end"] and k["start"] < e for _, s, e in spans)
    print(f"{len(rows)} messages, {sum(gold.values())} personal values, {kept_total} values to keep")
    print(f"{'type':<9} {'gold':>5} {'pred':>5} {'recall':>7} {'prec':>7} {'hidden':>7}  (hidden: masked as any type or not sendable)")
    for t in sorted(set(gold) | set(pred)):
        rec = found[t] / gold[t] if gold[t] else float("nan")
        prec = right[t] / pred[t] if pred[t] else float("nan")
        hid = hidden[t] / gold[t] if gold[t] else float("nan")
        print(f"{t:<9} {gold[t]:>5} {pred[t]:>5} {rec:>7.3f} {prec:>7.3f} {hid:>7.3f}")
    structured = [t for t in gold if t not in ("NAME", "ADDRESS")]
    print(f"structured recall: {sum(found[t] for t in structured) / max(1, sum(gold[t] for t in structured)):.3f}; "
          f"kept values left alone: {kept_ok}/{kept_total} ({kept_ok / max(1, kept_total):.3f})")


def load_jddc(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [row[-1] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def throughput(masker: Masker, texts: list[str]) -> None:
    masker.mask("warm up 13800138000")
    start = time.perf_counter()
    results = [masker.mask(t) for t in texts]
    elapsed = time.perf_counter() - start
    chars = sum(len(t) for t in texts)
    print(f"\nreal JDDC utterances: {len(texts)} messages, {chars} chars, mean {chars / len(texts):.1f} chars")
    print(f"throughput: {len(texts) / elapsed:,.0f} messages/s ({chars / elapsed / 1e6:.2f} M chars/s, one core)")
    spans = Counter(s.type for r in results for s in r.spans)
    print("masked spans by type: " + ", ".join(f"{t}={n}" for t, n in spans.most_common()))
    unsendable = [r for r in results if not r.sendable]
    print(f"not sendable: {len(unsendable)} of {len(results)}")
    for reason, n in Counter(reason for r in unsendable for reason in r.reasons).most_common():
        print(f"  {n:>6}  {reason}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jddc", type=Path, default=DEFAULT_JDDC)
    args = ap.parse_args(argv)
    masker = Masker()
    quality_table(masker, generate(args.seed))
    independent = REPO / "bench" / "pii_sets" / "independent.jsonl"
    if independent.exists():
        print(f"\n== independent set ({independent.relative_to(REPO)}): written by hand, not from the rules")
        independent_table(masker, independent)
    sets = ("holdout.jsonl", "holdout2.jsonl", "holdout3.jsonl", "holdout4.jsonl", "holdout5.jsonl",
            "holdout6.jsonl", "holdout7.jsonl")
    for name in sets:
        holdout = REPO / "bench" / "pii_sets" / name
        if holdout.exists():
            since = ("the newest: not yet read or trained on" if name == sets[-1] else
                     "read and trained on since its first measurement (bench/results/pii_tagger.txt)")
            print(f"\n== held-out set ({holdout.relative_to(REPO)}): written blind; {since}")
            independent_table(masker, holdout)
    if args.jddc.exists():
        throughput(masker, load_jddc(args.jddc))
        print("\n== rules only (Masker(names_model=False)), same messages")
        throughput(Masker(names_model=False), load_jddc(args.jddc))
    else:
        print(f"\n{args.jddc} not found - set ENDCLOUD_DATA_DIR to measure throughput on JDDC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
