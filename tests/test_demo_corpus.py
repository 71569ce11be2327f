"""The built-in demo corpus: deterministic, balanced, well-formed, and with work for the masker."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import asdict

import pytest

from endcloud.data.demo_corpus import LANGS, PAIRED, POLICY, TOPICS, demo_dialogues
from endcloud.records import Dialogue


@pytest.fixture(scope="module")
def corpus() -> list[Dialogue]:
    return demo_dialogues(seed=0)


def _agent_texts(dialogues: list[Dialogue]) -> list[str]:
    return [t.text for d in dialogues for t in d.turns if t.role == "assistant"]


def _user_texts(dialogues: list[Dialogue]) -> list[str]:
    return [t.text for d in dialogues for t in d.turns if t.role == "user"]


def test_same_seed_same_corpus_and_other_seed_differs(corpus: list[Dialogue]) -> None:
    assert [asdict(d) for d in demo_dialogues(seed=0)] == [asdict(d) for d in corpus]
    assert _agent_texts(demo_dialogues(seed=1)) != _agent_texts(corpus)


def test_size_and_speed() -> None:
    start = time.perf_counter()
    dialogues = demo_dialogues(seed=3)
    assert time.perf_counter() - start < 0.2
    assert 180 <= len(dialogues) <= 260


def test_ids_unique_and_source(corpus: list[Dialogue]) -> None:
    assert len({d.id for d in corpus}) == len(corpus)
    assert {d.source for d in corpus} == {"demo"}


def test_languages_balanced_and_match_text(corpus: list[Dialogue]) -> None:
    langs = Counter(d.meta["lang"] for d in corpus)
    assert set(langs) == set(LANGS)
    assert abs(langs["zh"] - langs["en"]) <= len(corpus) * 0.1
    han = re.compile(r"[\u4e00-\u9fff]")
    for d in corpus:  # a zh dialogue's first agent reply is Chinese, an en one's is not
        first_reply = next(t.text for t in d.turns if t.role == "assistant")
        assert bool(han.search(first_reply)) == (d.meta["lang"] == "zh"), d.id


def test_every_topic_in_both_languages(corpus: list[Dialogue]) -> None:
    seen = {(d.meta["topic"], d.meta["lang"]) for d in corpus}
    assert seen == {(t, lang) for t in TOPICS for lang in LANGS}
    for topic in ("shipping", "order_status", "returns", "refunds", "exchanges", "discounts",
                  "invoices", "product", "damaged", "complaints", "address_change", "cancellation"):
        assert topic in TOPICS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dialogue_shape(seed: int) -> None:
    for d in demo_dialogues(seed=seed):
        roles = [t.role for t in d.turns]
        assert roles[0] == "user" and roles[-1] == "assistant", d.id
        assert "assistant" in roles and set(roles) <= {"user", "assistant"}
        assert "assistant,assistant" not in ",".join(roles), d.id
        # two user messages in a row only where the noise says so
        doubled = "user,user" in ",".join(roles)
        assert doubled == ("double_message" in d.meta["noise"]), d.id
        pairs = roles.count("assistant")
        assert 2 <= pairs <= 6, d.id
        assert all(t.text.strip() and isinstance(t.meta, dict) for t in d.turns)


def test_templates_fully_filled(corpus: list[Dialogue]) -> None:
    for text in _agent_texts(corpus) + _user_texts(corpus):
        assert not re.search(r"\{\w+\}", text), text


def test_paired_steps_have_one_reply_per_question() -> None:
    for topic, step in PAIRED:
        for lang in LANGS:
            users, agents = TOPICS[topic][lang][step]
            assert len(users) == len(agents), (topic, lang, step)


def test_few_duplicate_agent_replies(corpus: list[Dialogue]) -> None:
    replies = _agent_texts(corpus)
    duplicates = len(replies) - len(set(replies))
    assert duplicates / len(replies) < 0.20


def test_policy_numbers_are_quoted_consistently(corpus: list[Dialogue]) -> None:
    agents = " ".join(_agent_texts(corpus))
    assert f"{POLICY['return_days']}天内支持无理由退货" in agents
    assert f"{POLICY['refund_days']} business days" in agents
    assert "30天无理由" not in agents and "30-day return" not in agents


def test_fake_pii_present(corpus: list[Dialogue]) -> None:
    users = "\n".join(_user_texts(corpus))
    assert re.search(r"@example\.(com|org|net)", users)
    assert re.search(r"\d{3} \d{4} \d{4}", users)          # 138 0013 8000
    assert re.search(r"\+86-\d{3}-\d{4}-\d{4}", users)      # +86-139-1234-5678
    assert re.search(r"\(\d{3}\) 555-01\d\d", users)        # (415) 555-0134
    assert re.search(r"订单号\d{18}", users)
    assert re.search(r"order #ED-\d{8}", users)
    assert re.search(r"[\u4e00-\u9fff]+(市|区)[\u4e00-\u9fff]+路\d+号", users)   # zh address
    assert re.search(r"\d+ \w+ (Ave|Street|Road|Dr), Apt", users)              # en address
    with_digits = sum(bool(re.search(r"\d{6,}", t.replace(" ", "").replace("-", ""))) for t in users.split("\n"))
    assert with_digits >= 30


def test_cleaning_has_work(corpus: list[Dialogue]) -> None:
    users = "".join(_user_texts(corpus))
    assert re.search(r"[\uff10-\uff19\uff21-\uff5a]", users)   # full-width letters/digits
    assert re.search(r"[\U0001F300-\U0001FAFF]", users)        # emoji
    assert "https://" in users
    noise = Counter(n for d in corpus for n in d.meta["noise"])
    assert noise["double_message"] >= 5 and noise["fullwidth"] >= 5
