"""`endcloud demo` (what `make demo` runs): the main job on the embedded default corpus."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the built-in demo corpus")
    p.add_argument("--output-root", default="runs", help="where run folders go")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from endcloud.data.config import DataConfig
    from endcloud.data.prepare import run, print_summary

    cfg = DataConfig(output_root=args.output_root)
    result = run(cfg)
    print_summary(result)
    return 0
