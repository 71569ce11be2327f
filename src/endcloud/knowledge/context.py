"""What a model is shown from the knowledge base, and the guard on what a customer is shown.

    block, ids = knowledge_block(hits, budget_tokens=240, lang="zh")
    messages = with_knowledge(messages, block)                 # into the system message
    messages = fit_messages(messages, max_input_tokens=512)     # oldest history dropped first
    guard = placeholder_guard(reply, conversation)              # restore ours, flag the rest

Token counts are estimates (`estimate_tokens`, one per CJK character or Latin word, times a
margin for sub-word tokenizers), because the service may not hold the end model's tokenizer
(an upstream server); the estimate errs high, so a backend never has to cut the prompt itself
(which would cut from the left: the instruction and the shop's facts first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from endcloud.text import estimate_tokens
from endcloud.knowledge.evidence import Unit

if TYPE_CHECKING:
    from endcloud.data.privacy import Conversation
    from endcloud.knowledge.index import Hit

MARGIN = 1.3  # sub-word tokenizers split some words; the estimate must not run short
PER_MESSAGE = 8  # chat-template tokens around each message
HEADERS = {
    "zh": ("店铺资料（请只根据这些资料回答顾客；资料里没有的信息不要编造，请告诉顾客会为其核实或转人工）：",
           "已确认的回答："),
    "en": ("Shop information (answer the customer only from it; do not make up anything it does not "
           "say - tell the customer you will check, or hand over to a colleague). Reply in English:",
           "Approved answers:"),
}
# Placeholders a reply must never show: ours ([PHONE_1]) and the corpora's ([数字x], {{Order Number}}).
PLACEHOLDER = re.compile(r"\[[A-Z]+_\d+\]|\[(?:ORDERID|USERID)_[^\]\s]*\]|\[[\u4e00-\u9fff]{1,6}x\]"
                         r"|\{\{[^{}\n]{1,40}\}\}")
_CJK = re.compile(r"[\u3400-\u9fff]")


def lang_of(text: str) -> str:
    """'zh' when at least a fifth of the letters are CJK, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "zh"
    return "zh" if sum(bool(_CJK.match(c)) for c in letters) * 5 >= len(letters) else "en"


def tokens_of(text: str) -> int:
    return int(estimate_tokens(text) * MARGIN) + 1


def knowledge_block(hits: Sequence[Hit | Unit], budget_tokens: int, lang: str) -> tuple[str, list[str]]:
    """The numbered chunks (`Hit`s) or units (`evidence.Unit`s) that fit in `budget_tokens`,
    best first, and the ids of the chunks they came from."""
    head, memory_head = HEADERS.get(lang, HEADERS["en"])
    lines: list[str] = []
    ids: list[str] = []
    used = tokens_of(head)
    for hit in hits:
        c = hit.chunk
        if isinstance(hit, Unit):
            entry = f"[{len(lines) + 1}] {hit.text}"
        elif c.kind == "memory":
            entry = f"[{len(lines) + 1}] Q: {c.title}\n    A: {c.text}"
        else:
            title = f"{c.title}: " if c.title and c.kind != "faq" else (f"Q: {c.title}\n    A: " if c.title else "")
            entry = f"[{len(lines) + 1}] {title}{c.text}"
        cost = tokens_of(entry)
        if used + cost > budget_tokens:
            continue  # a smaller, lower-ranked chunk may still fit
        lines.append(entry)
        if c.id not in ids:
            ids.append(c.id)
        used += cost
    if not lines:
        return "", []
    return head + "\n" + "\n".join(lines), ids


def with_knowledge(messages: list[dict[str, str]], block: str) -> list[dict[str, str]]:
    """The messages with `block` appended to the system message (one is added if none)."""
    if not block:
        return messages
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = out[0]["content"].rstrip() + "\n\n" + block
    else:
        out.insert(0, {"role": "system", "content": block})
    return out


def fit_messages(messages: list[dict[str, str]], max_input_tokens: int,
                 reserve: int = 0) -> list[dict[str, str]]:
    """Drop the oldest history turns until the estimate fits; the system message and the last
    user message always stay (a last message that alone is too long is the backend's to cut)."""
    budget = max_input_tokens - reserve

    def cost(ms: list[dict[str, str]]) -> int:
        return sum(tokens_of(m["content"]) + PER_MESSAGE for m in ms)

    head = [m for m in messages[:1] if m["role"] == "system"]
    rest = messages[len(head):]
    while len(rest) > 1 and cost(head + rest) > budget:
        rest = rest[1:]
        while len(rest) > 1 and rest[0]["role"] != "user":  # start the history at a user turn
            rest = rest[1:]
    return head + rest


@dataclass
class Guarded:
    text: str
    restored: int  # this conversation's own placeholders put back
    missing: list[str]  # placeholders with nothing behind them: facts the model did not have


def placeholder_guard(reply: str, conversation: Conversation | None = None) -> Guarded:
    """Restore this conversation's own masked values; list every other placeholder."""
    restored, missing = 0, []
    text = reply
    for m in set(PLACEHOLDER.findall(reply)):
        value = conversation.restore(m) if conversation is not None else m
        if value != m:
            text = text.replace(m, value)
            restored += 1
        else:
            missing.append(m)
    return Guarded(text, restored, sorted(missing))
