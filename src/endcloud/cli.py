"""Command line: `endcloud <stage> <command> --config X.yaml key=value ...`.

Dispatch only. Each stage registers its commands from its own `cli` module; those modules
import heavy dependencies inside the handlers, so `endcloud --help` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from endcloud import __version__
from endcloud.errors import EndcloudError

# Modules with a `register(subparsers)` function, in the order shown by --help.
COMMAND_MODULES = [
    "endcloud.data.cli",
    "endcloud.end.cli",
    "endcloud.knowledge.cli",
    "endcloud.cloud.cli",
    "endcloud.evaluate.cli",
    "endcloud.serve.cli",
    "endcloud.evolve.cli",
    "endcloud.models",
    "endcloud.experiment.cli",
    "endcloud.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="endcloud",
        description="End-cloud collaborative AI customer service: the cloud teaches a small "
                    "private end model and keeps improving it.")
    parser.add_argument("--version", action="version", version=f"endcloud {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", metavar="<stage>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC ISO), level, logger, msg, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import datetime, timezone

        out = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(verbose: bool = False) -> None:
    """Text lines on stderr, or JSON lines with $ENDCLOUD_LOG_FORMAT=json (the service's uvicorn
    records too: they propagate to the root logger then)."""
    from endcloud.config import json_logs

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs() else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EndcloudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
