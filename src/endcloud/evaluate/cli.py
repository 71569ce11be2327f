"""`endcloud evaluate`: the full evaluation, scoring your own pairs, and the human-rating track.

    endcloud evaluate --config configs/eval.yaml [key=value ...]
    endcloud evaluate score --input pairs.jsonl [--output scored.jsonl]
    endcloud evaluate human import --input ratings.jsonl
    endcloud evaluate human agree [--threshold 0.5]
    endcloud evaluate train-matcher --config configs/matcher.yaml [key=value ...]
    endcloud evaluate calibrate [--data ../shared/data] [--n 150]
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = __doc__.split("\n\n", 1)[1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score replies with Eq. 1; Table VI, Fig. 3, human ratings",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML config (e.g. configs/eval.yaml)")
    # subcommands and key=value overrides share the positional slot, so dispatch by hand
    p.add_argument("rest", nargs=argparse.REMAINDER,
                   metavar="score|human|train-matcher|calibrate|key=value", help="a subcommand, or config overrides")
    p.set_defaults(func=dispatch)


def dispatch(args: argparse.Namespace) -> int:
    if args.rest and args.rest[0] == "score":
        return score(_score_parser().parse_args(args.rest[1:]))
    if args.rest and args.rest[0] == "human":
        return human(_human_parser().parse_args(args.rest[1:]))
    if args.rest and args.rest[0] == "train-matcher":
        return train_matcher(_train_matcher_parser().parse_args(args.rest[1:]))
    if args.rest and args.rest[0] == "calibrate":
        return calibrate(_calibrate_parser().parse_args(args.rest[1:]))
    return evaluate(args.config, args.rest)


def _scoring_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--similarity", default="similarity", help="scorer for Sim (default: similarity)")
    p.add_argument("--match", default="match", help="scorer for Match (default: match)")
    p.add_argument("--alpha", type=float, default=0.8)
    p.add_argument("--theta", type=float, default=0.2)
    p.add_argument("--matcher-weights", default=None, metavar="DIR",
                   help="trained matcher folder for `match` "
                        "(default: $ENDCLOUD_MATCHER, else the matcher shipped with endcloud)")


def _score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endcloud evaluate score",
                                description="add sim, match, match_reference, final, rule to "
                                            "JSONL objects with query, reply, optional reference")
    p.add_argument("--input", required=True, help="JSONL: {query, reply, reference?} per line")
    p.add_argument("--output", help="JSONL to write (default: stdout)")
    _scoring_args(p)
    return p


def _train_matcher_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endcloud evaluate train-matcher",
                                description="train the Match scorer on prepared splits; resumable")
    p.add_argument("--config", metavar="FILE", help="YAML config (e.g. configs/matcher.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p


def train_matcher(args: argparse.Namespace) -> int:
    from endcloud.config import load_config
    from endcloud.evaluate.matcher.config import MatcherConfig
    from endcloud.evaluate.matcher.train import run

    run(load_config(MatcherConfig, args.config, args.overrides))
    return 0


def _calibrate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endcloud evaluate calibrate",
                                description="refit the Platt maps of match-e5 and similarity on "
                                            "JDDC 2018 train + Bitext; write calibration/<scorer>.json")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="the public corpora (default: $ENDCLOUD_DATA_DIR, else ../shared/data)")
    p.add_argument("--n", type=int, default=150, help="positives per language")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the files (default: the package's evaluate/calibration/)")
    return p


def calibrate(args: argparse.Namespace) -> int:
    from endcloud.evaluate.calibrate import calibrate as run
    from endcloud.evaluate.scorers import CALIBRATION_DIR

    run(args.data, args.n, args.seed, args.out or CALIBRATION_DIR)
    return 0


def _human_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="endcloud evaluate human")
    cmds = p.add_subparsers(dest="command", required=True)
    imp = cmds.add_parser("import", help="import ratings (JSONL or CSV) into the store")
    imp.add_argument("--input", required=True)
    ag = cmds.add_parser("agree", help="agreement of Final with the stored human ratings")
    ag.add_argument("--threshold", type=float, default=0.5, help="Final >= this counts as good")
    _scoring_args(ag)
    return p


def evaluate(config: str | None, overrides: list[str]) -> int:
    from endcloud.config import load_config
    from endcloud.evaluate.config import EvalConfig
    from endcloud.evaluate.stage import run

    result = run(load_config(EvalConfig, config, overrides))
    for name, res in result.results["systems"].items():
        print(f"{name:30s} Final {res['summary']['final_mean']:.3f}")
    print(f"wrote {result.run_dir}/table_vi.md, table_vi.csv, fig3.png, scores.json")
    return 0


def score(args: argparse.Namespace) -> int:
    from endcloud.errors import DataFormatError
    from endcloud.evaluate.stage import score_pairs
    from endcloud.runs import write_jsonl

    rows = []
    with open(args.input, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(args.input, i, f"not valid JSON: {exc.msg}") from None
            if not (isinstance(obj, dict) and isinstance(obj.get("query"), str)
                    and isinstance(obj.get("reply"), str)):
                raise DataFormatError(args.input, i, 'expected {"query": str, "reply": str, '
                                      '"reference"?: str}')
            rows.append(obj)
    refs = [r["reference"] if isinstance(r.get("reference"), str) else None for r in rows]
    scored = score_pairs([r["query"] for r in rows], [r["reply"] for r in rows], refs,
                         args.similarity, args.match, args.alpha, args.theta, args.matcher_weights)
    out = [{**r, **s} for r, s in zip(rows, scored)]
    if args.output:
        write_jsonl(args.output, out)
    else:
        for r in out:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
    return 0


def human(args: argparse.Namespace) -> int:
    from endcloud.evaluate.human import agree, import_ratings, read_ratings
    from endcloud.store import Store

    with Store.open() as store:
        if args.command == "import":
            n = import_ratings(store, read_ratings(args.input), f"import:{args.input}")
            print(f"imported {n} ratings into {store.location}")
            return 0
        res = agree(store, args.similarity, args.match, args.alpha, args.theta, args.threshold,
                    args.matcher_weights)
    print(json.dumps(res, indent=2))
    return 0
