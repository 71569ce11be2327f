"""PII detection and reversible masking: what stands between a customer's message and the cloud.

    from endcloud.data.privacy import Masker
    masker = Masker()
    conv = masker.new_conversation()
    r = masker.mask("收件人张伟，电话 138 0013 8000", conv)
    r.text        # '收件人[NAME_1]，电话 [PHONE_1]'
    r.sendable    # True
    conv.restore(r.text) == "收件人张伟，电话 138 0013 8000"

Placeholders: one scheme, `[TYPE_n]`, numbered per type in order of first appearance within a
`Conversation`. Types:

    PHONE     mainland mobiles/landlines in every written form, international numbers
    EMAIL     addresses, full-width ＠, "name at host dot com"
    ORDER     ids after 订单号/order #/…, bare JD (10-12 digit) and Taobao (19 digit) ids
    TRACKING  waybills: SF/YT/JD/ZTO/UPS 1Z/S10 shapes, or any id after 运单/快递单号/tracking
    ID        18-digit resident ID with a valid GB 11643 checksum; 15-digit legacy IDs
    CARD      16-19 digit payment cards that pass Luhn (bare, spaced or dashed)
    ACCOUNT   QQ/WeChat/username/account ids after a cue word
    NAME      Chinese names by surname + cue (我叫/收件人/…先生) and by jieba's person-name tag
              (any context; brands such as 李宁 kept), English names by cue
    ADDRESS   Chinese province/city/…/路/号/室 chains, English "12 Main Street, City, ST 12345"
    URL       any http(s):// or www. link (query strings carry tokens and order ids)

Values are identified per type after normalisation (phones by their digits without the country
code, e-mails case-folded, ids without separators), so "138 0013 8000" and "13800138000" share
`[PHONE_1]`; restore then gives back the first spelling seen. Text that already holds one of
our placeholders keeps it (masking is idempotent) and a new value never takes its number.

Corpus placeholders. JDDC and Bitext are anonymised already; their *personal* placeholders
become ours, keyed by the literal placeholder so `restore` gives the corpus text back:
JDDC `[姓名x]`→NAME, `[地址x]`→ADDRESS, `[订单x]`/`[ORDERID_n]`→ORDER, `[电话x]`→PHONE,
`[邮箱x]`→EMAIL, `[身份证号x]`→ID, `[链接x]`→URL, `[USERID_n]`→ACCOUNT; Bitext
`{{Order Number}}`, `{{… ID/Number Anonymized}}`→ORDER, `{{Customer Name}}`, `{{Name Field
Anonymized}}`→NAME, `{{tracking number}}`→TRACKING, and ids spelled inside braces
(`{{113542617735902}}`)→ORDER. Non-personal ones (`[数字x]`, `[金额x]`, `[日期x]`, `[时间x]`,
`[站点x]`, `[组织机构x]`, `{{Website Name}}`, `{{Live Chat}}`, …) are kept verbatim: they hold no
personal data, carry no digits, and the end model is trained on exactly that text.

Fail closed: a detector that raises, or digits/`@` left after masking (a run of >= 7 digits, a
phone/card-shaped digit group, any @ or ＠ outside our placeholders), make the result
`sendable=False` with a reason that never quotes the value; on an exception the text is "".
Kept, never masked: shop hotlines (400/800 numbers, US toll-free), SKUs, barcodes and promo codes
after their cue (SKU, 商品编号, 货号, 条码, 优惠码, promo code...); they are not residue either.
Hard negatives (prices, dates, 18-digit strings with a bad checksum, Luhn-invalid card
numbers) are not masked; the long ones are then caught by the residue rule, which is the point.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from endcloud.data.pii import detectors as det
from endcloud.data.pii.detectors import Detection
from endcloud.errors import ConfigError

TYPES: tuple[str, ...] = ("PHONE", "EMAIL", "ORDER", "TRACKING", "ID", "CARD", "ACCOUNT", "NAME",
                          "ADDRESS", "URL")
_DETECTOR_TYPES: dict[str, tuple[str, ...]] = {
    "detect_urls": ("URL",), "detect_emails": ("EMAIL",), "detect_ids": ("ID",),
    "detect_cards": ("CARD",), "detect_tracking": ("TRACKING",), "detect_orders": ("ORDER",),
    "detect_accounts": ("ACCOUNT",), "detect_phones": ("PHONE",), "detect_bare_orders": ("ORDER",),
    "detect_zh_addresses": ("ADDRESS",), "detect_en_addresses": ("ADDRESS",),
    "detect_zh_names": ("NAME",), "detect_en_names": ("NAME",), "detect_zh_names_model": ("NAME",),
    "detect_names_tagger": ("NAME", "ADDRESS"), "detect_kept": ("KEEP",),
}

MODEL_DETECTORS = frozenset({"detect_zh_names_model", "detect_names_tagger"})
# A hit of these may widen an overlapping hit of the same type that a rule found (the rest of an
# address after a street the rules matched); it never takes a span of another type.
_WIDENING = frozenset({"detect_names_tagger"})
OUR_PLACEHOLDER_RE = re.compile(rf"\[(?:{'|'.join(TYPES)})_[0-9]+\]")

_JDDC_PERSONAL = {"姓名": "NAME", "地址": "ADDRESS", "订单": "ORDER", "电话": "PHONE",
                  "邮箱": "EMAIL", "身份证号": "ID", "链接": "URL"}
_JDDC_RE = re.compile(r"\[(?:(?P<zh>姓名|地址|订单|电话|邮箱|身份证号|链接)x|(?P<id>ORDERID|USERID)_[0-9]+)\]")
# Bitext: labels are UI names ("{{Live Chat}}") unless they name a person or an identifier.
_BITEXT_RE = re.compile(r"\{\{(?P<label>[A-Za-z][A-Za-z /&'\-]{0,60}|(?P<raw>[0-9A-Fa-f\-]{8,80}))\}\}")
_BITEXT_NAME = re.compile(r"(?i)^(?:customer|client|person|full|first|last|user)\s?name|^name field")
_BITEXT_TRACK = re.compile(r"(?i)^tracking\s?(?:number|id)")
_BITEXT_ORDER = re.compile(r"(?i)^(?:order|purchase|invoice|bill|reference)\s?(?:number|id|no)")
_BITEXT_OTHER_ANON = {"phone": "PHONE", "email": "EMAIL", "address": "ADDRESS", "account": "ACCOUNT"}

_RESIDUE_DIGITS_GROUPED = re.compile(r"[0-9]{3,4}[ \-][0-9]{4}[ \-][0-9]{4}")


@dataclass(frozen=True, slots=True)
class Span:
    """One masked value: where it was in the original text and what replaced it (never the value)."""

    type: str
    start: int
    end: int
    placeholder: str


@dataclass
class MaskResult:
    text: str
    spans: list[Span]
    sendable: bool
    reasons: list[str] = field(default_factory=list)


class Conversation:
    """Per-conversation state: value <-> placeholder. The only object that holds raw values."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], str] = {}
        self._values: dict[str, str] = {}      # placeholder -> first surface form seen
        self._next: dict[str, int] = {}
        self._reserved: set[str] = set()       # our placeholders that arrived in input text

    def placeholder(self, type_: str, key: str, surface: str) -> str:
        """The placeholder for this value, allocating `[TYPE_n]` on first sight."""
        found = self._by_key.get((type_, key))
        if found is not None:
            return found
        n = self._next.get(type_, 1)
        while f"[{type_}_{n}]" in self._reserved or f"[{type_}_{n}]" in self._values:
            n += 1
        ph = f"[{type_}_{n}]"
        self._next[type_] = n + 1
        self._by_key[(type_, key)] = ph
        self._values[ph] = surface
        return ph

    def reserve(self, placeholder: str) -> None:
        self._reserved.add(placeholder)

    def restore(self, masked_text: str) -> str:
        """Put the original values back; placeholders this conversation never issued stay."""
        return OUR_PLACEHOLDER_RE.sub(lambda m: self._values.get(m.group(), m.group()), masked_text)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"Conversation({len(self._values)} values)"


