"""`endcloud kb build` and `endcloud kb search`."""

from __future__ import annotations

import argparse
import json

from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    kb = sub.add_parser("kb", help="the shop's knowledge base and answer memory")
    cmds = kb.add_subparsers(dest="command", metavar="<command>")

    b = cmds.add_parser("build", help="index policy pages, FAQ and catalog (or approved answers)")
    b.add_argument("--input", nargs="+", metavar="PATH", help="files or folders of documents")
    b.add_argument("--memory", nargs="+", metavar="PATH",
                   help="build an answer memory instead: messages JSONL (samples, labels), FAQ")
    b.add_argument("--output", metavar="DIR", help="the index folder")
    add_config_args(b)
    b.set_defaults(func=build)

    s = cmds.add_parser("search", help="what the models will be shown for a question")
    s.add_argument("text")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--json", action="store_true", help="one JSON object per hit")
    s.set_defaults(func=search)
    g = cmds.add_parser("synth", help="grounding training data from generated shops (RAFT-style)")
    g.add_argument("--output", required=True, metavar="FILE")
    g.add_argument("--shops", type=int, default=80)
    g.add_argument("--per-shop", type=int, default=10)
    g.add_argument("--p-absent", type=float, default=0.2, help="share of samples without the gold chunk")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=synth)
    kb.set_defaults(func=lambda _args: kb.print_help() or 2)


def build(args: argparse.Namespace) -> int:
    from endcloud.config import load_config
    from endcloud.knowledge.build import print_summary, run
    from endcloud.knowledge.config import KBConfig

    overrides = list(args.overrides)
    for key in ("input", "memory"):
        if getattr(args, key):
            overrides.append(f"{key}={json.dumps(getattr(args, key))}")
    if args.output:
        overrides.append(f"output={json.dumps(args.output)}")
    print_summary(run(load_config(KBConfig, args.config, overrides)))
    return 0


def search(args: argparse.Namespace) -> int:
    from endcloud.knowledge.index import open_index

    index = open_index(args.index)
    for rank, hit in enumerate(index.search(args.text, args.k), 1):
        c = hit.chunk
        if args.json:
            print(json.dumps({"rank": rank, "id": c.id, "source": c.source, "kind": c.kind,
                              "title": c.title, "text": c.text, "score": round(hit.score, 5),
                              "dense": round(hit.dense, 4), "bm25": round(hit.lexical, 3)},
                             ensure_ascii=False))
        else:
            print(f"{rank}. [{c.id}] {c.source} | {c.title}  (rrf {hit.score:.4f}, cos "
                  f"{hit.dense:.3f}, bm25 {hit.lexical:.2f})")
            print("   " + c.text.replace("\n", "\n   "))
    return 0


def synth(args: argparse.Namespace) -> int:
    from endcloud.knowledge.synth import samples, write
    from endcloud.end.config import DEFAULT_SYSTEM

    n = write(args.output, samples(args.shops, args.per_shop, DEFAULT_SYSTEM, args.seed, args.p_absent))
    print(f"{n} grounding samples from {args.shops} generated shops -> {args.output}")
    return 0
