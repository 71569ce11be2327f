"""The data stage: corpora in; clean, masked, multi-turn `messages` JSONL per split out.

    endcloud data prepare --config configs/data.yaml
    endcloud data prepare --config configs/data.yaml corpus=jddc2019 split.seed=7

Per dialogue: load -> clean -> mask personal data (one conversation = one placeholder mapping)
-> samples (context, query, reply) -> length filters -> dedup -> split by session -> write.
Everything streams: memory holds one dialogue plus 8-byte keys for deduplication.
Outputs are written to temporary files and renamed at the end, so a failed run leaves no
half-written split behind.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator

from endcloud.config import to_dict
from endcloud.data.clean import clean_dialogue, exact_key, near_key
from endcloud.data.config import PrepareConfig, SourceConfig
from endcloud.data.length import TokenCounter
from endcloud.data.samples import SPLITS, build_samples, split_of
from endcloud.data.stats import Stats
from endcloud.progress import progress
from endcloud.records import Dialogue, Sample, Turn
from endcloud.runs import atomic_write, new_run_dir, save_config, write_json
from endcloud.store import Store

if TYPE_CHECKING:
    from endcloud.data.privacy import Masker


@dataclass
class PrepareResult:
    run_dir: Path
    files: dict[str, Path]
    stats: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)


def run(cfg: PrepareConfig) -> PrepareResult:
    """Run the data stage; return where everything went."""
    run_dir = new_run_dir(cfg.output_root, "data")
    save_config(run_dir, cfg)
    with Store.open(cfg.store or None) as store:
        run_id = store.start_run("data", run_dir, to_dict(cfg))
        try:
            result = _prepare(cfg, run_dir)
        except BaseException as exc:
            store.finish_run(run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        store.finish_run(run_id, stats=result.stats["totals"])
    return result


def _prepare(cfg: PrepareConfig, run_dir: Path) -> PrepareResult:
    from endcloud.data.privacy import Masker

    masker = Masker() if cfg.privacy.enabled else None
    counter = TokenCounter(cfg.length.tokenizer)
    stats = Stats()
    seen_exact: set[int] = set()
    seen_near: set[int] = set()
    examples: list[dict[str, Any]] = []
    files = {f"{split}.{fmt}": run_dir / _file_name(split, fmt)
             for split in SPLITS for fmt in cfg.output_formats}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        out: dict[str, IO[str]] = {k: stack.enter_context(atomic_write(p)) for k, p in files.items()}
        for src in cfg.sources:
            counts = stats.source(src.name)
            for dlg in progress(_dialogues(cfg, src, stats), desc=f"prepare {src.name}", unit="dlg"):
                counts["dialogues_loaded"] += 1
                counts["utterances_loaded"] += len(dlg.turns)
                cleaned = clean_dialogue(dlg, cfg.clean, counts)
                if cleaned is None:
                    continue
                masked, unsendable = _mask_dialogue(cleaned, masker, stats)
                for sample in build_samples(masked, cfg.context_turns):
                    if not _keep(sample, cfg, counter, unsendable, seen_exact, seen_near,
                                 counts, stats):
                        continue
                    sample.split = split_of(f"{src.name}\x1f{sample.session_id}", cfg.split)
                    stats.record_split(sample.split, sample.session_id)
                    counts[f"samples_{sample.split}"] += 1
                    for fmt in cfg.output_formats:
                        row = (sample.to_messages(cfg.system_prompt or None) if fmt == "messages"
                               else sample.to_sharegpt())
                        out[f"{sample.split}.{fmt}"].write(json.dumps(row, ensure_ascii=False) + "\n")
                    if len(examples) < 3 and sample.context:
                        examples.append(sample.to_messages())
    elapsed = time.perf_counter() - started
    report = stats.report(elapsed, counter.name)
    write_json(run_dir / "stats.json", report)
    with atomic_write(run_dir / "summary.md") as fh:
        fh.write(stats.markdown(report))
    files["stats"] = run_dir / "stats.json"
    files["summary"] = run_dir / "summary.md"
    return PrepareResult(run_dir, files, report, examples)


def _file_name(split: str, fmt: str) -> str:
    return f"{split}.jsonl" if fmt == "messages" else f"{split}.{fmt}.jsonl"


def _dialogues(cfg: PrepareConfig, src: SourceConfig, stats: Stats) -> Iterator[Dialogue]:
    if src.format == "demo":
        from endcloud.data.demo_corpus import demo_dialogues

        it: Iterable[Dialogue] = demo_dialogues(seed=cfg.split.seed)
    else:
        from endcloud.data.loaders import LoadStats, iter_dialogues

        load_stats = LoadStats()
        stats.loaders[src.name] = load_stats
        it = iter_dialogues(src.format, cfg.resolve_path(src.path), stats=load_stats,
                            on_error=cfg.on_error, max_line_bytes=cfg.max_line_bytes,
                            keep_negatives=src.keep_negatives, source_name=src.name)
    for n, dlg in enumerate(it):
        if src.limit and n >= src.limit:
            break
        yield dlg


def _mask_dialogue(dlg: Dialogue, masker: Masker | None, stats: Stats) -> tuple[Dialogue, set[str]]:
    """Mask every turn with one conversation state; return texts that are not sendable."""
    if masker is None:
        return dlg, set()
    conv = masker.new_conversation()
    turns, unsendable = [], set()
    for turn in dlg.turns:
        result = masker.mask(turn.text, conv)
        for span in result.spans:
            stats.pii[span.type] += 1
        if not result.sendable:
            unsendable.add(result.text)
            for reason in result.reasons:
                stats.unsendable_reasons[reason.split(":")[0]] += 1
        turns.append(Turn(turn.role, result.text, turn.meta))
    return Dialogue(dlg.id, turns, dlg.source, dlg.meta), unsendable


def _keep(sample: Sample, cfg: PrepareConfig, counter: TokenCounter, unsendable: set[str],
          seen_exact: set[int], seen_near: set[int], counts: Counter[str], stats: Stats) -> bool:
    """Apply the sample filters in order; count the first one that drops the sample."""
    counts["samples_built"] += 1
    if len(sample.reply) < cfg.clean.min_reply_chars:
        counts["samples_dropped_short_reply"] += 1
        return False
    if len(sample.query) < cfg.clean.min_query_chars:
        counts["samples_dropped_short_query"] += 1
        return False
    if cfg.privacy.drop_unsendable and unsendable and (
            {sample.query, sample.reply} & unsendable
            or any(t.text in unsendable for t in sample.context)):
        counts["samples_dropped_unsendable"] += 1
        return False
    out_tokens = counter.count(sample.reply)
    if out_tokens > cfg.length.max_output_tokens:
        counts["samples_dropped_long_reply"] += 1
        return False
    in_tokens = _fit_context(sample, counter, cfg.length.max_input_tokens, counts)
    if in_tokens is None:
        counts["samples_dropped_long_query"] += 1
        return False
    if cfg.clean.dedup != "none":
        # A sample is its whole (context, query, reply): the same generic exchange ("谢谢" ->
        # "不客气") after different histories is a different sample, not a duplicate.
        parts = (*(t.text for t in sample.context), sample.query, sample.reply)
        key = exact_key(*parts)
        if key in seen_exact:
            counts["samples_dropped_duplicate_exact"] += 1
            return False
        seen_exact.add(key)
        if cfg.clean.dedup == "near":
            nkey = near_key(*parts)
            if nkey in seen_near:
                counts["samples_dropped_duplicate_near"] += 1
                return False
            seen_near.add(nkey)
    stats.lengths["input_tokens"].add(in_tokens)
    stats.lengths["output_tokens"].add(out_tokens)
    stats.lengths["context_turns"].add(len(sample.context))
    return True


def _fit_context(sample: Sample, counter: TokenCounter, limit: int,
                 counts: Counter[str]) -> int | None:
    """Drop the oldest context turns until context + query fit in `limit` tokens."""
    query_tokens = counter.count(sample.query)
    if query_tokens > limit:
        return None
    sizes = [counter.count(t.text) for t in sample.context]
    while sample.context and query_tokens + sum(sizes) > limit:
        sample.context.pop(0)
        sizes.pop(0)
        counts["context_turns_trimmed"] += 1
    return query_tokens + sum(sizes)


def print_summary(result: PrepareResult) -> None:
    """What `endcloud data prepare` and `make demo` print."""
    totals = result.stats["totals"]
    print(f"data stage finished in {result.stats['elapsed_s']:.1f} s "
          f"({result.stats['utterances_per_s']:.0f} utterances/s)")
    print(f"  run folder: {result.run_dir}")
    for split in SPLITS:
        print(f"  {split:<10} {totals.get(f'samples_{split}', 0):>7} samples "
              f"({result.stats['sessions'].get(split, 0)} sessions)  -> {result.files[f'{split}.messages'] if f'{split}.messages' in result.files else ''}")
    print(f"  PII masked: {result.stats['pii'] or 'none'}")
    print(f"  report:     {result.files['stats']}  {result.files['summary']}")
    for ex in result.examples[:2]:
        print("  example:", json.dumps(ex["messages"], ensure_ascii=False)[:300])
