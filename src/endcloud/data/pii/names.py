"""Person names: Chinese (cue patterns, familiar forms, and jieba's part-of-speech tagger gated by
word frequency and a brand lexicon) and English (cue patterns, given-name and surname lists)."""

from __future__ import annotations

import re

from endcloud.data.pii import lexicon as lx
from endcloud.data.pii.base import _HAN, _LATIN_LOWER, _LATIN_UPPER, Detection, _alt
from endcloud.data.pii.words import EN_BRAND_RE, dictionary_count, dictionary_words, posseg, zh_brand_spans


# --- names -------------------------------------------------------------------------------------
_GIVEN = rf"(?:(?![{lx.ZH_NAME_STOP}])[{_HAN}])"
_SURNAME = rf"(?:{_alt(lx.ZH_SURNAMES_2)}|[{lx.ZH_SURNAMES_1}])"
_ZH_NAME_PREFIX_RE = re.compile(
    rf"(?:{_alt(lx.ZH_NAME_PREFIX_CUES)})\s?(?:改成|改为|换成|写)?\s?[:是为]?\s?(?P<v>{_SURNAME}{_GIVEN}{{1,2}})")
# A bare name right before a mobile number ("张伟，13800138000") - how shipping details are pasted.
_ZH_NAME_BEFORE_PHONE_RE = re.compile(
    rf"(?:^|(?<=[\s,:;/|]))(?P<v>{_SURNAME}{_GIVEN}{{1,2}})(?=[\s,:;]*(?:(?:\+?86)?\s?1[3-9][0-9]|0[1-9][0-9]{{1,2}}-?[0-9]{{7}}))")
# A name opening shipping details: "白雪，辽宁省…" / "欧阳锋 是…" (only with a phone or an address after it)
_ZH_NAME_LEAD_RE = re.compile(rf"^\s*(?P<v>{_SURNAME}{_GIVEN}{{1,2}})(?=[\s,])")
_ZH_DETAILS_AFTER = re.compile(r"1[3-9][0-9]{9}|0[1-9][0-9]{1,2}-?[0-9]{7}|[省市区县路街号]")
# 老张 / 小刘: a familiar form, after a cue (麻烦, 让, 同事…) or no Han, before a verb or a time word
_ZH_FAMILIAR_RE = re.compile(
    r"(?:" + "|".join(f"(?<={w})" for w in lx.ZH_FAMILIAR_CUES) + r"|(?<![\u4e00-\u9fff]))"
    rf"(?P<v>[老小][{lx.ZH_SURNAMES_1}])(?={_alt(lx.ZH_FAMILIAR_AFTER)}|,|\s|$)")
# Self-introductions: "我是唐建华，…" (only where the name ends the clause), "我姓夏侯，叫夏侯惇宇";
# "我姓王" gives the surname alone.
_ZH_INTRO_RE = re.compile(
    rf"(?:(?:我|本人)就?是|姓{_SURNAME}[\s,]*叫)\s?(?P<v>{_SURNAME}{_GIVEN}{{1,2}})(?=[\s,.!?;~]|$|[啊呀哈哦])")
_ZH_SURNAME_INTRO_RE = re.compile(rf"(?:我|本人|免贵)姓\s?(?P<v>{_SURNAME})")
_ZH_PLACE_START = re.compile(_alt(lx.ZH_PLACES))
_ZH_SIGNED_RE = re.compile(r"(?:落款|署名|签名)\s?[:是为]?\s?(?P<v>[\u4e00-\u9fff]{2,3})(?=[\s,.!?;]|$)")
# a name after a role word (no surname needed), before a verb or the clause's end
_ZH_ROLE_NAME_RE = re.compile(
    rf"(?:{_alt(lx.ZH_ROLE_NAME_CUES)})(?P<v>(?![家门里外上下前后刚已正马就还都也又再才先领拿推发回找问])"
    rf"{_GIVEN}{{2,3}}?)(?=说|讲|挑|收|签|在|[\s,.!?;(]|$)")
# a name after a receiver's cue and a colon, up to the clause's end: 收件人：阿拉坦其其格
_ZH_RECEIVER_RE = re.compile(
    rf"(?:收件人|收货人|联系人|签收人|姓名)\s?:\s?(?P<v>{_GIVEN}{{2,8}})(?=[\s,.!?;(]|$)")
