"""The privacy boundary: round-trips, every phone form, checksums, hard negatives, fail-closed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from endcloud.data import privacy
from endcloud.data.pii import detectors
from endcloud.data.pii_testset import (PHONE_FORMS, _bad_card, _bad_id, _card, _resident_id,
                                       evaluate, generate)
from endcloud.data.privacy import Masker, MaskResult, Span

MASKER = Masker()
STRUCTURED = ("PHONE", "EMAIL", "ORDER", "TRACKING", "ID", "CARD")


def masked(text: str) -> MaskResult:
    return MASKER.mask(text, MASKER.new_conversation())


def types_of(r: MaskResult) -> list[str]:
    return [s.type for s in r.spans]


# --- round trip --------------------------------------------------------------------------------
_FRAGMENTS = st.sampled_from([
    "13800138000", "138 0013 8000", "+86 138-0013-8000", "１３８００１３８０００", "010-12345678",
    "a@b.com", "张伟", "收件人", "先生", "订单号", "运单号", "SF1234567890123", "11010519491231002X",
    "6222021234567890128", "[PHONE_1]", "[NAME_2]", "[姓名x]", "[ORDERID_10005629]", "{{Order Number}}",
    "{{Live Chat}}", "北京市朝阳区建国路88号", "my name is ", "John Smith", "https://jd.com/1.html",
    "¥199", "2024-11-11", " ", "，", "[", "]", "{{", "}}", "@", "#", "_", "1",
])
_TEXT = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=12).map("".join)


def _check_round_trip(texts: list[str]) -> None:
    """restore(mask(x)) == x, except that a value already seen in another spelling in this
    conversation comes back in its first spelling (the placeholder is shared by design)."""
    conv = MASKER.new_conversation()
    for x in texts:
        r = MASKER.mask(x, conv)
        assert r.sendable or r.reasons
        expected, pos = "", 0
        for sp in r.spans:
            assert r.text.count(sp.placeholder) >= 1
            expected += x[pos:sp.start] + conv.restore(sp.placeholder)
            pos = sp.end
        expected += x[pos:]
        assert conv.restore(r.text) == expected
        if all(conv.restore(sp.placeholder) == x[sp.start:sp.end] for sp in r.spans):
            assert expected == x


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_round_trip_single_message(x):
    _check_round_trip([x])


@settings(max_examples=100, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=4))
def test_round_trip_conversation(texts):
    # Only texts whose literal placeholders the conversation has not issued itself (see docstring).
    conv_free = [t for t in texts if not re.search(r"\[[A-Z]+_[0-9]+\]", t)]
    _check_round_trip(conv_free)


def test_round_trip_on_generated_set():
    for row in generate(1)[::5]:
        c = MASKER.new_conversation()
        assert c.restore(MASKER.mask(row["text"], c).text) == row["text"]


# --- placeholders ------------------------------------------------------------------------------
def test_same_value_same_placeholder_digit_normalised():
    conv = MASKER.new_conversation()
    a = MASKER.mask("电话 138 0013 8000", conv)
    b = MASKER.mask("还是13800138000，或者+86 138-0013-8000，或者１３８００１３８０００", conv)
    c = MASKER.mask("另一个 13900139000", conv)
    assert a.spans[0].placeholder == "[PHONE_1]"
    assert {s.placeholder for s in b.spans} == {"[PHONE_1]"}
    assert c.spans[0].placeholder == "[PHONE_2]"
    assert conv.restore("[PHONE_1]") == "138 0013 8000"  # the first spelling seen


def test_span_offsets_and_no_values_in_repr():
    text = "收件人张伟，电话13800138000，邮箱 zhang@qq.com"
    conv = MASKER.new_conversation()
    r = MASKER.mask(text, conv)
    assert r.text == "收件人[NAME_1]，电话[PHONE_1]，邮箱 [EMAIL_1]"
    assert [text[s.start:s.end] for s in r.spans] == ["张伟", "13800138000", "zhang@qq.com"]
    assert all(isinstance(s, Span) for s in r.spans)
    for shown in (repr(r), repr(r.spans), repr(conv), str(conv)):
        assert "13800138000" not in shown and "张伟" not in shown and "zhang@" not in shown
    assert not hasattr(r.spans[0], "value")


def test_mask_messages_shares_one_conversation():
    rs = MASKER.mask_messages(["我叫张伟", "张伟的电话 13800138000", "13800138000"])
    # the tagger finds the cue-less second mention; the same name keeps its placeholder
    assert [r.text for r in rs] == ["我叫[NAME_1]", "[NAME_1]的电话 [PHONE_1]", "[PHONE_1]"]


@pytest.mark.parametrize("text, want", [
    ("我老公叫李建国，麻烦改一下", "我老公叫[NAME_1]，麻烦改一下"),
    ("帮我转告王芳明天来取", "帮我转告[NAME_1]明天来取"),
    ("收件人欧阳娜娜", "收件人[NAME_1]"),  # a compound surname is its own token to jieba
    ("让司马相如签收", "让[NAME_1]签收"),
    ("让李娜来取一下", "让[NAME_1]来取一下"),  # a name jieba knows as a common word, after a cue
    # brands, common words jieba tags as names, measure words: left alone
    ("李宁的鞋子有货吗", "李宁的鞋子有货吗"), ("王老吉多少钱一箱", "王老吉多少钱一箱"),
    ("非常荣幸为您服务，祝福顾客", "非常荣幸为您服务，祝福顾客"), ("用这张卡付的", "用这张卡付的"),
    ("高峰期发货慢", "高峰期发货慢"),
    # kept values: a shop hotline, SKUs, a UK mobile is personal
    ("客服热线400-820-8820打不通", "客服热线400-820-8820打不通"),
    ("SKU 100012345678 还有货吗", "SKU 100012345678 还有货吗"), ("商品编号100023456789", "商品编号100023456789"),
    ("call me on 07700 900123", "call me on [PHONE_1]"),
    # English names after more cues, with apostrophes and accents; short order ids after "order #"
    ("It's for my wife Jane O'Connor, her birthday", "It's for my wife [NAME_1], her birthday"),
    ("attn: José Álvarez, please", "attn: [NAME_1], please"),
    ("Please cancel order #SO-58213, I ordered by mistake.", "Please cancel order #[ORDER_1], I ordered by mistake."),
])
def test_model_names_keep_lists_and_uk_mobiles(text, want):
    r = MASKER.mask(text)
    assert r.text == want and r.sendable  # a kept 12-digit SKU is not residue either


def test_names_model_off_is_rules_only_and_a_tagger_failure_fails_closed(monkeypatch):
    assert Masker(names_model=False).mask("帮我转告王芳明天来取").text == "帮我转告王芳明天来取"
    from endcloud.data.pii import detectors

    def broken(norm):
        raise RuntimeError("the tagger's dictionary is gone")

    monkeypatch.setattr(detectors, "detect_zh_names_model", broken)
    r = Masker().mask("帮我转告王芳明天来取")
    assert not r.sendable and r.text == "" and "detect_zh_names_model" in r.reasons[0]


def test_idempotent_and_existing_placeholders_not_reused():
    text = "我叫李娜，手机 139-1234-5678，订单号 231234567890，地址：上海市浦东新区世纪大道100号"
    once = masked(text)
    twice = masked(once.text)
    assert once.sendable and twice.sendable
    assert twice.text == once.text and twice.spans == []
    conv = MASKER.new_conversation()
    r = MASKER.mask("[PHONE_1] 是旧的，新号码 13800138000", conv)
    assert r.text == "[PHONE_1] 是旧的，新号码 [PHONE_2]"
    assert conv.restore(r.text) == "[PHONE_1] 是旧的，新号码 13800138000"


@pytest.mark.parametrize("corpus, type_, placeholder", [
    ("[姓名x]", "NAME", "[NAME_1]"), ("[地址x]", "ADDRESS", "[ADDRESS_1]"),
    ("[ORDERID_10005629]", "ORDER", "[ORDER_1]"), ("[订单x]", "ORDER", "[ORDER_1]"),
    ("[电话x]", "PHONE", "[PHONE_1]"), ("[邮箱x]", "EMAIL", "[EMAIL_1]"),
    ("[身份证号x]", "ID", "[ID_1]"), ("[链接x]", "URL", "[URL_1]"), ("[USERID_10619612]", "ACCOUNT", "[ACCOUNT_1]"),
    ("{{Order Number}}", "ORDER", "[ORDER_1]"), ("{{Customer Name}}", "NAME", "[NAME_1]"),
    ("{{Purchase ID Anonymized}}", "ORDER", "[ORDER_1]"), ("{{Name Field Anonymized}}", "NAME", "[NAME_1]"),
    ("{{113542617735902}}", "ORDER", "[ORDER_1]"), ("{{tracking number}}", "TRACKING", "[TRACKING_1]"),
])
def test_personal_corpus_placeholders_mapped(corpus, type_, placeholder):
    conv = MASKER.new_conversation()
    text = f"您好，关于 {corpus} 的问题"
    r = MASKER.mask(text, conv)
    assert types_of(r) == [type_] and r.text == f"您好，关于 {placeholder} 的问题" and r.sendable
    assert conv.restore(r.text) == text


@pytest.mark.parametrize("corpus", ["[数字x]", "[金额x]", "[日期x]", "[时间x]", "[站点x]", "[组织机构x]",
                                    "{{Website Name}}", "{{Live Chat}}", "{{Customer Support Phone Number}}"])
def test_non_personal_corpus_placeholders_kept(corpus):
    r = masked(f"请在{corpus}查看")
    assert r.text == f"请在{corpus}查看" and r.spans == [] and r.sendable


def test_real_jddc_line():
    text = "咨询订单号:[ORDERID_10005629] 订单金额:[金额x] 下单时间:[日期x],#E-s[数字x],[姓名x]您好"
    r = masked(text)
    assert r.sendable and r.text.startswith("咨询订单号:[ORDER_1] 订单金额:[金额x]")
    assert "[NAME_1]您好" in r.text


# --- detection ---------------------------------------------------------------------------------
@pytest.mark.parametrize("form", range(len(PHONE_FORMS)))
def test_every_phone_form(form):
    import random
    rng = random.Random(form)
    for _ in range(20):
        phone = PHONE_FORMS[form](rng)
        text = f"联系电话{phone}，谢谢"
        r = masked(text)
        assert [(s.type, text[s.start:s.end]) for s in r.spans] == [("PHONE", phone)], phone
        assert r.sendable


@pytest.mark.parametrize("text, value", [
    ("call (+86)13800138000 now", "(+86)13800138000"), ("0086 138 0013 8000", "0086 138 0013 8000"),
    ("座机(0755)1234567", "(0755)1234567"), ("0755 1234 5678", "0755 1234 5678"),
    ("010-12345678转8001", "010-12345678转8001"), ("+44 20 7946 0958", "+44 20 7946 0958"),
    ("+1 415 555 0100", "+1 415 555 0100"), ("(415) 555-0100", "(415) 555-0100"),
])
def test_phone_examples(text, value):
    r = masked(text)
    assert [text[s.start:s.end] for s in r.spans] == [value] and types_of(r) == ["PHONE"]


@pytest.mark.parametrize("text, type_", [
    ("邮箱 zhang.wei＠qq.com", "EMAIL"), ("JOHN.SMITH@GMAIL.COM", "EMAIL"),
    ("john dot smith at gmail dot com", "EMAIL"), ("li(at)163(dot)com", "EMAIL"),
    ("订单号：231234567890", "ORDER"), ("order #112-3456789-1234567", "ORDER"), ("Order ID: ORD12345678", "ORDER"),
    ("231234567890这个单", "ORDER"), ("运单号SF1234567890123", "TRACKING"), ("tracking 1Z999AA10123456784", "TRACKING"),
    ("中通快递单号 75312345678901", "TRACKING"), ("EA123456789CN", "TRACKING"), ("JDVA00123456789", "TRACKING"),
    ("QQ号 123456789", "ACCOUNT"), ("https://item.jd.com/4383667.html", "URL"),
])
def test_structured_examples(text, type_):
    r = masked(text)
    assert types_of(r) == [type_] and r.sendable, r.text


def test_id_checksum_and_luhn():
    import random
    rng = random.Random(0)
    for i in range(50):
        good_id, card = _resident_id(rng, i), _card(rng, i)
        assert types_of(masked(f"身份证{good_id}")) == ["ID"]
        assert types_of(masked(f"卡号 {card}")) == ["CARD"]
        assert detectors.luhn_ok(detectors.digits(card))
        bad_id, bad_card = _bad_id(rng), _bad_card(rng)
        assert not detectors.id_checksum_ok(bad_id) and not detectors.luhn_ok(bad_card)
        for bad in (bad_id, bad_card):  # not labelled; the residue rule fails the message closed
            r = masked(f"这个编号 {bad} 是什么")
            assert "ID" not in types_of(r) and "CARD" not in types_of(r)
            assert not r.sendable and r.reasons == ["residue: long digit run left after masking"]
    assert detectors.id_checksum_ok("11010519491231002X")
    assert not detectors.id_checksum_ok("110105194912310021")
    assert detectors.luhn_ok("4111111111111111") and not detectors.luhn_ok("4111111111111112")


@pytest.mark.parametrize("text, names", [
    ("我叫王小明，昨天下的单", ["王小明"]), ("收件人：欧阳娜娜", ["欧阳娜娜"]), ("王女士您好", ["王"]),
    ("联系张先生吧", ["张"]), ("谢谢先生", []), ("好的，谢谢", []), ("收货人:叶先生", ["叶"]),
    ("收件人张伟小姐", ["张伟"]), ("您可以和师傅说下", []), ("已安排师傅上门", []), ("HiFi耳机", []),
    ("Hi, my name is John Smith.", ["John Smith"]), ("Mr. Brown called", ["Brown"]),
    ("Best regards,\nJane Doe", ["Jane Doe"]), ("Hi there, thanks for the help", []),
])
def test_names(text, names):
    r = masked(text)
    assert [text[s.start:s.end] for s in r.spans if s.type == "NAME"] == names


@pytest.mark.parametrize("text, address", [
    ("地址：北京市朝阳区建国路88号院3号楼2单元501室", "北京市朝阳区建国路88号院3号楼2单元501室"),
    ("寄到广东省深圳市南山区科苑路15号，谢谢", "广东省深圳市南山区科苑路15号"),
    ("ship to 1600 Amphitheatre Parkway, Mountain View, CA 94043.", "1600 Amphitheatre Parkway, Mountain View, CA 94043"),
])
def test_addresses(text, address):
    r = masked(text)
    assert [text[s.start:s.end] for s in r.spans if s.type == "ADDRESS"] == [address]


# Issue 15: names and addresses without a cue or beyond "我叫/This is"; values not from the bench sets.
@pytest.mark.parametrize("text, want", [
    # Chinese names after person words, in shipping details, familiar forms, signatures
    ("我妈叫孙桂兰，电话13700001111", [("NAME", "孙桂兰"), ("PHONE", "13700001111")]),
    ("我朋友邓雅琪也买了", [("NAME", "邓雅琪")]), ("老周会下楼拿", [("NAME", "老周")]),
    ("开票抬头写贺文斌", [("NAME", "贺文斌")]), ("我叫林一，想退货", [("NAME", "林一")]),
    ("龚晓，广州市越秀区东风中路300号", [("NAME", "龚晓"), ("ADDRESS", "广州市越秀区东风中路300号")]),
    # English names without a cue: signatures, recipients, lower case after "this is"
    ("Thanks! – Owen Fletcher", [("NAME", "Owen Fletcher")]),
    ("please hold it for Mia Hartmann, 617-555-0143", [("NAME", "Mia Hartmann"), ("PHONE", "617-555-0143")]),
    ("hi this is sofia reyes, where is my parcel", [("NAME", "sofia reyes")]),
    # Chinese addresses below the district: estate + building, street + number, campus dorms
    ("放到丽景花园8栋门口", [("ADDRESS", "丽景花园8栋")]), ("人民路128号5楼502", [("ADDRESS", "人民路128号5楼502")]),
    ("3号楼2单元702，放门口", [("ADDRESS", "3号楼2单元702")]),
    ("寄到浙江大学紫金港校区碧峰5舍301", [("ADDRESS", "浙江大学紫金港校区碧峰5舍301")]),
    # English addresses: PO boxes, UK/CA postcodes, unit prefixes, all lower case
    ("PO Box 5521, Tulsa, OK 74101", [("ADDRESS", "PO Box 5521, Tulsa, OK 74101")]),
    ("send it to 12 Hawthorn Close, Leeds LS6 2AB please", [("ADDRESS", "12 Hawthorn Close, Leeds LS6 2AB")]),
    ("Apt 3, 41 Birch Road, Ottawa, ON K1A 0B1", [("ADDRESS", "Apt 3, 41 Birch Road, Ottawa, ON K1A 0B1")]),
    ("88 maple ave, albany ny 12203", [("ADDRESS", "88 maple ave, albany ny 12203")]),
    # structured: 19 digits after a bare 单号 are an order, JD-prefixed ids after 订单号, AU mobiles
    ("单号4829103746652018375", [("ORDER", "4829103746652018375")]),
    ("订单号JD902837465512", [("ORDER", "JD902837465512")]), ("ring me 0423 555 678", [("PHONE", "0423 555 678")]),
    ("会员卡号VIP8812345", [("ACCOUNT", "VIP8812345")]),
    # left alone: UK freephone, brands after an article, holidays, dates and counts that look like parts
    ("call 0800 123 4567", []), ("Is the Tommy Hilfiger jacket in stock?", []), ("Black Friday - is that right?", []),
    ("我查一下", []), ("王一下单了吗", []), ("小米手环有货吗", []), ("3号发货", []), ("这款有5座的吗", []),
    ("买了2栋楼那么大", []), ("第2单元练习", []),
])
def test_names_addresses_beyond_cues(text, want):
    r = MASKER.mask(text)
    assert [(s.type, text[s.start:s.end]) for s in r.spans] == want and r.sendable


@pytest.mark.parametrize("text", [
    "¥199", "299元", "$45.99", "iPhone 15 Pro Max 256GB", "SKU-A1234", "XL码", "2024-11-11", "双11",
    "3-5天", "满300减50", "8折", "20% off", "买2送1", "coupon SAVE20", "优惠券满199减20", "model A2849",
    "订单金额 1299元", "订单 2024-11-11 下的", "12:30 PM", "3 business days", "第3天发货", "RTX 4090",
])
def test_hard_negatives_untouched(text):
    r = masked(text)
    assert r.text == text and r.spans == [] and r.sendable


# --- fail closed -------------------------------------------------------------------------------
def test_detector_exception_fails_closed(monkeypatch):
    def boom(_norm):
        raise RuntimeError("13800138000")  # even the message may carry a value: never quoted

    monkeypatch.setattr(detectors, "detect_phones", boom)
    r = Masker().mask("我的电话 13800138000，订单号 231234567890")
    assert not r.sendable and r.spans == []
    assert not re.search(r"[0-9]", r.text)
    assert r.reasons == ["masking failed in detect_phones: RuntimeError"]
    assert not any("13800138000" in reason for reason in r.reasons)


@pytest.mark.parametrize("text, reason", [
    ("流水 20241111103000 号", "residue: long digit run left after masking"),
    ("me @ home", "residue: '@' left after masking"),
    ("邮箱是 zhang＠", "residue: '@' left after masking"),
    ("１２３４５６７８９０１２３４５", "residue: long digit run left after masking"),
])
def test_residue_rule(text, reason):
    r = masked(text)
    assert not r.sendable and reason in r.reasons


def test_residue_ignores_digits_inside_placeholders():
    conv = MASKER.new_conversation()
    for i in range(1, 40):  # [PHONE_1234567]-style numbers must not trip the residue rule
        conv.placeholder("PHONE", str(i), str(i))
    assert MASKER.mask("[PHONE_12] [PHONE_1234567]", conv).sendable


def test_bad_options_name_the_field():
    from endcloud.errors import ConfigError
    with pytest.raises(ConfigError, match="SSN"):
        Masker(types=["PHONE", "SSN"])
    only_phones = Masker(types=["PHONE"])
    assert types_of(only_phones.mask("13800138000 a@b.com")) == ["PHONE"]


# --- acceptance on the labelled set ------------------------------------------------------------
def test_acceptance_thresholds_on_generated_set():
    rows = generate(0)
    counts: dict[str, int] = {}
    for row in rows:
        for s in row["spans"]:
            counts[s["type"]] = counts.get(s["type"], 0) + 1
    assert all(counts[t] >= 500 for t in STRUCTURED) and counts["NAME"] >= 200 and counts["ADDRESS"] >= 200
    assert sum(1 for r in rows if not r["spans"]) >= 500
    stats = evaluate(MASKER, rows)
    for t in STRUCTURED:
        assert stats[t]["recall"] == 1.0, (t, stats[t])
        assert stats[t]["precision"] >= 0.95, (t, stats[t])
    for t in ("NAME", "ADDRESS"):
        assert stats[t]["recall"] >= 0.9, (t, stats[t])
    assert generate(0) == rows  # deterministic


# --- the CLI -----------------------------------------------------------------------------------
def test_cli_data_mask_json():
    exe = Path(sys.executable).with_name("endcloud")
    lines = ["收件人张伟，电话 138 0013 8000", "13800138000 到了吗", "价格¥199"]
    out = subprocess.run([str(exe), "data", "mask", "--json"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0] == {"text": "收件人[NAME_1]，电话 [PHONE_1]",
                       "spans": [{"type": "NAME", "start": 3, "end": 5},
                                 {"type": "PHONE", "start": 9, "end": 22}], "sendable": True}
    assert rows[1]["text"] == "[PHONE_1] 到了吗"  # one conversation per input
    assert rows[2] == {"text": "价格¥199", "spans": [], "sendable": True}
    bad = subprocess.run([str(exe), "data", "mask", "--json"], input="流水 20241111103000\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and json.loads(bad.stdout)["sendable"] is False
    assert privacy.TYPES  # the documented type list is importable


def test_buildings_numbered_in_chinese_numerals_are_addresses_but_three_seat_sofas_are_not():
    m = Masker()
    for text, masked in (("寄到城南花园七栋三单元1102", True), ("放在幸福里小区十二号楼前台就行", True),
                         ("这款三座沙发有现货吗", False), ("三楼的客服说可以退", False)):
        r = m.mask(text, m.new_conversation())
        assert ("[ADDRESS_1]" in r.text) is masked, (text, r.text)


# Issue 15, second round: self-introductions, familiar forms after a request, surname-first and
# diacritic names, a sentence's capitalised first word, initials in street names.
@pytest.mark.parametrize("text, want", [
    ("您好，我是邵佳豪，快递没到", [("NAME", "邵佳豪")]),
    ("本人姓司徒，司徒静怡", [("NAME", "司徒"), ("NAME", "司徒静怡")]),
    ("我姓郝，叫郝思嘉，改下收件人", [("NAME", "郝"), ("NAME", "郝思嘉")]),
    ("拜托小唐今天帮我寄出去", [("NAME", "小唐")]), ("告诉老邓明天来拿", [("NAME", "老邓")]),
    ("Hoang Duc Minh will collect it", [("NAME", "Hoang Duc Minh")]),
    ("Hi, Trần Văn Hùng here, order never came", [("NAME", "Trần Văn Hùng")]),
    ("Vu Thi An is my mother", [("NAME", "Vu Thi An")]),  # the third word is the given name
    ("Ask Kevin to sign for it", [("NAME", "Kevin")]), ("Tell Maria Lopez it's here", [("NAME", "Maria Lopez")]),
    ("Please ship to 120 John F Kennedy Blvd, Newark, NJ 07102",
     [("ADDRESS", "120 John F Kennedy Blvd, Newark, NJ 07102")]),
    # left alone: places, roles and common words after the cues, brands and phrases that look like names
    ("我是江苏的", []), ("我是韩国人，", []), ("我是顾客，想问一下", []), ("我是周末才在家", []),
    ("让老师帮忙看一下", []), ("麻烦小米明天送", []),
    ("Le Creuset Dutch oven arrived chipped", []), ("Do Not Bend was written on the box", []),
    ("Does Michael Kors run small?", []),
])
def test_intro_cues_familiar_forms_surname_first_and_street_initials(text, want):
    r = MASKER.mask(text)
    assert [(s.type, text[s.start:s.end]) for s in r.spans] == want and r.sendable


def test_self_introductions_need_no_model():
    rules = Masker(names_model=False)
    assert rules.mask("我是邵佳豪，快递没到").text == "我是[NAME_1]，快递没到"
    assert rules.mask("麻烦老邓明天来拿").text == "麻烦[NAME_1]明天来拿"


# Issue 15, third round: given names of the world list in cue-less pairs, the whole Hundred
# Family Surnames after a cue, and a month or a word that is also a name left alone.
@pytest.mark.parametrize("text, want", [
    ("Yesterday Dragomir Petrov called about the parcel", ["Dragomir Petrov"]),
    ("收件人：庾明哲，电话13800138000", ["庾明哲"]),
    ("麻烦寄给冀文博，谢谢", ["冀文博"]),
    ("联系人写司空玉兰就行", ["司空玉兰"]),
])
def test_world_given_names_and_rare_surnames(text, want):
    pytest.importorskip("gender_guesser")
    r = MASKER.mask(text)
    got = [text[s.start:s.end] for s in r.spans if s.type == "NAME"]
    assert got == want, (text, got)


@pytest.mark.parametrize("text", ["I ordered it in May and it still has not come",
                                  "好的哈亲，我是支付时遇到了问题", "Will it arrive before Summer Sale ends?"])
def test_words_that_are_also_names_stay(text):
    r = MASKER.mask(text)
    assert not [s for s in r.spans if s.type == "NAME"], r.text


@pytest.mark.parametrize("text, phone", [("France 06 12 34 56 78, le soir", "06 12 34 56 78"),
                                         ("(02) 9876 5432 is the Sydney office", "(02) 9876 5432")])
def test_national_phone_formats(text, phone):
    r = MASKER.mask(text)
    assert [text[s.start:s.end] for s in r.spans if s.type == "PHONE"] == [phone]


@pytest.mark.parametrize("text, want", [
    ("customs is asking for my passport number: K48291734.", "customs is asking for my passport number: [ID_1]."),
    ("清关需要护照号 E12345678", "清关需要护照号 [ID_1]"),
    ("paying with amex 3782 822463 10005 but it fails", "paying with amex [CARD_1] but it fails"),
    ("Call me on (555) 014-2231 tonight", "Call me on [PHONE_1] tonight"),
    ("Can you text her instead? Her number's 555-0148.", "Can you text her instead? Her number's [PHONE_1]."),
    ("台湾能寄吗 电话 0912-345-678", "台湾能寄吗 电话 [PHONE_1]"),
    ("Mumbai 400050, ph 98201 55512", "Mumbai 400050, ph [PHONE_1]"),
    ("You can DM me on insta, handle luna.bakes, thanks", "You can DM me on insta, handle [ACCOUNT_1], thanks"),
    ("我的淘宝昵称是 小鄢爱吃鱼，谢谢", "我的淘宝昵称是 [ACCOUNT_1]，谢谢"),
    ("这两单帮我合并发货 2024031988001234 和 2024031988001299", "这两单帮我合并发货 [ORDER_1] 和 [ORDER_2]"),
    # in a message about orders an ID or a card keeps its own type
    ("这两单实名用的身份证 110105199003071239", "这两单实名用的身份证 [ID_1]"),
    ("这两单付款用的卡 4111111111111111", "这两单付款用的卡 [CARD_1]"),
    # kept: codes listed after one SKU cue, model numbers; a phone after "and" is still a phone
    ("商品编号100012043978 这个和 100012043981 有什么区别", "商品编号100012043978 这个和 100012043981 有什么区别"),
    ("exchange the jeans, model 00501-0114, for a 30x32", "exchange the jeans, model 00501-0114, for a 30x32"),
    ("SKU 12345678 and 13800138000", "SKU 12345678 and [PHONE_1]"),
    # not accounts: a cue without a value
    ("在的 会员名可以改么", "在的 会员名可以改么"), ("可以改昵称 ID改不了", "可以改昵称 ID改不了"),
])
def test_passports_amex_local_phones_handles_order_lists(text, want):
    r = MASKER.mask(text)
    assert r.text == want and r.sendable


@pytest.mark.parametrize("text, want", [
    ("您好，我是配送员钟师傅，您的快递到了", "您好，我是配送员[NAME_1]师傅，您的快递到了"),
    ("找岑经理签字", "找[NAME_1]经理签字"),
    ("课程老师说可以退", "课程老师说可以退"), ("快递师傅放门口了", "快递师傅放门口了"),
    ("祝老板生意兴隆", "祝老板生意兴隆"), ("他总是不接电话", "他总是不接电话"),
    ("my Instagram is @bella.rose.designs, I posted there", "my Instagram is [ACCOUNT_1], I posted there"),
    ("微博@一只小羊咩咩 私信你们好几天了", "微博[ACCOUNT_1] 私信你们好几天了"),
    ("My discord is nightowl_4821 if you'd rather chat", "My discord is [ACCOUNT_1] if you'd rather chat"),
    ("淘宝账号是tb落日飞车2019，积分没到账", "淘宝账号是[ACCOUNT_1]，积分没到账"),
    ("email me at john @ gmail.com", "email me at [EMAIL_1]"),
])
def test_titled_surnames_and_handles(text, want):
    r = MASKER.mask(text)
    assert r.text == want and r.sendable


@pytest.mark.parametrize("text, want", [
    # order references with letter groups, after more cues, in lists; Amazon's format
    ("order ref AB-CN-2048173 never came", "order ref [ORDER_1] never came"),
    ("Ticket number CS-88213, still open", "Ticket number [ORDER_1], still open"),
    ("Delivery note DN-KR-40917 is missing", "Delivery note [ORDER_1] is missing"),
    ("can you merge orders HK55102 and HK55117?", "can you merge orders [ORDER_1] and [ORDER_2]?"),
    ("my order 302-5512098-1184403 is late", "my order [ORDER_1] is late"),
    ("PO Box 3381, Halifax NS B3J 3K5", "[ADDRESS_1]"),  # a PO box is no purchase order
    # regional IDs with their checksums; passports written in groups or a few words later
    ("我的身分證字號A123456789，報關用", "我的身分證字號[ID_1]，報關用"),
    ("香港身份证 A123456(3) 清关用", "香港身份证 [ID_1] 清关用"),
    ("NRIC S1234567D for customs", "NRIC [ID_1] for customs"),
    ("passport number 58 2293311 ok?", "passport number [ID_1] ok?"),
    ("customs want the passport of the buyer: it is K7730112", "customs want the passport of the buyer: it is [ID_1]"),
    # phones after their cue in local forms; Dutch mobiles
    ("我系陈太，电话9123 4567", "我系[NAME_1]，电话[PHONE_1]"),
    ("call me, phone 0722 481530.", "call me, phone [PHONE_1]."),
    ("Bel me op 06-23456789", "Bel me op [PHONE_1]"),
    # tracking after 快递; IBANs (mod 97) and bank accounts in groups; shop and stream IDs
    ("快递YT7712045588812一直没动", "快递[TRACKING_1]一直没动"),
    ("refund to IBAN GB82 WEST 1234 5698 7654 32 please", "refund to IBAN [ACCOUNT_1] please"),
    ("开户行及账号：工商银行杭州分行 1202 0211 0990 0123", "开户行及账号：工商银行杭州分行 [ACCOUNT_1]"),
    ("旺旺名tb_5510923，帮我查下", "旺旺名[ACCOUNT_1]，帮我查下"),
    ("淘宝号abc小店2021，老顾客了", "淘宝号[ACCOUNT_1]，老顾客了"),
    # a cue without a value
    ("昵称改一下可以吗", "昵称改一下可以吗"),
])
def test_order_refs_regional_ids_local_phones_and_bank_accounts(text, want):
    r = MASKER.mask(text)
    assert r.text == want and r.sendable


def test_regional_id_checksums():
    from endcloud.data.pii.detectors import _hk_id_ok, _sg_id_ok, _tw_id_ok, iban_ok

    assert _tw_id_ok("A123456789") and not _tw_id_ok("A123456788")
    assert _hk_id_ok("A1234563") and not _hk_id_ok("A1234564")
    assert _sg_id_ok("S1234567D") and not _sg_id_ok("S1234567E")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


@pytest.mark.parametrize("text, want", [
    ("主播小雨说下单送赠品", "主播[NAME_1]说下单送赠品"),
    ("我是新来的客服秋月，很高兴为您服务", "我是新来的客服[NAME_1]，很高兴为您服务"),
    ("帮我女儿朵朵挑个书包", "帮我女儿[NAME_1]挑个书包"),
    ("收件人：乌兰图雅\n电话：15147001234", "收件人：[NAME_1]\n电话：[PHONE_1]"),
    ("收件人是我外婆叶赫那拉·秀珍，谢谢", "收件人是我外婆[NAME_1]，谢谢"),
    ("收件人热依拉·买买提，新疆的", "收件人[NAME_1]，新疆的"),
    # role words, time words and titles are no names
    ("客服小姐，你好", "客服小姐，你好"), ("主播刚才说的链接呢", "主播刚才说的链接呢"),
    ("我儿子在家", "我儿子在家"), ("邻居家门口", "邻居家门口"), ("《哈利·波特》有货吗", "《哈利·波特》有货吗"),
    ("转到别的店家客服页面", "转到别的店家客服页面"),
])
def test_names_after_role_words_receivers_and_dotted_names(text, want):
    r = MASKER.mask(text)
    assert r.text == want and r.sendable
