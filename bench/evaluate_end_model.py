"""The evaluation benchmark on a real end model, original vs LoRA, on a prepared test split
(here: JDDC 2018, read from ../shared/data by `data prepare`; only ids and numbers are written).

    .venv/bin/endcloud data prepare --config configs/data.yaml corpus=jddc2018 output_root=runs/prep-jddc2018
    nice -n 5 .venv/bin/python bench/evaluate_end_model.py \\
        --queries runs/prep-jddc2018/data-*/test.jsonl --train runs/prep-jddc2018/data-*/train.jsonl \\
        --adapter runs/end-train-lora/adapter --limit 25 [--cloud local|skip]

1. cloud column: `--cloud local` labels the same queries with the embedded teacher (`endcloud
   cloud label`, base_url local, 8 fixed train examples) and uses those replies as Eq. 1's
   reference; `--cloud skip` leaves `reference` empty, so the split's own agent reply stands in.
2. `endcloud evaluate` (stage.run) with two systems, `original` (qwen2.5-coder-0.5b) and `lora`
   (the same + `--adapter`), generating with the paper's Table IV sampling: Table VI, Fig. 3 and
   scores.json in a run folder under --work.
3. scoring throughput: all (query, reply, reference) pairs of the run scored again with Eq. 1
   after clearing the encoders' text caches (models already loaded), pairs/s on this CPU.
4. committed copies without corpus text: --out.md (Table VI with query numbers and ids in place
   of the queries, plus the metrics table), --out.png (Fig. 3 holds no text), --out.json (every
   component per query id and system; no query or reply text).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def first(queries: Path, limit: int, work: Path) -> Path:
    head = work / "queries.jsonl"
    with queries.open(encoding="utf-8") as src, head.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= limit:
                break
            dst.write(line)
    return head


def cloud_references(head: Path, train: Path, work: Path) -> tuple[Path, Path]:
    """{"id", "reply"} JSONL of the embedded teacher's replies, and the queries it answered
    (a query the teacher failed on after retries is left out of the benchmark, and counted)."""
    labels = work / "cloud_labels.jsonl"
    exe = Path(sys.executable).with_name("endcloud")
    t0 = time.perf_counter()
    subprocess.run([str(exe), "cloud", "label", "--config", str(REPO / "configs" / "label.yaml"),
                    "--input", str(head), "--output", str(labels), f"output_root={work}",
                    f"store={work / 'label.db'}", f"prompt.examples={train}", "cloud.base_url=local"],
                   check=True)
    refs, answered = work / "cloud_replies.jsonl", work / "queries_answered.jsonl"
    rows = [json.loads(line) for line in labels.open(encoding="utf-8")]
    ids = {r["meta"]["id"] for r in rows}
    with refs.open("w", encoding="utf-8") as dst:
        for obj in rows:
            dst.write(json.dumps({"id": obj["meta"]["id"], "reply": obj["messages"][-1]["content"]},
                                 ensure_ascii=False) + "\n")
    kept = [line for line in head.open(encoding="utf-8") if json.loads(line)["meta"]["id"] in ids]
    answered.write_text("".join(kept), encoding="utf-8")
    n_in = sum(1 for _ in head.open(encoding="utf-8"))
    print(f"cloud labels: {len(ids)} of {n_in} queries in {time.perf_counter() - t0:.0f} s (server start included)")
    return refs, answered


def evaluate(args: argparse.Namespace, queries: Path, reference: str):
    from endcloud.config import load_config
    from endcloud.evaluate.config import EvalConfig
    from endcloud.evaluate.stage import run

    systems = [{"name": "original", "model": args.model},
               {"name": "lora", "model": args.model, "adapter": str(args.adapter)}]
    cfg = load_config(EvalConfig, REPO / "configs" / "eval.yaml", [
        f"queries={queries}", "limit=0", f"reference={reference}",
        f"systems={json.dumps(systems)}", f"output_dir={args.work}", "store=false",
        f"similarity={args.similarity}", f"match={args.match}",
        f"generation.max_new_tokens={args.max_new_tokens}"])
    t0 = time.perf_counter()
    result = run(cfg)
    print(f"evaluate: {time.perf_counter() - t0:.0f} s -> {result.run_dir}")
    return result


def throughput(results: dict, similarity: str, match: str) -> dict:
    """Eq. 1 pairs/s over the run's own pairs, models loaded, text caches cleared."""
    from endcloud.evaluate.encoders import _LOADED as encoders
    from endcloud.evaluate.stage import score_pairs

    refs = [q["reference"] for q in results["queries"]]
    queries = [q["query"] for q in results["queries"]]
    n, seconds = 0, 0.0
    for system in results["systems"].values():
        for enc in encoders.values():
            enc._cache.clear()
        replies = [q["reply"] for q in system["per_query"]]
        t0 = time.perf_counter()
        score_pairs(queries, replies, refs, similarity, match)
        seconds += time.perf_counter() - t0
        n += len(replies)
    return {"pairs": n, "seconds": round(seconds, 2), "pairs_per_s": round(n / seconds, 2)}


