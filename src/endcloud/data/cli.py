"""`endcloud data prepare`, `endcloud data mask` and `endcloud data train-tagger`."""

from __future__ import annotations

import argparse
import json
import os
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

    t = cmds.add_parser("train-tagger", help="train the name/address tagger the masker uses "
                        "(needs the JDDC and Bitext corpora and Faker: endcloud[pii-train])")
    t.add_argument("--data-dir", default=os.environ.get("ENDCLOUD_DATA_DIR", "../shared/data"),
                   help="folder with jddc/ and bitext_customer_support/ (default: $ENDCLOUD_DATA_DIR "
                        "or ../shared/data)")
    t.add_argument("--jddc", nargs="*", help="JDDC files (default: the 2019 chat samples and 2018 train pairs)")
    t.add_argument("--bitext", help="Bitext CSV (default: under --data-dir)")
    t.add_argument("--labelled", nargs="*", default=[],
                   help="hand-labelled JSONL files ({text, spans}) to train on as well")
    t.add_argument("--labelled-repeat", type=int, default=3)
    t.add_argument("--output", default="runs/pii-tagger/tagger.crfsuite")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--negatives", type=int, default=8000, help="JDDC lines without a name or address")
    t.add_argument("--english", type=int, default=5000, help="English requests with a name/address added")
    t.add_argument("--chinese", type=int, default=1500, help="Chinese shipping-detail frames")
    t.add_argument("--iterations", type=int, default=150)
    t.add_argument("--c1", type=float, default=0.1, help="L1 weight (prunes features: a smaller model)")
    t.add_argument("--c2", type=float, default=0.01)
    t.set_defaults(func=train_tagger)
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


def train_tagger(args: argparse.Namespace) -> int:
    """Build the tagger's training data and train it (see endcloud.data.pii.tagger_train)."""
    from pathlib import Path

    from endcloud.data.pii import tagger_train as tt

    data = Path(args.data_dir)
    jddc = args.jddc or sorted(data.glob("jddc/jddc2019_chat_sample_v*.tsv.gz")) + sorted(
        data.glob("jddc/jddc2018_baseline/train.*.gz"))
    bitext = args.bitext or data / "bitext_customer_support" / "bitext_customer_support.csv.gz"
    missing = [str(p) for p in [*jddc, bitext] if not Path(p).is_file()]
    if not jddc or missing:
        print(f"train-tagger: corpus files not found: {', '.join(missing) or 'no JDDC file'} "
              "(set --data-dir or ENDCLOUD_DATA_DIR)", file=sys.stderr)
        return 2
    rows, counts = tt.build(jddc=[Path(p) for p in jddc], bitext=Path(bitext),
                            labelled=[Path(p) for p in args.labelled], labelled_repeat=args.labelled_repeat,
                            seed=args.seed, negatives=args.negatives, english=args.english,
                            chinese=args.chinese)
    n_val = max(1, len(rows) // 20)
    validation, train = rows[:n_val], rows[n_val:]
    meta = {"data": counts, "seed": args.seed, "validation_rows": n_val,
            "sources": [Path(p).name for p in [*jddc, bitext, *args.labelled]]}
    manifest = tt.train(train, Path(args.output), c1=args.c1, c2=args.c2, iterations=args.iterations,
                        validation=validation, meta=meta, common=tt.common_words())
    print(json.dumps({k: manifest[k] for k in ("sequences", "train_seconds", "bytes", "validation")},
                     ensure_ascii=False))
    print(f"wrote {args.output} (+ {Path(args.output).with_suffix('.json').name}); "
          f"use it with ENDCLOUD_PII_TAGGER={args.output}")
    return 0
