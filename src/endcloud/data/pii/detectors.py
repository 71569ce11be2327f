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
import unicodedata
from typing import Callable, NamedTuple

from endcloud.data.pii import lexicon as lx


class Detection(NamedTuple):
    type: str
    start: int
    end: int
    key: str


Detector = Callable[[str], list[Detection]]


def _build_normaliser() -> dict[int, int]:
    table = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII block
    table[0x3000] = 0x20                                     # ideographic space
    table[0x3002] = ord(".")                                 # 。
    for cp in range(0x80, 0x20000):  # every decimal digit (Nd) lives below U+20000
        ch = chr(cp)
        if cp > 0x7F and ch.isdecimal():
            table[cp] = ord("0") + unicodedata.decimal(ch)
    return table


_NORMALISER = _build_normaliser()


def normalise(text: str) -> str:
    """Map full-width forms and every script's digits onto ASCII, one char for one char."""
    return text.translate(_NORMALISER)


def digits(s: str) -> str:
    return re.sub(r"[^0-9]", "", s)


def _alt(words: tuple[str, ...] | list[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


# --- phones ------------------------------------------------------------------------------------
_SEP = r"[ \t\-.]?"
_CN_PREFIX = r"(?:(?:\+|00)\s?86[ \-]?|\(\s?\+?\s?86\s?\)\s?)"
_EXT = r"(?:\s?(?:转|分机|ext\.?|x|#)\s?[0-9]{1,6})?"
_MOBILE = rf"{_CN_PREFIX}?1[3-9][0-9]{_SEP}[0-9]{{4}}{_SEP}[0-9]{{4}}"
_LANDLINE = (rf"(?:{_CN_PREFIX}\(?0?[1-9][0-9]{{1,2}}\)?|\(0[1-9][0-9]{{1,2}}\)|0[1-9][0-9]{{1,2}})"
             rf"[ \-]?[0-9]{{3,4}}[ \-]?[0-9]{{4}}{_EXT}")
_INTL = (r"(?:\+|00)(?!86)[1-9][0-9]{0,2}[ \-]?(?:\([0-9]{1,4}\)[ \-]?)?[0-9]{1,4}"
         r"(?:[ \-][0-9]{2,8}){1,4}|(?:\+|00)(?!86)[1-9][0-9]{7,13}")
_NANP = r"(?:\+?1[ \-.])?(?:\([2-9][0-9]{2}\)\s?|[2-9][0-9]{2}[\-. ])[2-9][0-9]{2}[\-. ][0-9]{4}"
_UK_MOBILE = r"07[0-9]{3}[ \-]?[0-9]{3}[ \-]?[0-9]{3}"
_PHONE_RE = re.compile(
    rf"(?<![0-9A-Za-z+])(?:{_MOBILE}|{_UK_MOBILE}|{_LANDLINE}|{_INTL}{_EXT}|{_NANP}{_EXT})(?![0-9])")


def detect_phones(norm: str) -> list[Detection]:
    hits = []
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


def detect_emails(norm: str) -> list[Detection]:
    return [Detection("EMAIL", m.start(), m.end(), re.sub(r"\s", "", m.group()).lower())
            for m in _EMAIL_RE.finditer(norm)]


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
    return hits


_CARD_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9]{4}(?:[ \-][0-9]{4}){3}(?:[ \-][0-9]{1,3})?"
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
        if 16 <= len(d) <= 19 and _CARD_IIN.match(d) and luhn_ok(d) \
                and not (len(d) == 18 and _ID18_RE.fullmatch(d)):
            hits.append(Detection("CARD", m.start(), m.end(), d))
    return hits


# --- order, tracking and account numbers -------------------------------------------------------
_SEP_WORD = r"\s?(?:#|no\.?|number|id)?\s?(?:是|为|:|#|is|was|=)?\s?(?:是|为|:|#)?\s?"
_ORDER_CUE = (r"订单编号|订单号码?|订单|单据号|交易号|流水号|"
              r"order\s?(?:number|no\.?|num|id|#|ref(?:erence)?)?|purchase\s?(?:number|id|#)?"
              r"|invoice\s?(?:number|no\.?|#)|reference\s?(?:number|no\.?|#)|ref\.?\s?#?")
_ORDER_RE = re.compile(
    rf"(?:{_ORDER_CUE}){_SEP_WORD}(?P<v>#?[A-Za-z]{{0,4}}[\-]?[0-9][0-9A-Za-z\-]{{3,30}}[0-9A-Za-z])"
    r"(?![0-9A-Za-z\-])", re.IGNORECASE)
_DATE_LIKE = re.compile(r"(?:19|20)[0-9]{2}[\-/.]?[01]?[0-9][\-/.]?[0-3]?[0-9]")
# Context-free: JD order ids are 10-12 digits (never starting with 0 or "1[3-9]" - those are
# phones, caught first), Taobao ids 19 digits. Other lengths stay unmasked: the residue check
# then fails the message closed.
_BARE_ORDER_RE = re.compile(
    r"(?<![0-9A-Za-z\-.])(?:[1-9][0-9]{9,11}|[1-9][0-9]{18})(?![0-9A-Za-z\-]|\.[0-9])")

_TRACK_CUE = (rf"(?:{_alt(lx.CARRIERS)})\s?(?:快递|物流|速运|快运)?\s?(?:运单号?|单号|号码)?"
              r"|运单号?码?|快递单号?|物流单号?|(?<!订)单号|tracking\s?(?:number|no\.?|num|id|#|code)?"
              r"|waybill\s?(?:number|no\.?|#)?|shipment\s?(?:number|id|#)")
_TRACK_CTX_RE = re.compile(
    rf"(?:{_TRACK_CUE}){_SEP_WORD}(?P<v>[A-Za-z]{{0,4}}[0-9](?:[0-9A-Za-z]| (?=[0-9])){{6,30}}[0-9A-Za-z])"
    r"(?![0-9A-Za-z])", re.IGNORECASE)
_TRACK_BARE_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:SF[0-9]{12,13}|YT[0-9]{13}|JD[A-Z]{0,2}[0-9]{11,13}|ZTO[0-9]{10,14}"
    r"|1Z[0-9A-Z]{16}|[A-Z]{2}[0-9]{9}[A-Z]{2}|9[2-5][0-9]{2}(?: ?[0-9]{4}){4}(?: ?[0-9]{2}))"
    r"(?![0-9A-Za-z])")

