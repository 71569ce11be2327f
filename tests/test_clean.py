"""Cleaning, sample building and the split by session."""

from collections import Counter

from endcloud.data.clean import clean_dialogue, exact_key, near_key, normalize, strip_system
from endcloud.data.config import CleanConfig, SplitConfig
from endcloud.data.length import TokenCounter
from endcloud.data.samples import build_samples, split_of
from endcloud.records import Dialogue, Turn


def test_normalize_fullwidth_urls_emoji_space():
    cfg = CleanConfig()
    assert normalize("订单号：ＡＢ１２３　好的！", cfg) == "订单号：AB123 好的！"
    assert normalize("看这里 https://shop.example.com/a?b=1 好", cfg) == "看这里 [URL] 好"
    assert normalize("谢谢😀👍 #E-s[数字x]", cfg) == "谢谢"
    assert normalize("  a \t\n b  ", cfg) == "a b"
    keep = CleanConfig(fullwidth_to_halfwidth=False, urls="keep", emoji="keep")
    assert normalize("ＡＢ https://x.y 😀", keep) == "ＡＢ https://x.y 😀"


def test_system_cards_are_stripped():
    assert strip_system("咨询订单号:[订单x] 订单金额:[金额x] 下单时间:[日期x] 你好") == "你好"
    assert strip_system("[订单编号:[订单x]，订单金额:[金额x]，下单时间:[日期x] [时间x]] 在吗") == "在吗"
    assert strip_system("[链接x] [链接x]") == ""
    assert strip_system("我的订单号是多少") == "我的订单号是多少"


def _dlg(*pairs, **meta):
    return Dialogue("s1", [Turn(r, t) for r, t in pairs], "test", meta)


def test_clean_dialogue_merges_and_drops():
    counts = Counter()
    d = clean_dialogue(_dlg(("user", "你好"), ("user", "在吗"), ("assistant", "NULL"),
                            ("assistant", "您好"), ("user", "我要转人工"), ("user", "[链接x]"),
                            ("system", "x")), CleanConfig(), counts)
    assert [(t.role, t.text) for t in d.turns] == [("user", "你好 在吗"), ("assistant", "您好")]
    assert counts["turns_merged"] == 1 and counts["turns_dropped_empty"] == 2
    assert counts["turns_dropped_transfer_request"] == 1 and counts["turns_dropped_system"] == 1
    assert clean_dialogue(_dlg(("user", "a"), is_transfer=True), CleanConfig(), counts) is None
    assert counts["dialogues_dropped_transfer"] == 1


def test_samples_have_context_window():
    d = _dlg(("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"),
             ("user", "q3"), ("assistant", "a3"))
    samples = list(build_samples(d, context_turns=2))
    assert [s.query for s in samples] == ["q1", "q2", "q3"]
    assert [t.text for t in samples[2].context] == ["q2", "a2"]
    assert samples[0].context == []
    assert len({s.id for s in samples}) == 3
    msgs = samples[2].to_messages()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]


def test_split_is_deterministic_seeded_and_proportional():
    cfg = SplitConfig(train=0.8, validation=0.1, test=0.1, seed=1)
    splits = [split_of(f"s{i}", cfg) for i in range(5000)]
    assert splits == [split_of(f"s{i}", cfg) for i in range(5000)]
    share = Counter(splits)
    assert 0.77 < share["train"] / 5000 < 0.83 and 0.08 < share["test"] / 5000 < 0.12
    other = [split_of(f"s{i}", SplitConfig(train=0.8, validation=0.1, test=0.1, seed=2))
             for i in range(5000)]
    assert other != splits


def test_dedup_keys():
    assert exact_key("a", "b") != exact_key("ab", "")
    assert near_key("好的，谢谢！", "不客气") == near_key("好的 谢谢", "不客气~")
    assert near_key("订单[ORDER_1]", "x") == near_key("订单[ORDER_2]", "x")
    assert near_key("退货", "可以") != near_key("换货", "可以")


def test_token_estimate():
    tc = TokenCounter("")
    assert tc.count("你好abc 12，") == 5  # 你 好 abc 12 ，