def without_text(results: dict) -> dict:
    """The results with every query, reply and reference text removed (ids and numbers stay)."""
    out = copy.deepcopy(results)
    for i, q in enumerate(out["queries"], 1):
        q["query"] = f"query #{i} ({q['id']})"
        q.pop("human_reply", None)
        q.pop("reference", None)
    for system in out["systems"].values():
        for q in system["per_query"]:
            q.pop("reply", None)
    out.pop("config", None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=Path, required=True, help="a prepared test split (messages JSONL), e.g. corpus=jddc2018")
    ap.add_argument("--train", type=Path, required=True, help="its train split (the teacher's examples)")
    ap.add_argument("--adapter", type=Path, required=True, help="a LoRA adapter of --model")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=25)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--cloud", choices=("local", "skip"), default="local")
    ap.add_argument("--similarity", default="similarity", help="scorer for Sim (similarity, ngram)")
    ap.add_argument("--match", default="match", help="scorer for Match (match, match-trained, ngram)")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench-evaluate-end-model")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "eval_end_model")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    queries, reference = first(args.queries, args.limit, args.work), ""
    if args.cloud == "local":
        refs, queries = cloud_references(queries, args.train, args.work)
        reference = str(refs)
    result = evaluate(args, queries, reference)
    tp = throughput(result.results, args.similarity, args.match)
    print(f"scoring throughput (Eq. 1, models loaded, cold text caches): {tp}")
    from endcloud.evaluate.report import table_markdown

    clean = without_text(result.results)
    adapter = json.loads((args.adapter / "manifest.json").read_text(encoding="utf-8"))
    clean["benchmark"] = {"queries": f"{args.queries}, first {args.limit} "
                                     f"({len(clean['queries'])} scored)", "model": args.model,
                          "adapter": {"path": str(args.adapter), "method": adapter.get("method"),
                                      "step": adapter.get("step")},
                          "cloud": "embedded teacher (base_url local)" if reference else
                                   "skipped: the split's own agent reply is the reference",
                          "scoring_throughput": tp}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(clean, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
    md = table_markdown(clean) + (f"\nAdapter: {args.adapter} (method {adapter.get('method')}, step "
                                  f"{adapter.get('step')}). Scoring throughput on this CPU: "
                                  f"{tp['pairs_per_s']} Eq. 1 pairs/s ({tp['pairs']} pairs, models "
                                  f"loaded, cold text caches).\n")
    args.out.with_suffix(".md").write_text(md, encoding="utf-8")
    shutil.copyfile(result.run_dir / "fig3.png", args.out.with_suffix(".png"))
    print(f"wrote {args.out}.md / .png / .json")


if __name__ == "__main__":
    main()