class Masker:
    """Rules + dictionaries; compiled once at import, so a Masker is cheap to build.

    types: which placeholder types to detect (default: all of `TYPES`).
    corpus_placeholders: map JDDC/Bitext personal placeholders onto ours (default True).
    residue_digits: a digit run this long left after masking makes the text unsendable.
    names_model: also tag Chinese person names with jieba (default True; False = rules only).
    """

    def __init__(self, *, types: Iterable[str] | None = None, corpus_placeholders: bool = True,
                 residue_digits: int = 7, names_model: bool = True) -> None:
        wanted = set(TYPES if types is None else types)
        unknown = wanted - set(TYPES)
        if unknown:
            raise ConfigError(f"Masker(types=...): unknown type(s) {sorted(unknown)}; "
                              f"choose from {list(TYPES)}")
        if residue_digits < 1:
            raise ConfigError("Masker(residue_digits=...) must be >= 1")
        self.types = frozenset(wanted)
        self.corpus_placeholders = corpus_placeholders
        self._residue_re = re.compile(rf"[0-9]{{{residue_digits},}}")
        # Looked up by name now, so a test can monkeypatch a detector before building a Masker.
        self._detectors = [(name, getattr(det, name)) for name in det.DETECTORS
                           if set(_DETECTOR_TYPES[name]) & (self.types | {"KEEP"})
                           and (names_model or name not in MODEL_DETECTORS)]

    def new_conversation(self) -> Conversation:
        return Conversation()

    def mask(self, text: str, conv: Conversation | None = None) -> MaskResult:
        """Mask one message; never raises for a str, fails closed instead."""
        if not isinstance(text, str):
            raise TypeError(f"Masker.mask expects str, got {type(text).__name__}")
        conv = conv if conv is not None else Conversation()
        stage = "normalise"
        try:
            norm = det.normalise(text)
            stage = "placeholders"
            taken, hits = self._existing_placeholders(norm, conv)
            kept: list[Detection] = []
            for name, fn in self._detectors:
                stage = name
                # Within one detector the longest of overlapping hits wins.
                for hit in sorted(fn(norm), key=lambda h: (h.start - h.end, h.start)):
                    if hit.end <= hit.start or not (hit.type in self.types or hit.type == "KEEP"):
                        continue
                    if _free(taken, hit):
                        taken.append((hit.start, hit.end))
                        (kept if hit.type == "KEEP" else hits).append(hit)
                    elif name in _WIDENING:
                        _widen(norm, taken, hits, hit)
            stage = "substitute"
            masked, spans = _substitute(text, hits, conv)
            stage = "residue"
            reasons = self._residue(_blanked(norm, hits + kept))
        except Exception as e:  # noqa: BLE001 - fail closed on anything; the value is never quoted
            return MaskResult("", [], False, [f"masking failed in {stage}: {type(e).__name__}"])
        return MaskResult(masked, spans, not reasons, reasons)

    def mask_messages(self, texts: Iterable[str], conv: Conversation | None = None) -> list[MaskResult]:
        """Mask several messages as one conversation (shared placeholders)."""
        conv = conv if conv is not None else Conversation()
        return [self.mask(t, conv) for t in texts]

    def _existing_placeholders(self, norm: str, conv: Conversation) -> tuple[list, list[Detection]]:
        """Our placeholders are protected (and reserved); corpus ones are protected or mapped."""
        taken: list[tuple[int, int]] = []
        hits: list[Detection] = []
        for m in OUR_PLACEHOLDER_RE.finditer(norm):
            conv.reserve(m.group())
            taken.append((m.start(), m.end()))
        if not self.corpus_placeholders:
            return taken, hits
        for m in _JDDC_RE.finditer(norm):
            type_ = _JDDC_PERSONAL[m.group("zh")] if m.group("zh") else \
                ("ORDER" if m.group("id") == "ORDERID" else "ACCOUNT")
            taken.append((m.start(), m.end()))
            hits.append(Detection(type_, m.start(), m.end(), m.group()))
        for m in _BITEXT_RE.finditer(norm):
            type_ = _bitext_type(m.group("label"), m.group("raw"))
            if m.group("raw") and type_ is None:
                continue  # braces around something that is not an id: let the detectors judge it
            taken.append((m.start(), m.end()))
            if type_ is not None:
                hits.append(Detection(type_, m.start(), m.end(), m.group()))
        return taken, [h for h in hits if h.type in self.types]

    def _residue(self, rest: str) -> list[str]:
        """Why `rest` (the text with masked and kept values blanked) may still hold personal data."""
        rest = OUR_PLACEHOLDER_RE.sub(" ", rest)
        reasons = []
        if self._residue_re.search(rest) or _RESIDUE_DIGITS_GROUPED.search(rest):
            reasons.append("residue: long digit run left after masking")
        if "@" in rest:
            reasons.append("residue: '@' left after masking")
        return reasons


