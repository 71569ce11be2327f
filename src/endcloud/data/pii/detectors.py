"""Rule detectors: one function per kind of personal data, all regexes compiled once at import.

Every detector takes the *normalised* text (see `normalise`: full-width forms and all Unicode
decimal digits mapped one-to-one onto ASCII, so offsets are those of the original text) and
returns `Detection`s: (type, start, end, key). `key` is the identity of the value inside a
conversation - digits only for phones, lower case for e-mails - so two spellings of one phone
get one placeholder.

`DETECTORS` lists them in priority order: when two hits overlap, the earlier detector wins
(an e-mail beats the phone number inside it, an order number after "订单号" beats the
phone-shaped or Luhn-valid digits, a checksum-valid ID beats a Taobao-length digit run).
"""

from __future__ import annotations

import re

from endcloud.data.pii import lexicon as lx
from endcloud.data.pii.base import _HAN, Detection, _alt, digits, normalise  # noqa: F401 (the API)
from endcloud.data.pii.names import (detect_en_names, detect_zh_names,  # noqa: F401 (DETECTORS)
                                     detect_zh_names_model)
from endcloud.data.pii.tagger import detect_names_tagger  # noqa: F401 (DETECTORS)


# --- phones ------------------------------------------------------------------------------------
_SEP = r"[ \t\-.]?"
_CN_PREFIX = r"(?:(?:\+|00)\s?86[ \-]?|\(\s?\+?\s?86\s?\)\s?)"
_EXT = r"(?:\s?(?:转|分机|ext\.?|x|#)\s?[0-9]{1,6})?"
_MOBILE = rf"{_CN_PREFIX}?1[3-9][0-9]{_SEP}[0-9]{{4}}{_SEP}[0-9]{{4}}"
_LANDLINE = (rf"(?:{_CN_PREFIX}\(?0?[1-9][0-9]{{1,2}}\)?|\(0[1-9][0-9]{{0,2}}\)|0[1-9][0-9]{{1,2}})"
             rf"[ \-]?[0-9]{{3,4}}[ \-]?[0-9]{{4}}{_EXT}")
_INTL = (r"(?:\+|00)(?!86)[1-9][0-9]{0,2}[ \-]?(?:\([0-9]{1,4}\)[ \-]?)?[0-9]{1,4}"
         r"(?:[ \-][0-9]{2,8}){1,4}|(?:\+|00)(?!86)[1-9][0-9]{7,13}")
_NANP = r"(?:\+?1[ \-.])?(?:\([2-9][0-9]{2}\)\s?|[2-9][0-9]{2}[\-. ])[0-9]{3}[\-. ][0-9]{4}"  # (555) 014-2231
# UK, AU and Taiwan mobiles; Indian mobiles written 5 + 5
_UK_MOBILE = (r"07[0-9]{3}[ \-]?[0-9]{3}[ \-]?[0-9]{3}|0[49][0-9]{2}[ \-]?[0-9]{3}[ \-]?[0-9]{3}"
              r"|[6-9][0-9]{4}[ \-][0-9]{5}|06[ \-]?[0-9]{8}")  # ... and Dutch mobiles
_PAIRS = r"0[1-9](?:[ .\-][0-9]{2}){4}"  # France, Belgium-style national numbers: 06 12 34 56 78
_PHONE_RE = re.compile(
    rf"(?<![0-9A-Za-z+])(?:{_MOBILE}|{_UK_MOBILE}|{_PAIRS}|{_LANDLINE}|{_INTL}{_EXT}|{_NANP}{_EXT})(?![0-9])")


# right after a phone cue, any local number: "her number's 555-0148", "电话6123 8890" (Hong
# Kong), "phone 0712 345678" (Kenya) - 7 to 15 digits in groups
_LOCAL_PHONE_RE = re.compile(
    r"(?:(?<![A-Za-z])(?:number|phone|call|text|tel|ph|mobile|cell|whatsapp)|电话|手机|联系方式|手机号码?)"
    r"(?:'s|’s)?\s?(?:is|was|:|是|为)?\s?"
    r"(?P<v>[0-9]{3,4}[\- ][0-9]{4}|\(?[0-9]{2,5}\)?[\- ]?[0-9]{3,4}[\- ]?[0-9]{3,4})(?![0-9])", re.IGNORECASE)


def detect_phones(norm: str) -> list[Detection]:
    hits = [Detection("PHONE", m.start("v"), m.end("v"), digits(m.group("v")))
            for m in _LOCAL_PHONE_RE.finditer(norm)]
    for m in _PHONE_RE.finditer(norm):
        d = digits(m.group())
        if len(d) < 7 or len(d) > 18:
            continue
        # One phone, many spellings: drop the country code so "+86 138…" == "138…".
        if d.startswith("0086"):
            d = d[4:]
        elif d.startswith("86") and len(d) in (13, 14, 15):
            d = d[2:]
        hits.append(Detection("PHONE", m.start(), m.end(), d))
    return hits


