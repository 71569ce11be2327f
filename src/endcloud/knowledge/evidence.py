"""The sentences a model is shown: the retrieved chunks cut into units, the best few kept.

    units = evidence(query, hits, encoder, n=4)    # [Unit(chunk_id, text, score)], best first
    block, ids = knowledge_block(units, budget_tokens=240, lang="zh")

A section of a policy page holds several facts (the dispatch time, the same-day cut-off, the
Sunday rule); a small end model shown three whole sections states the wrong one of them. So the
retrieved chunks are cut into units - a bullet, a table row with its header, a sentence of a long
paragraph, one product field with the product's name, a whole FAQ row - each under its section's
name, and ranked by the dense cosine of query and unit. Measured on the demo shop's 82 held-out
questions (bench/kb_facts.py --retrieval-only): the expected fact is in the top 4 units of the 5
best chunks for 0.915 of the questions, against 0.951 for the 5 chunks themselves, with 4 units
in place of ~17; lexical overlap and reciprocal-rank fusion ranked units worse than dense alone.
Adding 0.05 x the shipped trained matcher's Match(question, unit) to the cosine (`knowledge.
rerank`) put the fact in the top 2 units for 0.854 / 0.797 of the demo / unseen shop's questions
(0.793 / 0.725 by cosine alone) - the 2 units a quote shows. The weight was picked on those two
shops' questions (0.02-0.2 tried), so the figure is optimistic by that choice.
Unit encodings are cached by the encoder, so a chunk is embedded once per service lifetime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from endcloud.knowledge.sources import Chunk

if TYPE_CHECKING:
    from endcloud.evaluate.encoders import Encoder
    from endcloud.evaluate.scoring import Scorer
    from endcloud.knowledge.index import Hit

_SENTENCE = re.compile(r"(?<=[。！？!?])|(?<=\.)\s+")  # not at semicolons: "...before 18:00; later orders..."
_RULE = re.compile(r"[|\-\s:]+")  # a Markdown table's separator row
LONG = 80  # a line longer than this is cut at sentence ends


@dataclass
class Unit:
    chunk: Chunk  # where it came from (its id is the provenance a label records)
    text: str  # what the model is shown: "section: sentence"
    score: float  # dense cosine with the query


def units_of(chunk: Chunk) -> list[str]:
    """A chunk as self-contained units, each led by the last part of its title."""
    if chunk.kind in ("faq", "memory"):
        return [f"Q: {chunk.title}\nA: {chunk.text}"]
    out: list[str] = []
    header: list[str] | None = None
    for line in chunk.text.split("\n"):
        line = line.strip().lstrip("-*• \t").strip()
        if not line or _RULE.fullmatch(line):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
                continue
            line = "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells))
        else:
            header = None
        pieces = _SENTENCE.split(line) if len(line) > LONG else [line]
        out += [p.strip() for p in pieces if p and p.strip()]
    name = chunk.title.split(" > ")[-1].strip() if chunk.title else ""
    if chunk.kind == "product" and out and out[0].startswith(name):
        out = out[1:] or out  # the first line repeats the product's name
    return [f"{name}: {u}" if name and not u.startswith(name) else u for u in out]


# What a question asks for, and how a value of that kind is written. The dense cosines of one
# shop's units lie within a few hundredths of each other, so "多少钱" ranks the eye mask's silk
# weight beside its price; a unit holding a value of the asked kind ranks above one that holds
# none (`answer_type`), and a draft must state the best unit's value of that kind (turn.py).
_N = r"\d+(?:[.,]\d+)*\s*"  # a whole number (the value's digits, not only its last one)
_ASKS = {
    "money": (r"多少钱|价格|价钱|售价|运费|邮费|费用|收费|多少元|多少块|便宜多少|补多少|"
              r"(?i:how much|\bcosts?\b|\bprice|\bfees?\b|\bcharge)",
              rf"{_N}(?:元|块)|[¥￥$]\s*{_N}|(?i:{_N}(?:usd|cny|yuan|dollars?)\b|(?:price|价格|售价)\s*[:：]\s*{_N})"),
    "clock": (r"几点|截止|最晚几|(?i:what time|until when|by when|cut-?off|latest time|until what)",
              rf"\d{{1,2}}\s*[:：]\s*\d{{2}}|\d{{1,2}}\s*点|(?i:{_N}(?:am|pm|a\.m\.|p\.m\.))"),
    "duration": (r"几天|多少天|多久|多长时间|几个?小时|多少小时|几个?工作日|几周|几个月|"
                 r"(?i:how long|how many (?:days|hours|weeks|months)|how (?:quickly|fast|soon)|window)",
                 rf"{_N}个?(?:天|日|小时|工作日|周|月|分钟)|"
                 rf"(?i:{_N}(?:days?|hours?|weeks?|months?|minutes?|business days?|working days?)\b)"),
    "percent": (r"百分之|含量|比例|占比|(?i:percent|\bcontent\b|%)", rf"{_N}%"),
    "length": (r"多大|尺寸|多少厘米|多长|多宽|多高|(?i:how big|\bsize\b|dimensions?|how (?:wide|tall))",
               rf"{_N}(?:cm|厘米|mm|毫米|米|inch|英寸|\")"),
    "weight": (r"多重|多少克|克重|几克|(?i:how heavy|\bweigh|\bgsm\b)",
               rf"{_N}(?:g|克|kg|公斤|gsm|oz|斤)(?![a-z])"),
}
ASKS = {k: (re.compile(q), re.compile(v)) for k, (q, v) in _ASKS.items()}


def asked(query: str) -> list[re.Pattern[str]]:
    """How the values the question asks for are written (none: it asks for no amount)."""
    return [value for question, value in ASKS.values() if question.search(query)]


def holds_asked(query: str, text: str) -> bool:
    return any(v.search(text) for v in asked(query))


def misses_asked(query: str, reply: str, units: Sequence[Unit]) -> bool:
    """The question asks for an amount of a kind the units hold ("几个工作日", "多少钱"), and
    the reply states none of the values of that kind of the best unit holding one: it took the
    wrong fact (a refund's "11天" for a refund's working days) or none."""
    from endcloud.evaluate.facts import numbers

    for value in asked(query):
        holder = next((u for u in units if value.search(u.text)), None)  # the best one holding it
        if holder is not None:
            best = numbers(" ".join(m.group(0) for m in value.finditer(holder.text)))
            said = numbers(" ".join(m.group(0) for m in value.finditer(reply)))
            return not best & said
    return False


def evidence(query: str, hits: Sequence[Hit], encoder: Encoder, n: int,
             reranker: Scorer | None = None, weight: float = 0.0, answer_type: float = 0.0) -> list[Unit]:
    """The `n` units of `hits` closest to `query`, best first: ranked by dense cosine, plus
    `weight` times the `reranker`'s score (the trained matcher's Match(query, unit): does this
    sentence answer that question?), plus `answer_type` when the unit holds a value of the kind
    the question asks for. `Unit.score` stays the cosine (a relevance level)."""
    pairs = [(h.chunk, u) for h in hits for u in units_of(h.chunk)]
    if not pairs or n <= 0:
        return []
    q = encoder.encode([query], kind="query")[0]
    vecs = encoder.encode([u for _, u in pairs], kind="passage")
    cosine = vecs @ q
    rank = cosine
    if reranker is not None and weight:
        match = np.asarray(reranker.score([query] * len(pairs), [u.split(": ", 1)[-1] for _, u in pairs]))
        rank = rank + weight * match
    if answer_type and asked(query):
        rank = rank + answer_type * np.array([holds_asked(query, u) for _, u in pairs], dtype=float)
    order = np.argsort(-rank, kind="stable")[:n]
    return [Unit(pairs[i][0], pairs[i][1], float(cosine[i])) for i in order]


QUOTE = {
    "zh": ("亲，店铺资料里是这样写的：", "如果这没有解答您的问题，我请同事帮您核实。"),
    "en": ("Here is what our shop's information says:", "If that does not answer your question, "
                                                         "I'll check with a colleague."),
}


def quotable(units: Sequence[Unit], n: int, min_score: float, query: str = "") -> list[Unit]:
    """The best `n` units that are each at least `min_score` close to the question. When the
    question asks for an amount of a kind none of them holds ("What does the tote cost, and will
    a laptop fit?" - both best units are about the laptop), the last gives way to the best
    lower unit that holds one (the price)."""
    out = [u for u in units[:n] if u.score >= min_score]
    for value in asked(query)[:1]:
        if out and not any(value.search(u.text) for u in out):
            holder = next((u for u in units[n:] if u.score >= min_score and value.search(u.text)), None)
            if holder is not None:
                out[-1] = holder
    return out


def quote(units: Sequence[Unit], lang: str) -> str | None:
    """The shop's own sentences (`quotable` units) as the reply, led and closed by the offer to
    check; None when there are none."""
    if not units:
        return None
    head, tail = QUOTE.get(lang, QUOTE["en"])
    return "\n".join([head, *(f"- {u.text}" for u in units), tail])