def _blanked(norm: str, hits: list[Detection]) -> str:
    """`norm` with every hit's span replaced by one space (what the residue rule looks at)."""
    out, pos = [], 0
    for h in sorted(hits, key=lambda h: h.start):
        out += [norm[pos:h.start], " "]
        pos = h.end
    out.append(norm[pos:])
    return "".join(out)


_ACRONYM = re.compile(r"[A-Z]{2,5}")


def _widen(norm: str, taken: list[tuple[int, int]], hits: list[Detection], hit: Detection) -> None:
    """Fit a model hit around what the rules took: it merges with the hits of its own type it
    overlaps, and gives way to anything else (a phone after an address, a kept value, a
    placeholder): then its longest free piece is kept, if it still holds a letter or digit run."""
    spans = {(h.start, h.end): h for h in hits}
    over = [t for t in taken if t[0] < hit.end and hit.start < t[1]]
    others = sorted(t for t in over if not (t in spans and spans[t].type == hit.type))
    if others:
        pieces, pos = [], hit.start
        for s, e in others:
            pieces.append((pos, max(pos, s)))
            pos = max(pos, e)
        pieces.append((pos, hit.end))
        start, end = max(pieces, key=lambda p: p[1] - p[0])
        while start < end and not norm[start].isalnum():
            start += 1
        while end > start and not norm[end - 1].isalnum():
            end -= 1
        if end - start < 2 or _ACRONYM.fullmatch(norm[start:end]):
            return  # "IBAN" of "IBAN DE89…", "PO" of "PO BW-2024-0611": the value's label
        hit = Detection(hit.type, start, end, norm[start:end])
        over = [t for t in taken if t[0] < hit.end and hit.start < t[1]]
        if not all(t in spans and spans[t].type == hit.type for t in over):
            return
    same = [spans[t] for t in over]
    start = min([hit.start, *(h.start for h in same)])
    end = max([hit.end, *(h.end for h in same)])
    if (start, end) in spans:
        return
    for h in same:
        hits.remove(h)
        taken.remove((h.start, h.end))
    taken.append((start, end))
    hits.append(Detection(hit.type, start, end, norm[start:end]))