# --- e-mail and URLs ---------------------------------------------------------------------------
_TLD = r"(?:com|cn|net|org|edu|gov|io|co|uk|de|fr|jp|hk|tw|info|biz|me|us|ca|au)"
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+\s?@\s?[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
    rf"|(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+(?:\s?(?:\(dot\)|\[dot\]| dot )\s?[A-Za-z0-9_%+\-]+)*"
    rf"\s?(?:\(at\)|\[at\]|\{{at\}}| at )\s?[A-Za-z0-9\-]+"
    rf"(?:\s?(?:\(dot\)|\[dot\]|\{{dot\}}| dot |\.)\s?[A-Za-z0-9\-]+)*"
    rf"\s?(?:\(dot\)|\[dot\]|\{{dot\}}| dot |\.)\s?{_TLD}(?![A-Za-z0-9])",
    re.IGNORECASE)
_URL_RE = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#@!$&'*+;=%]+", re.IGNORECASE)


# "my Instagram is @bella.rose" is a handle: a word before " @" that is no e-mail's local part
_NOT_LOCAL_PART = re.compile(r"(?i)^(?:is|was|me|my|at|on|to|via|follow|dm|handle|ig|insta|tag|or|and|us)\s@")


def detect_emails(norm: str) -> list[Detection]:
    return [Detection("EMAIL", m.start(), m.end(), re.sub(r"\s", "", m.group()).lower())
            for m in _EMAIL_RE.finditer(norm) if not _NOT_LOCAL_PART.match(m.group())]


def detect_urls(norm: str) -> list[Detection]:
    hits = []
    for m in _URL_RE.finditer(norm):
        end = m.end()
        while end > m.start() and norm[end - 1] in ".:;!?'":  # sentence punctuation after a URL
            end -= 1
        hits.append(Detection("URL", m.start(), end, norm[m.start():end]))
    return hits


# --- resident ID (checksum) and bank cards (Luhn) ----------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
_ID18_RE = re.compile(
    rf"(?<![0-9A-Za-z])[1-9][0-9]{{5}} ?(?:18|19|20)[0-9]{{2}}{_DATE} ?[0-9]{{3}}[0-9Xx](?![0-9A-Za-z])")
_ID15_RE = re.compile(rf"(?<![0-9A-Za-z])[1-9][0-9]{{5}}[0-9]{{2}}{_DATE}[0-9]{{3}}(?![0-9A-Za-z])")


