"""Benchmark of the data stage on the JDDC 2019 samples: throughput and memory at 1x and 20x.

    .venv/bin/python bench/data_prepare.py [--data-dir ../shared/data] [--repeat 20]

Each size runs `endcloud data prepare` in a fresh subprocess; peak RSS is that child's
ru_maxrss. The 20x input repeats the two sample files (same sessions again, so deduplication
drops the copies: the point is that memory stays flat while the input grows).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ["jddc/jddc2019_chat_sample_v1.tsv.gz", "jddc/jddc2019_chat_sample_v2.tsv.gz"]


def make_input(data_dir: Path, repeat: int, dest: Path) -> Path:
    with gzip.open(dest, "wb", compresslevel=1) as out:
        for _ in range(repeat):
            for name in FILES:
                with gzip.open(data_dir / name, "rb") as src:
                    out.write(src.read())
    return dest


def run_once(path: Path, tmp: Path, tag: str) -> dict:
    out = tmp / f"runs-{tag}"
    cmd = [sys.executable, "-c",
           "import resource, sys; from endcloud.cli import main; rc = main(sys.argv[1:]); "
           "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
           "raise SystemExit(rc)",
           "data", "prepare", "--config", str(REPO / "configs/data.yaml"),
           "on_error=skip", "output_formats=[messages,sharegpt]",
           "sources=[{format: jddc2019, path: %s, name: jddc}]" % path,
           f"output_root={out}", f"store={tmp / 'bench.db'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "ENDCLOUD_PROGRESS": "0"})
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    maxrss_kb = int(proc.stderr.split("MAXRSS")[-1].split()[0])
    (run_dir,) = out.iterdir()
    report = json.loads((run_dir / "stats.json").read_text())
    return {"utterances": report["totals"]["utterances_loaded"],
            "samples": sum(report["totals"].get(f"samples_{s}", 0)
                           for s in ("train", "validation", "test")),
            "stage_s": report["elapsed_s"], "utt_per_s": report["utterances_per_s"],
            "wall_s": round(wall, 2), "peak_rss_mb": round(maxrss_kb / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("ENDCLOUD_DATA_DIR", REPO.parent / "shared/data"))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    data_dir = Path(args.data_dir)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        rows = {}
        for rep in (1, args.repeat):
            rows[rep] = run_once(make_input(data_dir, rep, tmp / f"in{rep}.tsv.gz"), tmp, str(rep))
    print(f"{'input':>6} {'utterances':>11} {'samples':>8} {'stage s':>8} {'utt/s':>8} {'peak RSS MB':>12}")
    for rep, r in rows.items():
        print(f"{rep:>5}x {r['utterances']:>11} {r['samples']:>8} {r['stage_s']:>8} "
              f"{r['utt_per_s']:>8} {r['peak_rss_mb']:>12}")
    a, b = rows[1], rows[args.repeat]
    print(f"peak RSS ratio {args.repeat}x/1x = {b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
          f"for {b['utterances'] / a['utterances']:.0f}x the utterances")


if __name__ == "__main__":
    main()
