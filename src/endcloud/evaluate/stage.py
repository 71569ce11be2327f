"""The evaluation stage, top to bottom: read queries -> get replies -> score -> report.

    endcloud evaluate --config configs/eval.yaml
    endcloud evaluate score --input pairs.jsonl --output scored.jsonl

`run(cfg)` writes into `runs/evaluate-<stamp>/`: table_vi.md, table_vi.csv, fig3.png,
scores.json (every component of every query × system), replies.jsonl, config.yaml.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endcloud.config import to_dict
from endcloud.evaluate.combine import combine
from endcloud.evaluate.grounded import grounding
from endcloud.evaluate.config import EvalConfig
from endcloud.evaluate.metrics import corpus_metrics, reply_metrics
from endcloud.evaluate.nonanswer import cap, guard
from endcloud.evaluate.report import write_reports
from endcloud.evaluate.scorers import scorer_for
from endcloud.evaluate.systems import FileReplies, QueryItem, Reply, read_queries, source_for
from endcloud.runs import new_run_dir, save_config, write_jsonl
from endcloud.store import scores as score_rows
from endcloud.store.db import Store, utcnow

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    run_dir: Path
    results: dict[str, Any]  # what scores.json holds


def score_pairs(queries: list[str], replies: list[str], references: list[str | None],
                similarity: str = "similarity", match: str = "match",
                alpha: float = 0.8, theta: float = 0.2,
                matcher_weights: str | None = None,
                support: list[list[str]] | None = None) -> list[dict[str, Any]]:
    """Eq. 1 per (query, reply, optional cloud reply), with the non-answer guard and groundedness:
    sim, match, match_reference, final, rule, nonanswer, grounded, unsupported.

    Match and Match(query, cloud reply) are capped where a reply is a non-answer, and so is Final
    unless the cloud reply is a non-answer of the same kind (`endcloud.evaluate.nonanswer`).
    `grounded` checks the reply's facts against the cloud reply, the query and `support[i]`
    (knowledge chunks the model was given), `endcloud.evaluate.grounded`.
    `matcher_weights`: the folder of a trained matcher, for `match` in either role.
    """
    sim_s, match_s = scorer_for(similarity, matcher_weights), scorer_for(match, matcher_weights)
    m, kinds = guard(queries, replies, match_s.score(queries, replies))
    has = [i for i, r in enumerate(references) if r is not None]
    sims = np.full(len(queries), np.nan)
    m_ref = np.full(len(queries), np.nan)
    if has:
        refs = [references[i] or "" for i in has]
        sims[has] = sim_s.score([replies[i] for i in has], refs)
        m_ref[has] = guard([queries[i] for i in has], refs,
                           match_s.score([queries[i] for i in has], refs))[0]
    out = []
    for i in range(len(queries)):
        ref_known = references[i] is not None
        c = combine(float(sims[i]) if ref_known else None, float(m[i]),
                    float(m_ref[i]) if ref_known else None, alpha, theta).to_dict()
        kind, most = cap(queries[i], replies[i], references[i])
        c["final"] = min(c["final"], most)
        c["nonanswer"] = kinds[i]
        g = grounding(replies[i], [references[i] or "", queries[i], *(support[i] if support else [])])
        c["grounded"], c["unsupported"] = g.score, g.unsupported
        out.append(c)
    return out


def run(cfg: EvalConfig) -> EvalResult:
    """Evaluate every system of `cfg` on its query set; write Table VI, Fig. 3 and scores.json."""
    items = read_queries(cfg.queries, cfg.limit)
    references = _references(cfg, items)
    run_dir = new_run_dir(cfg.output_dir, "evaluate")
    save_config(run_dir, cfg)
    systems: dict[str, Any] = {}
    replies_rows = []
    for system in cfg.systems:
        log.info("system %s: %d queries", system.name, len(items))
        replies = source_for(system, cfg.generation).replies(items)
        t0 = time.perf_counter()
        scored = score_pairs([it.query for it in items], [r.text for r in replies], references,
                             cfg.similarity, cfg.match, cfg.alpha, cfg.theta, cfg.matcher_weights)
        seconds = time.perf_counter() - t0
        systems[system.name] = _system_result(items, replies, references, scored, seconds)
        replies_rows += [{"system": system.name, "id": it.id, "query": it.query, "reply": r.text,
                          "latency_ms": r.latency_ms} for it, r in zip(items, replies)]
    results = {
        "alpha": cfg.alpha, "theta": cfg.theta,
        "reference": cfg.reference or "dataset (the split's own agent reply)",
        "scorers": {"similarity": scorer_for(cfg.similarity, cfg.matcher_weights).describe(),
                    "match": scorer_for(cfg.match, cfg.matcher_weights).describe()},
        "queries": [{"id": it.id, "query": it.query, "human_reply": it.human_reply,
                     "reference": ref} for it, ref in zip(items, references)],
        "systems": systems,
        "config": to_dict(cfg),
    }
    write_jsonl(run_dir / "replies.jsonl", replies_rows)
    write_reports(run_dir, results, cfg.figure_max_queries)
    if cfg.store:
        save_scores(run_dir, cfg, results)
    return EvalResult(run_dir, results)


def _references(cfg: EvalConfig, items: list[QueryItem]) -> list[str | None]:
    """The cloud reply per query: from `cfg.reference`, else the split's own agent reply."""
    if cfg.reference:
        return [r.text for r in FileReplies(cfg.reference).replies(items)]
    return [it.human_reply or None for it in items]


