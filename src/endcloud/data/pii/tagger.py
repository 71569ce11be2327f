"""Person names and addresses found by a trained sequence tagger: a linear-chain CRF (CRFsuite,
through `python-crfsuite`) over tokens, one per Han character and one per Latin word, digit run
or symbol, with BIO labels for NAME and ADDRESS.

Its weights ship with the package (`shipped/tagger.crfsuite`, with `tagger.json`: the data it
was trained on, its settings and its validation figures). `endcloud data train-tagger` writes
new ones; `$ENDCLOUD_PII_TAGGER` (a `.crfsuite` file) overrides the shipped model.

What the model sees of each token (`features`): the token (lower-cased), its shape, its
neighbours two either side, the two tokens before it as one cue (我叫, 收件, "ship to"), a few
lexicon flags (a Chinese surname, a compound surname, an address word such as 路/栋/单元, an
English given name, a street type, a two-letter state, an ordinary English word from the
model's `.words` list) and, for Latin words, prefix and suffix. It learns from context, so a name after a cue nobody wrote a rule for, or an address given by
estate and building, is still found; the rules stay, and a value flagged by either is masked.
Its NAME hits then pass the checks in `detect_names_tagger` (brands, role words, dictionary words,
places from the model's `.places` list, departments, services).

A missing or unreadable model raises: the masker then fails closed (nothing is sendable).
"""

from __future__ import annotations

import json
import os
import re
import threading
from functools import lru_cache
from pathlib import Path

from endcloud.data.pii import lexicon as lx
from endcloud.data.pii.base import Detection
from endcloud.data.pii.words import brand_spans, dictionary_count, dictionary_words

SHIPPED = Path(__file__).with_name("shipped") / "tagger.crfsuite"
LABELS = ("NAME", "ADDRESS")

_LATIN = "A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF"
_TOKEN_RE = re.compile(
    rf"[\u3400-\u4dbf\u4e00-\u9fff]"                            # one Han character
    rf"|[{_LATIN}]+(?:['’](?![sS](?![{_LATIN}]))[{_LATIN}]+|-[{_LATIN}]+)*"  # O'Connor, Jean-Luc (not 's)
    r"|[0-9]+"
    r"|\n"
    r"|[ \t\r\f\v]+"
    r"|\S")
_ADDRESS_CHARS = frozenset("省市区县镇乡村街路道巷弄号栋幢楼层室座院苑园舍寓厦坊屯庄湾")
_ADDRESS_WORDS = frozenset({"单元", "小区", "花园", "公寓", "大厦", "广场", "家园", "校区", "宿舍", "社区"})
_SURNAME_1 = frozenset(lx.ZH_SURNAMES_1)
_SURNAME_2 = frozenset(lx.ZH_SURNAMES_2)
# Surnames the rules leave out because they are also function words (单, 区, 和...): after the
# tagger has judged the context, they may start a name.
_SURNAME_LOOSE = _SURNAME_1 | frozenset("单区朴尉哈支时和成边安全应向过")
_NAME_STOP = frozenset(lx.ZH_NAME_STOP)
_GIVEN = frozenset(w.lower() for w in lx.EN_GIVEN_NAMES)
_SURNAMES_EN = frozenset(w.lower() for w in (*lx.EN_SURNAMES_FIRST, *lx.EN_PINYIN_SURNAMES))
# payment services, carriers and marketplaces are capitalised like names and never are one
_SERVICES = frozenset("paypal venmo zelle klarna afterpay affirm amazon fedex ups usps dhl ebay etsy "
                      "shopify visa mastercard amex alipay wechat taobao tmall jd royal mail".split())
_SERVICE_PHRASES = frozenset({"royal mail", "apple pay", "google pay", "amazon pay", "canada post",
                              "australia post", "la poste", "deutsche post", "india post", "parcelforce",
                              "china post", "hongkong post", "singapore post", "japan post", "sf express",
                              "amazon locker", "cash app"})
# the last word of a company, a department or a building, never of a person
_COMPANY = frozenset("ltd inc llc co corp gmbh plc limited company dept department apartments apts residency "
                     "tower towers plaza mall hall hotel school university college hospital clinic centre "
                     "center store shop team group office warehouse".split())
