"""Multi-turn samples from cleaned dialogues, and the deterministic split by session."""

from __future__ import annotations

import hashlib
from typing import Iterator

from endcloud.data.config import SplitConfig
from endcloud.records import Dialogue, Sample

SPLITS = ("train", "validation", "test")


def build_samples(dlg: Dialogue, context_turns: int) -> Iterator[Sample]:
    """One sample per agent turn that answers a customer turn.

    context = up to `context_turns` turns before the query (oldest first); query = the customer
    turn just before the reply.
    """
    turns = dlg.turns
    for i in range(1, len(turns)):
        if turns[i].role != "assistant" or turns[i - 1].role != "user":
            continue
        start = max(0, i - 1 - context_turns)
        meta = {k: v for k, v in dlg.meta.items() if k != "is_transfer"}
        yield Sample(
            id=f"{dlg.id}#{i}",
            session_id=dlg.id,
            context=list(turns[start:i - 1]),
            query=turns[i - 1].text,
            reply=turns[i].text,
            source=dlg.source,
            meta=meta,
        )


def split_of(session_id: str, cfg: SplitConfig) -> str:
    """Which split a session belongs to: a seeded hash, so it never depends on input order."""
    digest = hashlib.sha256(f"{cfg.seed}\x1f{session_id}".encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < cfg.train:
        return "train"
    if u < cfg.train + cfg.validation:
        return "validation"
    return "test"
