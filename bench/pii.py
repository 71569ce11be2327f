"""PII masker benchmark: per-type recall/precision/F1 on the labelled set, throughput on real JDDC.

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
    if args.jddc.exists():
        throughput(masker, load_jddc(args.jddc))
    else:
        print(f"\n{args.jddc} not found - set ENDCLOUD_DATA_DIR to measure throughput on JDDC")
    return 0


if __name__ == "__main__":
    sys.exit(main())