# two names joined by "·": 爱新觉罗·淑慧, 阿依古丽·买买提 (Manchu, Uyghur and transliterated names)
_ZH_DOT_NAME_RE = re.compile(rf"[{_HAN}]{{2,12}}·[{_HAN}]{{2,6}}(?![{_HAN}·])")
_ZH_NUMERAL_TAIL = re.compile(r"一(?:下|个|件|些|点|样|直|起|共|次|天|单)")
_ZH_NAME_SUFFIX_RE = re.compile(rf"(?P<v>{_SURNAME}{_GIVEN}{{0,2}}?)(?:{_alt(lx.ZH_NAME_SUFFIX_CUES)})")
_EN_WORD = rf"(?:[A-Z]['’])?[A-Z{_LATIN_UPPER}][a-z{_LATIN_LOWER}]+(?:['\-][A-Z]?[a-z{_LATIN_LOWER}]+)?"  # O'Connor, José, Nguyễn
_EN_NAME_RE = re.compile(
    rf"(?<![A-Za-z])(?P<cue>(?i:{'|'.join(lx.EN_NAME_CUES)}))(?:(?<=[.,:])[ \t]*|[ \t]+|[ \t]*\n[ \t]*)"
    rf"(?:{lx.EN_HONORIFICS}[ \t]+)?"
    rf"(?P<v>{_EN_WORD}(?:[ \t](?:[A-Z]\.[ \t])?{_EN_WORD}){{0,2}})(?![A-Za-z])")


_SUFFIX_CUE_TAIL = re.compile(rf"(?<=.)(?:(?:{_alt(lx.ZH_NAME_SUFFIX_CUES)}).*|[先女小])$")
_NAME_SHAPE = re.compile(rf"{_SURNAME}{_GIVEN}{{0,2}}")


def _in_not_name(norm: str, start: int, end: int, before: int = 3) -> bool:
    """True when the candidate is part of a known non-name word ("谢谢先生" is not 谢)."""
    window = norm[max(0, start - before):end + 1]
    return any(w in window for w in lx.ZH_NOT_NAMES)


def _zh_intro_ok(v: str) -> bool:
    """A self-introduced name is no common word, brand, role or place (我是江苏的, 我是韩国人)."""
    return not (v in lx.ZH_NOT_NAMES or v[:2] in lx.ZH_NOT_NAMES or v in lx.ZH_NAME_ROLES
                or any(v.startswith(b) for b in lx.ZH_NAME_BRANDS) or _ZH_PLACE_START.match(v)
                or v[-1] in "人省市区县镇村路街")


def detect_zh_names(norm: str) -> list[Detection]:
    hits = []
    for rx in (_ZH_INTRO_RE, _ZH_SURNAME_INTRO_RE):
        hits += [Detection("NAME", m.start("v"), m.end("v"), m.group("v")) for m in rx.finditer(norm)
                 if rx is _ZH_SURNAME_INTRO_RE or _zh_intro_ok(m.group("v"))]
    for m in _ZH_NAME_PREFIX_RE.finditer(norm):
        v = _SUFFIX_CUE_TAIL.sub("", m.group("v"))  # "收货人:叶先生" -> 叶
        if v not in lx.ZH_NOT_NAMES and v[:2] not in lx.ZH_NOT_NAMES:
            hits.append(Detection("NAME", m.start("v"), m.start("v") + len(v), v))
    for m in _ZH_NAME_BEFORE_PHONE_RE.finditer(norm):
        if not _in_not_name(norm, m.start("v"), m.end("v")):
            hits.append(Detection("NAME", m.start("v"), m.end("v"), m.group("v")))
    m = _ZH_NAME_LEAD_RE.match(norm)
    if m and _ZH_DETAILS_AFTER.search(norm, m.end()) and not _in_not_name(norm, m.start("v"), m.end("v")):
        hits.append(Detection("NAME", m.start("v"), m.end("v"), m.group("v")))
    for m in _ZH_FAMILIAR_RE.finditer(norm):
        v = m.group("v")
        # the window starts at 老/小: a cue before it (麻烦老王) is no part of the name
        if v not in lx.ZH_NOT_NAMES and v not in lx.ZH_NAME_ROLES \
                and not _in_not_name(norm, m.start("v"), m.end("v"), before=0):
            hits.append(Detection("NAME", m.start("v"), m.end("v"), v))
    hits += [Detection("NAME", m.start("v"), m.end("v"), m.group("v")) for m in _ZH_SIGNED_RE.finditer(norm)]
    for rx in (_ZH_ROLE_NAME_RE, _ZH_RECEIVER_RE):
        for m in rx.finditer(norm):
            v = _SUFFIX_CUE_TAIL.sub("", m.group("v"))  # 收货人:叶先生 -> 叶
            if _zh_intro_ok(v):
                hits.append(Detection("NAME", m.start("v"), m.start("v") + len(v), v))
    for m in _ZH_DOT_NAME_RE.finditer(norm):
        dot = norm.index("·", m.start())
        start = max(m.start(), dot - 4)  # 我外婆叶赫那拉·秀珍: the four characters before the dot,
        while start < dot and norm[start] in lx.ZH_NAME_STOP:  # less a cue's end (收件人|热依拉·…)
            start += 1
        # (any characters: 那 and 买 end no name elsewhere, but 叶赫那拉 and 买买提 are names)
        if dot - start >= 2 and norm.rfind("《", 0, start) <= norm.rfind("》", 0, start):  # not 《哈利·波特》
            hits.append(Detection("NAME", start, m.end(), norm[start:m.end()]))
    hits = [h for h in hits if not _ZH_NUMERAL_TAIL.search(norm, h.start + 1, h.end + 1)]
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


