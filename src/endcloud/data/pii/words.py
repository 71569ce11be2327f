"""What the name detectors share about words: jieba (its part-of-speech tagger, dictionary counts and
dictionary segmentation, loaded once) and where a brand that looks like a person's name stands."""

from __future__ import annotations

import re

from endcloud.data.pii import lexicon as lx
from endcloud.data.pii.base import _alt

_POSSEG = None


def posseg():
    """jieba's part-of-speech tagger, loaded once (its ~20 MB dictionary ships in the package)."""
    global _POSSEG
    if _POSSEG is None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _POSSEG = jieba.posseg
    return _POSSEG


def dictionary_count(word: str) -> int:
    """How often jieba's dictionary counted `word` (0: not a dictionary word)."""
    import jieba

    posseg()
    return jieba.dt.FREQ.get(word) or 0


def dictionary_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of `text` cut with the dictionary only (no HMM-guessed words)."""
    import jieba

    posseg()
    return list(jieba.tokenize(text, HMM=False))


_ZH_BRAND_RE = re.compile(_alt(sorted(lx.ZH_NAME_BRANDS)))
EN_BRAND_RE = re.compile(rf"(?<![A-Za-z])(?:{_alt(sorted(lx.EN_NAME_BRANDS))})(?![A-Za-z])")


def zh_brand_spans(norm: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _ZH_BRAND_RE.finditer(norm)]


def brand_spans(norm: str) -> list[tuple[int, int]]:
    """Where a brand that looks like a person's name stands (Chinese and English lexicons)."""
    return zh_brand_spans(norm) + [(m.start(), m.end()) for m in EN_BRAND_RE.finditer(norm)]