def _system_result(items: list[QueryItem], replies: list[Reply], references: list[str | None],
                   scored: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    per_query = []
    for it, reply, ref, comp in zip(items, replies, references, scored):
        bleu_refs = [it.human_reply] if it.human_reply else ([ref] if ref else [])
        per_query.append({"id": it.id, "reply": reply.text, "latency_ms": reply.latency_ms,
                          **comp, **reply_metrics(reply.text, bleu_refs)})
    finals = [q["final"] for q in per_query]
    lat = [q["latency_ms"] for q in per_query if q["latency_ms"] is not None]
    summary = {
        "final_mean": float(np.mean(finals)) if finals else 0.0,
        **{f"{k}_mean": float(np.mean([q[k] for q in per_query if q[k] is not None] or [0.0]))
           for k in ("sim", "match", "bleu", "rouge_l", "length_tokens", "length_chars")},
        **corpus_metrics([r.text for r in replies]),
        "latency_ms_mean": float(np.mean(lat)) if lat else None,
        "rules": {r: sum(q["rule"] == r for q in per_query) for r in ("eq1", "sim_only", "match_only")},
        **grounded_summary(per_query),
        "nonanswers": {k: sum(q.get("nonanswer") == k for q in per_query)
                       for k in ("empty", "echo", "restates", "filler")},
        "scoring_pairs_per_s": len(items) / seconds if seconds > 0 else None,
    }
    return {"summary": summary, "per_query": per_query}


def grounded_summary(per_query: list[dict[str, Any]]) -> dict[str, Any]:
    """`grounded_mean` over the replies with a checkable claim; `ungrounded_share`: the share of
    all replies with a claim nothing given supports; `with_claims`: how many replies had one."""
    checked = [q["grounded"] for q in per_query if q.get("grounded") is not None]
    bad = [bool(q.get("unsupported")) for q in per_query]
    return {"grounded_mean": float(np.mean(checked)) if checked else None,
            "ungrounded_share": float(np.mean(bad)) if bad else 0.0, "with_claims": len(checked)}


def save_scores(run_dir: Path, cfg: EvalConfig, results: dict[str, Any]) -> int:
    """Write every query × system score of an evaluation run into `eval_scores`."""
    scorers = json.dumps({"similarity": cfg.similarity, "match": cfg.match})
    refs = {q["id"]: (q["query"], q["reference"]) for q in results["queries"]}
    with Store.open() as store:
        run_id = store.start_run("evaluate", run_dir, to_dict(cfg))
        now, rows = utcnow(), []
        for system, res in results["systems"].items():
            for q in res["per_query"]:
                query, ref = refs[q["id"]]
                rows.append((run_id, system, q["id"], query, q["reply"], ref, q["sim"], q["match"],
                             q["match_reference"], q["final"], q["rule"], results["alpha"],
                             results["theta"], scorers, now))
        score_rows.add_eval_scores(store.conn, rows)
        store.finish_run(run_id, {s: r["summary"]["final_mean"] for s, r in results["systems"].items()})
    return len(rows)
