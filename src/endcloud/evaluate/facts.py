"""Fact accuracy on a shop's held-out questions: is the expected fact in the reply, and did the
reply invent a number the shop's documents never state?

    q = {"question": "退货运费多少?", "answerable": True, "facts": [["9元", "九元"]]}
    judge(q, "退货运费9元哦", kb_text)   # Verdict(stated=True, invented=[], abstained=False)

A fact is a list of acceptable surface forms; a reply states it when any form occurs after NFKC,
lower-casing and removing spaces. An invented number is a number in the reply that occurs neither
in the knowledge text nor in the question. For a question the knowledge base cannot answer, a
reply is without an invented fact when it invents no number and says it will check, hand over
or does not know (ABSTAIN) - a confident "yes, we do" counts as invented.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
ABSTAIN = re.compile(
    r"核实|确认|查询|查一下|查看一下|帮您问|问一下|咨询|转接|转人工|人工客服|同事|专员|不太清楚|不清楚|"
    r"暂时无法|无法确定|没有相关|暂无相关|资料里没有|未提及|稍后回复|尽快回复|"
    r"(?i:check|confirm|colleague|not sure|unsure|don't know|do not know|no information|"
    r"don't have|do not have|hand (you )?over|get back to|look into|find out|specialist)")


def norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def numbers(text: str) -> set[str]:
    """The numbers in `text`, as written after NFKC ("1,299" -> "1299"; "4.50" -> "4.5")."""
    t = unicodedata.normalize("NFKC", text).replace(",", "")
    return {n.rstrip("0").rstrip(".") if "." in n else n.lstrip("0") or "0" for n in _NUMBER.findall(t)}


_UNIT = [(re.compile(r"[¥￥](\d+(?:\.\d+)?)"), "元"), (re.compile(r"(\d+(?:\.\d+)?)\s*(?:元|块)"), "元"),
         (re.compile(r"\$\s*(\d+(?:\.\d+)?)"), "$"), (re.compile(r"(?i)(\d+(?:\.\d+)?)\s*(?:dollars|usd)"), "$"),
         (re.compile(r"(\d+)\s*个?工作日|(?i:(\d+)\s*business days?)"), "工作日"),
         (re.compile(r"(\d+)\s*(?:天|日)(?!用)|(?i:(\d+)\s*days?)"), "天"),
         (re.compile(r"(\d+)\s*个?小时|(?i:(\d+)\s*(?:hours?|h\b))"), "小时"),
         (re.compile(r"(\d+)\s*个?月|(?i:(\d+)\s*months?)"), "月"), (re.compile(r"(\d+(?:\.\d+)?)\s*%"), "%")]


def claims(text: str) -> set[str]:
    """Amounts with their unit ("9元", "$4.5", "11天", "36小时", "5工作日", "18月", "12%"): a
    number alone may occur anywhere in the shop's text; the same number with its unit may not."""
    t = unicodedata.normalize("NFKC", text).replace(",", "")
    out = set()
    for pattern, unit in _UNIT:
        for m in pattern.finditer(t):
            n = next(g for g in m.groups() if g)
            n = n.rstrip("0").rstrip(".") if "." in n else n
            out.add(f"${n}" if unit == "$" else f"{n}{unit}")
    return out


@dataclass
class Verdict:
    stated: bool  # every expected fact present (answerable questions)
    invented: list[str]  # numbers neither the knowledge text nor the question holds
    abstained: bool  # said it will check / hand over / does not know

    @property
    def correct(self) -> bool:
        """Answerable: the fact stated and no invented number. Unanswerable: no invented fact."""
        return self.stated and not self.invented

    @property
    def honest(self) -> bool:
        return not self.invented and self.abstained


def judge(question: dict[str, Any], reply: str, kb_numbers: set[str]) -> Verdict:
    r = norm(reply)
    stated = all(any(norm(form) in r for form in fact) for fact in question.get("facts") or [])
    allowed = kb_numbers | numbers(question["question"])
    invented = sorted(numbers(reply) - allowed)
    return Verdict(bool(question.get("facts")) and stated, invented, bool(ABSTAIN.search(reply)))


def summarise(questions: list[dict[str, Any]], replies: list[str], kb_text: str) -> dict[str, Any]:
    """Fact accuracy over the answerable questions, honesty over the unanswerable ones."""
    kb_numbers = numbers(kb_text)
    answerable = [(q, r) for q, r in zip(questions, replies) if q["answerable"]]
    other = [(q, r) for q, r in zip(questions, replies) if not q["answerable"]]
    verdicts = [judge(q, r, kb_numbers) for q, r in answerable]
    honest = [judge(q, r, kb_numbers).honest for q, r in other]
    return {"answerable": len(answerable), "fact_accuracy": _mean([v.correct for v in verdicts]),
            "stated": _mean([v.stated for v in verdicts]),
            "invented_number": _mean([bool(v.invented) for v in verdicts]),
            "unanswerable": len(other), "unanswerable_honest": _mean(honest),
            "unanswerable_invented": None if not other else 1 - _mean(honest)}


def _mean(xs: list[bool]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else float("nan")