_NOT_NAMES = frozenset(w.lower() for w in (*lx.EN_NOT_NAMES, *lx.EN_NAME_STOPWORDS)) | _SERVICES
_STREETS = frozenset(w.lower() for w in (*lx.EN_STREET_TYPES, *lx.EN_STREET_ABBREVIATIONS))
_HONORIFICS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})


def tokenize(text: str) -> list[tuple[int, int]]:
    """(start, end) of every token; together they cover the text."""
    return [m.span() for m in _TOKEN_RE.finditer(text)]


def _shape(tok: str) -> str:
    ch = tok[0]
    if "\u3400" <= ch <= "\u9fff":
        return "H"
    if ch == "\n":
        return "NL"
    if ch.isspace():
        return "SP"
    if ch.isdigit():
        return f"D{min(len(tok), 6)}"
    if ch.isalpha():
        if tok.isupper():
            return "AA" if len(tok) > 1 else "A"
        if ch.isupper():
            return "Aa"
        return "a"
    return tok  # punctuation stands for itself


def _flags(tok: str, nxt: str, common: frozenset[str] = frozenset()) -> list[str]:
    ch = tok[0]
    if "\u3400" <= ch <= "\u9fff":
        out = []
        if tok in _SURNAME_1:
            out.append("sur1")
        if tok + nxt in _SURNAME_2:
            out.append("sur2")
        if tok in _NAME_STOP:
            out.append("stop")
        if tok in _ADDRESS_CHARS:
            out.append("addr")
        if tok + nxt in _ADDRESS_WORDS:
            out.append("addr2")
        return out
    if ch.isalpha():
        low = tok.lower()
        out = [f"p3={low[:3]}", f"s3={low[-3:]}", f"len={min(len(tok), 8)}"]
        out += [flag for flag, words in (("given", _GIVEN), ("surname", _SURNAMES_EN), ("notname", _NOT_NAMES),
                                         ("common", common), ("street", _STREETS), ("honor", _HONORIFICS))
                if low in words]
        if len(tok) == 2 and tok.isupper():
            out.append("state")
        if not tok.isascii():
            out.append("diacritic")
        return out
    return []


def features(text: str, spans: list[tuple[int, int]], common: frozenset[str] = frozenset()) -> list[list[str]]:
    """CRFsuite attribute lists, one per token. `common`: lower-case English words the model was
    trained to know as ordinary words (its `.words` file)."""
    toks = [text[s:e] for s, e in spans]
    low = [t.lower() if not t.isspace() else ("\\n" if "\n" in t else "_") for t in toks]
    shapes = [_shape(t) for t in toks]
    n = len(toks)
    pad_w = ["<s>", "<s>", *low, "</s>", "</s>"]
    pad_s = ["<s>", "<s>", *shapes, "</s>", "</s>"]
    out = []
    for i in range(n):
        j = i + 2
        f = ["b", f"w={pad_w[j]}", f"s={pad_s[j]}",
             f"w-1={pad_w[j - 1]}", f"w+1={pad_w[j + 1]}", f"w-2={pad_w[j - 2]}", f"w+2={pad_w[j + 2]}",
             f"s-1={pad_s[j - 1]}", f"s+1={pad_s[j + 1]}", f"s-2={pad_s[j - 2]}", f"s+2={pad_s[j + 2]}",
             f"c-2={pad_w[j - 2]}{pad_w[j - 1]}", f"c+2={pad_w[j + 1]}{pad_w[j + 2]}",
             f"ww-1={pad_w[j - 1]}{pad_w[j]}", f"ww+1={pad_w[j]}{pad_w[j + 1]}",
             f"ss={pad_s[j - 1]}{pad_s[j]}{pad_s[j + 1]}"]
        nxt = toks[i + 1] if i + 1 < n else ""
        f += _flags(toks[i], nxt, common)
        if i:
            f += [f"-1:{x}" for x in _flags(toks[i - 1], toks[i], common) if ":" not in x and "=" not in x]
        if nxt:
            f += [f"+1:{x}" for x in _flags(nxt, toks[i + 2] if i + 2 < n else "", common) if "=" not in x]
        out.append(f)
    return out


