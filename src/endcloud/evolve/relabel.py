"""Relabel the selected items: human corrections as they are; the masked reply the cloud already
gave while serving (an escalated turn) as it is, provenance "served-cloud" - asking again would
pay twice for the same answer; the rest through the cloud teacher's label job (exactly-once,
cached, fail-closed privacy; `endcloud.cloud.label.run`).

    labels, stats = relabel(items, cfg, round_dir, store_path)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from endcloud.cloud.config import LabelConfig
from endcloud.evolve.config import EvolveConfig
from endcloud.evolve.select import Item
from endcloud.records import RelabelStats, Sample, Turn, read_samples
from endcloud.runs import write_jsonl


def _sample(item: Item, reply: str = "") -> Sample:
    context = [Turn(m["role"], m["content"]) for m in item.messages[:-1]]  # type: ignore[arg-type]
    return Sample(item.sample_id, f"evolve-{item.exchange_id}", context,
                  item.messages[-1]["content"], reply, "serve", "evolve", dict(item.meta))


def _labelled(item: Item, reply: str, source: str) -> Sample:
    s = _sample(item, reply)
    s.meta["label_source"] = source
    return s


def relabel(items: list[Item], cfg: EvolveConfig, round_dir: Path, store: str,
            transport: Any = None) -> tuple[list[Sample], RelabelStats]:
    """Labelled samples (context, query, label) with provenance; counts and cloud cost."""
    rows: list[Sample] = []
    stats = RelabelStats()
    to_cloud = []
    for item in items:
        if item.correction is not None:  # the human wins: never sent to the cloud
            rows.append(_labelled(item, item.correction, "human"))
            stats.human += 1
        elif item.served_reply is not None:  # the cloud answered this turn already
            rows.append(_labelled(item, item.served_reply, "served-cloud"))
            stats.served_cloud += 1
        else:
            to_cloud.append(item)
    if not to_cloud:
        return rows, stats
    inp = round_dir / "to_label.jsonl"
    write_jsonl(inp, (_sample(it).to_messages() for it in to_cloud))
    r = cfg.relabel
    label_cfg = LabelConfig(input=str(inp), output=str(round_dir / "cloud_labels.jsonl"),
                            output_root=str(round_dir), store=store, cloud=r.cloud,
                            prompt=r.prompt, max_item_failures=r.max_item_failures)
    if r.examples:
        label_cfg.prompt.examples = r.examples
    from endcloud.cloud.label import run as label_run

    result = label_run(label_cfg, transport=transport)
    rows += read_samples(result.output)
    stats.cloud, stats.quarantined, stats.pending = result.labelled, result.quarantined, result.pending
    stats.cloud_calls, stats.cached, stats.cloud_cost = result.new, result.cached, result.cost
    return rows, stats
