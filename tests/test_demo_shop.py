"""The demo shop's knowledge documents and held-out questions: they parse, agree with each other
and with the demo corpus, and every required fact of a question can be found in the documents."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from importlib import resources
from typing import Any, Iterator

import pytest

from endcloud.data.demo_corpus import LANGS, POLICY, PRODUCTS, TOPICS

SHOP = resources.files("endcloud.data") / "demo_shop"
HAN = re.compile(r"[\u4e00-\u9fff]")
QUESTION_KEYS = {"id", "lang", "question", "answerable", "facts", "source"}
CATALOG_KEYS = {"sku", "lang", "title", "price", "currency", "attributes", "description"}
# Words a page would need for an unanswerable question to become answerable; none may appear.
NOT_COVERED = ["花呗", "分期", "礼盒", "贺卡", "礼品", "自提", "自取", "日本", "海外", "国际", "扫地", "批发",
               "团购", "货到付款", "防水", "游泳", "klarna", "afterpay", "installment", "instalment",
               "giftwrap", "gift-wrap", "giftcard", "inperson", "canada", "international", "smartwatch",
               "student", "engrav", "wholesale", "bulk", "waterproof"]


def norm(text: str) -> str:
    """How a reply is matched against a fact form: NFKC, lower case, no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).lower())


def _read(name: str) -> str:
    return (SHOP / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {lang: _read(f"policy.{lang}.md") for lang in LANGS}


@pytest.fixture(scope="module")
def faq() -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(_read("faq.csv"), newline=""))
    assert reader.fieldnames == ["question", "answer"]
    rows = list(reader)
    assert all(None not in r and r["question"].strip() and r["answer"].strip() for r in rows)
    return rows


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read("catalog.jsonl").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def questions() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read("questions.jsonl").splitlines() if line.strip()]


def _product_text(row: dict[str, Any]) -> str:
    """A catalog row as the knowledge base shows it: title, sku, price, attributes, description."""
    parts = [f"{row['title']} ({row['sku']})", f"price: {row['price']} {row['currency']}"]
    parts += [f"{k}: {v}" for k, v in row["attributes"].items()]
    return "\n".join(parts + [row["description"]])


@pytest.fixture(scope="module")
def knowledge(pages: dict[str, str], faq: list[dict[str, str]], catalog: list[dict[str, Any]]) -> str:
    texts = list(pages.values()) + [f"{r['question']}\n{r['answer']}" for r in faq]
    return norm("\n".join(texts + [_product_text(r) for r in catalog]))


def _headings(text: str) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.+)$", text, re.M)]


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def _has_number(text: str, number: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?!\.?\d)", text) is not None


# -- the files --------------------------------------------------------------------------------------
def test_policy_pages_are_markdown_of_the_right_size(pages: dict[str, str]) -> None:
    for lang, text in pages.items():
        assert text.startswith("# "), lang
        assert len(re.findall(r"^## ", text, re.M)) >= 10, lang
        assert re.search(r"^### ", text, re.M), lang
    words = len(re.findall(r"[A-Za-z0-9$][\w'.$-]*", pages["en"]))
    assert 600 <= words <= 1500, words
    han = len(HAN.findall(pages["zh"]))  # about 1.5 characters to a Chinese word
    assert 900 <= han <= 2250, han
    assert not HAN.search(pages["en"])


def test_faq_rows(faq: list[dict[str, str]]) -> None:
    assert 25 <= len(faq) <= 40
    langs = [bool(HAN.search(r["question"])) for r in faq]
    assert any(langs) and not all(langs)
    for r in faq:  # a zh question gets a zh answer
        assert bool(HAN.search(r["question"])) == bool(HAN.search(r["answer"])), r["question"]
    assert len({norm(r["question"]) for r in faq}) == len(faq)


