"""kill -9 the service while customers post feedback; every acknowledged row must survive.

    python bench/serve_durability.py --rounds 100        # the acceptance run (~3-5 min on 2 cores)

Each round starts `python -m endcloud.serve.cli` (fake end model) on the same SQLite file,
lets 4 clients post feedback as fast as they can, and SIGKILLs the server at a random moment.
A feedback id counts as acknowledged when its 201 arrived. At the end every acknowledged id must
be in `serve_feedback` and `PRAGMA integrity_check` must say ok. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from endcloud.store import Store

CONFIG = """\
store: {store}
backend: {{kind: fake}}
escalation: {{enabled: false, scorer: ngram}}
limits: {{session_rate_per_minute: 0}}
"""


def start(workdir: Path, timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    port_file.unlink(missing_ok=True)
    log = open(workdir / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "endcloud.serve.cli", "--config",
                             str(workdir / "serve.yaml"), "--port", "0", "--port-file", str(port_file)],
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + timeout_s
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise RuntimeError(f"server did not start; see {workdir / 'server.log'}")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text()}"


def kill_rounds(workdir: Path, rounds: int, clients: int = 4, seed: int = 0,
                store: str | None = None) -> dict:
    """`store`: a postgresql:// URL, else a SQLite file in `workdir`."""
    rng = random.Random(seed)
    db = store or str(workdir / "serve.db")
    (workdir / "serve.yaml").write_text(CONFIG.format(store=db), encoding="utf-8")
    acked: dict[int, str] = {}
    lock = threading.Lock()
    token = reply_id = None
    for _ in range(rounds):
        proc, url = start(workdir)
        if token is None:
            token = httpx.post(f"{url}/v1/customers").json()["token"]
            reply_id = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                                  json={"messages": [{"role": "user", "content": "在吗"}]}).json()["id"]
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=5) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = c.post("/v1/feedback", json={"reply_id": reply_id, "rating": 1 + i % 5,
                                                         "comment": f"c{n}-{i}"})
                    except httpx.HTTPError:
                        return  # the server is gone: this request was never acknowledged
                    if r.status_code == 201:
                        with lock:
                            acked[r.json()["id"]] = f"c{n}-{i}"

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.1, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
    with Store.open(db) as st:
        integrity = (st.conn.execute("PRAGMA integrity_check").fetchone()[0]
                     if st.dialect == "sqlite" else "ok")  # PostgreSQL checks pages itself
        stored = {r[0]: r[1] for r in st.conn.execute("SELECT id, comment FROM serve_feedback")}
    missing = [i for i, c in acked.items() if stored.get(i) != c]
    return {"rounds": rounds, "acknowledged": len(acked), "stored": len(stored),
            "missing": len(missing), "integrity_check": integrity}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--store", help="a postgresql:// URL of an empty database (default: a SQLite file)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="endcloud-kill-") as tmp:
        t0 = time.monotonic()
        result = kill_rounds(Path(tmp), args.rounds, args.clients, store=args.store)
        result["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result))
    return 0 if result["missing"] == 0 and result["integrity_check"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
