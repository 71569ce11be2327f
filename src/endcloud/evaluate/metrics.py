"""Reference-based and corpus metrics users expect beside Final: BLEU, ROUGE-L, distinct-n, length.

Tokenisation (all metrics): NFKC, lower-case; every CJK character is one token (the JDDC
convention: Chinese is scored per character, so no word segmenter decides the score); a run of
Latin letters/digits is one token; every other non-space character (punctuation, emoji) is one
token; whitespace separates and is dropped.

    tokens("订单123已发货, OK!")  ->  ['订', '单', '123', '已', '发', '货', ',', 'ok', '!']

BLEU as the JDDC competition computes it: sentence-BLEU-4 (uniform weights, brevity penalty)
of the reply against each human reference separately, then the mean over references (not
multi-reference BLEU). A zero n-gram match count is smoothed to 0.1 (Chen & Cherry's method 1,
as NLTK's `SmoothingFunction().method1`), so short replies do not all collapse to 0.
ROUGE-L is the LCS F1 (β = 1). distinct-n is corpus-level: unique n-grams / all n-grams over a
system's replies.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Sequence

_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"  # one CJK char
    r"|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+"  # word run
    r"|\S",  # any other visible character (punctuation, emoji, ...)
)
BLEU_EPSILON = 0.1
MAX_ROUGE_TOKENS = 2000


def tokens(text: str) -> list[str]:
    """Char-level for CJK, word-level for Latin scripts (see the module docstring)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text or "").lower())


def _ngrams(toks: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(toks[i: i + n]) for i in range(len(toks) - n + 1))


def sentence_bleu(hyp: str, ref: str, max_n: int = 4) -> float:
    """BLEU-`max_n` of one reply against one reference, in [0, 1]; 0 for an empty side."""
    h, r = tokens(hyp), tokens(ref)
    if not h or not r:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        hc, rc = _ngrams(h, n), _ngrams(r, n)
        total = max(1, sum(hc.values()))  # NLTK: a reply shorter than n counts 0 of 1
        clipped = sum(min(c, rc[g]) for g, c in hc.items())
        if n == 1 and clipped == 0:
            return 0.0  # no word in common: BLEU is 0, smoothing or not (as in NLTK)
        log_p += math.log((clipped or BLEU_EPSILON) / total)
    return _bp(len(h), len(r)) * math.exp(log_p / max_n)


def _bp(hyp_len: int, ref_len: int) -> float:
    return 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)


def jddc_bleu(hyp: str, refs: Sequence[str]) -> float:
    """Mean sentence-BLEU against each reference (JDDC); 0 with no reference."""
    refs = [r for r in refs if r]
    return sum(sentence_bleu(hyp, r) for r in refs) / len(refs) if refs else 0.0


def rouge_l(hyp: str, ref: str) -> float:
    """LCS-based F1 over tokens, in [0, 1] (each side cut to MAX_ROUGE_TOKENS: LCS is quadratic)."""
    h, r = tokens(hyp)[:MAX_ROUGE_TOKENS], tokens(ref)[:MAX_ROUGE_TOKENS]
    if not h or not r:
        return 0.0
    lcs = _lcs(h, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(h), lcs / len(r)
    return 2 * p * rec / (p + rec)


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)  # one row at a time: O(len(b)) memory for 10,000-token replies
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def distinct(replies: Sequence[str], n: int) -> float:
    """Unique n-grams / all n-grams over all replies (0 when there are none)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for reply in replies:
        grams.update(_ngrams(tokens(reply), n))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def reply_metrics(reply: str, refs: Sequence[str]) -> dict[str, float]:
    """Per-reply: JDDC BLEU, ROUGE-L (best over references), length in tokens and characters."""
    refs = [r for r in refs if r]
    return {
        "bleu": jddc_bleu(reply, refs),
        "rouge_l": max((rouge_l(reply, r) for r in refs), default=0.0),
        "length_tokens": float(len(tokens(reply))),
        "length_chars": float(len(reply)),
    }


def corpus_metrics(replies: Sequence[str]) -> dict[str, float]:
    return {"distinct_1": distinct(replies, 1), "distinct_2": distinct(replies, 2)}