def bio(spans: list[tuple[int, int]], gold: list[tuple[str, int, int]]) -> list[str]:
    """BIO labels for tokens from gold (type, start, end) character spans (a token that overlaps a
    span takes its type)."""
    labels = ["O"] * len(spans)
    for type_, gs, ge in sorted(gold, key=lambda g: g[1]):
        if type_ not in LABELS:
            continue
        inside = False
        for i, (s, e) in enumerate(spans):
            if s < ge and gs < e:
                labels[i] = ("I-" if inside else "B-") + type_
                inside = True
    return labels


def decode(text: str, spans: list[tuple[int, int]], labels: list[str],
           confidence: list[float] | None = None) -> list[tuple[Detection, float]]:
    """Runs of B/I tokens of one type -> (detection, lowest token confidence), without the
    whitespace or punctuation at their ends."""
    hits: list[tuple[Detection, float]] = []
    cur: list[int] | None = None
    cur_type = ""
    conf = confidence or [1.0] * len(spans)
    low = 1.0

    def close() -> None:
        if cur is None:
            return
        s, e = cur
        while s < e and not (text[s].isalnum()):
            s += 1
        while e > s and not (text[e - 1].isalnum() or text[e - 1] in ".)"):
            e -= 1
        if e > s:
            hits.append((Detection(cur_type, s, e, text[s:e]), low))

    for (s, e), lab, c in zip(spans, labels, conf):
        if lab == "O":
            close()
            cur = None
            continue
        tag, type_ = lab.split("-", 1)
        if cur is not None and type_ == cur_type and tag == "I":
            cur[1] = e
            low = min(low, c)
        else:
            close()
            cur, cur_type, low = [s, e], type_, c
    close()
    return hits


class Tagger:
    """A loaded CRF model and its word list; `detect_scored` is thread-safe (CRFsuite's tagger is
    not, so each thread opens its own)."""

    def __init__(self, path: Path) -> None:
        import pycrfsuite

        if not path.is_file():
            raise FileNotFoundError(f"PII tagger model not found: {path}")
        self.path = path
        words = path.with_suffix(".words")
        self.common = frozenset(words.read_text(encoding="utf-8").split()) if words.is_file() else frozenset()
        self._pycrfsuite = pycrfsuite
        self._local = threading.local()
        self._tagger()  # fail now on a corrupt file, not on the first message

    def _tagger(self):
        t = getattr(self._local, "tagger", None)
        if t is None:
            t = self._pycrfsuite.Tagger()
            t.open(str(self.path))
            self._local.tagger = t
        return t

    def detect_scored(self, norm: str) -> list[tuple[Detection, float]]:
        """Detections with the lowest marginal probability of their tokens' labels."""
        spans = tokenize(norm)
        if not spans:
            return []
        t = self._tagger()
        labels = t.tag(features(norm, spans, self.common))
        if all(lab == "O" for lab in labels):
            return []
        conf = [t.marginal(lab, i) if lab != "O" else 1.0 for i, lab in enumerate(labels)]
        return decode(norm, spans, labels, conf)

    def detect(self, norm: str) -> list[Detection]:
        return [h for h, _ in self.detect_scored(norm)]


@lru_cache(maxsize=4)
def _places(model: str) -> tuple[frozenset[str], frozenset[str]]:
    """(places, places that are also first names) from the model's `.places` file (read once
    per model path, so `$ENDCLOUD_PII_TAGGER` pointing elsewhere gets that model's list)."""
    p = Path(model).with_suffix(".places")
    lines = [x.strip().lower() for x in p.read_text(encoding="utf-8").splitlines()] if p.is_file() else []
    return (frozenset(x for x in lines if x and not x.startswith("~")),
            frozenset(x[1:] for x in lines if x.startswith("~")))


def no_person(norm: str, start: int, end: int) -> bool:
    """A capitalised phrase that names a place, a language, a service or a company/department
    (Hong Kong, English, Royal Mail, Accounts Dept; Virginia where a trip or an address puts it):
    the rules' English names pass this check too."""
    low = norm[start:end].lower()
    words = low.replace(".", "").split()
    places, ambiguous = _places(str(model_path()))
    if low in places or low in _LANGUAGES or low in _SERVICE_PHRASES or (words and words[-1] in _COMPANY):
        return True
    return low in ambiguous and bool(_PLACE_AFTER.match(norm, end) or _PLACE_BEFORE.search(norm, 0, start))


