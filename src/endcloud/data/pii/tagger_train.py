"""Training data and training for the PII tagger (`endcloud data train-tagger`).

Data, all with exact character spans:
- real JDDC utterances (2019 chat TSVs, 2018 baseline pairs): the publisher replaced names and
  addresses by `[姓名x]` / `[地址x]`, exactly where a customer or agent wrote them, so filling
  those slots with generated values gives names and addresses in real context; the other
  placeholders get plausible non-personal values (numbers, amounts, dates, phones, order ids);
  lines without a personal slot are the negatives;
- real English customer requests (Bitext instructions) with a name or address clause added;
- the labelled generated set (`pii_testset.generate`) and any hand-labelled JSONL files passed
  with `--labelled` (repeated `--labelled-repeat` times: there are few of them);
- values come from Faker (names and addresses of 14 locales), a generator the masker's rules were
  not written against.

Faker and wordfreq are needed only here: `pip install 'endcloud[pii-train]'`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
import re
import time
from pathlib import Path
from typing import Any, Iterable

from endcloud.data.pii import tagger as tg

Row = dict[str, Any]  # {"text", "spans": [{"type", "start", "end"}]}

_EN_LOCALES = ("en_US", "en_GB", "en_IE", "en_AU", "en_CA", "en_IN", "fr_FR", "de_DE", "es_ES",
               "es_MX", "it_IT", "pt_BR", "nl_NL", "pl_PL", "vi_VN", "yo_NG", "zu_ZA", "tw_GH", "sw",
               "fil_PH", "id_ID", "tr_TR", "cs_CZ", "ro_RO", "en_NG", "en_KE", "en_PK", "ga_IE", "sv_SE",
               "hu_HU", "fi_FI", "pt_PT")
_ADDRESS_LOCALES = ("en_US", "en_US", "en_US", "en_GB", "en_GB", "en_CA", "en_AU", "en_IE", "en_NZ", "en_IN",
                    "vi_VN", "fil_PH", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
# colours a shop sells in, several of them also given names (Rose, Jade, Ruby): no name there
_COLOURS = ("Rose Gold", "Navy", "Olive", "Ivory", "Charcoal", "Burgundy", "Champagne", "Coral", "Sage",
            "Blush", "Hunter Green", "Midnight Blue", "Rose", "Jade", "Ruby", "Amber", "Hazel", "Ginger",
            "Violet", "Scarlett", "Sienna", "Olivia Green", "Heather Grey", "Camel", "Denim", "Silver")
_EN_PLACE_FRAMES = (
    "Do you ship to {p}?", "Is shipping to {p} free? {x}", "The label says Made in {p}.",
    "{x} I'm in {p} until Friday.", "Does the {p} warehouse have it in stock?", "Is it available in {c}?",
    "Do you have the {c} one in size M?", "{x} I'd prefer {c} if you have it.", "How long to {p}?",
    "{x} We're moving to {p} next month.", "The {c} version looked different in the photos.",
)


class Values:
    """Generated personal values (Faker), each with its surface text."""

    def __init__(self, seed: int) -> None:
        try:
            from faker import Faker
        except ImportError as e:
            raise SystemExit("training the PII tagger needs Faker: pip install 'endcloud[pii-train]'") from e
        self.rng = random.Random(seed)
        self.zh = Faker("zh_CN")
        self.zh.seed_instance(seed)
        self.en = {loc: Faker(loc) for loc in _EN_LOCALES}
        for i, f in enumerate(self.en.values()):
            f.seed_instance(seed + i + 1)
        self.us = self.en["en_US"]

    # --- Chinese ---------------------------------------------------------------------------------
    def zh_name(self) -> str:
        r = self.rng.random()
        last = self.zh.last_name()
        if r < 0.03:
            return "阿" + self.zh.first_name()[-1]
        if r < 0.13:  # any character as surname: context, not a list, makes it a name (禤, 麹)
            return self.zh.first_name()[0] + self.zh.first_name()
        if r < 0.19:
            return self.rng.choice("老小") + last[0]
        if r < 0.10:
            from endcloud.data.pii.lexicon import ZH_SURNAMES_2

            return self.rng.choice(ZH_SURNAMES_2) + self.zh.first_name()
        if r < 0.17:
            return self.en_first()
        if r < 0.20:
            ja = self.faker("ja_JP")
            return ja.last_name() + ja.first_name()  # 佐藤健太
        if r < 0.24:
            tw = self.faker("zh_TW")
            return tw.last_name() + tw.first_name()
        return last + self.zh.first_name()

    def zh_surname(self) -> str:
        """A surname alone (before 女士, 师傅...): now and then any character (仉, 暴)."""
        return self.zh.first_name()[0] if self.rng.random() < 0.15 else self.zh.last_name()

    def zh_familiar(self) -> str:
        return self.rng.choice("老小阿") + self.zh_surname()[0]

    def zh_address(self) -> str:
        rng, zh = self.rng, self.zh
        parts = [zh.province(), zh.city_name() + "市", zh.district() + "区"]
        street = zh.street_name() + rng.choice(("路", "街", "大道", "", "")) + f"{rng.randint(1, 999)}号"
        estate = zh.last_name() + rng.choice("山林园湖景华苑阳光泽") + rng.choice(
            ("小区", "花园", "苑", "家园", "公寓", "新村", "大厦", "广场"))
        tail = rng.choice((
            f"{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元{rng.randint(1, 33)}0{rng.randint(1, 4)}",
            f"{rng.randint(1, 20)}号楼{rng.randint(101, 2808)}室",
            f"{rng.choice('ABCDE')}座{rng.randint(1, 40)}层",
            f"{rng.randint(1, 12)}期{rng.randint(1, 30)}幢{rng.randint(101, 1808)}",
            f"{rng.randint(1, 9)}舍{rng.randint(101, 620)}",
            ""))
        school = zh.city_name() + rng.choice(("大学", "理工学院", "师范大学", "职业技术学院")) + rng.choice(
            ("东校区", "南校区", "本部", "")) + f"{rng.randint(1, 20)}号宿舍楼{rng.randint(101, 650)}"
        landmark = zh.street_name() + rng.choice(("地铁站", "公交站", "菜鸟驿站", "丰巢柜")) + rng.choice(
            ("B口", "旁边", "对面", ""))
        pickup = rng.choice((estate, estate, "小区", f"{rng.randint(1, 30)}栋楼下", zh.street_name() + "镇",
                             zh.city_name() + "村")) + rng.choice(("东门", "南门", "北门", "西门", "", "")) + rng.choice(
            ("菜鸟驿站", "保安亭", "快递柜", "门卫室", "物业", "丰巢柜", "丰巢快递柜", "自提点", "中通快递点", "韵达快递点"))
        if rng.random() < 0.05:
            return self.faker("zh_TW").address().split(" ")[-1]  # 台北市大安區復興南路一段390號7樓
        body = rng.choice((street + estate + tail, estate + tail, street, school, landmark, street + tail, pickup))
        start = rng.choice((0, 0, 1, 1, 2, 3))
        return "".join(parts[start:]) + body

    # --- English ---------------------------------------------------------------------------------
    def _loc(self):
        return self.en[self.rng.choice(_EN_LOCALES)]

    def faker(self, loc: str):
        if loc not in self.en:
            from faker import Faker

            self.en[loc] = Faker(loc)
            self.en[loc].seed_instance(self.rng.randint(0, 2**31))
        return self.en[loc]

    def place(self) -> str:
        us = self.us
        return self.rng.choice((us.country(), us.state(), us.city(), self.faker("en_GB").city(),
                                us.country(), "Italy", "Portugal", "Georgia", "Virginia", "Beijing",
                                "Karnataka", "Ho Chi Minh City"))

    def en_first(self) -> str:
        return self._loc().first_name()

    def en_name(self) -> str:
        f = self._loc()
        r = self.rng.random()
        if r < 0.08:
            v = self.zh.romanized_name()
            return v.lower() if self.rng.random() < 0.3 else v
        if r < 0.25:
            v = f.first_name()
        elif r < 0.32:
            v = f"{self.rng.choice(('Mr.', 'Mrs.', 'Ms.', 'Dr.', 'Mr', 'Ms'))} {f.last_name()}"
        elif r < 0.38:
            v = f"{f.first_name()} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {f.last_name()}"
        elif r < 0.42:
            v = f"{f.first_name()} {self.rng.choice(('de la', 'van der', 'van', 'de', 'da', 'von', 'al-', 'bin', 'dos'))} {f.last_name()}"
            v = v.replace("al- ", "al-")
        else:
            v = f"{f.first_name()} {f.last_name()}"
        r = self.rng.random()
        return v.lower() if r < 0.08 else v.upper() if r < 0.12 else v

    def en_address(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.12:
            us = self.us
            v = f"{rng.choice(('PO Box', 'P.O. Box', 'Box'))} {rng.randint(10, 99999)}, {us.city()}, {us.state_abbr()} {us.zipcode()}"
        else:
            loc = rng.choice(_ADDRESS_LOCALES)
            v = self.faker(loc).address()
            lines = [x.strip() for x in v.split("\n") if x.strip()]
            sep = rng.choice((", ", ", ", " ", "\n"))
            if rng.random() < 0.25:
                lines = lines[:1]  # the street line alone
            v = sep.join(lines)
        return v.lower() if rng.random() < 0.06 else v


# --- filling JDDC ------------------------------------------------------------------------------
_SLOT_RE = re.compile(r"\[(姓名x|地址x|数字x|金额x|日期x|时间x|站点x|电话x|订单x|邮箱x|链接x|身份证号x|组织机构x|"
                      r"订单编号:\[数字x\]?|ORDERID_[0-9]+|USERID_[0-9]+|商品快照)\]?")


def _other_slot(slot: str, rng: random.Random) -> str:
    if slot == "数字x":
        return str(rng.choice((rng.randint(1, 9), rng.randint(10, 99), rng.randint(100, 999))))
    if slot == "金额x":
        return f"{rng.randint(5, 899)}{rng.choice(('', '.9', '.00', '元'))}"
    if slot == "日期x":
        return f"{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    if slot == "时间x":
        return f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}"
    if slot == "站点x":
        return rng.choice(("北京", "上海", "广州", "成都", "武汉", "西安")) + rng.choice(("站", "分拣中心", "仓"))
    if slot == "电话x":
        return f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}"
    if slot in ("订单x",) or slot.startswith(("ORDERID", "订单编号")):
        return f"{rng.randint(10**10, 10**12 - 1)}"
    if slot == "邮箱x":
        return f"user{rng.randint(1, 9999)}@qq.com"
    if slot == "链接x":
        return "https://item.jd.com/100012.html"
    if slot == "身份证号x":
        return "身份证"
    if slot == "组织机构x":
        return rng.choice(("京东", "顺丰", "中国银行", "物业"))
    if slot.startswith("USERID"):
        return f"jd_{rng.randint(1000, 99999)}"
    return ""


def fill(text: str, values: Values) -> Row:
    """A JDDC line with every slot filled; the filled names and addresses are the gold spans."""
    out, spans, pos = [], [], 0
    length = 0
    for m in _SLOT_RE.finditer(text):
        out.append(text[pos:m.start()])
        length += m.start() - pos
        slot = m.group(1)
        if slot == "姓名x":
            v, t = values.zh_name(), "NAME"
        elif slot == "地址x":
            v, t = values.zh_address(), "ADDRESS"
        else:
            v, t = _other_slot(slot, values.rng), None
        if t:
            spans.append({"type": t, "start": length, "end": length + len(v)})
        out.append(v)
        length += len(v)
        pos = m.end()
    out.append(text[pos:])
    return {"text": "".join(out), "spans": spans}


def jddc_lines(paths: Iterable[Path]) -> list[str]:
    """Utterances from JDDC 2019 chat TSVs (`*.tsv.gz`) and 2018 baseline `.enc/.dec` files
    (contexts split at the lossy ',' joins)."""
    lines: list[str] = []
    for p in paths:
        with gzip.open(p, "rt", encoding="utf-8", newline="") as f:
            if ".tsv" in p.name:
                lines += [row[-1] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
            else:
                for line in f:
                    lines += [x for x in line.rstrip("\n").split(",") if x]
    return [x.strip() for x in lines if x.strip()]


# --- English contexts --------------------------------------------------------------------------
_EN_NAME_FRAMES = (
    "Hi, this is {n}. {x}", "{x}\n\nThanks,\n{n}", "{x} - {n}", "{n} here. {x}", "My name is {n} and {x}",
    "{x} The order is under {n}.", "{x} It's a gift for {n}.", "{x} Please leave it with {n} at reception.",
    "{x}\nRegards, {n}", "{x} My husband {n} placed it.", "Hello, I'm {n}. {x}", "{x} cheers, {n}",
    "{x} You can ask for {n} when you call.", "{n}: {x}", "{x} (account holder: {n})",
    "Dear support, {x} Best, {n}", "{x} My daughter {n} will sign for it.", "{x} {n} from accounting.",
    "Hey, it's {n}. {x}", "hi its {n}, {x}", "{x} Can you text {n} instead?", "{x} Please call {n} on arrival.",
    "I spoke with your agent {n} yesterday. {x}", "{x} Your colleague {n} said it was fine.",
    "{x} The courier {n} never came.", "Happy birthday, {n}! {x}", "{x} Love, {n}", "{x} Email {n} the invoice.",
    "{x} It's for my {r} {n}.", "My {r} {n} ordered it. {x}", "{x} {n} ({r}) will pick it up.",
)
_RELATIONS = ("sister", "brother", "mom", "mum", "dad", "wife", "husband", "son", "daughter", "friend",
              "neighbor", "neighbour", "colleague", "boss", "partner", "grandma", "aunt", "uncle", "roommate")
_EN_ADDR_FRAMES = (
    "{x} Please ship to {a}.", "My address is {a}. {x}", "{x} I moved to {a}.", "Deliver to: {n}\n{a}",
    "{x} Send it to {n}, {a}", "{x} My new address: {a}", "Can you change the delivery address to {a}? {x}",
    "{x} It should go to {a} instead.", "{n}\n{a}\n{x}",
)


def _frame(frame: str, x: str, vals: dict[str, str]) -> Row:
    out, spans, pos = [], [], 0
    types = {"n": "NAME", "a": "ADDRESS"}
    for m in re.finditer(r"\{([xnapcr])\}", frame):
        out.append(frame[pos:m.start()])
        start = sum(len(s) for s in out)
        v = x if m.group(1) == "x" else vals[m.group(1)]
        out.append(v)
        if m.group(1) in types:
            spans.append({"type": types[m.group(1)], "start": start, "end": start + len(v)})
        pos = m.end()
    out.append(frame[pos:])
    return {"text": "".join(out), "spans": spans}


def english_rows(requests: list[str], values: Values, n: int) -> list[Row]:
    rng = values.rng
    rows = []
    for _ in range(n):
        x = rng.choice(requests)
        r = rng.random()
        if r < 0.4:
            rows.append(_frame(rng.choice(_EN_NAME_FRAMES), x, {"n": values.en_name(), "r": rng.choice(_RELATIONS)}))
        elif r < 0.6:
            rows.append(_frame(rng.choice(_EN_PLACE_FRAMES), x, {"p": values.place(), "c": rng.choice(_COLOURS)}))
        elif r < 0.8:
            rows.append(_frame(rng.choice(_EN_ADDR_FRAMES), x, {"n": values.en_name(), "a": values.en_address()}))
        else:
            rows.append({"text": x, "spans": []})
    return rows


def bitext_requests(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [r["instruction"].strip() for r in csv.DictReader(f)
                if r.get("instruction") and "{{" not in r["instruction"]]


# --- Chinese frames beyond JDDC (shipping details pasted, names in lists) ---------------------
_ZH_FRAMES = (
    "{n} {p} {a}", "收件人：{n}\n电话：{p}\n地址：{a}", "{a} {n} {p}", "帮我改一下地址：{a}，收件人{n}",
    "{n}，{p}，{a}", "寄到{a}，{n}收", "我现在住{a}，麻烦改一下", "地址写错了，应该是{a}",
    "让{n}下楼拿一下", "{n}说还没收到", "是{n}帮我下的单", "快递放{a}就行", "我老婆{n}签收的",
    "{s}师傅明天几点来取件", "找{s}老师签收", "{s}经理说可以退", "{s}大爷不会用手机，寄到{a}", "交给{s}阿姨就行",
    "{s}总让我来问发票", "麻烦{s}老板看一下", "{n}同学的快递放宿舍楼下", "我是{s}女士，退款还没到",
    "签收人写的是{s}先生，我们家没人姓{s}", "保安{f}说放门卫室了", "安装师傅{f}说要另外加钱", "快递小哥{f}打电话了",
    "同事{f}帮我收一下", "{f}，衣服收到了，谢谢", "我爸叫{n}，用他的名字下单", "写我朋友{n}代收",
    "{a} {n} 收 {p}", "{a}，{n}收，{p}", "我是配送员{s}师傅，快递放{a}了", "一份给我同学{f}：{a}",
)


def chinese_rows(values: Values, n: int) -> list[Row]:
    rng = values.rng
    rows = []
    for _ in range(n):
        frame = rng.choice(_ZH_FRAMES)
        vals = {"n": values.zh_name(), "a": values.zh_address(), "s": values.zh_surname(), "f": values.zh_familiar(),
                "p": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}"}
        out, spans, pos = [], [], 0
        for m in re.finditer(r"\{([napsf])\}", frame):
            out.append(frame[pos:m.start()])
            start = sum(len(s) for s in out)
            v = vals[m.group(1)]
            out.append(v)
            if m.group(1) in "nasf":
                spans.append({"type": "ADDRESS" if m.group(1) == "a" else "NAME", "start": start,
                              "end": start + len(v)})
            pos = m.end()
        out.append(frame[pos:])
        rows.append({"text": "".join(out), "spans": spans})
    return rows


def faker_names(locales, last: bool) -> set[str]:
    """Every first name (and last name, with `last`) Faker's person providers of `locales` list,
    lower-cased."""
    import importlib

    attrs = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary",
             *(("last_names",) if last else ()))
    names: set[str] = set()
    for loc in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        except ImportError:
            continue
        for attr in attrs:
            v = provider.__dict__.get(attr)
            if isinstance(v, (dict, list, tuple, set, frozenset)):
                names |= {x.lower() for x in v if isinstance(x, str)}
    return names


def common_words(n: int = 30000) -> list[str]:
    """The `n` most frequent English words (wordfreq) that no Faker locale lists as a first or
    last name, nor the masker's lexicons (so Will, Grace, Baker are not among them): the model's
    `common` feature, shipped beside it as `<model>.words`."""
    try:
        import wordfreq
        from faker.config import AVAILABLE_LOCALES
    except ImportError as e:
        raise SystemExit("training the PII tagger needs wordfreq and Faker: pip install 'endcloud[pii-train]'") from e
    names = set(tg._GIVEN | tg._SURNAMES_EN) | faker_names(AVAILABLE_LOCALES, last=True)
    return [w for w in wordfreq.top_n_list("en", n) if w.isalpha() and len(w) > 1 and w not in names]


_CITIES = ("Beijing", "Shanghai", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xiamen",
           "Hong Kong", "Macau", "Taipei", "Tokyo", "Osaka", "Seoul", "Singapore", "Kuala Lumpur", "Bangkok",
           "Manila", "Jakarta", "Hanoi", "Ho Chi Minh City", "Mumbai", "Delhi", "New Delhi", "Bengaluru", "Bangalore",
           "Chennai", "Kolkata", "Hyderabad", "Karachi", "Lahore", "Dubai", "Abu Dhabi", "Doha", "Riyadh", "Istanbul",
           "Cairo", "Lagos", "Nairobi", "Accra", "Johannesburg", "Cape Town", "London", "Manchester", "Birmingham",
           "Leeds", "Glasgow", "Edinburgh", "Dublin", "Cork", "Kilkenny", "Galway", "Belfast", "Cardiff", "Paris",
           "Lyon", "Marseille", "Berlin", "Munich", "Hamburg", "Frankfurt", "Cologne", "Vienna", "Zurich", "Geneva",
           "Amsterdam", "Rotterdam", "Brussels", "Madrid", "Barcelona", "Lisbon", "Porto", "Rome", "Milan", "Naples",
           "Warsaw", "Krakow", "Prague", "Budapest", "Stockholm", "Oslo", "Copenhagen", "Helsinki", "Moscow",
           "New York", "Los Angeles", "Chicago", "Houston", "Seattle", "San Francisco", "Boston", "Denver",
           "Portland", "Miami", "Atlanta", "Toronto", "Vancouver", "Montreal", "Montréal", "Ottawa", "Calgary",
           "Sydney", "Melbourne", "Brisbane", "Perth", "Auckland", "Wellington", "Christchurch", "Memphis")


def place_names() -> list[str]:
    """Countries, states, provinces and large cities (Faker's lists and a hundred cities), shipped
    beside the model as `<model>.places`: never reported as a person, except the ones that are also
    a first name in a major locale (marked `~`: Georgia, Austin), which only an address or a trip
    around them ("ship to Virginia", "Austin, TX 78745") rules out."""
    import faker.providers.address.en as en
    import faker.providers.address.en_AU as au
    import faker.providers.address.en_CA as ca
    import faker.providers.address.en_GB as gb
    import faker.providers.address.en_US as us

    firsts = faker_names(("en_US", "en_GB", "en_IE", "en_AU", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_BR",
                           "nl_NL"), last=False)

    def names(v) -> list[str]:
        return list(v.values() if isinstance(v, dict) else v)

    places = [*names(en.Provider.countries), *names(us.Provider.states), *names(ca.Provider.provinces),
              *names(au.Provider.states), *names(gb.Provider.counties), *_CITIES,
              "United States", "United Kingdom", "USA", "UK", "UAE"]
    # a place that is also a first name (Georgia, Austin) is marked "~": context decides there
    return sorted({p if p.lower() not in firsts else "~" + p for p in places})


def read_labelled(path: Path) -> list[Row]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


# --- training ----------------------------------------------------------------------------------
def sequence(row: Row, common: frozenset[str] = frozenset()) -> tuple[list[list[str]], list[str]]:
    from endcloud.data.pii.base import normalise

    text = normalise(row["text"])
    spans = tg.tokenize(text)
    gold = [(s["type"], s["start"], s["end"]) for s in row["spans"]]
    return tg.features(text, spans, common), tg.bio(spans, gold)


def build(*, jddc: list[Path], bitext: Path | None, labelled: list[Path], labelled_repeat: int,
          seed: int, negatives: int, english: int, chinese: int) -> tuple[list[Row], dict[str, int]]:
    from endcloud.data.pii_testset import generate

    values = Values(seed)
    rng = values.rng
    counts: dict[str, int] = {}
    rows: list[Row] = []
    lines = jddc_lines(jddc)
    personal = [x for x in lines if "[姓名x]" in x or "[地址x]" in x]
    plain = [x for x in lines if "[姓名x]" not in x and "[地址x]" not in x]
    jd = [fill(x, values) for x in personal for _ in range(3)]
    jd += [fill(x, values) for x in rng.sample(plain, min(negatives, len(plain)))]
    counts["jddc"] = len(jd)
    rows += jd
    if bitext is not None:
        en = english_rows(bitext_requests(bitext), values, english)
        counts["bitext_frames"] = len(en)
        rows += en
    zh = chinese_rows(values, chinese)
    counts["zh_frames"] = len(zh)
    rows += zh
    gen = [r for r in generate(seed)]
    counts["generated"] = len(gen)
    rows += gen
    for p in labelled:
        hand = read_labelled(p)
        counts[f"labelled:{p.name}"] = len(hand)
        rows += hand * labelled_repeat
    rng.shuffle(rows)
    return rows, counts


def train(rows: list[Row], output: Path, *, c1: float, c2: float, iterations: int,
          validation: list[Row], meta: dict[str, Any], common: list[str] = ()) -> dict[str, Any]:
    import pycrfsuite

    from endcloud.progress import enabled

    bar = None
    if enabled():
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="tagger (L-BFGS iterations)", unit="it", leave=False)

    class Trainer(pycrfsuite.Trainer):
        def on_iteration(self, log, info):  # noqa: ANN001 - pycrfsuite's callback
            if bar is not None:
                bar.update(1)

    trainer = Trainer(verbose=False)
    words = frozenset(common)
    for row in rows:
        xs, ys = sequence(row, words)
        if xs:
            trainer.append(xs, ys)
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations,
                        "feature.possible_transitions": True, "feature.minfreq": 2})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    start = time.perf_counter()
    trainer.train(str(tmp))
    elapsed = time.perf_counter() - start
    if bar is not None:
        bar.close()
    output.with_suffix(".words").write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
    output.with_suffix(".places").write_text("\n".join(place_names()) + "\n", encoding="utf-8")
    tmp.replace(output)
    tg._load.cache_clear()
    figures = evaluate(tg.Tagger(output), validation)
    manifest = {**meta, "train_seconds": round(elapsed, 1), "sequences": len(rows),
                "params": {"c1": c1, "c2": c2, "max_iterations": iterations, "feature.minfreq": 2},
                "sha256": hashlib.sha256(output.read_bytes()).hexdigest(), "common_words": len(words),
                "bytes": output.stat().st_size, "validation": figures,
                "pycrfsuite": pycrfsuite.__version__ if hasattr(pycrfsuite, "__version__") else "",
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    output.with_suffix(".json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                           encoding="utf-8")
    return manifest


def evaluate(tagger: tg.Tagger, rows: list[Row]) -> dict[str, dict[str, float]]:
    """Span recall / precision per type (overlap match) of the tagger alone."""
    from endcloud.data.pii.base import normalise

    out: dict[str, dict[str, float]] = {}
    for t in tg.LABELS:
        gold = pred = found = right = 0
        for r in rows:
            hits = [h for h in tagger.detect(normalise(r["text"])) if h.type == t]
            gs = [s for s in r["spans"] if s["type"] == t]
            gold += len(gs)
            pred += len(hits)
            found += sum(any(h.start < g["end"] and g["start"] < h.end for h in hits) for g in gs)
            right += sum(any(h.start < g["end"] and g["start"] < h.end for g in gs) for h in hits)
        out[t] = {"gold": gold, "pred": pred, "recall": round(found / max(1, gold), 4),
                  "precision": round(right / max(1, pred), 4)}
    return out
