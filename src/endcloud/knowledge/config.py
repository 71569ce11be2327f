"""Configuration of the shop's knowledge: `endcloud kb build` (configs/kb.yaml) and the
`knowledge:` section of `endcloud serve` (configs/serve.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from endcloud.config import check

# A question that asks for one of these needs a shop fact; with nothing relevant retrieved it is
# not the end model's to answer (`knowledge.on_missing`).
FACT_PATTERNS = [
    r"多久|几天|几点|多少|多长|什么时候|哪天|截止|时效|运费|邮费|包邮|费用|价格|多钱|退货|退款|换货|"
    r"保修|质保|发票|优惠|满减|会员|积分|地址|寄回|时间|营业|客服电话|尺码|材质|续航|容量",
    r"(?i)\b(how (long|much|many|soon)|when|what time|price|cost|fee|shipping|delivery|return|"
    r"refund|exchange|warranty|invoice|coupon|discount|member|points|address|hours|size|"
    r"material|battery|capacity|deadline|cut-?off)\b",
    # any other question that is not small talk: "当天能发走吗？", "Which state do you ship from?"
    # (on the demo and unseen shops the two lists above missed 20 of 82 and 27 of 69 fact questions)
    r"^(?![\s\S]*(?:机器人|人工|真人|在吗|有人吗|你好|谢谢|(?i:\bbot\b|human|anyone there|are you there|hello|\bhi\b|thank)))"
    r"(?:\s*(?i:what|which|how|when|where|why|who|is|are|can|could|do|does|did|will|would|should)\b"
    r"|[\s\S]*(?:[？?]|吗|呢|几|多少|哪|什么|怎么|如何|能不能|可不可以|是否|有没有|会不会))",
]


@dataclass
class KBConfig:
    """`endcloud kb build`: documents -> a hybrid (BM25 + dense) index folder."""

    input: list[str] = field(default_factory=list)  # files or folders
    output: str = ""  # the index folder (replaced atomically)
    encoder: str = "e5"  # dense encoder (endcloud.evaluate.encoders): e5 | use | ngram
    max_chunk_chars: int = 600  # a longer section is split at paragraph, then sentence ends
    max_file_bytes: int = 10 * 1024 * 1024  # larger files are skipped (and listed in the report)
    memory: list[str] = field(default_factory=list)  # approved Q/A: prepared samples, labels, FAQ

    def __post_init__(self) -> None:
        check(self.max_chunk_chars >= 50, "max_chunk_chars", "must be >= 50")
        check(self.max_file_bytes >= 1024, "max_file_bytes", "must be >= 1024")


@dataclass
class KnowledgeConfig:
    """`knowledge:` in serve.yaml: what the service retrieves for each turn."""

    index: str = ""  # `endcloud kb build` output; "" = no knowledge base
    memory: str = ""  # an answer-memory folder (`kb build --memory ...`); staff approvals add to it
    required: bool = True  # an index that is set but missing/corrupt: refuse to start (false: warn)
    k: int = 5  # chunks retrieved per turn
    # the units (bullets, table rows, sentences, product fields) of those chunks closest to the
    # question are what the end model is shown (knowledge/evidence.py); 0 = the whole chunks
    units: int = 4
    rerank: float = 0.05  # + this x the trained matcher's Match(question, unit) in the units' ranking (0 = off)
    # + this for a unit holding a value of the kind the question asks for (a price for "多少钱", a
    # time for "几点", a duration for "多久"; evidence.ASKS); 0 = off
    answer_type: float = 0.02
    max_context_tokens: int = 240  # the chunks' share of backend.max_input_tokens
    min_relevance: float = 0.0  # the best chunk's dense cosine below this: nothing relevant
    on_missing: Literal["model", "cloud", "handoff"] = "cloud"  # a fact question, nothing relevant
    fact_patterns: list[str] = field(default_factory=lambda: list(FACT_PATTERNS))
    # answer memory: an approved answer whose question is this close (cosine of the memory's
    # encoder) is served as it is. bench/kb_memory.py (e5, FAQ rows vs held-out paraphrases of
    # two shops): below 0.94 precision is < 1 (0.67 at 0.92), so only near-repeats are served as
    # they are; closer than memory_context_threshold, approved answers go into the prompt
    memory_threshold: float = 0.95
    memory_as_is: bool = True
    memory_context_threshold: float = 0.9
    # a reply that states a number found neither in the retrieved chunks nor in the conversation
    # is ungrounded (an invented fee, time or day count): the cloud takes the turn
    check_numbers: bool = True
    reload_s: float = 2.0  # how often the index folder is checked for a rebuild (0 = never)
    # a fact question whose draft is not served (it invents a number, states none of the shop's
    # facts, shows a placeholder, scores low) gets the shop's own sentences instead of the cloud:
    # the `quote_units` best units at least `quote_min` close (e5 cosine; on the demo and unseen
    # shops the expected fact's unit scored >= 0.85 for 95 % of the questions)
    quote: bool = True
    quote_units: int = 2
    quote_min: float = 0.83
    # a fact question's draft whose amounts are not in the quotable units (the best evidence at
    # hand) while those hold one, or that asks for an amount (a price, a time, a duration) and
    # states none of the best unit's, is "off_evidence" and quoted instead: a fee or a time taken
    # from a distractor chunk is in the prompt, so the number check alone lets it through
    strict_evidence: bool = True

    def __post_init__(self) -> None:
        import re

        check(1 <= self.k <= 20, "knowledge.k", "must be in [1, 20]")
        check(0 <= self.rerank <= 10, "knowledge.rerank", "must be in [0, 10] (0 = off)")
        check(0 <= self.answer_type <= 1, "knowledge.answer_type", "must be in [0, 1] (0 = off)")
        check(0 <= self.units <= 50, "knowledge.units", "must be in [0, 50] (0 = whole chunks)")
        check(self.max_context_tokens >= 16, "knowledge.max_context_tokens", "must be >= 16")
        check(0 <= self.memory_threshold <= 1, "knowledge.memory_threshold", "must be in [0, 1]")
        check(0 <= self.memory_context_threshold <= 1, "knowledge.memory_context_threshold",
              "must be in [0, 1]")
        check(-1 <= self.min_relevance <= 1, "knowledge.min_relevance", "must be in [-1, 1]")
        check(1 <= self.quote_units <= 10, "knowledge.quote_units", "must be in [1, 10]")
        check(-1 <= self.quote_min <= 1, "knowledge.quote_min", "must be in [-1, 1]")
        check(self.reload_s >= 0, "knowledge.reload_s", "must be >= 0 (0 = never)")
        for i, p in enumerate(self.fact_patterns):
            try:
                re.compile(p)
            except re.error as exc:
                check(False, f"knowledge.fact_patterns[{i}]", f"does not compile: {exc}")