def model_path() -> Path:
    override = os.environ.get("ENDCLOUD_PII_TAGGER")
    return Path(override) if override else SHIPPED


@lru_cache(maxsize=4)
def _load(path: str) -> Tagger:
    return Tagger(Path(path))


def tagger() -> Tagger:
    return _load(str(model_path()))


def manifest(path: Path | None = None) -> dict:
    p = (path or model_path()).with_suffix(".json")
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


_HAS_LETTER = re.compile(rf"[\u4e00-\u9fff{_LATIN}]")


_HAN_ONLY = re.compile(r"[\u3400-\u9fff]+")


SURE = 0.6  # a Chinese name that starts with no listed surname (禤, 麹) needs this confidence
COMMON_FREQ, COMMON_SURE = 40, 0.95  # a word jieba has counted >= 40 times needs 0.95
_TITLE_AFTER = re.compile("|".join((*lx.ZH_NAME_SUFFIX_CUES, *lx.ZH_TITLES)))
_TITLE_END = re.compile(rf"(?:{_TITLE_AFTER.pattern})$")
_LATIN_LETTER = re.compile(rf"[{_LATIN}]")


def _cuts_word(norm: str, h: Detection) -> bool:
    """A dictionary word crosses one of the hit's ends (非|常荣|幸, 高峰|期, 宿|管)."""
    left = max(0, h.start - 4)
    for word, s, e in dictionary_words(norm[left:h.end + 4]):
        s, e = s + left, e + left
        if len(word) > 1 and (s < h.start < e or s < h.end < e):
            return True
    return False


_PLACE_AFTER = re.compile(r",?\s(?:[A-Z]{2}\b\s?[0-9]{4,5}|[A-Z]{2}\s?$|[0-9]{4,6}\b)")  # Austin, TX 78745
_PLACE_BEFORE = re.compile(r"(?i:\b(?:ship(?:ped|s)?|send|sent|deliver(?:ed)?|fly|flying|move|moving|moved)\s(?:it\s)?"
                           r"(?:to|from)\s|\bmade in\s|\bwarehouse in\s)$")
_LANGUAGES = frozenset("english chinese mandarin cantonese french german spanish italian portuguese russian "
                       "japanese korean vietnamese thai arabic hindi urdu dutch polish turkish".split())


def _plausible_name(norm: str, h: Detection, conf: float, brands: list[tuple[int, int]],
                    common: frozenset[str] = frozenset()) -> bool:
    """The tagger's NAME hits pass the checks the jieba path uses: no role word (老公), common
    word, brand (老凤祥, Calvin Klein) or title in 《》; a Chinese name starts with a surname (or
    老/小/阿 + one) unless the tagger is sure."""
    if any(bs < h.end and h.start < be for bs, be in brands):
        return False
    before, after = norm.rfind("《", 0, h.start), norm.rfind("》", 0, h.start)
    if before > after and "》" in norm[h.end:]:
        return False  # 《司马迁传》: a book, not a customer
    v = h.key
    if _HAN_ONLY.fullmatch(v):
        if v in lx.ZH_NAME_ROLES or v in lx.ZH_NOT_NAMES:
            return False
        if len(v) == 1:  # a surname alone only before a title (王女士, 岑师傅), not 宿|管阿姨 or 祝|老板
            return bool(_TITLE_AFTER.match(norm, h.end)) and not _cuts_word(norm, h) \
                and v not in lx.ZH_VERB_SURNAMES
        head = v[1:] if v[0] in "老小阿" and len(v) >= 2 else v
        if not (head[0] in _SURNAME_LOOSE or head[:2] in _SURNAME_2 or conf >= SURE):
            return False
        # a word jieba's dictionary knows well (荣幸, 明明, 钱包, 吉林), or a span that cuts one of
        # its words in two (非|常荣|幸), only when the tagger is sure
        # never part of a longer dictionary word (高峰|期), however sure the tagger is
        return not _cuts_word(norm, h) and (conf >= COMMON_SURE or dictionary_count(v) < COMMON_FREQ)
    if not _LATIN_LETTER.search(v):
        return False
    words = v.lower().replace(".", "").split()
    if v.lower() in _NOT_NAMES or no_person(norm, h.start, h.end):
        return False
    # every word an ordinary one ("nobody answered", "Night Repair"), none a given name
    return not all(w in common and w not in _GIVEN for w in words)