_SURNAME_1 = set(lx.ZH_SURNAMES_1)
_NAME_STOP_SET = set(lx.ZH_NAME_STOP)
_COMMON_FREQ = 40  # jieba dictionary count: 李建国 9, 王建国 12; 荣幸 148, 顾客 1,365
_NAME_CUE_BEFORE = re.compile(
    r"(?:叫|是|转告|告诉|让|找|给|交给|收件人|收货人|联系人|名字|姓名|写|签收人|寄件人|改成|改为|换成|[:：])\s?$")


# 总 alone is a title unless it starts a word (总是, 总共, 总部, 总监...)
_TITLED_RE = re.compile(rf"(?P<v>{_SURNAME})(?={_alt([t for t in lx.ZH_TITLES if t != '总'])}"
                        r"|总(?!是|共|部|价|之|结|额|算|体|数|计|的|监|量|裁))")


def _titled_surnames(norm: str) -> list[Detection]:
    """A surname right before a title other than 先生/女士 (钟师傅, 岑经理), unless the two characters
    before the title are a word jieba knows (课程老师, 快递师傅: no surname there)."""
    hits = []
    for m in _TITLED_RE.finditer(norm):
        s = m.start()
        if m.group("v") in lx.ZH_VERB_SURNAMES:
            continue  # 祝老板生意兴隆, 祝老师节日快乐: "wish", not a surname
        if s and "\u4e00" <= norm[s - 1] <= "\u9fff":
            left = max(0, s - 3)
            if any(a + left < s < b + left for _, a, b in dictionary_words(norm[left:m.end() + 2])):
                continue  # 课|程老师: the character belongs to the word before
        hits.append(Detection("NAME", s, m.end("v"), m.group("v")))
    return hits


