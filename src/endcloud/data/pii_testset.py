"""A seeded, labelled zh+en PII test set with exact gold spans, for tests and `bench/pii.py`.

    from endcloud.data.pii_testset import generate
    rows = generate(seed=0)   # [{"text", "lang": "zh"|"en", "spans": [{"type", "start", "end"}]}]

Realistic e-commerce customer-service sentences with values filled into slots; the span of each
filled value is recorded exactly (the cue words around it are not part of the span: for
"王女士" the gold NAME span is "王"). Per type: >= 600 phones (every written form, cycled so
each appears equally), >= 500 e-mails, orders, tracking numbers, resident IDs and cards,
>= 300 names and addresses, and >= 600 hard negatives with no gold span at all: prices,
amounts, SKUs/models, dates, coupons, quantities, percentages, 18-digit strings with a wrong ID
checksum and 16-digit numbers that fail Luhn. Those last two are *not* labelled: they are not
IDs or cards, the masker leaves them alone, and its residue rule then marks the message
unsendable - the fail-closed outcome we want for an unrecognised long number.

The set is written from the same knowledge as the rules, so its recall figures measure how
completely the rules cover the forms listed here, not recall on wild text.
"""

from __future__ import annotations

import random
import string
from typing import TYPE_CHECKING, Any, Callable

from endcloud.data.pii.detectors import luhn_ok
from endcloud.data.pii.lexicon import ZH_SURNAMES_1, ZH_SURNAMES_2

if TYPE_CHECKING:
    from endcloud.data.privacy import Masker

Value = tuple[str, "str | None"]  # (surface text, gold type or None)

# --- value generators --------------------------------------------------------------------------
_MOBILE_PREFIX = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "147", "150",
                  "151", "152", "155", "157", "158", "159", "166", "170", "176", "177", "178",
                  "180", "181", "182", "185", "186", "187", "188", "189", "191", "198", "199")
_AREA = ("010", "020", "021", "022", "023", "024", "025", "027", "028", "029", "0755", "0571",
         "0512", "0731", "0371", "0532", "0591", "0898")
_FW = str.maketrans(string.digits + "+-()@", "０１２３４５６７８９＋－（）＠")


def _d(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIX) + _d(rng, 8)


def _phone_forms() -> list[Callable[[random.Random], str]]:
    def sp(m: str, sep: str) -> str:
        return f"{m[:3]}{sep}{m[3:7]}{sep}{m[7:]}"
    return [
        lambda r: _mobile(r),
        lambda r: sp(_mobile(r), " "),
        lambda r: sp(_mobile(r), "-"),
        lambda r: "+86 " + _mobile(r),
        lambda r: "+86" + _mobile(r),
        lambda r: "+86 " + sp(_mobile(r), " "),
        lambda r: "0086" + _mobile(r),
        lambda r: "0086 " + sp(_mobile(r), "-"),
        lambda r: "(+86)" + _mobile(r),
        lambda r: "（+86）" + sp(_mobile(r), " "),
        lambda r: _mobile(r).translate(_FW),
        lambda r: sp(_mobile(r), " ").translate(_FW),
        lambda r: f"{(a := r.choice(_AREA))}-{_d(r, 8 if len(a) == 3 else 7)}",
        lambda r: f"({r.choice(_AREA[10:])}){_d(r, 7)}",
        lambda r: f"{r.choice(_AREA[10:])} {_d(r, 4)} {_d(r, 4)}",
        lambda r: f"{r.choice(_AREA[:10])}-{_d(r, 8)}转{_d(r, r.randint(2, 4))}",
        lambda r: f"{r.choice(_AREA[:10])}-{_d(r, 8)} ext. {_d(r, 3)}",
        lambda r: f"+86 {r.choice(_AREA)[1:]} {_d(r, 4)} {_d(r, 4)}",
        lambda r: f"+1 {r.randint(201, 989)} {r.randint(200, 999)} {_d(r, 4)}",
        lambda r: f"({r.randint(201, 989)}) {r.randint(200, 999)}-{_d(r, 4)}",
        lambda r: f"{r.randint(201, 989)}-{r.randint(200, 999)}-{_d(r, 4)}",
        lambda r: f"+44 20 {r.randint(7000, 8999)} {_d(r, 4)}",
        lambda r: f"+49 30 {_d(r, 8)}",
        lambda r: f"+81 3-{_d(r, 4)}-{_d(r, 4)}",
        lambda r: f"+65 {r.randint(6000, 9999)} {_d(r, 4)}",
        lambda r: f"+852 {r.randint(5000, 9999)} {_d(r, 4)}",
    ]


