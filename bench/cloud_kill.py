"""Kill -9 the label job at random points, then check every query ends labelled once or quarantined.

    python bench/cloud_kill.py --queries 200 --kills 20

Runs `endcloud cloud label` against the fake teacher on loopback (`--delay` s per reply); each
run is killed with SIGKILL at a random moment after it has committed at least one new label;
a final run finishes the job. Prints labels, quarantined, duplicates, lost and the repeated
requests (the price of a kill between a reply and its commit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from endcloud.cloud.server import server_process
from endcloud.records import Sample


def count(db: Path, table: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--delay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="endcloud-kill-"))
    samples, db, out, rec = tmp / "s.jsonl", tmp / "e.db", tmp / "labels.jsonl", tmp / "req.jsonl"
    with samples.open("w", encoding="utf-8") as fh:
        for i in range(args.queries):
            s = Sample(f"s{i}", f"sess{i}", [], f"第{i}个问题：这件衣服有几个颜色？", "亲，有三个颜色哦", "bench", "train")
            fh.write(json.dumps(s.to_messages(), ensure_ascii=False) + "\n")
    cmd = [sys.executable, "-m", "endcloud", "cloud", "label", "--input", str(samples), "--output", str(out),
           f"output_root={tmp / 'runs'}", f"store={db}", "cloud.concurrency=4"]
    env = {**os.environ, "ENDCLOUD_PROGRESS": "0"}
    t0 = time.monotonic()
    with server_process("fake", record=str(rec), fake_delay=args.delay, warmup=False) as url:
        cmd.append(f"cloud.base_url={url}")
        for k in range(args.kills):
            before = count(db, "cloud_labels")
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while count(db, "cloud_labels") <= before and proc.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.1))
            if proc.poll() is not None:
                print(f"run {k + 1} finished before its kill; {k} kills done")
                break
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"kill {k + 1:>2}: {count(db, 'cloud_labels')} labels committed", flush=True)
        final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ids = [json.loads(line)["meta"]["id"] for line in out.read_text().splitlines()]
    with sqlite3.connect(db) as conn:
        dup = conn.execute("SELECT COUNT(*) FROM (SELECT sample_id FROM cloud_labels GROUP BY sample_id "
                           "HAVING COUNT(*) > 1)").fetchone()[0]
    quarantined = count(db, "cloud_quarantine")
    requests = len(rec.read_text().splitlines())
    lost = args.queries - len(set(ids)) - quarantined
    print(json.dumps({"queries": args.queries, "kills": args.kills, "final_exit": final.returncode,
                      "labels_in_output": len(ids), "unique": len(set(ids)), "quarantined": quarantined,
                      "duplicates": dup + len(ids) - len(set(ids)), "lost": lost,
                      "requests_sent": requests, "repeated_requests": requests - len(ids),
                      "wall_s": round(time.monotonic() - t0, 1)}, indent=2))
    return 0 if final.returncode == 0 and lost == 0 and dup == 0 and len(ids) == len(set(ids)) else 1


if __name__ == "__main__":
    sys.exit(main())
