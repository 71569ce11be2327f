"""`endcloud experiment` on the command line."""

from __future__ import annotations

import argparse
import logging

import endcloud.experiment
from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="the paper's experiment end to end: Tables V/VI, Fig. 3",
                       description=endcloud.experiment.__doc__.split("\n\n")[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, default_config="configs/paper.yaml")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from endcloud.config import load_config
    from endcloud.experiment.config import ExperimentConfig
    from endcloud.experiment.report import print_summary
    from endcloud.experiment.run import run

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per teacher call hides the bars
    result = run(load_config(ExperimentConfig, args.config, args.overrides))
    print_summary(result)
    return 0
