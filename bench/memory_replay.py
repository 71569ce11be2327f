"""Answer memory on real JD questions: sentence-BLEU (JDDC competition, character tokens) and
Eq. 1 Final against the human agents' replies, with and without a memory of JDDC train, and
raw placeholders shown to customers before / after the service's guard.

    endcloud data prepare --config configs/data.yaml corpus=jddc2019 on_error=skip output_root=runs/prep-jddc2019
    .venv/bin/python bench/memory_replay.py --data runs/prep-jddc2019/data-* --queries 120 [--adapter LORA]

The memory is every (query, agent reply) pair of train.jsonl (`endcloud kb build --memory`, USE
encoder). Each test sample's query (with up to its last 4 context turns as history) goes through
the real service (llama.cpp, Qwen2.5-Coder-0.5B Q4, shipped sampling 0.6 / 0.8); escalation is
on only for the guard (Match threshold 0, no cloud: a placeholder reply becomes the hand-off).
Printed per system: mean BLEU and mean Final with bootstrap 95 % intervals, the share answered
from memory as is, and the number of replies the model wrote with a raw placeholder (`[数字x]`,
`[ORDER_1]` ...) vs the number the customers were shown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

import httpx

from endcloud.evaluate.combine import combine
from endcloud.evaluate.metrics import jddc_bleu
from endcloud.evaluate.scorers import get_scorer
from endcloud.knowledge.build import run as build
from endcloud.knowledge.config import KBConfig, KnowledgeConfig
from endcloud.knowledge.context import PLACEHOLDER


def ci(xs: list[float], n: int = 1000) -> tuple[float, float, float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choice(xs) for _ in xs) / len(xs) for _ in range(n))
    return sum(xs) / len(xs), means[int(0.025 * n)], means[int(0.975 * n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--systems", nargs="+", default=["base", "base+memory"])
    ap.add_argument("--adapter", default="")
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    os.environ.setdefault("ENDCLOUD_PROGRESS", "0")
    from endcloud.records import read_samples
    from endcloud.config import load_config
    from endcloud.serve.app import create_app
    from endcloud.serve.config import ServeConfig
    from endcloud.serve.server import running

    data = Path(args.data)
    test = [s for s in read_samples(data / "test.jsonl")][: args.queries]
    work = Path(tempfile.mkdtemp(prefix="kb-jddc-"))
    res = build(KBConfig(memory=[str(data / "train.jsonl")], output=str(work / "mem"), encoder="use"))
    print(f"memory: {res.chunks} JDDC train pairs; {len(test)} test queries")
    sim, match = get_scorer("similarity"), get_scorer("match")
    for system in args.systems:
        cfg = load_config(ServeConfig, "configs/serve.yaml", [
            f"store={work / (system + '.db')}", "limits.session_rate_per_minute=0",
            "escalation.match_threshold=0.0", "escalation.cloud.base_url=http://127.0.0.1:9/v1",
            "escalation.scorer=ngram"])
        model = "end"
        if "tuned" in system:
            cfg.backend.adapters, model = {"tuned": args.adapter}, "tuned"
        if system.endswith("+memory"):
            cfg.knowledge = KnowledgeConfig(memory=str(work / "mem"), check_numbers=False)
        replies, ids = [], []
        with running(create_app(cfg, admin_token="bench"), timeout_s=600) as url, \
                httpx.Client(base_url=url, timeout=600) as http:
            auth = {"authorization": f"Bearer {http.post('/v1/customers').json()['token']}"}
            for s in test:
                msgs = [{"role": t.role, "content": t.text} for t in s.context[-4:]
                        if t.role in ("user", "assistant")] + [{"role": "user", "content": s.query}]
                while msgs and msgs[0]["role"] != "user":
                    msgs = msgs[1:]
                r = http.post("/v1/chat/completions", headers=auth, json={
                    "model": model, "messages": msgs, "max_tokens": args.max_tokens})
                r.raise_for_status()
                replies.append(r.json()["choices"][0]["message"]["content"])
                ids.append(r.headers["x-reply-id"])
        import sqlite3

        conn = sqlite3.connect(cfg.store)
        rows = dict(conn.execute("SELECT id, coalesce(end_reply, '') FROM serve_exchanges"))
        from_memory = conn.execute("SELECT count(*) FROM serve_exchanges WHERE answered_from='memory'").fetchone()[0]
        conn.close()
        drafts = [rows.get(i, "") for i in ids]
        queries, refs = [s.query for s in test], [s.reply for s in test]
        bleu = [jddc_bleu(r, [ref]) for r, ref in zip(replies, refs)]
        s_sim = sim.score(replies, refs)
        s_match, s_ref = match.score(queries, replies), match.score(queries, refs)
        final = [combine(float(a), float(b), float(c)).final for a, b, c in zip(s_sim, s_match, s_ref)]
        b, f = ci(bleu), ci(final)
        print(f"{system:14s} BLEU {b[0]:.4f} [{b[1]:.4f}, {b[2]:.4f}]  Final {f[0]:.3f} [{f[1]:.3f}, {f[2]:.3f}]  "
              f"from memory {from_memory / len(test):.2f}  placeholders written {sum(bool(PLACEHOLDER.search(d)) for d in drafts)}"
              f" / shown {sum(bool(PLACEHOLDER.search(r)) for r in replies)}")
        (work / f"{system}.jsonl").write_text("\n".join(json.dumps({"q": q, "reply": r, "ref": ref}, ensure_ascii=False)
                                                       for q, r, ref in zip(queries, replies, refs)) + "\n")
    print(f"replies: {work}")


if __name__ == "__main__":
    main()
