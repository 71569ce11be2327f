"""Online evolution over rounds: JDDC queries replayed as traffic through the real service, then
`endcloud.evolve.round.run`, repeated; per round the champion's held-out mean Final, the
escalation rate on a fixed probe slice, cloud calls, labels, the gate's decision and wall time.

    endcloud data prepare --config configs/data.yaml corpus=jddc2019 on_error=skip output_root=runs/prep-jddc2019
    python bench/evolve_rounds.py --data runs/prep-jddc2019/data-* --model tiny --teacher fake      # minutes
    python bench/evolve_rounds.py --data runs/prep-jddc2019/data-* --model qwen2.5-coder-0.5b \
        --teacher local --traffic 24 --steps 30 --rounds 3 --dtype bfloat16

Three disjoint query sets, all from the prepared splits (already PII-masked):
  * traffic: validation conversations, `--traffic` new ones per round, sent as real HTTP requests
    to the service (`create_app` + `running`: auth, escalation policy, masked cloud client, store);
    the service follows the evolve registry, so round r's traffic meets round r-1's champion;
  * gate held-out: the first `--gate-n` test conversations whose query appears in neither train
    nor validation (the gate refuses on any overlap) - never trained on;
  * probe: the next `--probe-n` such test conversations, sent after every round to a second
    service instance over its own store (same code, same registry), so the probe measures the
    escalation rate without ever becoming training data.
Round 0 is the base model (no adapter), or `--init-adapter` (an adapter trained offline,
e.g. on the cloud labels of `bench/cloud_embedded.py`; `--replay-extra` puts those labels in the
replay pool too). The teacher is either the embedded 1.5B model
(`local`, started once and shared by service escalation and relabelling) or `fake`: a loopback
OpenAI-compatible server that answers with the corpus's reference reply for a known query
(a generic reply otherwise) - fast, for proving the pipeline, not a quality claim.
Per round the champion's held-out mean Final comes with a bootstrap 95 % interval (percentile,
over the held-out queries), and the round's stage times (select/relabel/train/gate).
Writes <out>/rounds.{json,md,png} (and copies them to `--results PREFIX`.{json,md,png}: counts,
scores and settings only, no corpus text) and prints the table.

The real run whose round 3 promoted (bench/results/evolve_rounds_real3_cloudref.md; 15 min a round on
one core): an initial champion distilled from the embedded teacher's labels, the gate's Sim against
the teacher's replies (Eq. 1):
    endcloud end train --config configs/train.yaml model.dtype=bfloat16 data.natural=<X>/train.jsonl \
        data.labels=<labels>.jsonl data.label_ratio=0.7 "data.system=<serve.yaml system>" \
        data.max_input_tokens=128 data.max_output_tokens=64 steps=400 lr=2.0e-4 batch_size=1 grad_accum=1
    OMP_NUM_THREADS=1 nice -n 5 python bench/evolve_rounds.py --data <X> --model qwen2.5-coder-0.5b \
        --dtype bfloat16 --teacher local --threads 1 --rounds 3 --traffic 48 --steps 48 --batch-size 4 \
        --lr 1e-4 --scheduler constant --gate-n 48 --probe-n 12 --max-new-tokens 24 --max-input-tokens 128 \
        --init-adapter <distilled adapter> --replay-extra <labels>.jsonl --heldout-reference cloud
(<X>: the folder `endcloud data prepare` wrote, as above;
<labels>: `python bench/cloud_embedded.py --input <X>/train.jsonl --queries 500`.)

The earlier three-round runs from the base model, human references (every candidate refused):
    OMP_NUM_THREADS=1 nice -n 5 python bench/evolve_rounds.py --data <X> --model qwen2.5-coder-0.5b \
        --dtype bfloat16 --teacher local --threads 1 --rounds 3 --traffic 32 --steps 32 \
        --batch-size 2 --lr 5e-4 --scheduler constant --gate-n 32 --probe-n 12 \
        --max-new-tokens 24 --max-input-tokens 128 --results bench/results/evolve_rounds_real3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

GENERIC = "亲，您好，请问还有什么可以帮您？"


def norm(text: str) -> str:
    return " ".join(text.split()).lower()


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def query_of(row: dict[str, Any]) -> str:
    return norm(row["messages"][-2]["content"])


# -- the three query sets --------------------------------------------------------------------------
def split_sets(data: Path, rounds: int, traffic: int, gate_n: int, probe_n: int,
               out: Path) -> dict[str, Any]:
    train, val, test = (read_rows(data / f"{s}.jsonl") for s in ("train", "validation", "test"))
    seen = {query_of(r) for r in train} | {query_of(r) for r in val}
    fresh, picked = [], set()
    for r in test:  # held-out and probe: unseen queries, each query once
        q = query_of(r)
        if q not in seen and q not in picked:
            fresh.append(r)
            picked.add(q)
    if len(fresh) < gate_n + probe_n:
        raise SystemExit(f"only {len(fresh)} unseen test queries for --gate-n + --probe-n")
    heldout, probe = fresh[:gate_n], fresh[gate_n: gate_n + probe_n]
    need = rounds * traffic
    if len(val) < need:
        raise SystemExit(f"validation has {len(val)} rows < --rounds x --traffic = {need}")
    write(out / "heldout.jsonl", heldout)
    write(out / "probe.jsonl", probe)
    teacher_map: dict[str, str] = {}
    for r in train + val + test:
        teacher_map.setdefault(query_of(r), r["messages"][-1]["content"])
    return {"heldout": out / "heldout.jsonl", "probe": probe,
            "traffic": [val[i * traffic:(i + 1) * traffic] for i in range(rounds)],
            "natural": data / "train.jsonl", "teacher_map": teacher_map}


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# -- teachers --------------------------------------------------------------------------------------
@contextlib.contextmanager
def teacher(kind: str, answers: dict[str, str]) -> Iterator[str]:
    """Yield an OpenAI-compatible base URL: the loopback fake or the embedded teacher."""
    if kind == "local":
        from endcloud.cloud.config import CloudConfig
        from endcloud.cloud.label import local_teacher

        with local_teacher(CloudConfig(base_url="local", model="local")) as c:
            yield c.base_url
        return
    from endcloud.cloud.server import fake_teacher

    with fake_teacher(lambda query: answers.get(norm(query), GENERIC)) as server:
        yield server.url


# -- configs ---------------------------------------------------------------------------------------
def model_cfg(args: argparse.Namespace, run: Path) -> Any:
    from endcloud.end.config import ModelConfig

    if args.model == "tiny":
        from endcloud.tiny import build_tiny_model

        return ModelConfig(name=str(build_tiny_model(run / "tiny-model")))
    return ModelConfig(name=args.model, dtype=args.dtype)


def serve_cfg(args: argparse.Namespace, model: Any, store: Path, registry: str, cloud_url: str) -> Any:
    from endcloud.end.config import BackendConfig
    from endcloud.serve.config import EscalationConfig, LimitsConfig, ServeConfig

    slow = args.teacher == "local"  # the embedded teacher needs seconds per reply on a CPU
    esc = EscalationConfig(scorer=args.scorer, match_threshold=args.match_threshold,
                           first_token_s=60.0 if slow else 5.0, total_s=120.0 if slow else 15.0)
    esc.cloud.base_url, esc.cloud.model = cloud_url, "local"
    return ServeConfig(store=str(store), backend=BackendConfig(
        kind="transformers", model=model, temperature=0.0, max_input_tokens=args.max_input_tokens,
        registry=registry, registry_poll_s=0.2), limits=LimitsConfig(session_rate_per_minute=0),
        escalation=esc)


def evolve_cfg(args: argparse.Namespace, model: Any, run: Path, store: Path, heldout: Path,
               natural: Path, cloud_url: str, system: str) -> Any:
    from endcloud.cloud.config import CloudConfig
    from endcloud.end.config import MethodConfig
    from endcloud.evolve.config import (EvolveConfig, GateConfig, RelabelConfig, RetrainConfig,
                                        SelectConfig)

    tiny = args.model == "tiny"
    method = (MethodConfig(name="lora", r=8, alpha=16, dropout=0.0, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"])
        if tiny else MethodConfig(name="lora"))
    train = RetrainConfig(method=method, natural=str(natural), replay_share=args.replay_share,
                          steps=args.steps, lr=args.lr or (0.03 if tiny else 2e-4),
                          scheduler=args.scheduler or ("constant" if tiny else "linear"),
                          batch_size=args.batch_size,
                          max_input_tokens=args.max_input_tokens,
                          max_output_tokens=args.max_new_tokens, system=system,
                          threads=args.threads, nice=5)
    cloud = CloudConfig(base_url=cloud_url, model="local", concurrency=1 if args.teacher == "local" else 2)
    return EvolveConfig(store=str(store), work_dir=str(run / "evolve"), model=model,
                        select=SelectConfig(final_threshold=args.final_threshold, min_new=1),
                        relabel=RelabelConfig(cloud=cloud), train=train,
                        gate=GateConfig(heldout=str(heldout), bootstrap=1000,
                                        max_new_tokens=args.max_new_tokens,
                                        max_input_tokens=args.max_input_tokens,
                                        regression_from_store=0))


# -- traffic and probe -----------------------------------------------------------------------------
def send(url: str, rows: list[dict[str, Any]], max_tokens: int) -> list[str]:
    """One customer, one request per row (its context + query); the reply ids."""
    r = httpx.post(f"{url}/v1/customers", timeout=30)
    r.raise_for_status()
    h = {"authorization": f"Bearer {r.json()['token']}"}
    ids = []
    for row in rows:
        msgs = [m for m in row["messages"][:-1] if m["role"] in ("user", "assistant")]
        resp = httpx.post(f"{url}/v1/chat/completions", headers=h, timeout=600,
                          json={"messages": msgs, "max_tokens": max_tokens})
        resp.raise_for_status()
        ids.append(resp.json()["id"])
    return ids


def exchange_stats(store: Path, ids: list[str]) -> dict[str, Any]:
    """Escalations and cloud calls among the exchanges `ids` (read from the service's store)."""
    with sqlite3.connect(store) as db:
        rows = db.execute(f"SELECT answered_by, escalation, cloud_status FROM serve_exchanges "
                          f"WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall()
    esc = sum(1 for *_, s in rows if s is not None)  # escalated = the cloud was asked (as the report)
    return {"n": len(rows), "escalated": esc, "escalation_rate": esc / len(rows) if rows else None,
            "cloud_calls": sum(1 for *_, s in rows if s is not None),
            "answered_by": {k: sum(1 for by, *_ in rows if by == k) for k in ("end", "cloud", "handoff")}}


# -- the rounds ------------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from endcloud.end.registry import Registry
    from endcloud.evolve.round import run as evolve_round
    from endcloud.serve.app import create_app
    from endcloud.serve.server import running

    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.out or f"runs/bench-evolve-{time.strftime('%Y%m%d-%H%M%S')}")
    run.mkdir(parents=True, exist_ok=True)
    os.environ["ENDCLOUD_DB"] = str(run / "serve.db")
    sets = split_sets(Path(args.data), args.rounds, args.traffic, args.gate_n, args.probe_n, run)
    model = model_cfg(args, run)
    registry = str(run / "evolve" / "registry")
    if args.init_adapter:  # round 0's champion: an adapter trained offline (natural + cloud labels)
        reg = Registry(registry)
        reg.promote(reg.add(args.init_adapter, round_id=0), "initial champion: " + args.init_adapter)
    if args.replay_extra:  # replay draws from the natural data and these earlier labels alike
        sets["natural"] = run / "replay-source.jsonl"
        write(sets["natural"], read_rows(Path(args.data) / "train.jsonl") + read_rows(Path(args.replay_extra)))
    rows: list[dict[str, Any]] = []
    t_all = time.monotonic()
    with teacher(args.teacher, sets["teacher_map"]) as cloud_url:
        traffic_cfg = serve_cfg(args, model, run / "serve.db", registry, cloud_url)
        probe_cfg = serve_cfg(args, model, run / "probe.db", registry, cloud_url)
        if args.heldout_reference == "cloud":  # Eq. 1's Sim is against the cloud's reply
            sets["heldout"] = cloud_references(sets["heldout"], cloud_url, args.teacher, run)
        cfg = evolve_cfg(args, model, run, run / "serve.db", sets["heldout"], sets["natural"],
                         cloud_url, traffic_cfg.system)
        base_vs_initial = initial_vs_base(cfg, model, Registry(registry)) if args.init_adapter else None
        with running(create_app(traffic_cfg)) as url, running(create_app(probe_cfg)) as purl:
            t0 = time.monotonic()
            probe = exchange_stats(run / "probe.db", send(purl, sets["probe"], args.max_new_tokens))
            rows.append({"round": 0, "status": "initial" if args.init_adapter else "base",
                         "champion": Registry(registry).champion(), "probe": probe,
                         "base_vs_initial": base_vs_initial,
                         "wall_s": {"probe": time.monotonic() - t0}})
            print(f"round 0 ({rows[0]['status']}): probe escalation {probe['escalation_rate']:.3f}", flush=True)
            for r in range(1, args.rounds + 1):
                rows.append(one_round(r, cfg, sets, url, purl, run, args, evolve_round))
                print(f"round {r}: {rows[-1]['status']} ({rows[-1]['reason']}) "
                      f"{rows[-1]['wall_s']['total']:.0f} s", flush=True)
                save(args, run, registry, rows, t_all)
                if r == 1 and args.stop_after_s and \
                        (time.monotonic() - t_all) * args.rounds > args.stop_after_s:
                    print(f"estimate {(time.monotonic() - t_all) * args.rounds:.0f} s for "
                          f"{args.rounds} rounds > --stop-after-s; stopping", flush=True)
                    break
    return save(args, run, registry, rows, t_all, final=True)


def cloud_references(heldout: Path, cloud_url: str, kind: str, run: Path) -> Path:
    """The held-out set with the teacher's reply in place of the corpus's (one masked label job,
    the relabel prompt), so that the gate's Sim compares with the cloud as Eq. 1 says."""
    from endcloud.cloud.config import CloudConfig, LabelConfig, PromptConfig
    from endcloud.cloud.label import run as label_run

    cloud = CloudConfig(base_url=cloud_url, model="local", concurrency=1 if kind == "local" else 2)
    t0 = time.monotonic()
    res = label_run(LabelConfig(input=str(heldout), output=str(run / "heldout-cloud-labels.jsonl"),
                                output_root=str(run), store=str(run / "heldout-labels.db"), cloud=cloud,
                                prompt=PromptConfig(n_examples=0)))
    got = {r["meta"]["id"]: r["messages"][-1]["content"] for r in read_rows(res.output)}
    rows = read_rows(heldout)
    missing = [r["meta"]["id"] for r in rows if r["meta"]["id"] not in got]
    if missing:
        raise SystemExit(f"the teacher left {len(missing)} held-out queries unlabelled: {missing[:3]}")
    out = run / "heldout-cloud.jsonl"
    write(out, [{**r, "messages": r["messages"][:-1] + [{"role": "assistant", "content": got[r["meta"]["id"]]}]}
                for r in rows])
    print(f"held-out references: {len(rows)} teacher replies ({time.monotonic() - t0:.0f} s)", flush=True)
    return out


def initial_vs_base(cfg: Any, model: Any, registry: Any) -> dict[str, Any]:
    """The base model vs the initial champion on the held-out set (the gate's own scoring; its
    reply cache makes round 1's champion side free)."""
    from endcloud.evolve.gate import gate

    t0 = time.monotonic()
    result, detail = gate(cfg.gate, model, None, registry.champion_path(), [], set(), cfg.train.system,
                          Path(cfg.work_dir) / "gate-cache" if cfg.gate.cache else None)
    out = {"base_final": result.champion_final, "initial_final": result.candidate_final,
           "base_ci": mean_ci(detail["champion"]["finals"]),
           "initial_ci": mean_ci(detail["candidate"]["finals"]),
           "diff_lower": result.diff_lower, "seconds": round(time.monotonic() - t0, 1)}
    print(f"held-out Final: base {out['base_final']:.4f} vs initial champion {out['initial_final']:.4f}",
          flush=True)
    return out


def save(args: argparse.Namespace, run: Path, registry: str, rows: list[dict[str, Any]],
         t_all: float, final: bool = False) -> dict[str, Any]:
    """rounds.{json,md,png} so far (after every round: a stopped run still has its table)."""
    from endcloud.end.registry import Registry

    # round 0's held-out Final is round 1's champion score (the base model or --init-adapter)
    if len(rows) > 1 and rows[1].get("gate"):
        rows[0]["heldout_final"] = rows[1]["gate"]["champion_final"]
        rows[0]["heldout_ci"] = rows[1].get("base_ci")
    result = {"args": vars(args), "run": str(run), "champion": Registry(registry).champion(),
              "total_wall_s": time.monotonic() - t_all, "rounds": rows, "complete": final}
    (run / "rounds.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    table = markdown(result)
    (run / "rounds.md").write_text(table, encoding="utf-8")
    plot(result, run / "rounds.png")
    if args.results:
        for ext in ("json", "md", "png"):
            if (run / f"rounds.{ext}").is_file():
                shutil.copyfile(run / f"rounds.{ext}", f"{args.results}.{ext}")
    if final:
        print(table)
        print(f"written: {run}/rounds.{{json,md,png}}" +
              (f", copied to {args.results}.{{json,md,png}}" if args.results else ""))
    return result


def mean_ci(finals: list[float], n: int = 2000, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap 95 % interval of the mean over the held-out queries."""
    import numpy as np

    if not finals:
        return None
    x = np.asarray(finals)
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def gate_finals(round_dir: str) -> dict[str, list[float]]:
    path = Path(round_dir) / "gate.json"
    if not path.is_file():
        return {}
    g = json.loads(path.read_text(encoding="utf-8"))
    return {k: g[k]["finals"] for k in ("champion", "candidate") if k in g}


def plot(result: dict[str, Any], png: Path) -> None:
    """Held-out Final (with its 95 % interval) and escalation rates per round."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in result["rounds"] if r.get("heldout_final") is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    xs = [r["round"] for r in rows]
    ys = [r["heldout_final"] for r in rows]
    lo = [y - (r.get("heldout_ci") or [y, y])[0] for r, y in zip(rows, ys)]
    hi = [(r.get("heldout_ci") or [y, y])[1] - y for r, y in zip(rows, ys)]
    a.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=4, label="champion")
    cand = [r for r in result["rounds"] if (r.get("gate") or {}).get("candidate_final") is not None]
    a.plot([r["round"] for r in cand], [r["gate"]["candidate_final"] for r in cand], "x",
           color="tab:red", label="candidate (gated)")
    a.legend(loc="upper left", fontsize=8)
    zero = "initial champion" if result["rounds"] and result["rounds"][0].get("status") == "initial" else "base model"
    a.set_xlabel(f"round (0 = {zero})")
    a.set_ylabel("champion held-out mean Final (95% CI)")
    a.set_xticks([r["round"] for r in result["rounds"]])
    allr = result["rounds"]
    b.plot([r["round"] for r in allr], [r["probe"]["escalation_rate"] for r in allr], "o-",
           label="probe escalation (fixed queries)")
    tr = [r for r in allr if r.get("traffic")]
    b.plot([r["round"] for r in tr], [r["traffic"]["escalation_rate"] for r in tr], "s--",
           label="traffic escalation (new queries)")
    b.set_ylim(0, 1)
    b.set_xlabel("round")
    b.set_xticks([r["round"] for r in allr])
    b.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def one_round(r: int, cfg: Any, sets: dict[str, Any], url: str, purl: str, run: Path,
              args: argparse.Namespace, evolve_round: Any) -> dict[str, Any]:
    wall: dict[str, float] = {}
    t0 = time.monotonic()
    traffic = exchange_stats(run / "serve.db", send(url, sets["traffic"][r - 1], args.max_new_tokens))
    wall["traffic"] = time.monotonic() - t0
    t1 = time.monotonic()
    res = evolve_round(cfg)
    wall["evolve"] = time.monotonic() - t1
    time.sleep(4 * 0.2)  # two registry polls: the probe service has picked up a promotion
    t2 = time.monotonic()
    probe = exchange_stats(run / "probe.db", send(purl, sets["probe"], args.max_new_tokens))
    wall["probe"] = time.monotonic() - t2
    wall["total"] = time.monotonic() - t0
    g = res.stats.get("gate") or {}
    final = (g.get("candidate_final") if res.status == "promoted" else g.get("champion_final"))
    finals = gate_finals(str(res.round_dir))
    side = "candidate" if res.status == "promoted" else "champion"
    return {"round": r, "status": res.status, "reason": res.reason, "champion": res.champion,
            "heldout_final": final, "heldout_ci": mean_ci(finals.get(side, [])),
            "base_ci": mean_ci(finals.get("champion", [])), "evolve_wall_s": res.stats.get("wall_s"),
            "served_cloud_labels": res.stats.get("served_cloud", 0),
            "gate": g, "traffic": traffic, "probe": probe,
            "selected": res.stats.get("selected", 0), "labels": res.stats.get("labelled", 0),
            "relabel_cloud_calls": res.stats.get("cloud_calls", 0),
            "train_new": res.stats.get("train_new", 0), "train_replay": res.stats.get("train_replay", 0),
            "round_dir": str(res.round_dir), "wall_s": wall}


def markdown(result: dict[str, Any]) -> str:
    a = result["args"]
    head = (f"model {a['model']} ({a['dtype']}), teacher {a['teacher']}, threads {a['threads']}, "
            f"traffic {a['traffic']}/round, train: {a['steps']} steps x batch {a['batch_size']}, "
            f"lr {a['lr'] or 'default'} {a['scheduler'] or 'default'}, replay share "
            f"{a['replay_share']}; held-out {a['gate_n']}, probe {a['probe_n']}, max_new_tokens "
            f"{a['max_new_tokens']}, max_input_tokens {a['max_input_tokens']}; held-out reference: "
            f"{a.get('heldout_reference', 'human')}; total {result['total_wall_s']:.0f} s\n\n")
    bvi = (result["rounds"][0].get("base_vs_initial") if result["rounds"] else None)
    if bvi:
        head += ("initial champion: {} - held-out Final {:.4f} [{:.3f}, {:.3f}] vs the base model's "
                 "{:.4f} [{:.3f}, {:.3f}] (paired 95% lower bound of the gain {:+.4f})\n\n").format(
            a.get("init_adapter"), bvi["initial_final"], *bvi["initial_ci"], bvi["base_final"],
            *bvi["base_ci"], bvi["diff_lower"])
    lines = ["| round | champion held-out Final [95% CI] | probe escalation "
             "| cloud calls (traffic+probe+relabel) | traffic escalation | selected | labels (served-cloud) "
             "| gate: decision, reason | wall s (traffic/evolve/probe) "
             "| evolve s (select/relabel/train/gate) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rounds"]:
        p, w = row["probe"], row["wall_s"]
        fin = f"{row['heldout_final']:.4f}" if row.get("heldout_final") is not None else "-"
        if row.get("heldout_ci"):
            fin += " [{:.3f}, {:.3f}]".format(*row["heldout_ci"])
        esc = f"{p['escalation_rate']:.3f} ({p['escalated']}/{p['n']})"
        if row["round"] == 0:
            lines.append(f"| 0 ({row['status']}) | {fin} | {esc} | -+{p['cloud_calls']}+- | - | - | - | - "
                         f"| -/-/{w['probe']:.0f} | - |")
            continue
        calls = f"{row['traffic']['cloud_calls']}+{p['cloud_calls']}+{row['relabel_cloud_calls']}"
        t = row["traffic"]
        tesc = f"{t['escalation_rate']:.3f} ({t['escalated']}/{t['n']})"
        reason = row["reason"].replace("|", "/")
        ew = row.get("evolve_wall_s") or {}
        stages = "/".join(f"{ew[k]:.0f}" if k in ew else "-" for k in
                          ("select", "relabel", "train", "gate"))
        lines.append(f"| {row['round']} | {fin} | {esc} | {calls} | {tesc} | {row['selected']} | "
                     f"{row['labels']} ({row.get('served_cloud_labels', 0)}) | {row['status']}: "
                     f"{reason} | {w['traffic']:.0f}/{w['evolve']:.0f}/{w['probe']:.0f} "
                     f"| {stages} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a prepared JDDC folder (train/validation/test.jsonl)")
    ap.add_argument("--model", default="tiny", help="tiny | qwen2.5-coder-0.5b (or any packaged name)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--teacher", default="fake", choices=["fake", "local"])
    ap.add_argument("--traffic", type=int, default=24, help="new validation queries per round")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--scheduler", default="", help="'' = constant (tiny) / linear")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.0, help="0 = 0.03 (tiny) / 2e-4 (configs/evolve.yaml)")
    ap.add_argument("--replay-share", type=float, default=0.3)
    ap.add_argument("--gate-n", type=int, default=24)
    ap.add_argument("--probe-n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--max-input-tokens", type=int, default=192)
    ap.add_argument("--final-threshold", type=float, default=0.3)
    ap.add_argument("--scorer", default="ngram", help="the service's Match scorer")
    ap.add_argument("--match-threshold", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stop-after-s", type=float, default=0.0,
                    help="after round 1, stop if rounds x elapsed would exceed this")
    ap.add_argument("--init-adapter", default="", help="round 0's champion (else the base model): "
                    "e.g. an `endcloud end train` adapter distilled from cloud labels")
    ap.add_argument("--replay-extra", default="", help="labels JSONL added to the replay pool "
                    "(e.g. those the initial champion was trained on)")
    ap.add_argument("--heldout-reference", default="human", choices=["human", "cloud"],
                    help="the gate's reference reply: the corpus's agent (human) or the teacher's (cloud, "
                         "as Eq. 1 defines Sim; labelled once at the start)")
    ap.add_argument("--out", default="")
    ap.add_argument("--results", default="", help="also copy rounds.{json,md,png} to PREFIX.*")
    bench(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
