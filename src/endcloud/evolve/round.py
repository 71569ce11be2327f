"""One round of the online loop, top to bottom: select -> relabel -> retrain -> gate -> promote.

    endcloud evolve run --config configs/evolve.yaml gate.heldout=runs/data-X/test.jsonl

Writes `<work_dir>/round-NNNN/` (selected items, labels, training data, the candidate, every
gate reply and score, round.json) and one `evolve_rounds` row, whatever the outcome; the items
used are recorded in `evolve_items` so a later round does not select them again. A promotion is
the registry's atomic pointer switch: a service started with `backend.registry=<registry>`
answers with the new champion at its next request, without a restart.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from endcloud.config import to_dict
from endcloud.errors import ConfigError
from endcloud.evolve.config import EvolveConfig
from endcloud.evolve.gate import gate, norm_query
from endcloud.end.registry import Registry, kill_point
from endcloud.evolve.relabel import relabel
from endcloud.evolve.retrain import retrain
from endcloud.evolve.select import Item, select
from endcloud.runs import save_config, write_json, write_jsonl
from endcloud.store import Store, evolve as rounds
from endcloud.store.db import default_location

log = logging.getLogger(__name__)


@dataclass
class RoundResult:
    round_id: int
    round_dir: Path
    status: str  # promoted | refused | skipped | failed
    reason: str
    stats: dict[str, Any] = field(default_factory=dict)
    candidate: str | None = None
    champion: str | None = None  # after the round


def run(cfg: EvolveConfig, *, transport: Any = None) -> RoundResult:
    """One round; see the module docstring. Every outcome is recorded, failures too."""
    if not cfg.gate.heldout or not Path(cfg.gate.heldout).is_file():
        raise ConfigError("gate.heldout: name a fixed held-out messages JSONL that is never "
                          "trained on, e.g. gate.heldout=runs/data-X/test.jsonl")
    store_path = str(cfg.store or default_location())
    store = Store.open(store_path)
    registry = Registry(cfg.registry_dir, store_path)
    round_id, round_dir = _start(store, cfg)
    stats: dict[str, Any] = {"champion_before": registry.champion()}
    try:
        result = _round(cfg, store, registry, round_id, round_dir, store_path, stats, transport)
    except BaseException as exc:
        _finish(store, round_id, "failed", f"{type(exc).__name__}: {exc}", stats)
        store.close()
        raise
    store.close()
    return result


def _round(cfg: EvolveConfig, store: Store, registry: Registry, round_id: int, round_dir: Path,
           store_path: str, stats: dict[str, Any], transport: Any) -> RoundResult:
    wall = stats.setdefault("wall_s", {})  # where a round's time goes
    t = time.monotonic()
    items, sel = select(store.conn, cfg.select, cfg.gate.similarity, cfg.gate.match)
    wall["select"] = round(time.monotonic() - t, 1)
    stats.update(selected=len(items), select=asdict(sel),
                 corrections=sum(i.correction is not None for i in items))
    write_jsonl(round_dir / "selected.jsonl", ({"messages": i.messages, "meta": i.meta} for i in items))
    if len(items) < cfg.select.min_new:
        reason = f"{len(items)} new items < select.min_new={cfg.select.min_new}"
        _finish(store, round_id, "skipped", reason, stats)
        return RoundResult(round_id, round_dir, "skipped", reason, stats, None, registry.champion())

    t = time.monotonic()
    rows, lab = relabel(items, cfg, round_dir, store_path, transport)
    wall["relabel"] = round(time.monotonic() - t, 1)
    stats.update(labelled=lab.labelled, served_cloud=lab.served_cloud, quarantined=lab.quarantined,
                 cloud_calls=lab.cloud_calls, cloud_cost=lab.cloud_cost, relabel=asdict(lab))
    labelled_ids = {s.id for s in rows}
    champion_id = registry.champion()
    earlier = sorted(Path(cfg.work_dir).glob("round-*/new.jsonl"))
    carried = _carried(store, champion_id, cfg.train.carry_refused)
    t = time.monotonic()
    adapter, counts = retrain(cfg, round_dir, rows, earlier, registry.path(champion_id), store_path,
                              carried)
    wall["train"] = round(time.monotonic() - t, 1)
    stats.update(counts)
    candidate = registry.add(adapter, round_id)
    stats["candidate"] = candidate

    trained_on = {norm_query(s.to_messages()["messages"][:-1]) for s in rows}
    for path in earlier + ([Path(cfg.train.natural)] if cfg.train.natural else []):
        trained_on |= {norm_query(json.loads(x)["messages"][:-1])
                       for x in path.read_text(encoding="utf-8").splitlines() if x.strip()}
    t = time.monotonic()
    cache = Path(cfg.work_dir) / "gate-cache" if cfg.gate.cache else None
    decision, detail = gate(cfg.gate, cfg.model, registry.path(champion_id), registry.path(candidate),
                            _regression_from_store(store, cfg.gate.regression_from_store), trained_on,
                            cfg.train.system, cache)
    wall["gate"] = round(time.monotonic() - t, 1)
    write_json(round_dir / "gate.json", {"decision": decision.to_dict(), **detail})
    stats["gate"] = decision.to_dict()
    kill_point("after_gate")  # crash tests: between evaluation and the switch
    if decision.promote:
        registry.promote(candidate, decision.reason, round_id)
    status = "promoted" if decision.promote else "refused"
    _record_items(store, round_id, items, labelled_ids)
    _finish(store, round_id, status, decision.reason, stats, decision.to_dict(),
            registry.champion())
    log.info("round %d: %s (%s)", round_id, status, decision.reason)
    return RoundResult(round_id, round_dir, status, decision.reason, stats, candidate,
                       registry.champion())


def _start(store: Store, cfg: EvolveConfig) -> tuple[int, Path]:
    round_id = rounds.start_round(store.conn)
    round_dir = Path(cfg.work_dir) / f"round-{round_id:04d}"
    round_dir.mkdir(parents=True, exist_ok=True)
    save_config(round_dir, cfg)
    run_id = store.start_run("evolve.round", round_dir, to_dict(cfg))
    rounds.set_round_dir(store.conn, round_id, str(round_dir), run_id)
    return round_id, round_dir


def _finish(store: Store, round_id: int, status: str, reason: str, stats: dict[str, Any],
            g: dict[str, Any] | None = None, champion_after: str | None = None) -> None:
    row = rounds.finish_round(store.conn, round_id, status, reason, stats, g or {}, champion_after)
    if row["run_id"] is not None:
        store.finish_run(row["run_id"], stats, None if status != "failed" else reason)
        write_json(Path(row["round_dir"]) / "round.json",
                   {"round": round_id, "status": status, "reason": reason, **stats})


def _carried(store: Store, champion: str | None, n: int) -> list[dict[str, Any]]:
    """Labels of the last `n` refused rounds since the champion's own round (never learned)."""
    if n <= 0:
        return []
    dirs = [Path(d) for d in rounds.refused_round_dirs(store.conn, champion, n)]
    return [json.loads(x) for d in reversed(dirs) if (d / "new.jsonl").is_file()
            for x in (d / "new.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


def _record_items(store: Store, round_id: int, items: list[Item], labelled: set[str]) -> None:
    def source(it: Item) -> str:
        return ("human" if it.correction is not None else
                "none" if it.sample_id not in labelled else
                "served-cloud" if it.served_reply is not None else "cloud")

    rounds.record_items(store.conn, [(round_id, it.exchange_id, ",".join(it.reasons), it.final,
                                      source(it), it.review_id) for it in items])


def _regression_from_store(store: Store, limit: int) -> list[tuple[list[dict], str]]:
    """Earlier good replies: liked (thumbs-up or rating >= 4) or approved by staff, masked."""
    if limit <= 0:
        return []
    from endcloud.data.privacy import Masker

    rows = rounds.liked_end_replies(store.conn, limit)
    masker, out = Masker(), []
    for r in rows:
        res = masker.mask_messages([r["query"], r["reply"]], masker.new_conversation())
        if all(x.sendable for x in res):
            out.append(([{"role": "user", "content": res[0].text}], res[1].text))
    return out


def pending(cfg: EvolveConfig) -> int:
    """How many exchanges a round would select now (for `watch`). While fewer exchanges than
    `watch.min_new` wait unused, their count is returned (selection keeps at most those) and
    nothing is scored: a poll of a quiet shop costs one COUNT query."""
    with Store.open(cfg.store or None) as store:
        waiting = rounds.count_unused(store.conn)
        if waiting < cfg.watch.min_new:
            return int(waiting)
        return len(select(store.conn, cfg.select, cfg.gate.similarity, cfg.gate.match)[0])


def watch(cfg: EvolveConfig, *, sleep: Any = time.sleep,
          clock: Any = time.monotonic) -> list[RoundResult]:
    """Rounds every `watch.interval_s` (counted from the start and from each round), or as soon
    as `watch.min_new` selectable items wait; stops after `watch.max_rounds` (0 = never)."""
    results: list[RoundResult] = []
    last = clock()
    while not cfg.watch.max_rounds or len(results) < cfg.watch.max_rounds:
        due = clock() - last >= cfg.watch.interval_s
        if due or pending(cfg) >= cfg.watch.min_new:
            results.append(run(cfg))
            last = clock()
            log.info("round %d: %s (%s)", results[-1].round_id, results[-1].status,
                     "schedule" if due else "enough new data")
            continue
        sleep(cfg.watch.poll_s)
    return results
