"""`endcloud data prepare` and `endcloud data mask`."""

from __future__ import annotations

import argparse
import json
import sys

from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare corpora into clean, masked training samples")
    cmds = data.add_subparsers(dest="command", metavar="<command>")

    p = cmds.add_parser("prepare", help="load, clean, mask, build samples and split")
    add_config_args(p, default_config=None)
    p.set_defaults(func=prepare)

    m = cmds.add_parser(
        "mask", help="mask personal data in text (one message per line), as the cloud boundary does")
    m.add_argument("file", nargs="?", help="input file (default: stdin)")
    m.add_argument("--json", action="store_true",
                   help='print {"text", "spans": [{"type", "start", "end"}], "sendable"} per line')
    m.set_defaults(func=mask)
    data.set_defaults(func=lambda _args: data.print_help() or 2)


def prepare(args: argparse.Namespace) -> int:
    from endcloud.config import load_config
    from endcloud.data.config import PrepareConfig
    from endcloud.data.prepare import print_summary, run

    cfg = load_config(PrepareConfig, args.config, args.overrides)
    print_summary(run(cfg))
    return 0


def mask(args: argparse.Namespace) -> int:
    """All lines of one input are one conversation: the same value gets the same placeholder."""
    from endcloud.data.privacy import Masker

    masker = Masker()
    state = masker.new_conversation()
    stream = open(args.file, encoding="utf-8") if args.file else sys.stdin
    exit_code = 0
    with stream:
        for line in stream:
            result = masker.mask(line.rstrip("\n"), state)
            if not result.sendable:
                exit_code = 1
            if args.json:
                spans = [{"type": s.type, "start": s.start, "end": s.end} for s in result.spans]
                print(json.dumps({"text": result.text, "spans": spans,
                                  "sendable": result.sendable}, ensure_ascii=False))
            else:
                print(result.text)
    return exit_code