def test_catalog_rows(catalog: list[dict[str, Any]]) -> None:
    assert 10 <= len(catalog) <= 16
    assert len({(r["sku"], r["lang"]) for r in catalog}) == len(catalog)
    for r in catalog:
        assert set(r) == CATALOG_KEYS, r["sku"]
        assert re.fullmatch(r"DS-[A-Z]{2}-\d{2}", r["sku"])
        assert isinstance(r["price"], (int, float)) and r["price"] > 0
        assert isinstance(r["attributes"], dict) and r["attributes"]
        assert r["title"].strip() and r["description"].strip()
        if r["lang"] == "zh":
            assert r["currency"] == "CNY"
            assert all(HAN.search(k) for k in r["attributes"]), r["sku"]
            assert HAN.search(r["title"]) and HAN.search(r["description"])
        else:
            assert r["lang"] == "en" and r["currency"] == "USD", r["sku"]
            assert not HAN.search(json.dumps(r, ensure_ascii=False)), r["sku"]


def test_question_records(questions: list[dict[str, Any]]) -> None:
    assert len({q["id"] for q in questions}) == len(questions)
    for q in questions:
        assert set(q) == QUESTION_KEYS, q.get("id")
        assert re.fullmatch(rf"{q['lang']}-\d{{3}}", q["id"]) and q["lang"] in LANGS
        assert q["question"].strip() and isinstance(q["answerable"], bool)
        assert bool(HAN.search(q["question"])) == (q["lang"] == "zh"), q["id"]
        if q["answerable"]:
            assert 1 <= len(q["facts"]) <= 2, q["id"]
            for forms in q["facts"]:
                assert isinstance(forms, list) and forms, q["id"]
                assert all(isinstance(f, str) and norm(f) for f in forms), q["id"]
            assert q["source"] != "none"
        else:
            assert q["facts"] == [] and q["source"] == "none", q["id"]


def test_question_counts(questions: list[dict[str, Any]]) -> None:
    answerable = [q for q in questions if q["answerable"]]
    unanswerable = [q for q in questions if not q["answerable"]]
    assert len(answerable) >= 60 and len(unanswerable) >= 12
    for lang in LANGS:  # both languages, and roughly half each
        assert sum(q["lang"] == lang for q in answerable) >= 0.4 * len(answerable), lang
        assert sum(q["lang"] == lang for q in unanswerable) >= 0.4 * len(unanswerable), lang


# -- the questions against the documents -----------------------------------------------------------
def test_every_fact_is_in_the_knowledge(questions: list[dict[str, Any]], knowledge: str) -> None:
    for q in questions:
        for forms in q["facts"]:
            assert any(norm(f) in knowledge for f in forms), (q["id"], forms)


def test_questions_are_not_copied(questions: list[dict[str, Any]], faq: list[dict[str, str]],
                                  knowledge: str) -> None:
    faq_questions = {norm(r["question"]) for r in faq}
    for q in questions:
        text = norm(q["question"])
        assert text not in faq_questions, q["id"]
        assert text not in knowledge, q["id"]
    assert len({norm(q["question"]) for q in questions}) == len(questions)


def test_sources_name_a_section_faq_row_or_sku(questions: list[dict[str, Any]], pages: dict[str, str],
                                                faq: list[dict[str, str]], catalog: list[dict[str, Any]]) -> None:
    for q in questions:
        if not q["answerable"]:
            continue
        name, _, part = q["source"].partition("#")
        if name.startswith("policy."):
            assert name == f"policy.{q['lang']}.md", q["id"]
            assert part in _headings(pages[q["lang"]]), q["id"]
        elif name == "faq.csv":
            assert part in {r["question"] for r in faq}, q["id"]
        else:
            assert name == "catalog.jsonl" and part in {r["sku"] for r in catalog}, q["id"]


def _sections(text: str) -> dict[str, str]:
    """Heading -> the text under it, up to the next heading of any level."""
    out: dict[str, str] = {}
    title = ""
    for line in text.split("\n"):
        m = re.match(r"^#{1,6}\s+(.+)$", line)
        if m:
            title = m.group(1).strip()
        else:
            out[title] = out.get(title, "") + line + "\n"
    return out


