"""`endcloud evolve run | watch | promote | rollback | status | report`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from endcloud.store.db import default_location

DEFAULT_CONFIG = "configs/evolve.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    from endcloud.config import add_config_args

    evolve = sub.add_parser("evolve", help="the online loop: relabel, retrain, gate, hot-swap")
    cmds = evolve.add_subparsers(dest="command", metavar="<command>", required=True)
    p = cmds.add_parser("run", help="one round: select -> relabel -> retrain -> gate -> promote")
    add_config_args(p, DEFAULT_CONFIG)
    p.set_defaults(func=run)
    w = cmds.add_parser("watch", help="rounds on a schedule, or when enough new data waits")
    add_config_args(w, DEFAULT_CONFIG)
    w.set_defaults(func=watch)
    pr = cmds.add_parser("promote", help="make an adapter folder the champion (e.g. the offline-"
                         "trained one the loop starts from); rollback undoes it")
    pr.add_argument("adapter", help="an adapter folder from `endcloud end train`")
    add_config_args(pr, DEFAULT_CONFIG)
    pr.add_argument("--reason", default="manual promotion")
    pr.set_defaults(func=promote)
    r = cmds.add_parser("rollback", help="restore the previous champion (the service follows)")
    add_config_args(r, DEFAULT_CONFIG)
    r.add_argument("--reason", default="manual rollback")
    r.set_defaults(func=rollback)
    s = cmds.add_parser("status", help="champion, previous champions, last rounds")
    add_config_args(s, DEFAULT_CONFIG)
    s.set_defaults(func=status)
    rep = cmds.add_parser("report", help="report.md + report.png in work_dir")
    add_config_args(rep, DEFAULT_CONFIG)
    rep.set_defaults(func=report)


def _cfg(args: argparse.Namespace) -> Any:
    from endcloud.config import load_config
    from endcloud.evolve.config import EvolveConfig

    return load_config(EvolveConfig, args.config, list(args.overrides))


def run(args: argparse.Namespace) -> int:
    from endcloud.evolve.round import run as run_round

    r = run_round(_cfg(args))
    print(json.dumps({"round": r.round_id, "status": r.status, "reason": r.reason,
                      "candidate": r.candidate, "champion": r.champion,
                      "round_dir": str(r.round_dir)}, ensure_ascii=False))
    return 0


def watch(args: argparse.Namespace) -> int:
    from endcloud.evolve.round import watch as watch_rounds

    for r in watch_rounds(_cfg(args)):
        print(json.dumps({"round": r.round_id, "status": r.status, "reason": r.reason}))
    return 0


def promote(args: argparse.Namespace) -> int:
    from endcloud.end.registry import Registry

    cfg = _cfg(args)
    reg = Registry(cfg.registry_dir, cfg.store or default_location())
    aid = reg.add(args.adapter)  # verified (manifest, weights) before it is copied in
    reg.promote(aid, args.reason)
    print(json.dumps({"champion": aid, "previous": reg.pointer()["previous"][-1],
                      "note": "a service with backend.registry set follows within registry_poll_s"}))
    return 0


def rollback(args: argparse.Namespace) -> int:
    from endcloud.end.registry import Registry

    cfg = _cfg(args)
    reg = Registry(cfg.registry_dir, cfg.store or default_location())
    back = reg.rollback(args.reason)
    print(json.dumps({"champion": back, "note": "a service with backend.registry set follows "
                      "within registry_poll_s"}))
    return 0


def status(args: argparse.Namespace) -> int:
    from endcloud.end.registry import Registry
    from endcloud.store.report import rounds
    from endcloud.store import Store

    cfg = _cfg(args)
    reg = Registry(cfg.registry_dir, cfg.store or default_location())
    from endcloud.store.champion import latest_loads

    with Store.open(cfg.store or None) as store:
        last = rounds(store.conn)[-5:]
        replicas = latest_loads(store.conn)
    print(json.dumps({"registry": str(reg.root), **reg.pointer(), "adapters": reg.adapters(),
                      "rounds": last, "replicas": replicas}, ensure_ascii=False, indent=2))
    return 0


def report(args: argparse.Namespace) -> int:
    from endcloud.store.report import write_report
    from endcloud.store import Store

    cfg = _cfg(args)
    with Store.open(cfg.store or None) as store:
        md, png = write_report(store.conn, cfg.work_dir)
    print(json.dumps({"report": str(md), "plot": str(png) if png else None}))
    return 0
