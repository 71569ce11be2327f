"""Escalation and the cost ledger on replayed JDDC conversations, through the real service.

    .venv/bin/python bench/serve_escalation.py \
        --data <jddc2019>/test.jsonl --conversations 24 --max-turns 3 --budget-s 300 \
        --match-thresholds 0.05 0.5 --set escalation.cloud.max_tokens=128 \
        --price-in-per-1k 0.00015 --price-out-per-1k 0.0006 --out bench/results/serve_escalation.txt

Each test conversation (grouped by `meta.session_id`, in file order) becomes one customer of the
service on loopback (`create_app` + `running`, configured from `configs/serve.yaml`: auth,
escalation policy and thresholds, masked cloud client, store). Its customer turns are sent in
order as streaming chat requests, each with the history the service itself produced (the
corpus's agent replies are not used). The end model is the real one (`--backend`, default the
in-process transformers backend on qwen2.5-coder-0.5b in bf16); the cloud is the embedded teacher
(`endcloud cloud serve-local`, Qwen2.5-Coder-1.5B Q4_K_M through llama.cpp) on loopback.
`--match-thresholds` repeats the replay, each over a fresh store, once per after-generation
Match threshold (e.g. 0.05, the earlier default, and 0.5, the calibrated score's even odds,
which configs/serve.yaml now ships).

Printed (numbers only, never corpus text): the share of turns escalated before generation /
after generation / not at all, who answered, the cloud-call outcomes (ok / timeout / breaker /
other failure, and what the customer got instead: local reply or hand-off), client-side
time-to-first-token and total latency p50/p95 per answering side, and the cost ledger: cloud
tokens in/out as the service recorded them, priced at `--price-*-per-1k` (assumed prices, not a
quote). The embedded teacher is a CPU stand-in for a remote LLM: its latencies are this
machine's, so the cloud deadlines default to 30 s / 60 s instead of the service's 5 s / 15 s
(`--first-token-s`, `--total-s`; the printed header says which were used).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from endcloud import wire

BEFORE = {"hard", "out_of_scope", "too_long"}


def conversations(path: Path, n: int, max_turns: int) -> list[list[str]]:
    """The customer turns of the first `n` sessions, in order (each capped at `max_turns`)."""
    longest: dict[str, list[dict[str, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        sid = row["meta"]["session_id"]
        if len(row["messages"]) > len(longest.get(sid, [])):  # rows are cumulative prefixes
            longest[sid] = row["messages"]
    out = [[m["content"] for m in msgs if m["role"] == "user" and m["content"].strip()][:max_turns]
           for msgs in longest.values()]
    return [c for c in out if c][:n]


def service_config(args: argparse.Namespace, store: Path, cloud_url: str) -> Any:
    from endcloud.config import load_config
    from endcloud.serve.config import ServeConfig

    cfg = load_config(ServeConfig, args.config, [
        f"store={store}", f"backend.kind={args.backend}", f"backend.model.name={args.model}",
        f"backend.model.dtype={args.dtype}", "limits.session_rate_per_minute=0",
        "limits.customer_rate_per_minute=0", f"escalation.first_token_s={args.first_token_s}",
        f"escalation.total_s={args.total_s}", f"escalation.cloud.base_url={cloud_url}",
        "escalation.cloud.model=local", f"escalation.cloud.price_prompt_per_1k={args.price_in_per_1k}",
        f"escalation.cloud.price_completion_per_1k={args.price_out_per_1k}", *args.overrides])
    return cfg


def turn(client: httpx.Client, headers: dict[str, str], history: list[dict[str, str]],
         conversation: str | None, max_tokens: int) -> dict[str, Any]:
    """One streamed turn; client-side time to first text and total time, the reply and its id."""
    body: dict[str, Any] = {"messages": history, "stream": True, "max_tokens": max_tokens}
    if conversation:
        body["conversation_id"] = conversation
    t0 = time.monotonic()
    first, parts, reply_id = None, [], None
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        conversation = r.headers["x-conversation-id"]
        reply_id = r.headers["x-reply-id"]
        stream = wire.Stream()
        for event in wire.sse_events(r.iter_lines()):
            text = stream.feed(event)
            if text and first is None:
                first = time.monotonic() - t0
            parts.append(text)
    return {"id": reply_id, "conversation": conversation, "reply": "".join(parts),
            "ttft_s": first, "total_s": time.monotonic() - t0}


def replay(url: str, convs: list[list[str]], max_tokens: int, budget_s: float
           ) -> tuple[list[dict[str, Any]], int]:
    """Send every conversation as its own customer until the budget runs out."""
    done: list[dict[str, Any]] = []
    t0 = time.monotonic()
    finished = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        for i, turns in enumerate(convs):
            if budget_s and time.monotonic() - t0 > budget_s:
                print(f"budget reached: {finished} of {len(convs)} conversations", flush=True)
                break
            r = client.post("/v1/customers")
            r.raise_for_status()
            headers = {"authorization": f"Bearer {r.json()['token']}"}
            history: list[dict[str, str]] = []
            conversation = None
            for query in turns:
                history.append({"role": "user", "content": query})
                out = turn(client, headers, history, conversation, max_tokens)
                conversation = out["conversation"]
                history.append({"role": "assistant", "content": out["reply"]})
                done.append(out)
            finished += 1
            print(f"conversation {i + 1}/{len(convs)}: {len(turns)} turns, "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
    return done, finished


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def share(n: int, total: int) -> str:
    return f"{n:4d}  ({100 * n / total:5.1f} %)" if total else f"{n:4d}"


def summarize(store: Path, turns: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    try:
        rows = {r["id"]: dict(r) for r in conn.execute(
            "SELECT id, answered_by, escalation, cloud_status, match_score, latency_ms, first_token_ms,"
            " prompt_tokens, completion_tokens, cloud_prompt_tokens, cloud_completion_tokens, cost FROM serve_exchanges")}
        egress = dict(conn.execute("SELECT COUNT(*) AS attempts, COALESCE(SUM(prompt_tokens), 0) AS p,"
                                   " COALESCE(SUM(completion_tokens), 0) AS c, COALESCE(SUM(cost), 0) AS"
                                   " cost FROM cloud_egress").fetchone())
        statuses = Counter(s for (s,) in conn.execute("SELECT status FROM cloud_egress"))
    finally:
        conn.close()
    for t in turns:
        t.update(rows[t["id"]])
    n = len(turns)
    # escalated = the cloud was asked (a low score only recorded in `record` mode is not)
    when = Counter("none" if t["cloud_status"] is None
                   else "before" if (t["escalation"] or "").split(":")[0] in BEFORE else "after"
                   for t in turns)
    reasons = Counter(t["escalation"] for t in turns if t["escalation"])
    by = Counter(t["answered_by"] for t in turns)
    called = [t for t in turns if t["cloud_status"] is not None]
    outcome = Counter("ok" if t["cloud_status"] == "ok" else "timeout" if t["cloud_status"] == "timeout"
                      else "breaker" if t["cloud_status"] == "circuit_open" else "other failure"
                      for t in called)
    failed = [t for t in called if t["cloud_status"] != "ok"]
    p_in = sum(t["cloud_prompt_tokens"] for t in turns)
    p_out = sum(t["cloud_completion_tokens"] for t in turns)
    priced = (p_in * args.price_in_per_1k + p_out * args.price_out_per_1k) / 1000
    ledger = sum(t["cost"] for t in turns)
    scores = [t["match_score"] for t in turns if t["match_score"] is not None]
    out = [f"turns {n}; Match score of the end drafts (n {len(scores)}): min / p25 / p50 / p75 / max "
           + " / ".join("-" if pct(scores, q) is None else f"{pct(scores, q):.3f}"
                        for q in (0, 25, 50, 75, 100)),
           "", "escalation (when the cloud was asked to take over)"]
    out += [f"  {k:<8} {share(when[k], n)}" for k in ("none", "before", "after")]
    out += [f"    reason {k:<16} {v}" for k, v in sorted(reasons.items())]
    out += ["", "answered by"] + [f"  {k:<8} {share(by[k], n)}" for k in ("end", "cloud", "handoff")]
    out += ["", f"cloud calls {len(called)} (turns that asked the cloud; HTTP attempts {egress['attempts']})"]
    out += [f"  {k:<14} {share(outcome[k], len(called))}"
            for k in ("ok", "timeout", "breaker", "other failure")]
    out += [f"  failed calls answered with: local reply {sum(t['answered_by'] == 'end' for t in failed)},"
            f" hand-off {sum(t['answered_by'] == 'handoff' for t in failed)}"]
    out += [f"  per-attempt statuses (cloud_egress): {dict(sorted(statuses.items()))}"]
    out += ["", "latency per answering side, client-side ms (streamed; TTFT = first text on screen;",
            "  a turn escalated after generation includes the end model's draft in its cloud time)",
            f"  {'side':<8} {'n':>4} {'TTFT p50':>9} {'TTFT p95':>9} {'total p50':>10} {'total p95':>10}"]
    for side in ("end", "cloud", "handoff"):
        ts = [t for t in turns if t["answered_by"] == side]
        ttft = [t["ttft_s"] for t in ts if t["ttft_s"] is not None]
        total = [t["total_s"] for t in ts]
        out.append(f"  {side:<8} {len(ts):>4} {fmt_ms(pct(ttft, 50)):>9} {fmt_ms(pct(ttft, 95)):>9} "
                   f"{fmt_ms(pct(total, 50)):>10} {fmt_ms(pct(total, 95)):>10}")
    end_tokens = (sum(t["prompt_tokens"] for t in turns), sum(t["completion_tokens"] for t in turns))
    out += ["", f"cost ledger (assumed prices: {args.price_in_per_1k} in / {args.price_out_per_1k} out "
                f"per 1k tokens{'; ' + args.price_label if args.price_label else ''})",
            f"  cloud tokens in {p_in}, out {p_out} (turns' ledger); all HTTP attempts: in {egress['p']},"
            f" out {egress['c']}",
            f"  cloud cost: service ledger {ledger:.6f}, recomputed {priced:.6f}, per turn {ledger / n:.6f}"
            if n else "  no turns",
            f"  end model tokens (local, no cloud cost): in {end_tokens[0]}, out {end_tokens[1]}"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a prepared JDDC test.jsonl (messages JSONL)")
    ap.add_argument("--config", default="configs/serve.yaml")
    ap.add_argument("--conversations", type=int, default=16)
    ap.add_argument("--max-turns", type=int, default=3, help="customer turns per conversation")
    ap.add_argument("--max-tokens", type=int, default=48, help="per reply (the service caps it too)")
    ap.add_argument("--budget-s", type=float, default=600.0, help="stop starting conversations after")
    ap.add_argument("--backend", default="transformers", help="the end backend (end/runtime.py)")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--cloud-url", default="local",
                    help="local = start the embedded teacher; else an OpenAI-compatible base URL")
    ap.add_argument("--first-token-s", type=float, default=30.0)
    ap.add_argument("--total-s", type=float, default=60.0)
    ap.add_argument("--price-in-per-1k", type=float, default=0.00015)
    ap.add_argument("--price-out-per-1k", type=float, default=0.0006)
    ap.add_argument("--price-label", default="", help="where the assumed prices come from")
    ap.add_argument("--match-thresholds", type=float, nargs="*", default=[],
                    help="one replay per value, each with a fresh store ([] = the config's)")
    ap.add_argument("--out", default="", help="also write the printed figures here")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="another serve config override (repeatable)")
    args = ap.parse_args(argv)

    from endcloud.cloud.config import CloudConfig
    from endcloud.cloud.label import local_teacher

    convs = conversations(Path(args.data), args.conversations, args.max_turns)
    t0 = time.monotonic()
    teacher = (local_teacher(CloudConfig(base_url="local", model="local")) if args.cloud_url == "local"
               else contextlib.nullcontext(CloudConfig(base_url=args.cloud_url, model="local")))
    blocks = []
    with teacher as cloud:
        t_teacher = time.monotonic() - t0
        for threshold in args.match_thresholds or [None]:
            blocks.append(setting(args, cloud.base_url, threshold, convs))
    text = "\n".join([
        f"bench/serve_escalation.py  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"data {Path(args.data).name}: {len(convs)} conversations (first in file order), <= "
        f"{args.max_turns} customer turns each, max_tokens {args.max_tokens}",
        f"end model {args.model} ({args.backend}, {args.dtype}); cloud: "
        + ("embedded teacher (serve-local, default teacher) on loopback" if args.cloud_url == "local"
           else args.cloud_url) + f", started in {t_teacher:.0f} s",
        f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')} "
        f"ENDCLOUD_N_THREADS={os.environ.get('ENDCLOUD_N_THREADS', '-')}", "", *blocks]) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def setting(args: argparse.Namespace, cloud_url: str, threshold: float | None,
            convs: list[list[str]]) -> str:
    """One service (fresh store) at one Match threshold: replay, then the printed block."""
    from endcloud.serve.app import create_app, fastapi_app
    from endcloud.serve.server import running

    run = Path(tempfile.mkdtemp(prefix="bench-serve-escalation-"))
    cfg = service_config(args, run / "serve.db", cloud_url)
    if threshold is not None:
        cfg.escalation.match_threshold = threshold
    t1 = time.monotonic()
    app = create_app(cfg)
    with running(app, timeout_s=900) as url:
        t_load = time.monotonic() - t1
        scorer = type(fastapi_app(app).state.services.policy.scorer).__name__
        t2 = time.monotonic()
        turns, finished = replay(url, convs, args.max_tokens, args.budget_s)
        t_replay = time.monotonic() - t2
    esc = cfg.escalation
    head = [f"== match_threshold {esc.match_threshold}: {finished} conversations replayed",
            f"escalation: scorer {esc.scorer} ({scorer}), after_mode {esc.after_mode}, fallback "
            f"{esc.fallback}, deadlines first {esc.first_token_s} s / total {esc.total_s} s, cloud "
            f"max_tokens {esc.cloud.max_tokens}"
            + (f"; overrides {' '.join(args.overrides)}" if args.overrides else ""),
            f"wall: service start (model load) {t_load:.0f} s, replay {t_replay:.0f} s", ""]
    return "\n".join(head + summarize(run / "serve.db", turns, args)) + "\n"


if __name__ == "__main__":
    sys.exit(main())