PHONE_FORMS = _phone_forms()

_EMAIL_USERS = ("zhangwei", "li.na", "wang_fang88", "john.smith", "jane_doe", "mike.brown",
                "chen.jing", "liuyang2020", "sarah.w", "tom+shop", "kevin.lee", "xiaoming")
_EMAIL_HOSTS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "sina.com",
                "yahoo.com", "foxmail.com", "hotmail.com", "company.com.cn", "icloud.com")


def _email(rng: random.Random, i: int) -> str:
    user = rng.choice(_EMAIL_USERS) + (str(rng.randint(1, 999)) if rng.random() < 0.5 else "")
    if i % 6 == 5:
        user = _d(rng, rng.randint(6, 10))  # QQ-number mailboxes
    host = rng.choice(_EMAIL_HOSTS)
    form = i % 6
    if form == 1:
        return f"{user}＠{host}"
    if form == 2:
        return f"{user}@{host}".upper()
    if form == 3:
        h, _, tld = host.rpartition(".")
        return f"{user.replace('.', ' dot ')} at {h.replace('.', ' dot ')} dot {tld}"
    if form == 4:
        h, _, tld = host.rpartition(".")
        return f"{user}(at){h}(dot){tld}"
    return f"{user}@{host}"


def _order(rng: random.Random, i: int) -> str:
    form = i % 5
    if form == 0:
        return str(rng.randint(2, 3)) + _d(rng, 11)              # JD, 12 digits
    if form == 1:
        return rng.choice("1234") + _d(rng, 18)                   # Taobao, 19 digits
    if form == 2:
        return f"{rng.randint(100, 999)}-{_d(rng, 7)}-{_d(rng, 7)}"  # Amazon
    if form == 3:
        return "ORD" + _d(rng, 8)
    return rng.choice("89") + _d(rng, 10)                         # older JD, 11 digits


def _tracking(rng: random.Random, i: int) -> tuple[str, bool]:
    """(number, needs a cue word): shapes that identify themselves need none."""
    form = i % 8
    if form == 0:
        return "SF" + _d(rng, 13), False
    if form == 1:
        return "YT" + _d(rng, 13), False
    if form == 2:
        return "JDVA" + _d(rng, 11), False
    if form == 3:
        return "1Z" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)), False
    if form == 4:
        return rng.choice(("EA", "EE", "LX", "RR")) + _d(rng, 9) + "CN", False
    if form == 5:
        return rng.choice(("73", "75", "78")) + _d(rng, 12), True  # ZTO/STO/Yunda: bare digits
    if form == 6:
        return "9400 " + " ".join(_d(rng, 4) for _ in range(4)) + " " + _d(rng, 2), False
    return _d(rng, 12), True                                         # FedEx


_REGIONS = ("110101", "110105", "310104", "440305", "440106", "330106", "320102", "510107",
            "420106", "610113", "370202", "210102", "500103", "350203", "430104")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id17(rng: random.Random) -> str:
    return (rng.choice(_REGIONS) + str(rng.randint(1950, 2005)) + f"{rng.randint(1, 12):02d}"
            + f"{rng.randint(1, 28):02d}" + _d(rng, 3))


def _id_check(body: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS)) % 11]


def _resident_id(rng: random.Random, i: int) -> str:
    body = _id17(rng)
    v = body + _id_check(body)
    if i % 10 == 9:
        return body[:6] + body[8:17]                                 # legacy 15 digits
    if i % 10 == 8:
        return f"{v[:6]} {v[6:14]} {v[14:]}"
    return v if i % 3 else v.lower()


def _bad_id(rng: random.Random) -> str:
    body = _id17(rng)
    good = _id_check(body)
    return body + rng.choice([c for c in "0123456789" if c != good])


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _d(rng, length - len(prefix) - 1)
    return body + next(c for c in string.digits if luhn_ok(body + c))


