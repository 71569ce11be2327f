"""Which served exchanges become training data, read from the service's store.

    items, stats = select(conn, cfg.select, scorers=("ngram", "ngram"))

An exchange is selected when its end reply's Final is below `final_threshold` (Eq. 1 against the
cloud's reply when the cloud also answered, else the Match score the service recorded), when the
customer gave a thumbs-down or a rating <= `max_rating`, when staff wrote a correction or answered
the customer themselves (a hand-off: the exchange answered by `staff`), or (with
`relabel_ungrounded`) when the end draft stated a fact its prompt did not support or was a
non-answer (the service stores both per turn). A
human correction wins over any cloud label: such items are not sent to the cloud at all.
An exchange the cloud already answered while serving (an escalated turn) carries that masked
reply as `served_reply`, with the masked messages that were sent for it (so its placeholders
match): relabelling reuses it instead of asking the cloud again.
Everything is masked here (the end model learns placeholders, never a customer's values); an
exchange that cannot be masked is dropped (fail-closed). Items are deduplicated on the masked
(context, query), the strongest reason winning, and carry their provenance in `meta`.
Exchanges used by an earlier round are not selected again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from endcloud.evolve.config import SelectConfig
from endcloud.records import SelectStats
from endcloud.store import evolve as rounds

if TYPE_CHECKING:
    from endcloud.data.privacy import Masker

RANK = {"staff": 3, "correction": 3, "disliked": 2, "low_final": 1, "ungrounded": 1, "nonanswer": 1}


@dataclass
class Item:
    """One training example to be: masked messages without the reply, and where it came from."""

    exchange_id: str
    messages: list[dict[str, str]]  # masked context + query (user last)
    reasons: list[str]
    final: float | None
    correction: str | None = None  # masked human reply (wins over the cloud)
    review_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    served_reply: str | None = None  # the masked reply the cloud gave while serving

    @property
    def key(self) -> str:
        return json.dumps([(m["role"], " ".join(m["content"].split())) for m in self.messages],
                          ensure_ascii=False)

    @property
    def sample_id(self) -> str:
        return f"ex-{self.exchange_id}"


def exchange_finals(rows: list[Any], similarity: str, match: str, alpha: float = 0.8,
                    theta: float = 0.2) -> list[float | None]:
    """Final of each exchange's end reply (None when the end model did not answer)."""
    from endcloud.evaluate.stage import score_pairs

    idx = [i for i, r in enumerate(rows) if r["end_reply"] is not None and r["cloud_reply_masked"]]
    out: list[float | None] = [None if r["end_reply"] is None else r["match_score"] for r in rows]
    if idx:
        scored = score_pairs([rows[i]["query"] for i in idx], [rows[i]["end_reply"] for i in idx],
                             [rows[i]["cloud_reply_masked"] for i in idx], similarity, match,
                             alpha, theta)
        for i, s in zip(idx, scored):
            out[i] = s["final"]
    return out


def select(conn: Any, cfg: SelectConfig, similarity: str = "ngram",
           match: str = "ngram", masker: Masker | None = None) -> tuple[list[Item], SelectStats]:
    """The round's items (deduplicated, masked, with provenance) and counts per reason."""
    from endcloud.data.privacy import Masker

    masker = masker or Masker()
    rows = rounds.unused_exchanges(conn, cfg.max_rating, cfg.limit)
    finals = exchange_finals(rows, similarity, match)
    stats = SelectStats(scanned=len(rows))
    best: dict[str, Item] = {}
    for row, final in zip(rows, finals):
        reasons = _reasons(row, final, cfg)
        if not reasons:
            continue
        item = _masked_item(row, final, reasons, masker)
        if item is None:
            stats.unmaskable += 1
            continue
        for r in reasons:
            setattr(stats, r, getattr(stats, r) + 1)
        old = best.get(item.key)
        if old is not None:
            stats.duplicates += 1
            if _rank(old) >= _rank(item):  # newest first: an equal-ranked older one loses
                continue
        best[item.key] = item
    return list(best.values()), stats


def _reasons(row: Any, final: float | None, cfg: SelectConfig) -> list[str]:
    reasons = []
    if row["answered_by"] == "staff":
        return ["staff"]  # a person answered the customer (hand-off): a human label
    if row["correction"]:
        reasons.append("correction")
    if row["dislikes"]:
        reasons.append("disliked")
    if final is not None and final < cfg.final_threshold:
        reasons.append("low_final")
    if cfg.relabel_ungrounded and row["end_reply"] is not None:
        if row["grounded"] is not None and row["grounded"] < 1:
            reasons.append("ungrounded")  # the end draft stated a fact its prompt did not hold
        if row["nonanswer"]:
            reasons.append("nonanswer")  # it echoed the customer or said nothing
    return reasons


def _rank(item: Item) -> int:
    return max(RANK[r] for r in item.reasons)


def _masked_item(row: Any, final: float | None, reasons: list[str],
                 masker: Any) -> Item | None:
    context = [m for m in json.loads(row["context_json"]) if m.get("role") in ("user", "assistant")]
    texts = [m["content"] for m in context] + [row["query"]]
    if row["correction"]:
        texts.append(row["correction"])
    conv = masker.new_conversation()
    masked = masker.mask_messages(texts, conv)
    if not all(m.sendable for m in masked):
        return None  # fail closed: a text we cannot mask is not learned from
    n = len(context)
    messages = [{"role": m["role"], "content": r.text} for m, r in zip(context, masked[:n])]
    messages.append({"role": "user", "content": masked[n].text})
    meta = {"exchange_id": row["id"], "reasons": reasons, "final": final,
            "answered_by": row["answered_by"], "escalation": row["escalation"],
            "served_at": row["created_at"]}
    if row["review_id"] is not None:
        meta["review_id"] = row["review_id"]
    # a correction is masked with the messages above, in one conversation, so it keeps their
    # placeholders; only an uncorrected turn takes the service's own masked request and reply
    served = None if row["correction"] else _served(row)
    if served is not None:
        messages, reply = served
    return Item(row["id"], messages, reasons, final,
                masked[n + 1].text if row["correction"] else None, row["review_id"], meta,
                reply if served is not None else None)


def _served(row: Any) -> tuple[list[dict[str, str]], str] | None:
    """(masked messages sent, masked reply) when the cloud answered this turn while serving."""
    if row["cloud_status"] != "ok" or not (row["cloud_reply_masked"] or "").strip():
        return None
    try:
        sent = json.loads(row["cloud_request_masked"] or "")
    except ValueError:
        return None
    msgs = [{"role": m["role"], "content": m["content"]} for m in sent
            if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    if not msgs or msgs[-1]["role"] != "user":
        return None
    return msgs, row["cloud_reply_masked"]
