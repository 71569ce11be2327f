"""Validation loss of adapters (and of the base model) on held-out JDDC conversations.

    nice -n 5 .venv/bin/python bench/end_valloss.py --data <jddc2019>/validation.jsonl \
        --adapters none,runs/x/adapter,runs/y/adapter --n 64 --out runs/valloss.jsonl

The loss is the training objective on unseen data: mean cross-entropy per reply token (the agent's
turn only), with the same chat template and truncation as training (`--max-input/--max-output`).
Every adapter is scored on the same first `--n` conversations of the file; "none" is the base model.
"""

from __future__ import annotations

import argparse
import json
import time


def score(adapter: str, args: argparse.Namespace) -> dict:
    from endcloud.end.adapters import load_adapter
    from endcloud.end.config import DataConfig, ModelConfig
    from endcloud.end.data import encode, read_messages
    from endcloud.end.models import load_base
    from endcloud.end.train import reply_loss

    model, tokenizer, base = load_base(ModelConfig(name=args.model, dtype=args.dtype))
    if adapter != "none":
        model = load_adapter(model, adapter, base.sha256)
    data = DataConfig(max_input_tokens=args.max_input, max_output_tokens=args.max_output)
    examples = [encode(tokenizer, m, data) for m in read_messages(args.data, args.n)]
    examples = [e for e in examples if e.n_reply > 0]
    t = time.perf_counter()
    loss = reply_loss(model, examples, tokenizer.pad_token_id)
    return {"adapter": adapter, "val_loss": round(loss, 4), "n": len(examples),
            "reply_tokens": sum(e.n_reply for e in examples), "max_input": args.max_input,
            "max_output": args.max_output, "score_s": round(time.perf_counter() - t, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="messages JSONL (the validation split)")
    p.add_argument("--adapters", default="none", help='comma list of adapter folders; "none" = base')
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--max-input", type=int, default=256)
    p.add_argument("--max-output", type=int, default=512)
    p.add_argument("--out", default="", help="append one JSON row per adapter")
    args = p.parse_args()
    for adapter in filter(None, args.adapters.split(",")):
        row = score(adapter, args)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
