"""Retrieval speed and size at shop scale: 10k knowledge chunks + 100k answer-memory entries.

    .venv/bin/python bench/kb_speed.py --chunks 10000 --memory 100000

Texts are real customer-service text read from ../shared/data (JDDC 2019 agent replies as
knowledge chunks; JDDC 2018 + 2019 (customer, agent) pairs as memory entries; to reach --memory
entries, pairs are joined two at a time, "q1，q2" -> "a1 a2", which keeps the text real and the
entries distinct). The knowledge index uses e5 (configs/kb.yaml's default), the memory USE
(5x faster to embed; `endcloud kb build --memory ... encoder=use`). Printed: build throughput
(chunks/s, embedding included), the index folders' size on disk, search latency p50/p95 of one
turn's retrieval (ShopKnowledge.retrieve: index k=3 + memory k=2, query encoding included, 300
queries the indexes never saw), peak RSS of the process, and the latency the retrieval adds to
a served turn (the fake backend through the real service on loopback, with vs without the
knowledge section, same queries, alternating).
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("ENDCLOUD_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def jddc2019_pairs() -> tuple[list[str], list[tuple[str, str]]]:
    replies, pairs = [], []
    for name in ("jddc2019_chat_sample_v1.tsv.gz", "jddc2019_chat_sample_v2.tsv.gz"):
        last: tuple[str, str] | None = None
        with gzip.open(DATA / "jddc" / name, "rt", encoding="utf-8") as fh:
            for line in fh:
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 7:
                    continue
                sid, who, text = cols[0], cols[2], cols[6].strip()
                if who == "1":
                    replies.append(text)
                    if last and last[0] == sid:
                        pairs.append((last[1], text))
                    last = None
                else:
                    last = (sid, text)
    return replies, pairs


def jddc2018_pairs() -> list[tuple[str, str]]:
    base = DATA / "jddc" / "jddc2018_baseline"
    with gzip.open(base / "train.enc.gz", "rt", encoding="utf-8") as q, \
            gzip.open(base / "train.dec.gz", "rt", encoding="utf-8") as a:
        return [(x.strip().split(",")[-1], y.strip()) for x, y in zip(q, a) if x.strip() and y.strip()]


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def folder_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--memory", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--kb-encoder", default="e5", help="the knowledge index's encoder (memory: use)")
    args = ap.parse_args()
    os.environ.setdefault("ENDCLOUD_PROGRESS", "0")
    from endcloud.knowledge.build import run as build
    from endcloud.knowledge.config import KBConfig, KnowledgeConfig
    from endcloud.knowledge.service import ShopKnowledge

    replies, pairs19 = jddc2019_pairs()
    pairs = pairs19 + jddc2018_pairs()
    pairs = [(q, a) for q, a in pairs if q.strip() and a.strip()]
    held_out = [q[:500] for q, _ in pairs[-args.queries:]]
    pairs = pairs[:-args.queries]
    chunks = list(dict.fromkeys(replies))[: args.chunks]
    memory = list(pairs)
    i = 0
    while len(memory) < args.memory:
        (q1, a1), (q2, a2) = pairs[i % len(pairs)], pairs[(i * 7 + 3) % len(pairs)]
        memory.append((f"{q1}，{q2}", f"{a1} {a2}"))
        i += 1
    memory = memory[: args.memory]
    work = Path(tempfile.mkdtemp(prefix="kb-speed-"))
    docs = work / "docs"
    docs.mkdir()
    with open(docs / "knowledge.md", "w", encoding="utf-8") as fh:
        for n, text in enumerate(chunks):
            fh.write(f"## 条目{n}\n{text}\n\n")
    import csv

    with open(work / "memory.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        w.writerows(memory)
    print(f"machine: {os.cpu_count()} cores; {len(chunks)} knowledge chunks, {len(memory)} memory entries "
          f"(JDDC text), {len(held_out)} held-out queries")
    # Where the time goes (measured): encoding the query is ~20 ms per encoder on this CPU; BM25
    # and HNSW search at this scale take < 0.5 ms each - one encoder for both halves a turn's cost
    for name, cfg in ((f"knowledge ({args.kb_encoder})", KBConfig(input=[str(docs)], output=str(work / "kb"),
                                                                 encoder=args.kb_encoder)),
                      ("memory (use)", KBConfig(memory=[str(work / "memory.csv")], output=str(work / "mem"),
                                                encoder="use", max_file_bytes=1 << 30))):
        res = build(cfg)
        print(f"build {name}: {res.chunks} entries in {res.seconds:.0f} s = {res.chunks / res.seconds:.0f}/s; "
              f"{folder_mb(res.version):.0f} MB on disk")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kcfg = KnowledgeConfig(index=str(work / "kb"), memory=str(work / "mem"), reload_s=0)
    kb = ShopKnowledge.open(kcfg)
    kb.retrieve("预热")
    times = []
    for q in held_out:
        t0 = time.perf_counter()
        kb.retrieve(q)
        times.append((time.perf_counter() - t0) * 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"retrieve (index k=3 + memory k=2, query encoding included): p50 {pct(times, .5):.1f} ms, "
          f"p95 {pct(times, .95):.1f} ms over {len(times)} queries; peak RSS {rss:.0f} MB "
          f"(before loading the indexes: {rss0:.0f} MB, incl. both encoders)")
    turn_latency(kb, held_out[: args.turns], work)


def turn_latency(kb: object, queries: list[str], work: Path) -> None:
    import httpx

    from endcloud.serve.app import create_app
    from endcloud.end.config import BackendConfig
    from endcloud.serve.config import EscalationConfig, LimitsConfig, ServeConfig
    from endcloud.serve.server import running

    def cfg(store: str) -> ServeConfig:
        return ServeConfig(store=store, backend=BackendConfig(kind="fake"),
                           limits=LimitsConfig(session_rate_per_minute=0),
                           escalation=EscalationConfig(enabled=False, scorer="ngram"))

    results: dict[str, list[float]] = {"without": [], "with": []}
    apps = {"without": create_app(cfg(str(work / "a.db")), admin_token="x"),
            "with": create_app(cfg(str(work / "b.db")), admin_token="x", knowledge=kb)}
    with running(apps["without"]) as u1, running(apps["with"]) as u2:
        urls = {"without": u1, "with": u2}
        tokens = {k: httpx.post(f"{u}/v1/customers").json()["token"] for k, u in urls.items()}
        for q in queries:
            for k in ("without", "with"):
                t0 = time.perf_counter()
                r = httpx.post(f"{urls[k]}/v1/chat/completions", headers={"authorization": f"Bearer {tokens[k]}"},
                               json={"model": "end", "messages": [{"role": "user", "content": q}], "max_tokens": 16}, timeout=60)
                r.raise_for_status()
                results[k].append((time.perf_counter() - t0) * 1000)
    w, wo = results["with"], results["without"]
    added = [a - b for a, b in zip(w, wo)]
    print(f"served turn (fake backend): without knowledge p50 {pct(wo, .5):.1f} / p95 {pct(wo, .95):.1f} ms, "
          f"with p50 {pct(w, .5):.1f} / p95 {pct(w, .95):.1f} ms; added per turn p50 "
          f"{statistics.median(added):.1f} / p95 {pct(added, .95):.1f} ms")


if __name__ == "__main__":
    main()