def detect_zh_names_model(norm: str) -> list[Detection]:
    """Person names jieba tags `nr` (in any context, no cue needed), kept when they start with a
    known surname (a compound one may be its own token: 欧阳 + 娜娜) and are not a brand that
    looks like a name (李宁, 王老吉: `lexicon.ZH_NAME_BRANDS`) or a role word. An import or
    tagging failure raises, and the masker fails closed."""
    if not _CJK_RE.search(norm):
        return []
    hits = _titled_surnames(norm)
    pos = 0
    prev: tuple[str, int] | None = None  # the previous token and where it started
    brands = zh_brand_spans(norm)
    for word, flag in posseg().cut(norm, HMM=True):
        start, end = pos, pos + len(word)
        pos = end
        if flag in _NAME_TAGS:
            if prev and prev[0] in lx.ZH_SURNAMES_2 and start == prev[1] + len(prev[0]) \
                    and 1 <= len(word) <= 2:
                start, word = prev[1], prev[0] + word  # 欧阳 | 娜娜
            elif prev and len(prev[0]) == 1 and prev[0] in _SURNAME_1 and start == prev[1] + 1 \
                    and len(word) == 2 and word[0] not in _SURNAME_1:
                start, word = prev[1], prev[0] + word  # 刘 | 海涛
            # jieba's dictionary tags many common words nr (荣幸, 顾客, 阳光): a word it has seen
            # often is a name only after a cue (我是李娜, 让高峰来取); a rare or unseen one always
            freq = dictionary_count(word)
            cued = bool(_NAME_CUE_BEFORE.search(norm[max(0, start - 4):start]))
            compound = word[:2] in lx.ZH_SURNAMES_2
            ok = (2 <= len(word) <= (4 if compound else 3) and (compound or word[0] in _SURNAME_1)
                  and word[-1] not in "镇村屯县乡区市省路街"  # 柳塔镇, 马家屯: places
                  and not (start and norm[start - 1] in "这那一几每哪两该此")  # 这张卡付: a measure word
                  and (freq < _COMMON_FREQ or cued)
                  and not any(ch in _NAME_STOP_SET for ch in word[1:])  # 祝您, 谢谢您
                  and word not in lx.ZH_NAME_BRANDS and word not in lx.ZH_NAME_ROLES
                  and word not in lx.ZH_NOT_NAMES and not any(word.startswith(b) for b in lx.ZH_NAME_BRANDS))
            if ok and not any(bs < end and start < be for bs, be in brands):  # 钟薛高化 | 王小卤
                hits.append(Detection("NAME", start, end, word))
        prev = (word, start)
    return hits


_EN_PAIR_RE = re.compile(rf"(?<![A-Za-z'’\-])(?P<v>{_EN_WORD}(?:[ \t]{_EN_WORD}){{1,2}})(?![A-Za-z])")
_EN_SINGLE_RE = re.compile(rf"(?<![A-Za-z'’\-])(?P<v>{_EN_WORD})(?![A-Za-z'’])")
_EN_CAP_NEIGHBOUR = re.compile(r"[A-Z][A-Za-z\u00C0-\u00FF'’\-]*\.?[ \t]+$")
_EN_ARTICLE_BEFORE = re.compile(r"(?i:\b(?:the|a|an|these|those|that|this|your|our|their|new|old)\s)$")
_EN_LOWER_CUE_RE = re.compile(
    r"(?i:\b(?:this is|my name is|my name's|name is|i am|i'm|it's|my (?:son|daughter|bf|gf|boyfriend|girlfriend|"
    r"wife|husband|friend|mom|mum|mother|dad|father|brother|sister|partner|roommate|colleague)))"
    r"[ \t]+(?P<a>[a-z][a-z'\-]+)(?:[ \t]+(?P<b>[a-z][a-z'\-]+))?")
_EN_SIGN_AFTER = re.compile(r"\s*(?:[.!?)]*\s*$|,\s*(?:\(?\+?[0-9]|[A-Za-z0-9._%+\-]+@)|\s+(?:\(?\+?[0-9]|here\b|again\b)"
                            r"|[,\s]+(?:Unit|Flat|Apt|Suite|PO Box|P\.O\.)\b|\s*[–—\-]\s)")
_EN_SIGN_BEFORE = re.compile(r"(?:^|\n|[.!?]\s+|[–—\-]\s*|,\s*|\bfor\s|\bto\s|\bby\s|\bask for\s|\battn\.?\s|"
                             r"\b(?:mother|father|mom|mum|dad|wife|husband|son|daughter|friend|recipient|contact:?)\s)$")


_EN_SENTENCE_START = re.compile(r"(?:^|[.!?][ \t]+|\n[ \t]*)$")


def _sentence_initial(norm: str, start: int) -> bool:
    return bool(_EN_SENTENCE_START.search(norm, max(0, start - 4), start))


def _en_known(words: list[str], world: bool = False) -> bool:
    """The run opens with a known given name or a surname ("Li Wei", "Nguyen Van An"); `world`:
    a pair may also open with any given name of the world list ("Amara Okafor")."""
    first = words[0]
    if world and len(words) >= 2 and first in lx.world_given_names():
        return True
    return first in lx.EN_GIVEN_NAMES or first in lx.EN_PINYIN_SURNAMES or (
        first in lx.EN_SURNAMES_FIRST and (len(words) >= 3 or first not in lx.EN_SURNAMES_FIRST_AMBIGUOUS))