_STREET_ALT = "|".join(sorted((re.escape(w) for w in _STREETS), key=len, reverse=True))
_LATIN_ADDRESS_EVIDENCE = re.compile(
    rf"(?i:\b[0-9]+[A-Za-z]?\b.*\b(?:{_STREET_ALT})\b|\b(?:apt|apartment|suite|ste|unit|flat|floor|room|box|"
    r"p\.?o\.?)\b\.?\s?(?:no\.?\s?)?#?[0-9]|\b(?:rue|via|calle|straße|strasse|str|weg|laan|avenida|rua)\b)"
    r"|\b[0-9]{4,6}\b|\b[A-Z]{1,2}[0-9][A-Z0-9]?\s?[0-9][A-Z]{2}\b|\b[A-Z][0-9][A-Z]\s?[0-9][A-Z][0-9]\b"
    r"|\b[A-Z][0-9]{2}\s?[A-Z0-9]{4}\b|[0-9]+\s?(?:号|號)")
_SPOT_END = re.compile(r"(?:门口|楼下|旁边|对面|附近|里面|这边|那边|这里|那里)$")
# words a sentence starts with that the tagger sometimes takes into a name ("Tell Maria Lopez")
_EDGE_WORDS = _NOT_NAMES | frozenset(
    "tell ask call text email send ship deliver please hi hello hey dear thanks thank cheers regards "
    "best love attn from to for with and or my your his her our their the a an this that is was "
    "im i'm its it's yes no ok okay sorry also".split()) | frozenset(
    # greetings and form labels of other languages that open a message like a name would
    "bonjour bonsoir salut hola buenas buenos hallo moin servus ciao salve olá ola oi namaste salam "
    "salaam as-salamu alaykum assalamualaikum merhaba konnichiwa xin chào chao merci gracias danke "
    "obrigado obrigada grazie lieferadresse adresse dirección direccion indirizzo endereço name tel".split())
_WORD = re.compile(rf"[{_LATIN}'’.\-]+")


def _trim_words(h: Detection, common: frozenset[str] = frozenset()) -> Detection | None:
    def edge(w: str) -> bool:
        w = w.lower().strip(".")
        return w in _EDGE_WORDS or (w in common and w not in _GIVEN)

    words = list(_WORD.finditer(h.key))
    while words and edge(words[0].group()):
        words.pop(0)
    while words and edge(words[-1].group()):
        words.pop()
    if not words:
        return None
    s, e = words[0].start(), words[-1].end()
    return Detection("NAME", h.start + s, h.start + e, h.key[s:e])


def detect_names_tagger(norm: str) -> list[Detection]:
    """NAME and ADDRESS spans the trained tagger finds. Raises when the model cannot be loaded
    (the masker fails closed)."""
    if not _HAS_LETTER.search(norm):
        return []
    model = tagger()
    hits = model.detect_scored(norm)
    brands = brand_spans(norm) if any(h.type == "NAME" for h, _ in hits) else []
    out = []
    for h, c in hits:
        if h.start and norm[h.start - 1] in "</{" or norm[h.start - 2:h.start] == "</":
            continue  # markup (<knowledge>), a template slot: no person, no place
        if h.type == "ADDRESS" and not _HAN_ONLY.search(h.key) and not _LATIN_ADDRESS_EVIDENCE.search(h.key):
            continue  # a Latin-script address has a house number with a street, a unit, a box or a postcode
        if h.type == "ADDRESS" and (spot := _SPOT_END.search(h.key)) and spot.start() > 0:
            h = Detection("ADDRESS", h.start, h.start + spot.start(), h.key[:spot.start()])  # 8栋|门口
        if h.type == "NAME" and not _HAN_ONLY.fullmatch(h.key):
            h = _trim_words(h, model.common)
            if h is None:
                continue
        if h.type == "NAME":
            title = _TITLE_END.search(h.key)
            if title and title.start() > 0:  # 叶先生 -> 叶: the title is no part of the name
                h = Detection("NAME", h.start, h.start + title.start(), h.key[:title.start()])
            if not _plausible_name(norm, h, c, brands, model.common):
                continue
        out.append(h)
    return out
