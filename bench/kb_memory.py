"""Calibrate `knowledge.memory_threshold`: when may an approved answer be served as it is?

    .venv/bin/python bench/kb_memory.py --encoders e5 use

The answer memory is each shop's FAQ rows (`endcloud kb build --memory faq.csv`). Every held-out
question of the demo shop and the unseen shop (bench/shops/lumen_pet) is looked up; the best
entry is *right* when its answer states the question's expected fact, *wrong* otherwise (every
unanswerable question's best entry is wrong by definition). Printed per encoder and threshold:
how many questions would be served from memory, and the precision of those answers. The shipped
threshold is the lowest one whose precision is 1.0 on both shops.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from kb_facts import load_questions, shop_dir

from endcloud.evaluate.facts import norm
from endcloud.knowledge.build import run as build
from endcloud.knowledge.config import KBConfig
from endcloud.knowledge.index import open_index


def best_hits(shop: Path, encoder: str, work: Path) -> list[tuple[float, bool]]:
    out = work / f"mem-{shop.name}-{encoder}"
    build(KBConfig(memory=[str(shop / "faq.csv")], output=str(out), encoder=encoder))
    memory = open_index(out)
    rows = []
    for q in load_questions(shop):
        hit = max(memory.search(q["question"], 2), key=lambda h: h.dense)
        answer = norm(hit.chunk.text)
        right = q["answerable"] and all(any(norm(f) in answer for f in fact) for fact in q["facts"])
        rows.append((hit.dense, right))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoders", nargs="+", default=["e5", "use"])
    ap.add_argument("--thresholds", nargs="+", type=float,
                    default=[0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96])
    args = ap.parse_args()
    os.environ.setdefault("ENDCLOUD_PROGRESS", "0")
    work = Path(tempfile.mkdtemp(prefix="kb-memory-"))
    for enc in args.encoders:
        for name in ("demo", "bench/shops/lumen_pet"):
            rows = best_hits(shop_dir(name), enc, work)
            print(f"[{enc}] {Path(name).name}: {len(rows)} questions, best-entry answer right for "
                  f"{sum(r for _, r in rows)}")
            for t in args.thresholds:
                served = [r for c, r in rows if c >= t]
                prec = sum(served) / len(served) if served else float("nan")
                print(f"    threshold {t:.2f}: served from memory {len(served):3d}, precision {prec:.3f}")


if __name__ == "__main__":
    main()