_ACCOUNT_RE = re.compile(
    r"(?:QQ号?|qq号?|微信号?|wechat(?:\sid)?|vx|VX|wx|旺旺号?|支付宝账?号?|账号|帐号|用户名|用户ID|会员号"
    r"|account\s?(?:number|no\.?|id|#)?|user\s?(?:name|id)|username|member\s?(?:id|number))"
    rf"{_SEP_WORD}(?P<v>(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9][A-Za-z0-9_\-]{{4,29}})(?![A-Za-z0-9_\-@])",
    re.IGNORECASE)


def _id_key(v: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", v).upper()


def detect_orders(norm: str) -> list[Detection]:
    hits = []
    for m in _ORDER_RE.finditer(norm):
        v = m.group("v")
        if len(digits(v)) < 5 or _DATE_LIKE.fullmatch(v.lstrip("#")):  # "order #SO-58213": 5 digits
            continue
        hits.append(Detection("ORDER", m.start("v"), m.end("v"), _id_key(v)))
    return hits


def detect_bare_orders(norm: str) -> list[Detection]:
    return [Detection("ORDER", m.start(), m.end(), m.group()) for m in _BARE_ORDER_RE.finditer(norm)]


def detect_tracking(norm: str) -> list[Detection]:
    hits = [Detection("TRACKING", m.start(), m.end(), _id_key(m.group()))
            for m in _TRACK_BARE_RE.finditer(norm)]
    for m in _TRACK_CTX_RE.finditer(norm):
        v = m.group("v").rstrip()
        if len(digits(v)) >= 8 and not _DATE_LIKE.fullmatch(v):
            hits.append(Detection("TRACKING", m.start("v"), m.start("v") + len(v), _id_key(v)))
    return hits


def detect_accounts(norm: str) -> list[Detection]:
    return [Detection("ACCOUNT", m.start("v"), m.end("v"), m.group("v"))
            for m in _ACCOUNT_RE.finditer(norm)]


# --- names -------------------------------------------------------------------------------------
_HAN = r"\u4e00-\u9fff"
_GIVEN = rf"(?:(?![{lx.ZH_NAME_STOP}])[{_HAN}])"
_SURNAME = rf"(?:{_alt(lx.ZH_SURNAMES_2)}|[{lx.ZH_SURNAMES_1}])"
_ZH_NAME_PREFIX_RE = re.compile(
    rf"(?:{_alt(lx.ZH_NAME_PREFIX_CUES)})\s?(?:改成|改为|换成|写)?\s?[:是为]?\s?(?P<v>{_SURNAME}{_GIVEN}{{1,2}})")
# A bare name right before a mobile number ("张伟，13800138000") - how shipping details are pasted.
_ZH_NAME_BEFORE_PHONE_RE = re.compile(
    rf"(?:^|(?<=[\s,:;/|]))(?P<v>{_SURNAME}{_GIVEN}{{1,2}})(?=[\s,:;]*(?:\+?86)?\s?1[3-9][0-9])")
_ZH_NAME_SUFFIX_RE = re.compile(rf"(?P<v>{_SURNAME}{_GIVEN}{{0,2}}?)(?:{_alt(lx.ZH_NAME_SUFFIX_CUES)})")
_EN_WORD = r"(?:[A-Z]['’])?[A-Z\u00C0-\u00DE][a-z\u00DF-\u00FF]+(?:['\-][A-Z]?[a-z\u00DF-\u00FF]+)?"  # O'Connor, José
_EN_NAME_RE = re.compile(
    rf"(?<![A-Za-z])(?P<cue>(?i:{'|'.join(lx.EN_NAME_CUES)}))(?:(?<=[.,:])[ \t]*|[ \t]+|[ \t]*\n[ \t]*)"
    rf"(?:{lx.EN_HONORIFICS}[ \t]+)?"
    rf"(?P<v>{_EN_WORD}(?:[ \t](?:[A-Z]\.[ \t])?{_EN_WORD}){{0,2}})(?![A-Za-z])")


_SUFFIX_CUE_TAIL = re.compile(rf"(?<=.)(?:(?:{_alt(lx.ZH_NAME_SUFFIX_CUES)}).*|[先女小])$")
_NAME_SHAPE = re.compile(rf"{_SURNAME}{_GIVEN}{{0,2}}")


def _in_not_name(norm: str, start: int, end: int) -> bool:
    """True when the candidate is part of a known non-name word ("谢谢先生" is not 谢)."""
    window = norm[max(0, start - 3):end + 1]
    return any(w in window for w in lx.ZH_NOT_NAMES)


def detect_zh_names(norm: str) -> list[Detection]:
    hits = []
    for m in _ZH_NAME_PREFIX_RE.finditer(norm):
        v = _SUFFIX_CUE_TAIL.sub("", m.group("v"))  # "收货人:叶先生" -> 叶
        if v not in lx.ZH_NOT_NAMES and v[:2] not in lx.ZH_NOT_NAMES:
            hits.append(Detection("NAME", m.start("v"), m.start("v") + len(v), v))
    for m in _ZH_NAME_BEFORE_PHONE_RE.finditer(norm):
        if not _in_not_name(norm, m.start("v"), m.end("v")):
            hits.append(Detection("NAME", m.start("v"), m.end("v"), m.group("v")))
    for cue_m in _ZH_NAME_SUFFIX_RE.finditer(norm):
        # The regex finds the leftmost surname; prefer the longest plausible name ending at the
        # cue, e.g. "王小明先生" -> 王小明, "联系张先生" -> 张.
        end = cue_m.end("v")
        for start in range(max(0, end - 4), end):
            v = norm[start:end]
            if _NAME_SHAPE.fullmatch(v) and not _in_not_name(norm, start, end):
                hits.append(Detection("NAME", start, end, v))
                break
    return hits


_CJK_RE = re.compile(rf"[{_HAN}]")
_NAME_TAGS = {"nr", "nrfg", "nrt"}


def _tagger():
    """jieba's part-of-speech tagger, loaded once (its ~20 MB dictionary ships in the package)."""
    global _POSSEG
    if _POSSEG is None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _POSSEG = jieba.posseg
    return _POSSEG


_POSSEG = None
_SURNAME_1 = set(lx.ZH_SURNAMES_1)
_NAME_STOP_SET = set(lx.ZH_NAME_STOP)
_COMMON_FREQ = 40  # jieba dictionary count: 李建国 9, 王建国 12; 荣幸 148, 顾客 1,365
_NAME_CUE_BEFORE = re.compile(
    r"(?:叫|是|转告|告诉|让|找|给|交给|收件人|收货人|联系人|名字|姓名|写|签收人|寄件人|改成|改为|换成|[:：])\s?$")


def _FREQ() -> dict[str, int]:
    import jieba

    _tagger()
    return jieba.dt.FREQ


def detect_zh_names_model(norm: str) -> list[Detection]:
    """Person names jieba tags `nr` (in any context, no cue needed), kept when they start with a
    known surname (a compound one may be its own token: 欧阳 + 娜娜) and are not a brand that
    looks like a name (李宁, 王老吉: `lexicon.ZH_NAME_BRANDS`) or a role word. An import or
    tagging failure raises, and the masker fails closed."""
    if not _CJK_RE.search(norm):
        return []
    hits = []
    pos = 0
    prev: tuple[str, int] | None = None  # the previous token and where it started
    for word, flag in _tagger().cut(norm, HMM=True):
        start, end = pos, pos + len(word)
        pos = end
        if flag in _NAME_TAGS:
            if prev and prev[0] in lx.ZH_SURNAMES_2 and start == prev[1] + len(prev[0]) \
                    and 1 <= len(word) <= 2:
                start, word = prev[1], prev[0] + word  # 欧阳 | 娜娜
            # jieba's dictionary tags many common words nr (荣幸, 顾客, 阳光): a word it has seen
            # often is a name only after a cue (我是李娜, 让高峰来取); a rare or unseen one always
            freq = _FREQ().get(word) or 0
            cued = bool(_NAME_CUE_BEFORE.search(norm[max(0, start - 4):start]))
            compound = word[:2] in lx.ZH_SURNAMES_2
            ok = (2 <= len(word) <= (4 if compound else 3) and (compound or word[0] in _SURNAME_1)
                  and word[-1] not in "镇村屯县乡区市省路街"  # 柳塔镇, 马家屯: places
                  and not (start and norm[start - 1] in "这那一几每哪两该此")  # 这张卡付: a measure word
                  and (freq < _COMMON_FREQ or cued)
                  and not any(ch in _NAME_STOP_SET for ch in word[1:])  # 祝您, 谢谢您
                  and word not in lx.ZH_NAME_BRANDS and word not in lx.ZH_NAME_ROLES
                  and word not in lx.ZH_NOT_NAMES and not any(word.startswith(b) for b in lx.ZH_NAME_BRANDS))
            if ok:
                hits.append(Detection("NAME", start, end, word))
        prev = (word, start)
    return hits


def detect_en_names(norm: str) -> list[Detection]:
    hits = []
    for m in _EN_NAME_RE.finditer(norm):
        words = m.group("v").split()
        while words and words[-1] in lx.EN_NOT_NAMES:
            words.pop()
        if not words or words[0] in lx.EN_NOT_NAMES:
            continue
        if len(words) < 2 and m.group("cue").lower().startswith(("ship", "deliver")):
            continue  # "we ship to Munich": a place, not a person
        v = " ".join(words)
        start = m.start("v")
        hits.append(Detection("NAME", start, start + len(m.group("v")[:len(v)]), v))
    return hits


# --- addresses ---------------------------------------------------------------------------------
_AHAN = rf"(?:(?![{re.escape(lx.ZH_ADDRESS_STOP)}])[{_HAN}])"
_ADMIN = r"(?:省|自治区|特别行政区|市|自治州|州|盟|地区|区|县|旗)"
_PLACE_PART = (rf"(?:{_AHAN}{{0,7}}?(?:{_ADMIN}|街道|镇|乡|村|社区|路|街|大道|大街|巷|弄|胡同|里|小区"
               r"|花园|公寓|大厦|广场|新村|家园|苑|园|城|中心|科技园|工业园))")
_NUM_PART = (r"(?:[A-Za-z]?[0-9]{1,5}(?:-[0-9]{1,5})*\s?(?:号楼|号院|号|栋|幢|座|单元|层|楼|室|户|弄|门|巷)"
             r"|[A-Za-z]?[0-9]{1,5}(?![0-9]))")
_ZH_ADDR_BODY = rf"(?:{_PLACE_PART}|{_NUM_PART}|[-#])+"
_ZH_ADDR_PLACE_RE = re.compile(rf"(?:{_alt(lx.ZH_PLACES)}){_ADMIN}?{_ZH_ADDR_BODY}")
_ZH_ADDR_CUE_RE = re.compile(rf"(?:{_alt(lx.ZH_ADDRESS_CUES)})\s?[:是为]?\s?(?P<v>{_ZH_ADDR_BODY})")
_ZH_ADDR_STRONG = re.compile(rf"{_ADMIN}|街道|镇|乡|村|路|街|大道|巷|弄|胡同|小区|[0-9]\s?(?:号|栋|室|单元)")

_EN_STREET = rf"(?:{_alt(lx.EN_STREET_TYPES)}|(?:{_alt(lx.EN_STREET_ABBREVIATIONS)})\.?)"
_EN_ADDR_RE = re.compile(
    rf"(?<![0-9A-Za-z])[0-9]{{1,5}}[A-Za-z]?\s(?:[A-Z][A-Za-z]+\s){{1,3}}{_EN_STREET}(?![A-Za-z])"
    r"(?:,?\s(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|#)\.?\s?#?[0-9A-Za-z\-]{1,6})?"
    r"(?:,\s[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?(?:,\s?[A-Z]{2})?(?:\s[0-9]{5}(?:-[0-9]{4})?)?")


def detect_zh_addresses(norm: str) -> list[Detection]:
    hits = []
    for m in _ZH_ADDR_PLACE_RE.finditer(norm):
        if m.end() - m.start() >= 5 and len(_ZH_ADDR_STRONG.findall(m.group())) >= 2:
            hits.append(Detection("ADDRESS", m.start(), m.end(), m.group()))
    for m in _ZH_ADDR_CUE_RE.finditer(norm):
        v = m.group("v")
        if len(v) >= 4 and len(_ZH_ADDR_STRONG.findall(v)) >= 2:
            hits.append(Detection("ADDRESS", m.start("v"), m.end("v"), v))
    return hits


def detect_en_addresses(norm: str) -> list[Detection]:
    return [Detection("ADDRESS", m.start(), m.end(), m.group()) for m in _EN_ADDR_RE.finditer(norm)]


# --- values that look personal but are not: kept (they occupy their span, nothing masks them) ----
_HOTLINE_RE = re.compile(
    r"(?<![0-9])(?:[48]00[ \-]?[0-9]{3}[ \-]?[0-9]{4}|\+?1[ \-.]\(?8(?:00|33|44|55|66|77|88)\)?"
    r"[ \-.][0-9]{3}[ \-.][0-9]{4})(?![0-9])")  # 1-800-... needs its 1: a bare (833) may be a person's
_SKU_RE = re.compile(
    r"(?:SKU|sku|商品编号|商品编码|商品ID|货号|款号|型号|item\s?(?:#|no\.?|number)|product\s?(?:id|#|code)"
    r"|条码|条形码|barcode|EAN|UPC|优惠码|优惠券码|券码|兑换码|promo\s?code|coupon\s?code|discount\s?code)"
    rf"{_SEP_WORD}(?P<v>[A-Za-z0-9][A-Za-z0-9\-]{{3,29}})(?![A-Za-z0-9\-])", re.IGNORECASE)


def detect_kept(norm: str) -> list[Detection]:
    """Shop hotlines (400/800, US toll-free), SKUs, barcodes and promo codes after their cue."""
    hits = [Detection("KEEP", m.start(), m.end(), "") for m in _HOTLINE_RE.finditer(norm)]
    hits += [Detection("KEEP", m.start("v"), m.end("v"), "") for m in _SKU_RE.finditer(norm)]
    return hits


# Priority order (earlier wins an overlap). Names, not functions, so a test can monkeypatch one.
DETECTORS: tuple[str, ...] = (
    "detect_kept", "detect_urls", "detect_emails", "detect_tracking", "detect_orders", "detect_ids",
    "detect_cards", "detect_accounts", "detect_phones", "detect_bare_orders",
    "detect_zh_addresses", "detect_en_addresses", "detect_zh_names", "detect_en_names",
    "detect_zh_names_model",
)
