"""BLEU (JDDC style), ROUGE-L, distinct-n and the tokenisation they share, on hand-computed cases."""

from __future__ import annotations

import math

from endcloud.evaluate.metrics import (distinct, jddc_bleu, reply_metrics, rouge_l, sentence_bleu,
                                       tokens)


def test_tokens_char_level_for_chinese_words_for_latin():
    assert tokens("订单123已发货, OK!") == ["订", "单", "123", "已", "发", "货", ",", "ok", "!"]
    assert tokens("😀😀 hi") == ["😀", "😀", "hi"]
    assert tokens("") == [] and tokens("   ") == []
    assert tokens("ＡＢＣ") == ["abc"]  # NFKC: full-width letters are the same word


def test_bleu_identity_and_disjoint():
    assert sentence_bleu("今天下午发货哦", "今天下午发货哦") == 1.0
    assert sentence_bleu("你好", "再见") == 0.0
    assert sentence_bleu("", "再见") == 0.0


def test_bleu_hand_computed():
    # hyp 今天发货 (4 chars) vs ref 明天下午发货哦 (7 chars)
    # p1 = 3/4 (天 发 货); p2 = 1/3 (发货); p3 = 0 -> 0.1/2; p4 = 0 -> 0.1/1; BP = exp(1 - 7/4)
    expected = math.exp(1 - 7 / 4) * (0.75 * (1 / 3) * 0.05 * 0.1) ** 0.25
    assert math.isclose(sentence_bleu("今天发货", "明天下午发货哦"), expected)


def test_jddc_bleu_is_the_mean_over_references():
    refs = ["今天下午发货哦", "再见"]
    assert math.isclose(jddc_bleu("今天下午发货哦", refs), 0.5)
    assert jddc_bleu("x", []) == 0.0


def test_rouge_l_hand_computed():
    # LCS(今天发货, 明天下午发货哦) = 天发货 = 3; P = 3/4, R = 3/7; F1 = 2PR/(P+R) = 6/11
    assert math.isclose(rouge_l("今天发货", "明天下午发货哦"), 6 / 11)
    assert rouge_l("", "x") == 0.0


def test_distinct():
    assert math.isclose(distinct(["a b a", "a b"], 1), 2 / 5)
    assert math.isclose(distinct(["a b a", "a b"], 2), 2 / 3)  # (a,b) (b,a) (a,b)
    assert distinct([""], 1) == 0.0


def test_long_reply_is_fast_and_finite():
    m = reply_metrics("很长" * 5000, ["很长的回复"])
    assert m["length_chars"] == 10_000 and 0 <= m["bleu"] <= 1 and 0 <= m["rouge_l"] <= 1