def _card(rng: random.Random, i: int) -> str:
    prefix, length = [("62", 16), ("62", 19), ("4", 16), ("5" + rng.choice("12345"), 16),
                      ("6222", 19)][i % 5]
    n = _luhn_complete(prefix + _d(rng, 4 - len(prefix)), length, rng)
    form = (i // 5) % 3
    if form == 1:
        return " ".join(n[k:k + 4] for k in range(0, length, 4))
    if form == 2:
        return "-".join(n[k:k + 4] for k in range(0, length, 4))
    return n


def _bad_card(rng: random.Random) -> str:
    n = _luhn_complete("62" + _d(rng, 2), 16, rng)
    return n[:-1] + str((int(n[-1]) + rng.randint(1, 9)) % 10)


_GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美玲桂兰志红建国平俊峰鹏浩宇晨欣怡梓涵子轩思雨佳琪嘉诚雪梅"
_EN_FIRST = ("John", "Jane", "Michael", "Sarah", "David", "Emily", "James", "Olivia", "Robert",
             "Emma", "William", "Sophia", "Daniel", "Grace", "Thomas", "Chloe", "Kevin", "Laura")
_EN_LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
            "Wilson", "Anderson", "Taylor", "Moore", "Martin", "Lee", "Thompson", "White", "Clark")


def _zh_name(rng: random.Random) -> str:
    sur = rng.choice(ZH_SURNAMES_2) if rng.random() < 0.05 else rng.choice(ZH_SURNAMES_1[:100])
    return sur + "".join(rng.choice(_GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2))))


def _en_name(rng: random.Random) -> str:
    return f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"


_ZH_PROV_CITY = (("广东省", "深圳市", "南山区"), ("广东省", "广州市", "天河区"), ("浙江省", "杭州市", "西湖区"),
                 ("江苏省", "南京市", "鼓楼区"), ("四川省", "成都市", "武侯区"), ("湖北省", "武汉市", "洪山区"),
                 ("北京市", "", "朝阳区"), ("上海市", "", "浦东新区"), ("山东省", "青岛市", "市南区"),
                 ("福建省", "厦门市", "思明区"), ("河南省", "郑州市", "金水区"), ("重庆市", "", "渝中区"))
_ZH_ROADS = ("建国路", "人民路", "中山路", "解放大道", "科苑路", "文三路", "长江路", "南京东路", "天府大道",
             "和平街", "东风路", "世纪大道", "华山路", "幸福巷")
_ZH_ESTATES = ("阳光花园", "翠湖小区", "万科城", "碧桂园", "金地公寓", "国贸大厦", "锦绣家园", "")
_EN_STREETS = ("Main", "Oak", "Maple", "Cedar", "Park", "Elm", "Washington", "Lake", "Hill",
               "Sunset", "Pine", "River", "Market", "Broad")
_EN_CITIES = (("Springfield", "IL"), ("Austin", "TX"), ("Seattle", "WA"), ("Denver", "CO"),
              ("Boston", "MA"), ("Portland", "OR"), ("Columbus", "OH"), ("San Jose", "CA"))


def _zh_address(rng: random.Random, i: int) -> str:
    prov, city, dist = rng.choice(_ZH_PROV_CITY)
    head = {0: prov + city + dist, 1: city + dist if city else prov + dist, 2: dist}[i % 3]
    tail = f"{rng.choice(_ZH_ROADS)}{rng.randint(1, 999)}号"
    extra = rng.choice(("", f"{rng.choice(_ZH_ESTATES)}{rng.randint(1, 30)}栋{rng.randint(101, 2505)}室",
                        f"{rng.randint(1, 12)}号楼{rng.randint(1, 6)}单元{rng.randint(101, 1802)}"))
    return head + tail + extra


def _en_address(rng: random.Random, i: int) -> str:
    street = f"{rng.randint(1, 9999)} {rng.choice(_EN_STREETS)} {rng.choice(('Street', 'St', 'Avenue', 'Ave', 'Road', 'Drive', 'Lane', 'Blvd'))}"
    city, st = rng.choice(_EN_CITIES)
    form = i % 3
    if form == 0:
        return street
    if form == 1:
        return f"{street}, Apt {rng.randint(1, 30)}{rng.choice('ABCD')}, {city}, {st} {_d(rng, 5)}"
    return f"{street}, {city}, {st} {_d(rng, 5)}"


