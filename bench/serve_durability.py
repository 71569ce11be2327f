"""kill -9 the service while customers post feedback; every acknowledged row must survive.

    python bench/serve_durability.py --rounds 100        # the acceptance run (~3-5 min on 2 cores)
    python bench/serve_durability.py --rounds 50 --replicas 2 --store postgresql://...

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


def kill_one_of_two(workdir: Path, rounds: int, store: str, clients: int = 4, seed: int = 0) -> dict:
    """Two replicas on one store; each round one of them (at random) is SIGKILLed mid-write and
    started again. Clients spread their feedback over both and go on through the other one."""
    rng = random.Random(seed)
    dirs = [workdir / f"replica-{i}" for i in range(2)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        (d / "serve.yaml").write_text(CONFIG.format(store=store), encoding="utf-8")
    procs, urls = zip(*(start(d) for d in dirs))
    procs, urls = list(procs), list(urls)
    token = httpx.post(f"{urls[0]}/v1/customers").json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    reply_id = httpx.post(f"{urls[0]}/v1/chat/completions", headers=auth,
                          json={"messages": [{"role": "user", "content": "在吗"}]}).json()["id"]
    acked: dict[int, str] = {}
    lock = threading.Lock()
    try:
        for rnd in range(rounds):
            stop = threading.Event()

            def client(n: int) -> None:
                i = 0
                with httpx.Client(headers=auth, timeout=5) as c:
                    while not stop.is_set():
                        i += 1
                        try:
                            r = c.post(f"{urls[(n + i) % 2]}/v1/feedback",
                                       json={"reply_id": reply_id, "comment": f"r{rnd}-c{n}-{i}"})
                        except httpx.HTTPError:
                            continue  # that replica is gone: never acknowledged; the next try goes to the other
                        if r.status_code == 201:
                            with lock:
                                acked[r.json()["id"]] = f"r{rnd}-c{n}-{i}"

            threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.1, 0.4))
            victim = rng.randrange(2)
            os.kill(procs[victim].pid, signal.SIGKILL)
            procs[victim].wait()
            time.sleep(0.1)  # the other replica alone takes the writes for a moment
            stop.set()
            for t in threads:
                t.join()
            procs[victim], urls[victim] = start(dirs[victim])
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    with Store.open(store) as st:
        stored = {r[0]: r[1] for r in st.conn.execute("SELECT id, comment FROM serve_feedback")}
    missing = [i for i, c in acked.items() if stored.get(i) != c]
    return {"rounds": rounds, "replicas": 2, "acknowledged": len(acked), "stored": len(stored),
            "missing": len(missing)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--store", help="a postgresql:// URL of an empty database, or `pg` for a throwaway "
                                  "server started here (tests/pg.py, fsync on); default: a SQLite file")
    p.add_argument("--replicas", type=int, choices=(1, 2), default=1,
                   help="2: two replicas on the store, one of them killed each round")
    args = p.parse_args()
    server = None
    if args.store == "pg":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg import PostgresServer

        server = PostgresServer(fsync=True).start()
        args.store = server.new_database()
    with tempfile.TemporaryDirectory(prefix="endcloud-kill-") as tmp:
        t0 = time.monotonic()
        if args.replicas == 2:
            result = kill_one_of_two(Path(tmp), args.rounds, args.store or str(Path(tmp) / "serve.db"),
                                     args.clients)
        else:
            result = kill_rounds(Path(tmp), args.rounds, args.clients, store=args.store)
        result["seconds"] = round(time.monotonic() - t0, 1)
    if server is not None:
        server.stop()
    print(json.dumps(result))
    return 0 if result["missing"] == 0 and result.get("integrity_check", "ok") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
