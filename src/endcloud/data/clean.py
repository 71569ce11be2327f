"""Cleaning: text normalisation and turn-level filtering of one dialogue at a time.

Order per turn: normalise (full-width -> half-width, URLs, emoji, whitespace) -> strip system
cards -> drop empty/NULL. Per dialogue: drop JDDC transfer-to-human sessions, merge consecutive
messages of one speaker. Every drop is counted under a stable key in the caller's Counter.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from endcloud.data.config import CleanConfig
from endcloud.records import Dialogue, Turn

# Full-width ASCII variants (U+FF01..U+FF5E) map to ASCII by subtracting 0xFEE0. CJK punctuation
# that Chinese writing uses as such (，！？：；（）) keeps its full-width form: converting it
# would change the text's style, not its meaning.
_KEEP_FULLWIDTH = set("，！？：；（）")
_FULLWIDTH_TABLE = {
    cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F) if chr(cp) not in _KEEP_FULLWIDTH
}
_FULLWIDTH_TABLE[0x3000] = 0x20  # ideographic space

_URL = re.compile(r"(?:https?://|www\.)[^\s\u3000-\u303f\uff00-\uffef]+", re.IGNORECASE)
# Unicode emoji and pictographs, plus JDDC's emoticon codes such as "#E-s[数字x]" or "#E-s01".
_EMOJI = re.compile(
    "[\U0001F000-\U0001FAFF\U00002600-\U000027BF\U0001F900-\U0001F9FF\uFE0F\u200D]"
    r"|#E-[a-z]+(?:\[数字x\]|\d+)?")
_SPACES = re.compile(r"\s+")
_NULLS = {"", "null", "none", "nan", "[null]", "-"}

# Order/product cards the JDDC client inserts on the customer's side; not something a person typed.
_SYSTEM_CARDS = [
    re.compile(r"咨询订单号[:：]\s*\S+(?:\s*(?:订单金额|下单时间|商品ID)[:：]\s*\S*)*"),
    re.compile(r"\[订单编号[:：](?:[^\[\]]|\[[^\[\]]*\])*\]"),  # nested [订单x] inside
    re.compile(r"^\s*(?:\[链接x\]\s*)+$"),
]
_TRANSFER_REQUEST = re.compile(r"^(?:我要)?转人工(?:客服)?[。!！]?(?:\s+(?:我要)?转人工(?:客服)?)*$")


def normalize(text: str, cfg: CleanConfig) -> str:
    """Normalise one message: NFC, full-width letters/digits, URLs, emoji, whitespace."""
    text = unicodedata.normalize("NFC", text)
    if cfg.fullwidth_to_halfwidth:
        text = text.translate(_FULLWIDTH_TABLE)
    if cfg.urls == "mask":
        text = _URL.sub("[URL]", text)
    elif cfg.urls == "drop":
        text = _URL.sub(" ", text)
    if cfg.emoji == "drop":
        text = _EMOJI.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def strip_system(text: str) -> str:
    """Remove auto-inserted order/product cards; what the person typed remains."""
    for pattern in _SYSTEM_CARDS:
        text = pattern.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def is_null(text: str) -> bool:
    return text.strip().lower() in _NULLS


def clean_dialogue(dlg: Dialogue, cfg: CleanConfig, counts: Counter[str]) -> Dialogue | None:
    """Return the cleaned dialogue, or None when the whole dialogue is dropped."""
    if cfg.drop_transfer and dlg.meta.get("is_transfer"):
        counts["dialogues_dropped_transfer"] += 1
        return None
    turns: list[Turn] = []
    for turn in dlg.turns:
        if turn.role == "system":
            counts["turns_dropped_system"] += 1
            continue
        text = normalize(turn.text, cfg)
        if cfg.drop_system:
            stripped = strip_system(text)
            if stripped != text:
                counts["system_cards_removed"] += 1
            text = stripped
            if turn.role == "user" and cfg.drop_transfer and _TRANSFER_REQUEST.match(text):
                counts["turns_dropped_transfer_request"] += 1
                continue
        if is_null(text):
            counts["turns_dropped_empty"] += 1
            continue
        turns.append(Turn(turn.role, text, dict(turn.meta)))
    if cfg.merge_consecutive:
        turns = merge_consecutive(turns, counts)
    if not turns:
        counts["dialogues_dropped_empty"] += 1
        return None
    return Dialogue(dlg.id, turns, dlg.source, dict(dlg.meta))


def merge_consecutive(turns: list[Turn], counts: Counter[str]) -> list[Turn]:
    """Join consecutive messages of one speaker into one turn (separated by a space)."""
    merged: list[Turn] = []
    for turn in turns:
        # A "mixed" turn (JDDC 2018 contexts: several unknown speakers) stays on its own.
        mixed = "mixed" in (turn.meta.get("speakers"), merged[-1].meta.get("speakers") if merged else None)
        if merged and merged[-1].role == turn.role and not mixed:
            merged[-1] = Turn(turn.role, f"{merged[-1].text} {turn.text}", merged[-1].meta)
            counts["turns_merged"] += 1
        else:
            merged.append(turn)
    return merged


_NEAR_DROP = re.compile(r"\[[A-Za-z_\u4e00-\u9fff]+[x_]?\d*\]|[\W_\d]+", re.UNICODE)


def exact_key(*parts: str) -> int:
    return hash_text("\x1f".join(parts))


def near_key(*parts: str) -> int:
    """Case-, space-, punctuation-, digit- and placeholder-insensitive key."""
    return hash_text("\x1f".join(_NEAR_DROP.sub("", p.lower()) for p in parts))


def hash_text(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")