def id_checksum_ok(id18: str) -> bool:
    """GB 11643: the 18th character is a weighted mod-11 checksum of the first 17 digits."""
    if len(id18) != 18 or not id18[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(id18[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == id18[17].upper()


def detect_ids(norm: str) -> list[Detection]:
    hits = []
    for m in _ID18_RE.finditer(norm):
        v = m.group().replace(" ", "").upper()
        if id_checksum_ok(v):
            hits.append(Detection("ID", m.start(), m.end(), v))
    # Legacy 15-digit IDs carry no checksum; the embedded date is the only structure to check.
    hits += [Detection("ID", m.start(), m.end(), m.group()) for m in _ID15_RE.finditer(norm)]
    hits += [Detection("ID", m.start(g), m.end(g), _id_key(m.group(g))) for m in _PASSPORT_RE.finditer(norm)
             for g in ("v", "w") if m.group(g)]
    hits += [Detection("ID", m.start(), m.end(), _id_key(m.group())) for rx, ok in _REGIONAL_IDS
             for m in rx.finditer(norm) if ok(_id_key(m.group()))]
    return hits


def _tw_id_ok(v: str) -> bool:
    """Taiwan national ID: a letter (its two-digit area code) + 9 digits, weighted mod 10."""
    codes = "ABCDEFGHJKLMNPQRSTUVXYWZIO"  # A=10 ... in this order
    n = str(codes.index(v[0]) + 10) + v[1:]
    return sum(int(c) * w for c, w in zip(n, (1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1))) % 10 == 0


def _hk_id_ok(v: str) -> bool:
    """Hong Kong identity card: 1-2 letters + 6 digits + a check digit (0-9 or A), mod 11."""
    head, check = v[:-1], v[-1]
    vals = [36] * (8 - len(head))  # one letter: a space (36) before it
    vals += [ord(c) - 55 if c.isalpha() else int(c) for c in head]
    total = sum(x * w for x, w in zip(vals, range(9, 1, -1)))
    want = (11 - total % 11) % 11
    return check == ("A" if want == 10 else str(want))


def _sg_id_ok(v: str) -> bool:
    """Singapore NRIC / FIN: S, T, F, G or M + 7 digits + a check letter."""
    total = sum(int(c) * w for c, w in zip(v[1:8], (2, 7, 6, 5, 4, 3, 2))) + (4 if v[0] in "TG" else 3 if v[0] == "M" else 0)
    table = "JZIHGFEDCBA" if v[0] in "ST" else "XWUTRQPNMLK" if v[0] in "FG" else "XWUTRQPNJLK"
    return v[-1] == table[total % 11]


_REGIONAL_IDS = (
    (re.compile(r"(?<![0-9A-Za-z])[A-Z][12][0-9]{8}(?![0-9A-Za-z])"), _tw_id_ok),
    (re.compile(r"(?<![0-9A-Za-z])[A-Z]{1,2}[0-9]{6}\s?\(?[0-9A]\)?(?![0-9A-Za-z])"), _hk_id_ok),
    (re.compile(r"(?<![0-9A-Za-z])[STFGM][0-9]{7}[A-Z](?![0-9A-Za-z])"), _sg_id_ok),
)


_PASSPORT_RE = re.compile(
    r"(?:passport|护照)\s?(?:number|no\.?|num|#|号码?)?\s?(?:is|was|:|是|为)?\s?"
    r"(?P<v>[A-Za-z]{1,2}[0-9]{6,9}|[A-Za-z]{0,2}[0-9]{2}\s?[0-9]{6,7})(?![0-9A-Za-z])"
    # a few words later: "the passport number of the receiver. It's E2345678K"
    r"|(?i:passport|护照)[^\n]{0,40}?(?<![0-9A-Za-z])(?P<w>[A-Z]{1,2}[0-9]{6,9}[A-Z]?)(?![0-9A-Za-z])")


_CARD_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{4}(?:[ \-][0-9]{4}){3}(?:[ \-][0-9]{1,3})?|3[47][0-9]{2}[ \-]?[0-9]{6}[ \-]?[0-9]{5}"
    r"|[0-9]{6}[ \-][0-9]{10,13}|[0-9]{16,19})(?![0-9A-Za-z])")
_CARD_IIN = re.compile(r"(?:3[47]|35|4|5[1-5]|6|62|2[2-7]|8|9)")


def luhn_ok(number: str) -> bool:
    """The Luhn mod-10 check every payment card number carries."""
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def detect_cards(norm: str) -> list[Detection]:
    hits = []
    for m in _CARD_RE.finditer(norm):
        d = digits(m.group())
        # An ID-shaped 18-digit string with a bad checksum is a mistyped ID, not a card: it is
        # left for the residue rule (unsendable) rather than mislabelled.
        if (16 <= len(d) <= 19 or (len(d) == 15 and d[:2] in ("34", "37"))) and _CARD_IIN.match(d) and luhn_ok(d) \
                and not (len(d) == 18 and _ID18_RE.fullmatch(d)) \
                and not (len(d) == 19 and d == m.group() and _ORDER_CUE_NEAR.search(norm[max(0, m.start() - 12):m.start()])
                         and not _CARD_CUE_NEAR.search(norm[max(0, m.start() - 12):m.start()])):
            # a bare 19-digit run a few characters after 订单/order (and no card word) is a
            # Taobao order id that happens to pass Luhn (one in ten do)
            hits.append(Detection("CARD", m.start(), m.end(), d))
    return hits


# --- order, tracking and account numbers -------------------------------------------------------
_SEP_WORD = r"\s?(?:#|no\.?|number|id)?\s?(?:是|为|:|#|is|was|=)?\s?(?:是|为|:|#)?\s?"
_ORDER_CUE = (r"订单编号|订单号码?|订单|单据号|交易号|流水号|"
              r"order\s?(?:number|no\.?|num|id|#|ref(?:erence)?)?|purchase\s?(?:number|id|#)?"
              r"|invoice\s?(?:number|no\.?|#)|reference\s?(?:number|no\.?|#)|ref\.?\s?#?"
              r"|orders|(?<![A-Za-z])PO(?!\s?box)\s?(?:number|no\.?|#)?|purchase order|ticket\s?(?:number|no\.?|#|id)?"
              r"|case\s?(?:number|no\.?|#|id)|RMA\s?(?:number|no\.?|#)?|delivery note|receipt\s?(?:number|no\.?|#)"
              r"|number on the receipt|confirmation\s?(?:number|no\.?|#|code)|booking\s?(?:number|no\.?|ref|reference)")
_ORDER_RE = re.compile(
    rf"(?:{_ORDER_CUE}){_SEP_WORD}(?P<v>#?(?:[A-Za-z]{{1,4}}-){{0,3}}[A-Za-z]{{0,4}}[\-]?[0-9][0-9A-Za-z\-]{{3,30}}[0-9A-Za-z])"
    r"(?![0-9A-Za-z\-])", re.IGNORECASE)
_DATE_LIKE = re.compile(r"(?:19|20)[0-9]{2}[\-/.]?[01]?[0-9][\-/.]?[0-3]?[0-9]")
# Context-free: JD order ids are 10-12 digits (never starting with 0 or "1[3-9]" - those are
# phones, caught first), Taobao ids 19 digits. Other lengths stay unmasked: the residue check
# then fails the message closed.
_BARE_ORDER_RE = re.compile(
    r"(?<![0-9A-Za-z\-.])(?:[1-9][0-9]{9,11}|[1-9][0-9]{18}|[0-9]{3}-[0-9]{7}-[0-9]{7})"  # ... Amazon's
    r"(?![0-9A-Za-z\-]|\.[0-9])")

_TRACK_CUE = (rf"(?:{_alt(lx.CARRIERS)})\s?(?:快递|物流|速运|快运)?\s?(?:运单号?|单号|号码)?"
              r"|运单号?码?|快递单号?|物流单号?|快递(?=[A-Z]{0,4}[0-9]{10})|(?<!订)单号|tracking\s?(?:number|no\.?|num|id|#|code)?"
              r"|waybill\s?(?:number|no\.?|#)?|shipment\s?(?:number|id|#)")
_TRACK_CTX_RE = re.compile(
    rf"(?:{_TRACK_CUE}){_SEP_WORD}(?P<v>[A-Za-z]{{0,4}}[0-9](?:[0-9A-Za-z]| (?=[0-9])){{6,30}}[0-9A-Za-z])"
    r"(?![0-9A-Za-z])", re.IGNORECASE)
_TRACK_BARE_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:SF[0-9]{12,13}|YT[0-9]{13}|JD[A-Z]{0,2}[0-9]{11,13}|ZTO[0-9]{10,14}"
    r"|1Z[0-9A-Z]{16}|[A-Z]{2}[0-9]{9}[A-Z]{2}|9[2-5][0-9]{2}(?: ?[0-9]{4}){4}(?: ?[0-9]{2}))"
    r"(?![0-9A-Za-z])")

_ACCOUNT_RE = re.compile(
    r"(?:QQ号?|qq号?|微信号?|wechat(?:\sid)?|vx|VX|wx|旺旺号?|支付宝账?号?|账号|帐号|用户名|用户ID|会员卡号|会员号"
    r"|account\s?(?:number|no\.?|id|#)?|user\s?(?:name|id)|username|member\s?(?:id|number|card)"
    r"|customer\s?(?:id|number|no\.?|#)|loyalty\s?(?:id|number|card)|venmo|cash\s?app|paypal\.me/)"
    rf"{_SEP_WORD}(?P<v>@?(?=[A-Za-z0-9_\-.]*[0-9])[A-Za-z0-9][A-Za-z0-9_\-]{{1,29}}(?:\.[A-Za-z0-9_\-]+)*)(?![A-Za-z0-9_\-@])",
    re.IGNORECASE)


def _id_key(v: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", v).upper()


_ORDER_LOOSE_RE = re.compile(  # "my order, the number is 4471092", "ordered twice (#100482 and #100483)"
    r"(?:(?<![A-Za-z])order(?:ed|s)?\b[^.。!?\n]{0,40}?\b(?:number|no\.?|id)\s?(?:is|was|:|=)?\s?"
    r"(?P<v>#?[0-9][0-9\-]{4,24}[0-9]))(?![0-9A-Za-z])", re.IGNORECASE)
_HASH_NUM_RE = re.compile(r"(?<![0-9A-Za-z&])#(?P<v>[0-9]{5,12})(?![0-9A-Za-z])")


def detect_orders(norm: str) -> list[Detection]:
    hits = []
    for m in _ORDER_LOOSE_RE.finditer(norm):
        hits.append(Detection("ORDER", m.start("v"), m.end("v"), _id_key(m.group("v"))))
    if _ORDER_CUE_NEAR.search(norm):
        hits += [Detection("ORDER", m.start(), m.end(), m.group("v")) for m in _HASH_NUM_RE.finditer(norm)]
        # 13-19 digits in a message about orders (这两单帮我合并发货 2024031988001234 和 …), unless
        # the ID or card detector claims them (orders run first, so they must leave those alone)
        runs = list(_LONG_RUN_RE.finditer(norm))
        if runs:
            others = [(h.start, h.end) for h in detect_ids(norm) + detect_cards(norm)]
            hits += [Detection("ORDER", m.start(), m.end(), m.group()) for m in runs
                     if not any(s < m.end() and m.start() < e for s, e in others)]
    for m in _ORDER_RE.finditer(norm):
        v = m.group("v")
        if len(digits(v)) < 5 or _DATE_LIKE.fullmatch(v.lstrip("#")):  # "order #SO-58213": 5 digits
            continue
        hits.append(Detection("ORDER", m.start("v"), m.end("v"), _id_key(v)))
        end = m.end()  # the next orders of a list of the same shape: "orders TW88102 and TW88117"
        while (more := _SKU_MORE_RE.match(norm, end)) and _shape(more.group("v")) == _shape(v.lstrip("#")):
            hits.append(Detection("ORDER", more.start("v"), more.end("v"), _id_key(more.group("v"))))
            end = more.end()
    return hits


def detect_bare_orders(norm: str) -> list[Detection]:
    return [Detection("ORDER", m.start(), m.end(), m.group()) for m in _BARE_ORDER_RE.finditer(norm)]


_ORDER_CUE_BEFORE = re.compile(r"(?:订单编号|订单号码?|订单|order\s?(?:number|no\.?|num|id|#)?)\s?[:#是为]?\s?$",
                               re.IGNORECASE)
_ORDER_CUE_NEAR = re.compile(r"订单|[两几这那该此每]单|合并发货|拆单|(?<![A-Za-z])order(?:s|ed)?(?![A-Za-z])", re.IGNORECASE)
_LONG_RUN_RE = re.compile(r"(?<![0-9A-Za-z\-.])[1-9][0-9]{12,18}(?![0-9A-Za-z\-])")
_CARD_CUE_NEAR = re.compile(r"卡|card|visa|master|借记|信用|银行|bank", re.IGNORECASE)
# A bare 单号 (not 运单号/快递单号/carrier + 单号) before 16-19 digits: a Taobao-style order id -
# carriers' waybills are 10-15 digits, or letters + digits.
_PLAIN_DANHAO = re.compile(r"^(?<!订)单号")


def detect_tracking(norm: str) -> list[Detection]:
    hits = [Detection("TRACKING", m.start(), m.end(), _id_key(m.group()))
            for m in _TRACK_BARE_RE.finditer(norm)
            if not _ORDER_CUE_BEFORE.search(norm[max(0, m.start() - 16):m.start()])]  # 订单号JD…
    for m in _TRACK_CTX_RE.finditer(norm):
        v = m.group("v").rstrip()
        if len(digits(v)) >= 8 and not _DATE_LIKE.fullmatch(v):
            type_ = "TRACKING"
            if v.isdigit() and len(v) >= 16 and m.group().startswith("单号") \
                    and not (m.start() and norm[m.start() - 1] in "运递流"):
                type_ = "ORDER"
            hits.append(Detection(type_, m.start("v"), m.start("v") + len(v), _id_key(v)))
    return hits


# a handle or shop nickname after its own cue: no digit needed, Han allowed ("昵称是 小鄢爱吃鱼")
_HANDLE_CUE = (r"(?:handle|login(?:\s?(?:name|id))?|insta(?:gram)?|tiktok|discord|gamertag|psn(?:\sid)?|steam(?:\sid)?"
               r"|snap(?:chat)?|telegram|昵称|淘宝名|淘宝昵称|淘宝账号|淘宝帐号|淘宝号|旺旺名|京东账号|抖音号?|快手号?|小红书号?"
               r"|会员名|微博|直播间ID|直播间id)")
_HANDLE_RE = re.compile(
    rf"{_HANDLE_CUE}\s?(?:is|was|:|是|为|叫)?\s?(?P<v>@?[A-Za-z0-9_][A-Za-z0-9_.\-]{{2,29}}(?<![.\-]))(?![A-Za-z0-9_\-@\u4e00-\u9fff])"
    rf"|{_HANDLE_CUE}(?:\s?(?:是|为|叫|:)\s?|(?=[\u4e00-\u9fffA-Za-z_]*[0-9]))(?P<h>[\u4e00-\u9fffA-Za-z0-9_]{{2,12}})"
    r"(?![A-Za-z0-9_\-@])", re.IGNORECASE)  # no separator: "淘宝号jojo小铺2019" (with a digit)
_HANDLE_NOT = frozenset({"is", "was", "the", "and", "name", "page", "account", "here", "please"})


# "@handle" on social media (not an e-mail: nothing word-like right before the @)
_AT_HANDLE_RE = re.compile(r"(?<![A-Za-z0-9._%+\-@])@(?P<v>[A-Za-z0-9_][A-Za-z0-9_.]{1,29}(?<!\.)|[\u4e00-\u9fffA-Za-z0-9_]{2,20})")


_IBAN_RE = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}[0-9]{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?(?![0-9A-Za-z])")
# a bank account written in groups, within a few words after its cue: "开户行及账号：中国银行… 5702 6581 3324"
_BANK_ACCOUNT_RE = re.compile(
    r"(?:账号|帐号|账户|(?<![A-Za-z])account(?:\s?(?:number|no\.?|#))?)[^\n0-9]{0,24}?"
    r"(?P<v>[0-9]{3,6}(?:[ \-][0-9]{3,6}){2,5})(?![0-9])", re.IGNORECASE)


def iban_ok(v: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, letters as numbers, mod 97 == 1."""
    v = v.replace(" ", "")
    n = "".join(str(int(c, 36)) for c in v[4:] + v[:4])
    return 15 <= len(v) <= 34 and int(n) % 97 == 1


def detect_accounts(norm: str) -> list[Detection]:
    hits = [Detection("ACCOUNT", m.start(), m.end(), _id_key(m.group()))
            for m in _IBAN_RE.finditer(norm) if iban_ok(m.group())]
    hits += [Detection("ACCOUNT", m.start("v"), m.end("v"), digits(m.group("v")))
             for m in _BANK_ACCOUNT_RE.finditer(norm)]
    hits += [Detection("ACCOUNT", m.start("v"), m.end("v"), m.group("v"))
             for m in _ACCOUNT_RE.finditer(norm)]
    hits += [Detection("ACCOUNT", m.start(), m.end(), m.group("v")) for m in _AT_HANDLE_RE.finditer(norm)]
    for m in _HANDLE_RE.finditer(norm):
        g = "v" if m.group("v") else "h"
        if m.group(g).lower() not in _HANDLE_NOT:
            hits.append(Detection("ACCOUNT", m.start(g), m.end(g), m.group(g)))
    return hits


# --- addresses ---------------------------------------------------------------------------------
_AHAN = rf"(?:(?![{re.escape(lx.ZH_ADDRESS_STOP)}])[{_HAN}])"
_ADMIN = r"(?:省|自治区|特别行政区|市|自治州|州|盟|地区|区|县|旗)"
_PLACE_PART = (rf"(?:{_AHAN}{{0,7}}?(?:{_ADMIN}|街道|镇|乡|村|社区|路|街|大道|大街|巷|弄|胡同|里|小区"
               r"|花园|公寓|大厦|广场|新村|家园|苑|园|城|中心|科技园|工业园|校区|学部|大学|学院|宿舍)"
               r"|[A-Z]{2,8}(?=[\u4e00-\u9fff]))")  # SOHO现代城
_NUM_PART = (r"(?:[A-Za-z]?[0-9]{1,5}(?:-[0-9]{1,5})*\s?(?:号楼|号院|号舍|号|栋|幢|座|单元|层|楼|室|户|弄|门|巷|舍|斋)"
             r"|[东西南北中一二三四五六七八九十]单元|[一二三四五六七八九十]{1,3}(?:号楼|栋|幢|舍)"
             r"|[A-Za-z]?[0-9]{1,5}(?![0-9]))")
_ZH_ADDR_BODY = rf"(?:{_PLACE_PART}|{_NUM_PART}|[-#])+"
_ZH_ADDR_PLACE_RE = re.compile(rf"(?:{_alt(lx.ZH_PLACES)}){_ADMIN}?{_ZH_ADDR_BODY}")
_ZH_ADDR_CUE_RE = re.compile(
    rf"(?:{_alt(lx.ZH_ADDRESS_CUES)})\s?(?:[:是为在]|改成|改为|换成)?\s?(?P<v>{_ZH_ADDR_BODY})")
_ZH_ADDR_STRONG = re.compile(rf"{_ADMIN}|街道|镇|乡|村|路|街|大道|巷|弄|胡同|小区|[0-9]\s?(?:号|栋|幢|室|单元|舍)")
# No province/city and no cue: an estate, campus or street followed by its building number - how a
# customer writes the part below the district ("玉兰苑6号楼2单元301", "建设路88号3楼305", "…校区…6舍402").
_ZH_BUILDING = (r"(?:[A-Za-z]?[0-9]{1,4}\s?(?:号楼|号院|号舍|栋|幢|座|舍|斋)|[A-Za-z][座栋]"
                r"|[一二三四五六七八九十]{1,3}(?:号楼|栋|幢|舍))")  # 三栋; not 三座 (a three-seat sofa)
_ZH_ESTATE_SUFFIX = re.compile(
    r"(?:苑|园|区|府|城|邸|居|庭|湾|墅|轩|阁|村|里|坊|院|小区|花园|公寓|大厦|广场|新村|家园|中心|宿舍|公馆"
    r"|国际|期|校区|学部|大学|学院|号)$")
_ZH_ESTATE_RE = re.compile(
    rf"(?P<pre>{_AHAN}{{0,14}}?(?:[A-Z]{{2,8}}{_AHAN}{{0,6}})?(?:[0-9]{{1,5}}号)?)(?P<b>{_ZH_BUILDING})"
    rf"(?P<rest>{_ZH_ADDR_BODY})?")
_ZH_STREET_RE = re.compile(
    rf"(?P<pre>{_AHAN}{{1,6}}?(?:路|街|大道|大街|巷|弄|胡同|道))[0-9]{{1,5}}(?:-[0-9]{{1,5}})?号(?:{_ZH_ADDR_BODY})?")
_LEAD_VERB = re.compile(r"^(?:(?:就是|直接|帮我|麻烦)?(?:放到|放在|送到|寄到|发到|放|到|发|来|去|住|是))+")

_EN_STREET = rf"(?:{_alt(lx.EN_STREET_TYPES)}|(?:{_alt(lx.EN_STREET_ABBREVIATIONS)})\.?)"
_EN_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|Floor|Fl|#)\.?\s?#?[0-9A-Za-z][0-9A-Za-z\-/]{0,5}"
_EN_CAP = r"[A-Z][A-Za-z\u00C0-\u00FF'\-]+"
_EN_POSTCODE = (r"(?:[0-9]{5}(?:-[0-9]{4})?|[0-9]{4}|[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][A-Z]{2}"  # US, AU, UK
                r"|[A-Z][0-9][A-Z]\s?[0-9][A-Z][0-9]|[A-Z][0-9]{2}\s?[A-Z0-9]{4})(?![0-9A-Za-z])")  # CA, IE
# after the street: unit, city, state/province, postcode - each optional, in that order
_EN_CITY = r"[A-Z][a-z\u00E0-\u00FF'\-][A-Za-z\u00C0-\u00FF'\-]*(?![0-9])"  # never a postcode's letters
_EN_TAIL = (rf"(?:,?\s{_EN_UNIT})?(?:,\s?{_EN_CITY}(?:\s{_EN_CITY}){{0,2}})?(?:,?\s[A-Z]{{2,3}}(?![A-Za-z0-9]))?"
            rf"(?:,?\s{_EN_POSTCODE})?(?:,\s[0-9]{{4,5}}\s{_EN_CAP})?")
_EN_NUMBER = r"(?:(?:{u}),?\s)?#?[0-9]{{1,5}}[A-Za-z]?(?:[/\-][0-9]{{1,5}}[A-Za-z]?)?".format(u=_EN_UNIT)
_EN_ADDR_RE = re.compile(
    rf"(?<![0-9A-Za-z])(?:{_EN_NUMBER}\s(?:(?:[A-Z]\.?|{_EN_CAP}|[0-9]{{1,3}}(?:st|nd|rd|th))\s){{1,4}}{_EN_STREET}"
    rf"(?:\s(?:N|S|E|W|NE|NW|SE|SW))?(?![A-Za-z])"
    rf"|(?:P\.?\s?O\.?\s?Box|Post Office Box|RR|Rural Route)\s?#?[0-9]{{1,6}}(?:,\s?(?:Site|Box|Comp|Stn)\s[0-9A-Za-z]{{1,6}})*"
    rf"|[0-9]{{1,5}},?\s(?:Rue|Via|Viale|Calle|Avenida|Rua|Chemin|Piazza|Boulevard)\s(?:[a-z]{{1,3}}\s){{0,2}}{_EN_CAP}(?:[\s\-]{_EN_CAP}){{0,3}}"
    rf"|[A-Z][a-zäöüß]+(?:straße|strasse|str\.|allee|weg|platz|gasse|ring|damm|ufer)\s[0-9]{{1,4}}[a-z]?)"
    rf"{_EN_TAIL}")
# all lower case ("55 pine st apt 2, burlington vt 05401"): only with a city, a state and a ZIP
_EN_ADDR_LOWER_RE = re.compile(
    rf"(?<![0-9A-Za-z])[0-9]{{1,5}}\s(?:[a-z]+\s){{1,3}}(?:{_alt([w.lower() for w in lx.EN_STREET_TYPES + lx.EN_STREET_ABBREVIATIONS])})"
    r"(?:,?\s(?:apt|unit|suite|#)\.?\s?[0-9a-z]{1,5})?,?\s[a-z]+(?:\s[a-z]+)?,?\s[a-z]{2}\s[0-9]{5}(?![0-9])")


def detect_zh_addresses(norm: str) -> list[Detection]:
    hits = []
    for m in _ZH_ADDR_PLACE_RE.finditer(norm):
        if m.end() - m.start() >= 5 and len(_ZH_ADDR_STRONG.findall(m.group())) >= 2:
            hits.append(Detection("ADDRESS", m.start(), m.end(), m.group()))
    for m in _ZH_ADDR_CUE_RE.finditer(norm):
        v = m.group("v")
        if len(v) >= 4 and len(_ZH_ADDR_STRONG.findall(v)) >= 2:
            hits.append(Detection("ADDRESS", m.start("v"), m.end("v"), v))
    for m in _ZH_ESTATE_RE.finditer(norm):
        pre = m.group("pre")
        lead = _LEAD_VERB.match(pre)
        cut = lead.end() if lead else 0
        pre = pre[cut:]
        numbered = len(re.findall(r"[0-9]+\s?(?:号楼|号院|号舍|号|栋|幢|座|单元|层|楼|室|舍|斋)|[0-9]{3,4}$"
                                  r"|[东西南北中一二三四五六七八九十]{1,3}(?:单元|号楼|栋|幢|舍)",
                                  m.group()[cut:]))
        # an estate word before the building, or building + unit/floor/room after it
        if (len(pre) >= 2 and _ZH_ESTATE_SUFFIX.search(re.sub(r"[0-9]+号$", "号", pre))) or numbered >= 2:
            hits.append(Detection("ADDRESS", m.start() + cut, m.end(), m.group()[cut:]))
    for m in _ZH_STREET_RE.finditer(norm):
        lead = _LEAD_VERB.match(m.group("pre"))
        cut = lead.end() if lead else 0
        if m.end("pre") - m.start() - cut >= 2:
            hits.append(Detection("ADDRESS", m.start() + cut, m.end(), m.group()[cut:]))
    return hits


def detect_en_addresses(norm: str) -> list[Detection]:
    return [Detection("ADDRESS", m.start(), m.end(), m.group())
            for rx in (_EN_ADDR_RE, _EN_ADDR_LOWER_RE) for m in rx.finditer(norm)]


# --- values that look personal but are not: kept (they occupy their span, nothing masks them) ----
_HOTLINE_RE = re.compile(
    r"(?<![0-9])(?:[48]00[ \-]?[0-9]{3}[ \-]?[0-9]{4}|080[08][ \-]?[0-9]{3}[ \-]?[0-9]{4}|\+?1[ \-.]\(?8(?:00|33|44|55|66|77|88)\)?"
    r"[ \-.][0-9]{3}[ \-.][0-9]{4})(?![0-9])")  # 1-800-... needs its 1: a bare (833) may be a person's
_SKU_RE = re.compile(
    r"(?:SKU|sku|商品编号|商品编码|商品ID|货号|款号|型号|model(?:\s?(?:#|no\.?|number))?|style\s?(?:#|no\.?)"
    r"|item\s?(?:#|no\.?|number)|product\s?(?:id|#|code)"
    r"|条码|条形码|barcode|EAN|UPC|优惠码|优惠券码|券码|兑换码|promo\s?code|coupon\s?code|discount\s?code)"
    rf"{_SEP_WORD}(?P<v>[A-Za-z0-9][A-Za-z0-9\-]{{3,29}}|[A-Za-z][0-9]{{1,3}}\s[A-Z][A-Za-z0-9+]{{1,10}})(?![A-Za-z0-9\-])",
    re.IGNORECASE)  # S7 MaxV: a model name in two parts
# the next codes of a list after one cue: "商品编号 100045678901 和 100045678902", "SKU 123, 456 or 789"
_SKU_MORE_RE = re.compile(r"\s?(?:这个|那个|这款|那款)?\s?(?:和|与|跟|或|还有|、|,|/|and|or|vs\.?)\s?(?P<v>[A-Za-z0-9][A-Za-z0-9\-]{3,29})(?![A-Za-z0-9\-])",
                          re.IGNORECASE)


def _shape(code: str) -> str:
    return re.sub(r"[A-Za-z]", "a", re.sub(r"[0-9]", "9", code))


def detect_kept(norm: str) -> list[Detection]:
    """Shop hotlines (400/800, US toll-free), SKUs, barcodes and promo codes after their cue."""
    hits = [Detection("KEEP", m.start(), m.end(), "") for m in _HOTLINE_RE.finditer(norm)]
    for m in _SKU_RE.finditer(norm):
        hits.append(Detection("KEEP", m.start("v"), m.end("v"), ""))
        end = m.end()
        # only codes of the first one's shape (a phone number after "and" is not a SKU)
        while (more := _SKU_MORE_RE.match(norm, end)) and _shape(more.group("v")) == _shape(m.group("v")):
            hits.append(Detection("KEEP", more.start("v"), more.end("v"), ""))
            end = more.end()
    return hits


# Priority order (earlier wins an overlap). Names, not functions, so a test can monkeypatch one.
DETECTORS: tuple[str, ...] = (
    "detect_kept", "detect_urls", "detect_emails", "detect_tracking", "detect_orders", "detect_ids",
    "detect_cards", "detect_accounts", "detect_phones", "detect_bare_orders",
    "detect_zh_addresses", "detect_en_addresses", "detect_zh_names", "detect_en_names",
    "detect_zh_names_model", "detect_names_tagger",
)