def _en_name_ok(words: list[str]) -> bool:
    street = set(lx.EN_STREET_TYPES) | set(lx.EN_STREET_ABBREVIATIONS)
    return bool(words) and not any(w in lx.EN_NOT_NAMES or w in street or w in lx.EN_ORG_WORDS
                                   or w.lower() in lx.EN_NAME_STOPWORDS for w in words)


def detect_en_names_loose(norm: str) -> list[Detection]:
    """English names without a cue: a known given name (or pinyin surname) before a capitalised
    word, a capitalised pair where a signature or recipient stands, a known given name alone
    mid-sentence, and lower-case names after "this is" / "my son"."""
    hits = []
    for m in _EN_PAIR_RE.finditer(norm):
        at = m.start("v")  # each word with its offsets (any whitespace between)
        spans = [(w.group(), at + w.start(), at + w.end()) for w in re.finditer(r"\S+", m.group("v"))]
        words = [w for w, _, _ in spans]
        # after a surname and a middle name, the third word is the given name, whatever it spells (An)
        while words and not _en_name_ok(words[-1:]) and not (len(words) == 3 and words[0] in lx.EN_SURNAMES_FIRST):
            words.pop()
            spans.pop()
        while words and not _en_name_ok(words[:1]):
            words.pop(0)
            spans.pop(0)
        if len(words) >= 3 and not _en_known(words) and _sentence_initial(norm, spans[0][1]):
            words.pop(0)  # "Tell José Álvarez …": the sentence's capitalised first word is no part of the name
            spans.pop(0)
        if len(words) < 2:
            continue
        start, end = spans[0][1], spans[-1][2]
        v = norm[start:end]
        before = norm[max(0, start - 30):start]
        if _EN_ARTICLE_BEFORE.search(before) or norm[end:end + 2] in ("'s", "’s"):
            continue  # "the Acme Deluxe", "Someone's": a product or a brand
        placed = _EN_SIGN_BEFORE.search(before) and _EN_SIGN_AFTER.match(norm, end)
        if _en_known(words, world=True) or placed:
            hits.append(Detection("NAME", start, end, v))
    for m in _EN_SINGLE_RE.finditer(norm):
        w = m.group("v")
        neighbour = _EN_CAP_NEIGHBOUR.search(norm, max(0, m.start() - 20), m.start())
        if neighbour and _sentence_initial(norm, neighbour.start()) and not _en_known(neighbour.group().split()):
            neighbour = None  # "Ask Kevin to…": a sentence's first word, not part of a capitalised run
        if w in lx.EN_GIVEN_NAMES and not _EN_ARTICLE_BEFORE.search(norm[max(0, m.start() - 12):m.start()]) \
                and not neighbour \
                and not re.match(rf"[ \t]+(?:&|{_EN_WORD})", norm[m.end():m.end() + 20]):  # part of a capitalised run
            hits.append(Detection("NAME", m.start(), m.end(), w))
    for m in _EN_LOWER_CUE_RE.finditer(norm):
        a, b = m.group("a"), m.group("b")
        if a.title() not in lx.EN_GIVEN_NAMES:
            continue
        end = m.end("b") if b and b not in lx.EN_NAME_STOPWORDS else m.end("a")
        hits.append(Detection("NAME", m.start("a"), end, norm[m.start("a"):end]))
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
        if re.fullmatch(lx.EN_HONORIFICS, m.group("cue")) \
                and _EN_ARTICLE_BEFORE.search(norm[max(0, m.start() - 12):m.start()]):
            continue  # "the Dr. Foo boots": an article before a title makes it a brand
        v = " ".join(words)
        start = m.start("v")
        hits.append(Detection("NAME", start, start + len(m.group("v")[:len(v)]), v))
    if re.search(r"[A-Za-z]", norm):
        hits += detect_en_names_loose(norm)
        brands = [(b.start(), b.end()) for b in EN_BRAND_RE.finditer(norm)]
        hits = [h for h in hits if not any(bs < h.end and h.start < be for bs, be in brands)]
        from endcloud.data.pii.tagger import no_person

        hits = [h for h in hits if not no_person(norm, h.start, h.end)]  # Hong Kong, Accounts Dept
    return hits
