"""Text measures every stage shares (no model, no dependency)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef]|[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def estimate_tokens(text: str) -> int:
    """A fast token estimate: one per CJK character, per word, per number, per punctuation mark."""
    return len(_TOKEN.findall(text))
