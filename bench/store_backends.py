"""The store backends and replicas: the same service on a SQLite file and on PostgreSQL, one
replica and two, and how long replicas take to follow a promotion written to the store.

    python bench/store_backends.py                      # prints a table and one JSON line
    python bench/store_backends.py --sessions 32 --seconds 20 --pg-url postgresql://...

Each configuration starts `python -m endcloud.serve.cli` processes (fake end model: what is
measured is the service and its store, not a model) and drives them from this process with httpx:
`--sessions` customers each send chat turns back to back (one conversation each; a turn is one
exchange row written with group commit) for `--seconds`; throughput is acknowledged turns per
second, latency p50/p95 per turn. Then half as many customers post feedback back to back for a
third of the time: write latency p50/p95 (a 201 is sent after the row's COMMIT). With two replicas the sessions alternate between them. The
PostgreSQL server is a throwaway one started here (tests/pg.py: initdb + pg_ctl on loopback, fsync
on), unless `--pg-url` names one. Last, the evolve registry promotes an adapter into the store and
the bench times until both replicas report it (`backend.registry: store`, `registry_poll_s`).
Timings are ratios against the one-replica SQLite run of the same command (noisy machines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from serve_durability import start  # noqa: E402

CONFIG = """\
store: {store}
backend: {{kind: fake, slots: 256}}
escalation: {{enabled: false, scorer: ngram}}
limits: {{session_rate_per_minute: 0, customer_rate_per_minute: 0, queue_size: 512}}
"""
QUERY = [{"role": "user", "content": "我的订单什么时候发货？"}]


async def drive_writes(urls: list[str], sessions: int, seconds: float) -> dict:
    """Feedback posts back to back (one row each, acknowledged after its commit): write latency."""
    latencies: list[float] = []

    async def session(i: int, client: httpx.AsyncClient) -> None:
        url = urls[i % len(urls)]
        token = (await client.post(f"{url}/v1/customers")).json()["token"]
        headers = {"authorization": f"Bearer {token}"}
        reply = (await client.post(f"{url}/v1/chat/completions", headers=headers,
                                   json={"messages": QUERY, "max_tokens": 4})).json()["id"]
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            t = time.monotonic()
            r = await client.post(f"{urls[(i + n) % len(urls)]}/v1/feedback", headers=headers,
                                  json={"reply_id": reply, "rating": 1 + n % 5})
            if r.status_code == 201:
                latencies.append(time.monotonic() - t)

    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=sessions + 8)) as c:
        await asyncio.gather(*(session(i, c) for i in range(sessions)))
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"writes": len(latencies), "writes_per_s": round(len(latencies) / (time.monotonic() - t0), 1),
            "write_p50_ms": round(q[49] * 1000, 1), "write_p95_ms": round(q[94] * 1000, 1)}


async def drive(urls: list[str], sessions: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0

    async def session(i: int, client: httpx.AsyncClient) -> None:
        nonlocal errors
        url = urls[i % len(urls)]
        token = (await client.post(f"{url}/v1/customers")).json()["token"]
        headers, conv = {"authorization": f"Bearer {token}"}, None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            body = {"messages": QUERY, "max_tokens": 8, **({"conversation_id": conv} if conv else {})}
            t = time.monotonic()
            r = await client.post(f"{urls[(i + len(latencies)) % len(urls)]}/v1/chat/completions",
                                  json=body, headers=headers)
            if r.status_code != 200:
                errors += 1
                continue
            latencies.append(time.monotonic() - t)
            conv = r.headers["x-conversation-id"]

    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=sessions + 8)) as c:
        await asyncio.gather(*(session(i, c) for i in range(sessions)))
    wall = time.monotonic() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"turns": len(latencies), "errors": errors, "turns_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1)}


def run_config(store: str, replicas: int, sessions: int, seconds: float, tmp: Path,
               extra: str = "") -> tuple[dict, list]:
    procs, urls = [], []
    for i in range(replicas):
        work = tmp / f"{Path(store).name if '://' not in store else 'pg'}-{replicas}-{i}"
        work.mkdir(parents=True, exist_ok=True)
        (work / "serve.yaml").write_text(CONFIG.format(store=store) + extra, encoding="utf-8")
        proc, url = start(work)
        procs.append(proc)
        urls.append(url)
    try:
        row = asyncio.run(drive(urls, sessions, seconds))
        row.update(asyncio.run(drive_writes(urls, max(1, sessions // 2), seconds / 3)))
        return row, urls
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def follow_latency(store: str, tmp: Path, poll_s: float) -> dict:
    """Promote an adapter into the store; seconds until both replicas serve it (their /metrics
    champion-version gauge moves), and the same for a rollback."""
    from evolve_helpers import fake_adapter  # a folder that passes verify; the fake backend loads anything

    from endcloud.end.registry import Registry

    extra = f"  registry: store\n  registry_poll_s: {poll_s}\n"
    procs, urls = [], []
    for i in range(2):
        work = tmp / f"follow-{i}"
        work.mkdir(parents=True, exist_ok=True)
        cfg = CONFIG.format(store=store).replace("backend: {kind: fake, slots: 256}",
                                                 "backend:\n  kind: fake\n  slots: 256\n" + extra
                                                 + f"  registry_cache: {work / 'cache'}")
        (work / "serve.yaml").write_text(cfg, encoding="utf-8")
        proc, url = start(work)
        procs.append(proc)
        urls.append(url)

    def version(url: str) -> float:
        text = httpx.get(f"{url}/metrics", headers={"authorization": "Bearer bench-staff"}).text
        return float(next(x.split()[-1] for x in text.splitlines()
                          if x.startswith("endcloud_champion_version")))

    out = {}
    try:
        reg = Registry(tmp / "registry", store)
        aid = reg.add(fake_adapter(tmp / "adapter", "bench"))
        for step, act in (("promote_s", lambda: reg.promote(aid, "bench")),
                          ("rollback_s", lambda: reg.rollback("bench"))):
            before = [version(u) for u in urls]
            t = time.monotonic()
            act()
            while any(version(u) <= b for u, b in zip(urls, before)):
                if time.monotonic() - t > 60:
                    raise RuntimeError("replicas did not follow within 60 s")
                time.sleep(0.01)
            out[step] = round(time.monotonic() - t, 3)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    return out


def main() -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=32)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--poll-s", type=float, default=1.0)
    p.add_argument("--pg-url", help="an empty PostgreSQL database (default: start a throwaway server)")
    args = p.parse_args()
    os.environ["ENDCLOUD_ADMIN_TOKEN"] = "bench-staff"
    os.environ.setdefault("ENDCLOUD_PROGRESS", "0")
    server = None
    with tempfile.TemporaryDirectory(prefix="endcloud-stores-") as tmp:
        tmp = Path(tmp)
        if args.pg_url:
            pg = lambda: args.pg_url  # noqa: E731
        else:
            from pg import PostgresServer

            server = PostgresServer(fsync=True).start()
            pg = server.new_database
        try:
            rows = {}
            for name, store, n in (("sqlite x1", str(tmp / "s.db"), 1), ("postgresql x1", pg(), 1),
                                   ("postgresql x2", pg(), 2)):
                rows[name], _ = run_config(store, n, args.sessions, args.seconds, tmp)
            follow = follow_latency(pg(), tmp, args.poll_s)
        finally:
            if server:
                server.stop()
    base = rows["sqlite x1"]["turns_per_s"] or 1
    wbase = rows["sqlite x1"]["writes_per_s"] or 1
    print(f"{'store / replicas':<16} {'turns':>7} {'errors':>6} {'turns/s':>8} {'x sqlite':>8} "
          f"{'p50 ms':>7} {'p95 ms':>7} | {'writes/s':>8} {'x sqlite':>8} {'w p50':>6} {'w p95':>6}"
          f"   ({args.sessions} sessions, {args.seconds:.0f} s; writes: {max(1, args.sessions // 2)}"
          f" sessions, {args.seconds / 3:.0f} s; fake end model)")
    for name, r in rows.items():
        print(f"{name:<16} {r['turns']:>7} {r['errors']:>6} {r['turns_per_s']:>8} "
              f"{r['turns_per_s'] / base:>8.2f} {r['p50_ms']:>7} {r['p95_ms']:>7} | {r['writes_per_s']:>8} "
              f"{r['writes_per_s'] / wbase:>8.2f} {r['write_p50_ms']:>6} {r['write_p95_ms']:>6}")
    print(f"champion followed by both replicas (registry_poll_s {args.poll_s}): "
          f"promotion {follow['promote_s']} s, rollback {follow['rollback_s']} s")
    print(json.dumps({"args": vars(args), "rows": rows, "follow": follow}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
