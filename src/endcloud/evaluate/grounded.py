"""Groundedness: are a reply's checkable facts supported by what it was given?

    g = grounding("退货运费9元，11天内可退", ["退货运费 9 元。签收后 11 天内可申请退货。"])
    g.score, g.claims, g.unsupported          # 1.0, ['11天', '9元'], []
    grounding("退货运费1元", ["退货运费 9 元"]).unsupported   # ['1元']

Checkable facts (`claims`), after NFKC:
- an amount with its unit: money (9元, ¥9, $4.5, 5 dollars), durations (11天, 36小时, 5 business
  days, 18个月), percentages (12%) - `facts.claims`;
- any other number of two or more digits (a phone, an order count, a year, a cut-off "15:45");
- a named policy: 七天无理由 / N天无理由, 包邮, 运费险, 价保 / 保价, 以旧换新, 全国联保, 假一赔N,
  "free shipping", "price match", "N-day return".
A claim is supported when the support text (knowledge chunks given to the model, the cloud
reply, the customer's own messages) holds the same claim.

`score` = supported / claims in [0, 1]; a reply with no checkable claim has `score` None (there is
nothing to check: reports count it apart, gates treat it as grounded).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from endcloud.evaluate.facts import claims as amounts
from endcloud.evaluate.facts import numbers

_POLICIES = [
    (re.compile(r"(\d+|七|十五|三十)\s*天无理由"), "{}天无理由"), (re.compile(r"包邮"), "包邮"),
    (re.compile(r"运费险"), "运费险"), (re.compile(r"价保|保价"), "价保"), (re.compile(r"以旧换新"), "以旧换新"),
    (re.compile(r"全国联保"), "全国联保"), (re.compile(r"假一赔(\d+|[一二三四五六七八九十])"), "假一赔{}"),
    (re.compile(r"(?i)free (?:shipping|delivery)"), "free shipping"),
    (re.compile(r"(?i)price[- ]match"), "price match"),
    (re.compile(r"(?i)(\d+)[- ]day (?:return|refund|money[- ]back)"), "{}-day return"),
]


def policies(text: str) -> set[str]:
    t = unicodedata.normalize("NFKC", text)
    out = set()
    for pattern, name in _POLICIES:
        for m in pattern.finditer(t):
            out.add(name.format(*m.groups()) if m.groups() else name)
    return out


def claims(text: str) -> set[str]:
    """The checkable facts of `text` (see the module docstring)."""
    amt = amounts(text)
    bare = {n for n in numbers(text) if len(n.replace(".", "")) >= 2}
    # a number already claimed with its unit is not claimed a second time bare
    with_unit = {re.sub(r"[^\d.]", "", a) for a in amt}
    return amt | {f"#{n}" for n in bare - with_unit} | policies(text)


@dataclass(frozen=True)
class Grounding:
    claims: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        if not self.claims:
            return None
        return round(1.0 - len(self.unsupported) / len(self.claims), 4)


def grounding(reply: str, support: list[str]) -> Grounding:
    """Which of the reply's claims the support texts hold."""
    mine = claims(reply)
    if not mine:
        return Grounding()
    given = " \n ".join(s for s in support if s)
    have = claims(given) | {f"#{n}" for n in numbers(given)}
    return Grounding(sorted(mine), sorted(mine - have))
