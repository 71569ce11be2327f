"""What every detector shares: the `Detection` record, the normaliser, small regex helpers."""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, NamedTuple

_HAN = r"\u4e00-\u9fff"
# Latin letters beyond ASCII, by case, for names written with diacritics (José, Nguyễn, Łukasz, Đặng).
_LATIN_UPPER = "".join(ch for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)) if (ch := chr(cp)).isupper())
_LATIN_LOWER = "".join(ch for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)) if (ch := chr(cp)).islower())


class Detection(NamedTuple):
    type: str
    start: int
    end: int
    key: str


Detector = Callable[[str], list[Detection]]


def _build_normaliser() -> dict[int, int]:
    table = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII block
    table[0x3000] = 0x20                                     # ideographic space
    table[0x3002] = ord(".")                                 # 。
    for cp in range(0x80, 0x20000):  # every decimal digit (Nd) lives below U+20000
        ch = chr(cp)
        if cp > 0x7F and ch.isdecimal():
            table[cp] = ord("0") + unicodedata.decimal(ch)
    return table


_NORMALISER = _build_normaliser()


def normalise(text: str) -> str:
    """Map full-width forms and every script's digits onto ASCII, one char for one char."""
    return text.translate(_NORMALISER)


def digits(s: str) -> str:
    return re.sub(r"[^0-9]", "", s)


def _alt(words: tuple[str, ...] | list[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
