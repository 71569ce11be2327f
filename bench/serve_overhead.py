"""Service overhead: the same fake end model called directly vs through the whole service
(HTTP, auth, limits, queue, Match scoring, group-committed SQLite writes), at 1/50/200 sessions.

    python bench/serve_overhead.py                       # prints a table and one JSON line
    python bench/serve_overhead.py --sessions 1 50 200 --requests 200

The server runs in its own process (`python -m endcloud.serve.cli`, fake backend, escalation on
with threshold 0 so every turn is scored but none leaves the machine); the client is httpx in
this process. Each session is one customer in one conversation, sending its turns one after
another (non-streaming), with a customer's think time between turns (`--think-s`, uniform in
[0.5, 1.5] x; 0 = back to back, which measures saturation: latency = sessions / throughput).
Goal: overhead p95 <= 25 ms at 200 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_durability import start  # noqa: E402

CONFIG = """\
store: {store}
backend: {{kind: fake, slots: 256}}
escalation: {{enabled: true, scorer: ngram, match_threshold: 0.0, confidence_threshold: 0.0}}
limits: {{session_rate_per_minute: 0, queue_size: 512}}
"""
QUERY = [{"role": "user", "content": "我的订单什么时候发货？"}]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def direct(n: int) -> list[float]:
    """The fake backend alone, called in process: the baseline."""
    from endcloud.end.backend import GenParams
    from endcloud.end.runtime import FakeBackend
    from endcloud.end.config import BackendConfig

    backend = FakeBackend(BackendConfig(kind="fake"))
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async for _ev in backend.stream("end", QUERY, GenParams(128)):
            pass
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def through_service(url: str, sessions: int, per_session: int, think_s: float = 0.0
                          ) -> list[float]:
    limits = httpx.Limits(max_connections=sessions + 8, max_keepalive_connections=sessions + 8)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        tokens = [(await client.post("/v1/customers")).json()["token"] for _ in range(sessions)]
        latencies: list[float] = []

        async def session(token: str) -> None:
            headers = {"authorization": f"Bearer {token}"}
            conv = None
            for _ in range(per_session):
                if think_s:
                    await asyncio.sleep(random.uniform(0.5, 1.5) * think_s)
                body = {"model": "end", "messages": QUERY, **({"conversation_id": conv} if conv else {})}
                t0 = time.perf_counter()
                r = await client.post("/v1/chat/completions", json=body, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
                conv = r.json()["conversation_id"]

        await asyncio.gather(*(session(t) for t in tokens))
        return latencies


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 50, 200])
    p.add_argument("--requests", type=int, default=400, help="requests per level (split over sessions)")
    p.add_argument("--think-s", type=float, default=0.0, help="mean pause between a session's turns")
    p.add_argument("--turns", type=int, default=0, help="turns per session (0: requests / sessions)")
    args = p.parse_args()
    base = asyncio.run(direct(500))
    results = {"think_s": args.think_s, "direct_p50_ms": round(pct(base, 0.5), 3), "direct_p95_ms": round(pct(base, 0.95), 3)}
    print(f"direct fake backend: p50 {results['direct_p50_ms']:.3f} ms  p95 {results['direct_p95_ms']:.3f} ms")
    print(f"{'sessions':>8} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'overhead p95':>13} {'req/s':>7}")
    with tempfile.TemporaryDirectory(prefix="endcloud-bench-") as tmp:
        work = Path(tmp)
        (work / "serve.yaml").write_text(CONFIG.format(store=work / "serve.db"), encoding="utf-8")
        proc, url = start(work)
        try:
            asyncio.run(through_service(url, 4, 10))  # warm-up
            for n in args.sessions:
                per = args.turns or max(2, args.requests // n)
                t0 = time.perf_counter()
                lat = asyncio.run(through_service(url, n, per, args.think_s))
                wall = time.perf_counter() - t0
                row = {"p50_ms": round(pct(lat, 0.5), 2), "p95_ms": round(pct(lat, 0.95), 2),
                       "overhead_p95_ms": round(pct(lat, 0.95) - results["direct_p95_ms"], 2),
                       "requests": len(lat), "req_per_s": round(len(lat) / wall, 1),
                       "mean_ms": round(statistics.fmean(lat), 2)}
                results[f"sessions_{n}"] = row
                print(f"{n:>8} {len(lat):>8} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
                      f"{row['overhead_p95_ms']:>13.2f} {row['req_per_s']:>7.1f}")
        finally:
            proc.kill()
            proc.wait()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
