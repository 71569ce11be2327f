"""`endcloud serve --config configs/serve.yaml [--host H --port P] [key=value ...]`."""

from __future__ import annotations

import argparse
import sys

from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the real-time service: OpenAI-compatible API, chat page, "
                                     "review console (staff token: ENDCLOUD_ADMIN_TOKEN)")
    add_arguments(p)
    p.set_defaults(func=serve)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, default_config="configs/serve.yaml")
    p.add_argument("--host", help="bind address (default from the config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (0 picks a free one)")
    p.add_argument("--port-file", help="write the bound port here once ready (for scripts)")


def serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from endcloud.config import load_config
    from endcloud.serve.app import create_app
    from endcloud.serve.config import ServeConfig
    from endcloud.serve.server import serve as run

    config = args.config if args.config and Path(args.config).is_file() else None
    overrides = list(args.overrides)
    overrides += [f"host={args.host}"] if args.host else []
    overrides += [f"port={args.port}"] if args.port is not None else []
    cfg = load_config(ServeConfig, config, overrides)
    from endcloud.store import Store, default_location

    Store.open(cfg.store or default_location()).close()  # unreachable or unusable: one line, exit 5
    run(create_app(cfg), cfg.host, cfg.port, cfg.access_log, args.port_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m endcloud.serve.cli ...`: the same command without the other stages' imports."""
    import logging

    from endcloud.errors import EndcloudError

    p = argparse.ArgumentParser(prog="endcloud serve")
    add_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return serve(args)
    except EndcloudError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