def _free(taken: list[tuple[int, int]], hit: Detection) -> bool:
    return all(hit.end <= s or hit.start >= e for s, e in taken)


def _substitute(text: str, hits: list[Detection], conv: Conversation) -> tuple[str, list[Span]]:
    out: list[str] = []
    spans: list[Span] = []
    pos = 0
    for h in sorted(hits, key=lambda h: h.start):
        ph = conv.placeholder(h.type, h.key, text[h.start:h.end])
        out += [text[pos:h.start], ph]
        spans.append(Span(h.type, h.start, h.end, ph))
        pos = h.end
    out.append(text[pos:])
    return "".join(out), spans


def _bitext_type(label: str | None, raw: str | None) -> str | None:
    if raw is not None:
        return "ORDER" if len(det.digits(raw)) >= 6 else None
    assert label is not None
    if _BITEXT_NAME.match(label):
        return "NAME"
    if _BITEXT_TRACK.match(label):
        return "TRACKING"
    if _BITEXT_ORDER.match(label):
        return "ORDER"
    if label.endswith("Anonymized") and not label.startswith(("Customer Support", "Customer Service",
                                                                "Website", "Live Chat")):
        for word, type_ in _BITEXT_OTHER_ANON.items():
            if word in label.lower():
                return type_
    return None