# --- templates ---------------------------------------------------------------------------------
ZH_TEMPLATES: dict[str, tuple[str, ...]] = {
    "PHONE": ("我的手机号是{V}，到了请打电话", "电话{V}，麻烦快递员送货前联系我", "换个联系方式吧：{V}",
              "你们打{V}找我就行", "收货电话改成{V}谢谢", "座机{V}，白天有人", "联系电话 {V} 有事call我"),
    "EMAIL": ("我的邮箱是{V}，发票发这里", "请把电子发票发到{V}", "邮箱：{V}，麻烦发一下保修卡",
              "账号绑定的邮箱{V}收不到验证码"),
    "ORDER": ("订单号：{V}，什么时候发货", "我的订单号是{V}，还没收到", "订单{V}想退货", "订单编号:{V} 申请退款",
              "帮我查下订单号 {V} 的物流"),
    "TRACKING": ("运单号{V}，一直没更新", "快递单号是{V}，显示签收了但我没收到", "物流单号：{V}",
                 "中通快递单号{V}到哪了", "顺丰单号 {V} 能改地址吗"),
    "ID": ("身份证号{V}，实名认证失败", "我的身份证号码是{V}", "开发票需要身份证吗？{V}",
           "报关需要的身份证：{V}"),
    "CARD": ("退款退到卡号{V}可以吗", "我的银行卡{V}扣款了两次", "信用卡 {V} 付款失败",
             "用这张卡付的：{V}"),
    "NAME": ("我叫{V}，昨天下的单", "收件人{V}，电话不变", "联系人：{V}", "收货人是{V}，麻烦核对一下",
             "本人{V}，申请开发票", "持卡人{V}"),
    "SURNAME": ("{V}先生您好，请问有什么可以帮您", "{V}女士，您的退款已经处理", "麻烦转告{V}小姐明天送达",
                "好的{V}先生，已为您登记"),
    "ADDRESS": ("收货地址：{V}", "帮我改一下地址，新地址是{V}", "寄到{V}，谢谢", "我住在{V}，能送货上门吗",
                "地址{V}，放快递柜就行"),
    "NEG": ("这个多少钱？{V}吗", "{V}，还有优惠吗", "请问{V}有货吗", "{V}什么时候发货", "能便宜点吗 {V}"),
}
EN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "PHONE": ("You can reach me at {V} anytime.", "My phone number is {V}, please call before delivery.",
              "Call me on {V} if the courier can't find the house.", "Updated contact number: {V}"),
    "EMAIL": ("My email is {V}, please send the invoice there.", "Send the receipt to {V} please.",
              "I never got the confirmation at {V}.", "Contact: {V}"),
    "ORDER": ("Where is my order #{V}?", "Order number {V} hasn't shipped yet.",
              "I'd like to return order {V}.", "Order ID: {V} - wrong size delivered."),
    "TRACKING": ("Tracking number {V} shows no update since Monday.", "The tracking # is {V}.",
                 "Waybill {V} says delivered but nothing arrived.", "My package {V} is stuck in customs."),
    "ID": ("For customs clearance my ID number is {V}.", "Here is my Chinese ID: {V}"),
    "CARD": ("I was charged twice on card {V}.", "Please refund to my card {V}.",
             "My credit card number is {V}, payment failed."),
    "NAME": ("Hi, my name is {V} and my parcel is missing.", "Please ship it to {V} at my office.",
             "Thanks,\n{V}", "Best regards,\n{V}", "This is {V}, I placed an order yesterday.",
             "Recipient: {V}"),
    "SURNAME": ("Mr. {V} called about a refund.", "Ms. {V} asked for an exchange.",
                "Dear Mrs. {V}, your refund is on its way."),
    "ADDRESS": ("Please ship it to {V}.", "My new address is {V}.", "Deliver to {V} please.",
                "I moved to {V}, can you update it?"),
    "NEG": ("Is {V} still available?", "Can I get a discount on {V}?", "Why was I charged {V}?",
            "{V} - is that right?", "Does it come in {V}?"),
}

ZH_NEGATIVES = ("¥199", "299元", "￥1,299.00", "满300减50", "优惠券减20元", "8折", "打7.5折", "iPhone 15",
                "iPhone 15 Pro Max 256GB", "SKU-A1234", "XL码", "42码的鞋", "2024-11-11", "双11", "双十一",
                "3-5天", "618活动", "12:30", "下午3点", "买2送1", "2件", "3瓶", "1.5kg", "20%", "第3天",
                "RTX 4090", "型号A2849", "M码", "500ml", "7天无理由", "24期免息", "100元券", "满199减20",
                "第二件半价", "2024年11月11日", "5G手机", "64G内存", "1TB硬盘", "12期分期", "尺码38")
