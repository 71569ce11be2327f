"""The prompt of Table II: instruction, N fixed examples in a stable order, retrieved examples,
multi-turn context, and the prompt hash that keys the label cache."""

from __future__ import annotations

import os

from endcloud.cloud.config import PromptConfig
from endcloud.cloud.prompt import ExamplePool, PromptBuilder, prompt_hash
from endcloud.text import estimate_tokens
from endcloud.records import Sample, Turn

QA = [("衣服尺码偏大吗", "亲，尺码标准，按平时穿的选就好~"), ("可以退货吗", "支持七天无理由退货哦"),
      ("什么时候发货", "付款后48小时内发货"), ("有优惠券吗", "店铺首页可以领券哦"),
      ("退货运费谁出", "有运费险的话退货运费由保险公司承担"), ("Do you ship abroad?", "Sorry, we only ship domestically."),
      ("电池能用多久", "正常使用一天没问题"), ("发票怎么开", "在订单详情里申请电子发票")]


def pool() -> ExamplePool:
    return ExamplePool.from_samples(Sample(f"e{i}", f"es{i}", [], q, a, "t", "train") for i, (q, a) in enumerate(QA))


def sample(query: str, sid: str = "q1", session: str = "qs1", context=()) -> Sample:
    return Sample(sid, session, list(context), query, "human reply", "t", "test")


def test_table_ii_layout():
    b = PromptBuilder(PromptConfig(n_examples=3, selection="first"), pool())
    msgs = b.messages(sample("我想换个颜色"))
    system = msgs[0]["content"]
    assert msgs[0]["role"] == "system" and system.startswith("Assuming that you are an e-commerce customer service agent")
    assert "Here are some examples for your reference." in system
    assert "Customer 1: 衣服尺码偏大吗\nCustomer Service 1: 亲，尺码标准" in system
    assert "Customer 3:" in system and "Customer 4:" not in system
    assert msgs[-1] == {"role": "user", "content": "我想换个颜色"}


def test_fixed_examples_are_a_stable_prefix_for_every_query():
    b = PromptBuilder(PromptConfig(n_examples=4, n_retrieved=2), pool())
    a = b.messages(sample("退货要运费吗"))[0]["content"]
    c = b.messages(sample("电池续航怎么样", "q2", "qs2"))[0]["content"]
    fixed = a.split("Examples similar to the customer's question:")[0]
    assert c.startswith(fixed) and a != c  # same cacheable prefix, different retrieved tail
    assert PromptBuilder(PromptConfig(n_examples=4), pool()).messages(sample("x"))[0] == \
        PromptBuilder(PromptConfig(n_examples=4), pool()).messages(sample("y", "q9", "qs9"))[0]


def test_retrieval_picks_similar_questions_and_skips_the_own_session():
    p = pool()
    top = [p.examples[i].query for i in p.search("退货的运费谁来出", 2)]
    assert top[0] == "退货运费谁出" and "可以退货吗" in top
    assert "退货运费谁出" not in [p.examples[i].query for i in p.search("退货的运费谁来出", 2, exclude_session="es4")]
    b = PromptBuilder(PromptConfig(n_examples=0, n_retrieved=1), p)
    assert "退货运费谁出" in b.messages(sample("退货的运费谁来出"))[0]["content"]


def test_fixed_examples_from_the_samples_own_session_are_replaced():
    b = PromptBuilder(PromptConfig(n_examples=2, selection="first"), pool())
    system = b.messages(sample("q", session="es0"))[0]["content"]
    assert "衣服尺码偏大吗" not in system and "什么时候发货" in system


def test_multi_turn_context_is_sent_in_order():
    ctx = [Turn("user", "在吗"), Turn("assistant", "在的亲"), Turn("user", "我买的鞋子")]
    msgs = PromptBuilder(PromptConfig(n_examples=1, context_turns=6), pool()).messages(sample("能退吗", context=ctx))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "我买的鞋子\n能退吗"  # two user turns in a row are joined
    single = PromptBuilder(PromptConfig(n_examples=1, context_turns=0), pool()).messages(sample("能退吗", context=ctx))
    assert len(single) == 2


def test_prompt_hash_covers_messages_and_parameters():
    msgs = [{"role": "user", "content": "hi"}]
    h = prompt_hash(msgs, {"model": "a", "temperature": 0.6})
    assert h == prompt_hash([dict(m) for m in msgs], {"temperature": 0.6, "model": "a"})
    assert h != prompt_hash(msgs, {"model": "b", "temperature": 0.6})
    assert h != prompt_hash([{"role": "user", "content": "hi!"}], {"model": "a", "temperature": 0.6})


def test_long_examples_are_clipped():
    p = ExamplePool.from_samples([Sample("e", "s", [], "q", "很长" * 500, "t", "train")])
    system = PromptBuilder(PromptConfig(n_examples=1, max_example_chars=50), p).messages(sample("x"))[0]["content"]
    assert "…" in system and len(system) < 1000


def test_estimate_tokens():
    assert estimate_tokens("我的订单") == 4 and estimate_tokens("where is my order 123?") == 6


def test_pool_reads_messages_jsonl(tmp_path):
    import json

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(Sample(f"e{i}", "s", [], q, a, "t", "train").to_messages(),
                                       ensure_ascii=False) + "\n" for i, (q, a) in enumerate(QA)), encoding="utf-8")
    assert len(ExamplePool.from_jsonl(path)) == len(QA) and os.path.getsize(path) > 0
