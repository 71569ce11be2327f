"""The masker's trained name/address tagger: the shipped model, what it adds to the rules, its
filters, failing closed, and `endcloud data train-tagger` end to end on a small corpus."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json

import pytest

from endcloud.data.pii import tagger as tg
from endcloud.data.privacy import Masker

FULL = Masker()
WITHOUT_TAGGER = Masker()
WITHOUT_TAGGER._detectors = [(n, f) for n, f in WITHOUT_TAGGER._detectors if n != "detect_names_tagger"]


@pytest.fixture
def fresh_tagger(monkeypatch):
    """Each test that swaps the model file sees its own load (the loader caches by path)."""
    tg._load.cache_clear()
    yield monkeypatch
    tg._load.cache_clear()


def test_shipped_model_and_manifest_agree():
    blob = tg.SHIPPED.read_bytes()
    meta = tg.manifest(tg.SHIPPED)
    assert meta["sha256"] == hashlib.sha256(blob).hexdigest() and meta["bytes"] == len(blob)
    assert len(blob) < 2 * 1024 * 1024  # small enough to ship in the package
    assert meta["validation"]["NAME"]["recall"] > 0.9 and meta["data"]["jddc"] > 0
    words = tg.SHIPPED.with_suffix(".words").read_text(encoding="utf-8").split()
    assert len(words) == meta["common_words"] and tg.tagger().common == frozenset(words)
    assert not {"will", "grace", "rose", "baker"} & set(words)  # given names and surnames stay out


@pytest.mark.parametrize("text, value, type_", [
    ("让禤志强下楼拿一下快递", "禤志强", "NAME"),                    # a surname no list holds, no cue
    ("我是仉女士，退款还没处理", "仉", "NAME"),                    # the title stays outside the span
    ("快递放在南苑小区东门菜鸟驿站就行", "南苑小区东门菜鸟驿站", "ADDRESS"),  # a parcel station, no street
    ("Please leave it with Oluwaseun at the front desk", "Oluwaseun", "NAME"),
    ("hey its priya sharma, where is my stuff", "priya sharma", "NAME"),  # lower case, no cue rule
])
def test_tagger_finds_what_the_rules_miss(text, value, type_):
    assert value in WITHOUT_TAGGER.mask(text).text  # the rules alone leave it in clear
    r = FULL.mask(text)
    assert value not in r.text and r.sendable
    assert [(s.type, text[s.start:s.end]) for s in r.spans] == [(type_, value)]


@pytest.mark.parametrize("text", [
    "非常荣幸为您服务，祝福顾客",          # a span across two words (非|常荣|幸)
    "高峰期发货慢",                        # part of a longer word (高峰|期)
    "我在老凤祥买的金镯子需要保修",        # a brand that looks like a name
    "请问金龙鱼的油怎么漏了",
    "我想买一本《司马迁传》，有精装版吗",  # a book title
    "The refund went to my PayPal yesterday",
])
def test_tagger_leaves_words_brands_and_titles(text):
    r = FULL.mask(text)
    assert r.text == text and r.sendable


def test_tagger_widens_a_rule_address_to_the_building():
    text = "地址：杭州市西湖区文三路478号华星时代广场A座1203"
    r = FULL.mask(text)
    assert r.text == "地址：[ADDRESS_1]" and r.sendable
    assert r.spans[0].end == len(text)


def test_role_word_is_not_taken_with_the_name():
    r = FULL.mask("老公叫聂海涛，他来取")
    assert r.text == "老公叫[NAME_1]，他来取"


@pytest.mark.parametrize("content", [None, b"not a crf model"])
def test_missing_or_corrupt_model_fails_closed(fresh_tagger, tmp_path, content):
    path = tmp_path / "tagger.crfsuite"
    if content is not None:
        path.write_bytes(content)
    fresh_tagger.setenv("ENDCLOUD_PII_TAGGER", str(path))
    r = Masker().mask("我叫禤志强，电话13800138000")
    assert r.text == "" and not r.sendable
    assert r.reasons == [f"masking failed in detect_names_tagger: {r.reasons[0].split(': ')[1]}"]
    assert "禤" not in " ".join(r.reasons)
    # rules-only masking does not need the model
    assert Masker(names_model=False).mask("电话13800138000").sendable


def _tiny_corpora(tmp_path):
    jddc = tmp_path / "jddc2019_chat_sample_vX.tsv.gz"
    lines = ["你好[姓名x]，请问有什么可以帮您", "我的地址是[地址x]，麻烦改一下", "收件人[姓名x]，电话[电话x]",
             "什么时候发货", "好的呢亲", "[数字x]点前下单当天发"] * 10
    with gzip.open(jddc, "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        for i, line in enumerate(lines):
            w.writerow([f"s{i // 4}", "u", i % 2, 0, 0, "nan", line])
    bitext = tmp_path / "bitext.csv.gz"
    with gzip.open(bitext, "wt", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["instruction", "response"])
        w.writeheader()
        for q in ("where is my order", "I want a refund", "how do I change my delivery address"):
            w.writerow({"instruction": q, "response": "ok"})
    return jddc, bitext


def test_train_tagger_command_writes_a_model_the_masker_uses(fresh_tagger, tmp_path, capsys):
    pytest.importorskip("faker", reason="training needs Faker (endcloud[pii-train])")
    from endcloud.cli import main

    jddc, bitext = _tiny_corpora(tmp_path)
    out = tmp_path / "m" / "tagger.crfsuite"
    rc = main(["data", "train-tagger", "--jddc", str(jddc), "--bitext", str(bitext), "--output", str(out),
               "--iterations", "20", "--negatives", "20", "--english", "200", "--chinese", "200"])
    assert rc == 0
    meta = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["data"]["jddc"] == 30 * 3 + 20  # 30 lines with a slot, filled 3 times; 20 without and meta["params"]["max_iterations"] == 20
    assert set(meta["validation"]) == {"NAME", "ADDRESS"}
    fresh_tagger.setenv("ENDCLOUD_PII_TAGGER", str(out))
    r = Masker().mask("收件人张伟，电话13800138000")
    assert r.sendable and "张伟" not in r.text


def test_train_tagger_names_the_missing_corpus(tmp_path, capsys):
    from endcloud.cli import main

    rc = main(["data", "train-tagger", "--data-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "t")])
    assert rc == 2 and "corpus files not found" in capsys.readouterr().err


def test_fill_records_exact_spans():
    pytest.importorskip("faker", reason="training needs Faker (endcloud[pii-train])")
    from endcloud.data.pii import tagger_train as tt

    values = tt.Values(1)
    for _ in range(50):
        row = tt.fill("收件人[姓名x]，地址[地址x]，[数字x]点前送到", values)
        types = [s["type"] for s in row["spans"]]
        assert types == ["NAME", "ADDRESS"] and "[" not in row["text"]
        name, addr = (row["text"][s["start"]:s["end"]] for s in row["spans"])
        assert row["text"].startswith("收件人" + name + "，地址" + addr + "，")


@pytest.mark.parametrize("text, kept", [
    ("Georgia peaches gift box - does it ship to Virginia?", "Virginia"),  # a given name, where a trip puts it
    ("Is the gift set shipped from the US warehouse or from Hong Kong?", "Hong Kong"),
    ("she doesn't speak much English so please text", "English"),
    ("Items: Ralph Lauren Classic Fit Polo (x2)", "Classic Fit Polo"),  # no address without a number
    ("Attn: A. K. Sharma, Accounts Dept", "Accounts Dept"),
])
def test_places_languages_and_departments_are_no_names(text, kept):
    r = FULL.mask(text)
    assert kept in r.text and r.sendable


def test_a_model_address_gives_way_to_a_phone_after_it():
    text = "the parcel is for Amélie Dubois, 12 rue de la Paix, 75002 Paris, +33 6 12 34 56 78"
    r = FULL.mask(text)
    assert [(s.type, text[s.start:s.end]) for s in r.spans] == [
        ("NAME", "Amélie Dubois"), ("ADDRESS", "12 rue de la Paix, 75002 Paris"), ("PHONE", "+33 6 12 34 56 78")]


def test_a_person_after_ship_to_is_still_a_person():
    text = "Please ship to Maria Lopez, 12 Main St, Springfield, IL 62704"
    r = FULL.mask(text)
    assert "Maria" not in r.text and "Lopez" not in r.text and "12 Main" not in r.text and r.sendable