EN_NEGATIVES = ("$45.99", "$1,299", "20% off", "iPhone 15", "SKU-A1234", "size XL", "2024-11-11",
                "Black Friday", "3-5 business days", "2 pairs", "coupon SAVE20", "model A2849",
                "Galaxy S24 Ultra", "12:30 PM", "buy 2 get 1 free", "a 30-day return", "1.5 lbs",
                "USB-C 65W charger", "Nov 11, 2024", "the 256GB version", "4K TV 55 inch", "24 pack")


def _fill(template: str, value: str, type_: str | None, lang: str) -> dict[str, Any]:
    start = template.index("{V}")
    text = template[:start] + value + template[start + 3:]
    spans = [{"type": type_, "start": start, "end": start + len(value)}] if type_ else []
    return {"text": text, "lang": lang, "spans": spans}


def _rows(rng: random.Random, type_: str, n: int, make: Callable[[random.Random, int, str], str],
          slot: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        lang = "zh" if i % 2 == 0 else "en"
        templates = (ZH_TEMPLATES if lang == "zh" else EN_TEMPLATES)[slot or type_]
        rows.append(_fill(rng.choice(templates), make(rng, i, lang), type_, lang))
    return rows


def _tracking_row(rng: random.Random, i: int) -> dict[str, Any]:
    lang = "zh" if i % 2 == 0 else "en"
    number, needs_cue = _tracking(rng, i // 2)
    templates = (ZH_TEMPLATES if lang == "zh" else EN_TEMPLATES)["TRACKING"]
    if needs_cue:  # "My package {V} is stuck" has no cue word
        templates = tuple(t for t in templates if "package" not in t)
    return _fill(rng.choice(templates), number, "TRACKING", lang)


def _negatives(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        lang = "zh" if i % 2 == 0 else "en"
        if i % 10 == 4:
            value = _bad_id(rng)      # wrong checksum: not an ID
        elif i % 10 == 7:
            value = _bad_card(rng)    # fails Luhn: not a card
        else:
            value = rng.choice(ZH_NEGATIVES if lang == "zh" else EN_NEGATIVES)
        templates = (ZH_TEMPLATES if lang == "zh" else EN_TEMPLATES)["NEG"]
        rows.append(_fill(rng.choice(templates), value, None, lang))
    return rows


def generate(seed: int = 0) -> list[dict[str, Any]]:
    """The labelled set: deterministic for a given seed."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    rows += _rows(rng, "PHONE", 26 * 24, lambda r, i, _l: PHONE_FORMS[(i // 2) % len(PHONE_FORMS)](r)
                  if i % 2 == 0 else PHONE_FORMS[(i // 2 + 13) % len(PHONE_FORMS)](r))
    rows += _rows(rng, "EMAIL", 540, lambda r, i, _l: _email(r, i // 2))
    rows += _rows(rng, "ORDER", 500, lambda r, i, _l: _order(r, i // 2))
    rows += [_tracking_row(rng, i) for i in range(560)]
    rows += _rows(rng, "ID", 500, lambda r, i, _l: _resident_id(r, i // 2))
    rows += _rows(rng, "CARD", 500, lambda r, i, _l: _card(r, i // 2))
    name = lambda r, _i, lang: _zh_name(r) if lang == "zh" else _en_name(r)  # noqa: E731
    rows += _rows(rng, "NAME", 240, name)
    surname = lambda r, _i, lang: (_zh_name(r)[0] if r.random() < 0.7 else _zh_name(r)) \
        if lang == "zh" else r.choice(_EN_LAST)  # noqa: E731
    rows += _rows(rng, "NAME", 120, surname, slot="SURNAME")
    rows += _combos(rng, 200)
    rows += _rows(rng, "ADDRESS", 360, lambda r, i, lang: _zh_address(r, i // 2) if lang == "zh"
                  else _en_address(r, i // 2))
    rows += _negatives(rng, 600)
    rows += _bare_jd_orders(rng, 60)
    return rows


ZH_COMBOS = ("收件人：{NAME}，电话：{PHONE}，地址：{ADDRESS}", "{NAME}，{PHONE}，{ADDRESS}",
             "{NAME} {PHONE} {ADDRESS}", "麻烦改一下收货信息：{NAME} {PHONE}，送到{ADDRESS}",
             "订单号{ORDER}的收货人改成{NAME}，手机{PHONE}", "我叫{NAME}，订单{ORDER}，邮箱{EMAIL}")
EN_COMBOS = ("Name: {NAME}, Phone: {PHONE}, Address: {ADDRESS}",
             "Ship to {NAME}, {ADDRESS}. Phone {PHONE}",
             "Hi, this is {NAME}. Order #{ORDER} - please call me on {PHONE}.",
             "My name is {NAME}, email {EMAIL}, order number {ORDER}.")


def _fill_many(template: str, values: dict[str, str], lang: str) -> dict[str, Any]:
    text, spans, pos = "", [], 0
    while (start := template.find("{", pos)) >= 0:
        end = template.index("}", start)
        text += template[pos:start]
        value = values[template[start + 1:end]]
        spans.append({"type": template[start + 1:end], "start": len(text), "end": len(text) + len(value)})
        text += value
        pos = end + 1
    return {"text": text + template[pos:], "lang": lang, "spans": spans}


def _combos(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Shipping details pasted together: several values per message, some without cue words."""
    rows = []
    for i in range(n):
        lang = "zh" if i % 2 == 0 else "en"
        zh = lang == "zh"
        values = {"NAME": _zh_name(rng) if zh else _en_name(rng),
                  "PHONE": _mobile(rng) if zh or i % 4 == 1 else PHONE_FORMS[20](rng),
                  "ADDRESS": _zh_address(rng, 0) if zh else _en_address(rng, 2),
                  "ORDER": _order(rng, i % 5), "EMAIL": _email(rng, 0)}
        rows.append(_fill_many(rng.choice(ZH_COMBOS if zh else EN_COMBOS), values, lang))
    return rows


def _bare_jd_orders(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """JD order ids pasted with no cue word: the masker knows them by length alone."""
    templates = ("{V}这个单什么时候到", "{V} 申请售后", "{V} where is it?", "please check {V}")
    rows = []
    for i in range(n):
        lang = "zh" if i % 4 < 2 else "en"
        rows.append(_fill(templates[i % 4], str(rng.randint(2, 3)) + _d(rng, 11), "ORDER", lang))
    return rows


# --- scoring -----------------------------------------------------------------------------------
def evaluate(masker: Masker, rows: list[dict[str, Any]], lang: str | None = None
             ) -> dict[str, dict[str, float]]:
    """Per-type recall/precision/F1 with *overlap* matching.

    A gold span is found when a predicted span of the same type overlaps it; a predicted span
    is correct when it overlaps a gold span of the same type. Overlap, not exact boundaries,
    because a masked span that is a few characters wider or narrower still hides the value
    (`exact` reports how many found gold spans also match boundaries exactly).
    """
    stats: dict[str, dict[str, float]] = {}

    def bump(type_: str, key: str) -> None:
        stats.setdefault(type_, {"gold": 0, "pred": 0, "tp_gold": 0, "tp_pred": 0, "exact": 0})
        stats[type_][key] += 1

    for row in rows:
        if lang is not None and row["lang"] != lang:
            continue
        pred = [(s.type, s.start, s.end) for s in masker.mask(row["text"]).spans]
        gold = [(g["type"], g["start"], g["end"]) for g in row["spans"]]
        for g in gold:
            bump(g[0], "gold")
            hits = [p for p in pred if p[0] == g[0] and p[1] < g[2] and g[1] < p[2]]
            if hits:
                bump(g[0], "tp_gold")
                if any(p[1:] == g[1:] for p in hits):
                    bump(g[0], "exact")
        for p in pred:
            bump(p[0], "pred")
            if any(p[0] == g[0] and p[1] < g[2] and g[1] < p[2] for g in gold):
                bump(p[0], "tp_pred")
    for s in stats.values():
        s["recall"] = s["tp_gold"] / s["gold"] if s["gold"] else float("nan")
        s["precision"] = s["tp_pred"] / s["pred"] if s["pred"] else float("nan")
        r, p = s["recall"], s["precision"]
        s["f1"] = 2 * r * p / (r + p) if s["gold"] and s["pred"] and r + p else 0.0
    return stats