def test_facts_are_in_the_named_source(questions: list[dict[str, Any]], pages: dict[str, str],
                                       faq: list[dict[str, str]], catalog: list[dict[str, Any]]) -> None:
    sections = {lang: _sections(pages[lang]) for lang in LANGS}
    answers = {r["question"]: r["answer"] for r in faq}
    for q in questions:
        name, _, part = q["source"].partition("#")
        if not q["answerable"]:
            continue
        if name.startswith("policy."):
            text = sections[q["lang"]][part]
        elif name == "faq.csv":
            text = answers[part]
        else:
            text = "\n".join(_product_text(r) for r in catalog if r["sku"] == part)
        for forms in q["facts"]:
            assert any(norm(f) in norm(text) for f in forms), (q["id"], forms)


def test_unanswerable_topics_are_not_covered(knowledge: str) -> None:
    for word in NOT_COVERED:
        assert norm(word) not in knowledge, word


# -- the documents against the demo corpus ---------------------------------------------------------
def _policy_leaves(value: Any = POLICY, key: str = "") -> Iterator[tuple[str, str | None, Any]]:
    """(key, language or None when shared, value) for every leaf of POLICY."""
    if isinstance(value, dict) and set(value) == set(LANGS) and key:
        for lang in LANGS:
            yield key, lang, value[lang]
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _policy_leaves(v, k)
    else:
        yield key, None, value


def test_every_policy_number_is_on_the_policy_pages(pages: dict[str, str]) -> None:
    checked = 0
    for key, lang, value in _policy_leaves():
        for page_lang in [lang] if lang else LANGS:
            page = pages[page_lang]
            text = str(value)
            for number in _numbers(text):
                assert _has_number(page, number), (key, page_lang, number)
                checked += 1
            if _numbers(text) and not isinstance(value, (int, float)):  # "1–2", "8:30–21:30", addresses
                assert norm(text) in norm(page), (key, page_lang, text)
    assert checked >= 40


def test_template_times_agree_with_the_pages(pages: dict[str, str]) -> None:
    """Durations and clock times written into agent replies (not slots) are the pages' own."""
    unit = r"\d+(?:–\d+)?\s*(?:个工作日|小时|天|点|business days|hours|days|am|pm)"
    found = 0
    for steps in TOPICS.values():
        for lang, lang_steps in steps.items():
            for _, agents in lang_steps:
                for reply in agents:
                    for phrase in re.findall(unit, re.sub(r"\{\w+\}", " ", reply)):
                        assert norm(phrase) in norm(pages[lang]), (lang, phrase)
                        found += 1
    assert found >= 8


def _products_by_title() -> dict[tuple[str, str], tuple]:
    out = {}
    for p in PRODUCTS:
        out[("zh", p[0].lower())] = p
        out[("en", p[1].lower())] = p
    return out


def test_catalog_prices_and_facts_match_products(catalog: list[dict[str, Any]]) -> None:
    by_title = _products_by_title()
    seen: dict[str, tuple] = {}
    for r in catalog:
        product = by_title.get((r["lang"], r["title"].lower()))
        if product is None:  # a catalog-only product
            assert r["sku"] not in seen, r["sku"]
            continue
        zh = r["lang"] == "zh"
        assert r["price"] == (product[3] if zh else product[4]), r["sku"]
        assert seen.setdefault(r["sku"], product) is product, r["sku"]  # one sku, one product
        text = norm(_product_text(r))
        for fact in (product[5], product[7]) if zh else (product[6], product[8]):
            for number in _numbers(fact):
                assert _has_number(text, number), (r["sku"], number)
    assert set(seen.values()) == set(PRODUCTS)  # every product is in the catalog
    assert len(catalog) > sum(1 for r in catalog if (r["lang"], r["title"].lower()) in by_title)


def test_pages_state_no_old_defaults(pages: dict[str, str]) -> None:
    """The shop's facts are deliberately unusual; the common defaults must not creep back in."""
    for phrase in ["48小时", "七天无理由", "7天无理由", "满99", "1–3天"]:
        assert phrase not in pages["zh"], phrase
    for phrase in ["48 hours", "7-day", "7 days", "$15", "1–3 business days"]:
        assert phrase not in pages["en"], phrase
