"""Grounded replies on a shop's held-out questions: fact accuracy with and without the knowledge
base, through the real service.

    .venv/bin/python bench/kb_facts.py --shop demo --systems base base+kb teacher+kb
    .venv/bin/python bench/kb_facts.py --shop bench/shops/lumen_pet --systems base base+kb
    .venv/bin/python bench/kb_facts.py --shop demo --retrieval-only --encoders e5 use ngram

For each shop (the demo shop shipped in `endcloud.data/demo_shop`, or a folder with policy*.md,
faq.csv, catalog.jsonl and questions.jsonl), `endcloud kb build` indexes its documents, then each
system answers every question through `create_app` + `running` on loopback with the shipped
serve defaults (sampling 0.6 / 0.8, max_input_tokens 512, knowledge.k 5, units 4): escalation off, no
answer memory, so the model itself is measured.
  base        the end model (qwen2.5-coder-0.5b Q4 GGUF, llama.cpp), no knowledge
  base+kb     the same with the shop's knowledge base
  tuned+kb    the same with `--adapter` (a LoRA folder or GGUF LoRA) and the knowledge base
  base+kb+svc the same through the shipped escalation (Match, invented numbers, placeholders,
              quotes of the shop's text) with no cloud behind it: what a shop gets before it
              configures a cloud (an escalated turn is quoted or handed over)
  teacher+kb  the embedded teacher (Qwen2.5-Coder-1.5B Q4_K_M, llama.cpp server) as the
              backend (kind=openai), with the knowledge base
Printed: fact accuracy (every expected fact stated, no number the documents do not hold), the
share of unanswerable questions answered with an invented fact (evaluate/facts.py), and
retrieval recall@k (a retrieved chunk holds the expected fact). Replies go to `--out` as JSONL,
so they can be read, not only scored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx

from endcloud.evaluate.facts import norm, summarise
from endcloud.knowledge.build import run as build
from endcloud.knowledge.config import KBConfig, KnowledgeConfig
from endcloud.knowledge.index import open_index

DOCS = ("policy.zh.md", "policy.en.md", "faq.csv", "catalog.jsonl")


def shop_dir(name: str) -> Path:
    if name == "demo":
        return Path(str(resources.files("endcloud.data") / "demo_shop"))
    return Path(name)


def documents(shop: Path) -> list[Path]:
    return [shop / d for d in DOCS if (shop / d).exists()]


def load_questions(shop: Path) -> list[dict]:
    return [json.loads(line) for line in (shop / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def kb_text(shop: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in documents(shop))


def recall(index_dir: Path, questions: list[dict], ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, float]:
    index = open_index(index_dir)
    hits = {k: 0 for k in ks}
    answerable = [q for q in questions if q["answerable"]]
    t0 = time.perf_counter()
    for q in answerable:
        found = index.search(q["question"], max(ks))
        texts = [norm(h.chunk.title + h.chunk.text) for h in found]
        for k in ks:
            if any(all(any(norm(f) in t for f in fact) for fact in q["facts"]) for t in texts[:k]):
                hits[k] += 1
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(answerable))
    return {**{f"recall@{k}": round(hits[k] / len(answerable), 3) for k in ks}, "ms_per_query": round(ms, 1)}


def unit_recall(index_dir: Path, questions: list[dict], rerank: float, answer_type: float) -> str:
    """Recall of the expected fact in the 1 / 2 / 4 best units (knowledge/evidence.py) of the 5
    best chunks, and the time the units take per question: first sight (embedded) and again."""
    import numpy as np

    from endcloud.evaluate.scorers import get_scorer
    from endcloud.knowledge.evidence import evidence

    index = open_index(index_dir)
    reranker = get_scorer("match") if rerank else None
    if reranker is not None:
        reranker.score(["warm up"], ["the model loads here, not in the first timing"])
    answerable = [q for q in questions if q["answerable"]]
    hits = {n: 0 for n in (1, 2, 4)}
    ms: dict[str, list[float]] = {"first": [], "again": []}
    for q in answerable:
        found = index.search(q["question"], 5)
        for when in ms:
            t0 = time.perf_counter()
            units = evidence(q["question"], found, index.encoder, 4, reranker, rerank, answer_type)
            ms[when].append((time.perf_counter() - t0) * 1000)
        for n in hits:
            hits[n] += any(all(any(norm(f) in norm(u.text) for f in fact) for fact in q["facts"])
                           for u in units[:n])
    return (", ".join(f"unit recall@{n} {v / len(answerable):.3f}" for n, v in hits.items()) + "; "
            + ", ".join(f"units {w} p50 {np.percentile(v, 50):.1f} / p95 {np.percentile(v, 95):.1f} ms"
                        for w, v in ms.items()))


def serve_cfg(system: str, index: Path | None, store: Path, args: argparse.Namespace,
              teacher_url: str = "") -> object:
    from endcloud.config import load_config
    from endcloud.serve.config import ServeConfig

    service = system.endswith("+svc")  # the shipped escalation, no cloud behind it
    overrides = [f"store={store}", "limits.session_rate_per_minute=0", f"backend.n_threads={args.threads}",
                 "escalation.cloud.base_url=http://127.0.0.1:9/v1" if service else "escalation.enabled=false"]
    cfg = load_config(ServeConfig, "configs/serve.yaml", overrides)
    if system.startswith("teacher"):
        cfg.backend.kind, cfg.backend.base_url = "openai", teacher_url
        cfg.backend.upstream_models = ["local"]  # the name `serve-local` answers to
    if system.startswith("tuned"):
        cfg.backend.adapters = {"tuned": args.adapter}
    if index is not None:
        extra = {k: type(getattr(KnowledgeConfig, k, ""))(v) for k, v in (o.split("=", 1) for o in args.knowledge)}
        cfg.knowledge = KnowledgeConfig(index=str(index), memory_as_is=False,
                                        **({} if service else {"on_missing": "model"}), **extra)
    return cfg


def answer_all(cfg: object, questions: list[dict], model: str, max_tokens: int) -> list[str]:
    from endcloud.serve.app import create_app
    from endcloud.serve.server import running

    replies = []
    with running(create_app(cfg, admin_token="bench"), timeout_s=600) as url, \
            httpx.Client(base_url=url, timeout=600) as http:
        token = http.post("/v1/customers").json()["token"]
        auth = {"authorization": f"Bearer {token}"}
        for i, q in enumerate(questions):
            r = http.post("/v1/chat/completions", headers=auth, json={
                "model": model, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": q["question"]}]})
            r.raise_for_status()
            replies.append(r.json()["choices"][0]["message"]["content"])
            print(f"\r  {i + 1}/{len(questions)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return replies


def served_by(store: Path) -> str:
    """Who answered (end model, a quote of the shop's text, approved memory, hand-off, cloud)."""
    import sqlite3

    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT answered_by, answered_from, count(*) FROM serve_exchanges "
                            "GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
    return ", ".join(f"{by}{'/' + src if src else ''} {n}" for by, src, n in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shop", default="demo")
    ap.add_argument("--systems", nargs="+", default=["base", "base+kb"])
    ap.add_argument("--encoders", nargs="+", default=["e5"])
    ap.add_argument("--retrieval-only", action="store_true")
    ap.add_argument("--adapter", default="")
    ap.add_argument("--limit", type=int, default=0, help="first N questions (0 = all)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("ENDCLOUD_N_THREADS") or 2))
    ap.add_argument("--out", default="")
    ap.add_argument("--rerank", type=float, default=KnowledgeConfig.rerank, help="knowledge.rerank for --retrieval-only")
    ap.add_argument("--answer-type", type=float, default=KnowledgeConfig.answer_type,
                    help="knowledge.answer_type for --retrieval-only")
    ap.add_argument("--knowledge", nargs="*", default=[], metavar="KEY=VALUE",
                    help="knowledge.* settings for the served systems (e.g. units=0 k=3)")
    args = ap.parse_args()
    os.environ.setdefault("ENDCLOUD_PROGRESS", "0")
    shop = shop_dir(args.shop)
    questions = load_questions(shop)
    if args.limit:
        questions = questions[: args.limit]
    work = Path(tempfile.mkdtemp(prefix="kb-facts-"))
    print(f"shop {shop}: {sum(q['answerable'] for q in questions)} answerable, "
          f"{sum(not q['answerable'] for q in questions)} unanswerable questions")
    indexes = {}
    for enc in args.encoders:
        t0 = time.perf_counter()
        res = build(KBConfig(input=[str(p) for p in documents(shop)], output=str(work / f"kb-{enc}"), encoder=enc))
        indexes[enc] = work / f"kb-{enc}"
        print(f"retrieval [{enc}]: {res.chunks} chunks built in {time.perf_counter() - t0:.1f} s; "
              + ", ".join(f"{k} {v}" for k, v in recall(indexes[enc], questions).items()))
        if args.retrieval_only:
            for w, a in sorted({(0.0, 0.0), (args.rerank, 0.0), (args.rerank, args.answer_type)}):
                print(f"  units [{enc}, rerank {w}, answer_type {a}]: "
                      f"{unit_recall(indexes[enc], questions, w, a)}")
    if args.retrieval_only:
        return
    index = indexes[args.encoders[0]]
    text = kb_text(shop)
    rows = []
    teacher = None
    for system in args.systems:
        teacher_url = ""
        if system.startswith("teacher") and teacher is None:
            from endcloud.cloud.config import CloudConfig
            from endcloud.cloud.label import local_teacher

            teacher = local_teacher(CloudConfig(base_url="local"))
            teacher_url = teacher.__enter__().base_url
        t0 = time.perf_counter()
        cfg = serve_cfg(system, index if "+kb" in system else None, work / f"{system}.db", args,
                        teacher_url)
        model = "tuned" if system.startswith("tuned") else "end"
        if system.startswith("teacher"):
            model = "local"
        replies = answer_all(cfg, questions, model, args.max_tokens)
        s = summarise(questions, replies, text)
        took = time.perf_counter() - t0
        print(f"{system:11s} fact accuracy {s['fact_accuracy']:.3f} (stated {s['stated']:.3f}, "
              f"invented a number {s['invented_number']:.3f}) on {s['answerable']}; unanswerable "
              f"answered with an invented fact {s['unanswerable_invented']:.3f} of {s['unanswerable']}; "
              f"{took / len(questions):.1f} s/question; served by " + served_by(work / f"{system}.db"))
        rows += [{"system": system, "id": q["id"], "question": q["question"], "reply": r}
                 for q, r in zip(questions, replies)]
    if teacher is not None:
        teacher.__exit__(None, None, None)
    if args.out:
        Path(args.out).write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                                  encoding="utf-8")


if __name__ == "__main__":
    main()
