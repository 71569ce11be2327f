"""Knowledge-grounded training data from generated shops: teach the end model to read chunks.

    endcloud kb synth --output runs/grounding.jsonl --shops 80 --per-shop 10

Each generated shop draws its own values for the facts every shop has (dispatch cut-off, free
shipping threshold, return window and fee, refund time, warranty, service hours, product prices
and materials...), in Chinese and English. A sample is one customer question about one fact,
with the service's own prompt: the system instruction + `knowledge_block` of the gold chunk and
distractor chunks of the same shop in random order (RAFT); in `p_absent` of the samples the gold
chunk is left out and the answer says it will check. Answers state the fact in the chunk's words,
so the model learns to copy the shop's number, not to recall one. Values are drawn at random, so
no number can be learnt as "the" answer; the held-out shops (demo, bench/shops) are never used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from endcloud.knowledge.context import knowledge_block
from endcloud.knowledge.evidence import Unit, units_of
from endcloud.knowledge.sources import make_chunk


@dataclass
class Fact:
    title: str
    policy: list[str]  # sentence templates ({v} and friends)
    questions: list[str]
    answers: list[str]
    draw: Callable[[random.Random], dict[str, str]]


def _time(rng: random.Random, lo: int, hi: int) -> str:
    return f"{rng.randint(lo, hi)}:{rng.choice(['00', '15', '30', '45', '20', '40'])}"


def _num(lo: int, hi: int) -> Callable[[random.Random], dict[str, str]]:
    return lambda rng: {"v": str(rng.randint(lo, hi))}


def _range(lo: int, hi: int) -> Callable[[random.Random], dict[str, str]]:
    def draw(rng: random.Random) -> dict[str, str]:
        a = rng.randint(lo, hi)
        return {"v": f"{a}–{a + rng.randint(1, 4)}"}
    return draw


PRODUCTS = {"zh": [("保温杯", "304不锈钢"), ("羊毛围巾", "80%美利奴羊毛"), ("瑜伽垫", "天然橡胶"),
                   ("帆布包", "16安帆布"), ("陶瓷马克杯", "高温白瓷"), ("充电宝", "铝合金外壳"),
                   ("运动水壶", "Tritan材质"), ("真丝枕套", "22姆米桑蚕丝"), ("竹制砧板", "楠竹")],
            "en": [("travel mug", "18/8 stainless steel"), ("wool scarf", "70% merino wool"),
                   ("yoga mat", "natural rubber"), ("tote bag", "12 oz canvas"),
                   ("desk lamp", "anodised aluminium"), ("phone case", "recycled TPU"),
                   ("water bottle", "Tritan plastic"), ("linen shirt", "100% European linen")]}

FACTS: dict[str, list[Fact]] = {
    "zh": [
        Fact("发货 > 截单时间", ["工作日{v}前付款的订单当天发出，{v}以后付款的次日发出。",
                              "每天{v}截单，截单前付款当天发货。"],
             ["几点前下单今天能发？", "今天下午付款还能当天发货吗？", "当天发货的截止时间是几点呀", "现在拍下今天能发走吗？"],
             ["亲，工作日{v}前付款的订单当天就能发出哦~", "您好，{v}前付款当天发货，之后付款的会在第二天发出哦。"],
             lambda rng: {"v": _time(rng, 11, 18)}),
        Fact("发货 > 发货时效", ["付款后{v}小时内从仓库发出。"],
             ["付款以后多久能发货？", "下单后多长时间出库啊", "一般几天发货"],
             ["亲，付款后{v}小时内就会发货哦~"], _num(12, 96)),
        Fact("运费 > 包邮", ["订单实付满{v}元包邮。"], ["满多少包邮？", "买多少钱可以免运费", "包邮门槛是多少"],
             ["亲，订单满{v}元就包邮哦~"], _num(49, 399)),
        Fact("运费 > 标准运费", ["未满包邮金额的订单收取运费{v}元。"], ["不包邮的话运费多少钱？", "运费要多少", "邮费怎么算"],
             ["亲，未满包邮金额的订单运费是{v}元哦。"], _num(3, 25)),
        Fact("退换货 > 退货期限", ["签收后{v}天内支持无理由退货，商品需保持完好。"],
             ["收到货几天内可以退？", "退货期限是多久", "买了不喜欢多少天内能退啊"],
             ["亲，签收后{v}天内都可以申请无理由退货哦~"], _num(5, 45)),
        Fact("退换货 > 退货运费", ["无理由退货的寄回运费为{v}元，由顾客承担；质量问题由本店承担。"],
             ["退货运费多少钱？", "寄回去要出多少运费", "不喜欢退货要自己付运费吗，多少"],
             ["亲，无理由退货的寄回运费是{v}元哦，质量问题的话运费由我们承担。"], _num(4, 30)),
        Fact("退换货 > 换货", ["尺码或颜色不合适，签收后{v}天内可换货一次。"], ["可以换尺码吗，多少天内", "换货期限多久"],
             ["亲，签收后{v}天内可以换一次货哦~"], _num(7, 60)),
        Fact("退款 > 到账时间", ["仓库收到退货后{v}个工作日内原路退款。"], ["退款多久到账？", "退了货钱几天能退回来"],
             ["亲，仓库收到退货后{v}个工作日内会原路退款哦。"], _range(1, 6)),
        Fact("售后 > 保修", ["电子产品整机保修{v}个月。"], ["保修多久？", "坏了能保修几个月", "质保期是多长"],
             ["亲，整机保修{v}个月哦~"], _num(3, 36)),
        Fact("发票", ["签收后{v}个工作日内开具电子发票。"], ["发票什么时候开？", "电子发票几天能开好"],
             ["亲，签收后{v}个工作日内会开好电子发票哦。"], _num(1, 15)),
        Fact("客服时间", ["在线客服服务时间为每天{v}。"], ["客服几点上班？", "你们客服几点下班啊", "晚上还有客服吗"],
             ["亲，我们的客服时间是每天{v}哦~"],
             lambda rng: {"v": f"{_time(rng, 7, 10)}–{_time(rng, 18, 23)}"}),
        Fact("价格保护", ["购买后{v}天内降价可申请补差价。"], ["买完降价了能补差价吗，多少天内", "价保几天"],
             ["亲，购买后{v}天内降价都可以申请补差价哦。"], _num(3, 30)),
        Fact("破损处理", ["商品破损请在签收后{v}小时内拍照联系客服。"], ["收到东西坏了要多久内联系你们？", "破损多长时间内申请"],
             ["亲，签收后{v}小时内拍照联系我们就可以处理哦。"], _num(12, 96)),
    ],
    "en": [
        Fact("Shipping > Cut-off", ["Orders paid before {v} on weekdays ship the same day; later orders ship the next day."],
             ["What time do I need to order by for same-day shipping?", "If I pay this afternoon, will it ship today?",
              "What's your daily cut-off?"],
             ["Orders paid before {v} on weekdays ship the same day.", "Our cut-off is {v}: pay before then and it ships today."],
             lambda rng: {"v": _time(rng, 11, 18)}),
        Fact("Shipping > Dispatch", ["Paid orders leave the warehouse within {v} hours."],
             ["How soon after payment do you ship?", "When will my order leave the warehouse?"],
             ["Paid orders leave our warehouse within {v} hours."], _num(12, 96)),
        Fact("Shipping > Free shipping", ["Shipping is free on orders over ${v}."],
             ["How much do I need to spend for free shipping?", "Is there a free shipping threshold?"],
             ["Shipping is free on orders over ${v}."], _num(19, 149)),
        Fact("Shipping > Fee", ["Orders below the free-shipping threshold pay a flat ${v} shipping fee."],
             ["How much is shipping if I don't reach free shipping?", "What's the delivery fee?"],
             ["Below the threshold, shipping is a flat ${v}."], _num(3, 19)),
        Fact("Returns > Window", ["You can return unused items within {v} days of delivery."],
             ["How many days do I have to return something?", "What's your return window?", "Can I still return it after a week?"],
             ["You can return unused items within {v} days of delivery."], _num(5, 60)),
        Fact("Returns > Fee", ["A change-of-mind return label costs ${v}; faulty items are returned free."],
             ["How much does a return cost?", "Do I pay for return shipping?"],
             ["A change-of-mind return label costs ${v}; returns of faulty items are free."], _num(3, 15)),
        Fact("Refunds", ["Refunds are issued within {v} business days after the return arrives."],
             ["How long do refunds take?", "When will I get my money back?"],
             ["Refunds are issued within {v} business days after your return reaches us."], _range(1, 6)),
        Fact("Warranty", ["Electronics carry a {v}-month warranty."], ["How long is the warranty?", "Is it under warranty for a year?"],
             ["Our electronics carry a {v}-month warranty."], _num(3, 36)),
        Fact("Customer service hours", ["Live chat is staffed {v} every day."], ["What are your support hours?", "Is anyone online late at night?"],
             ["Our live chat is staffed {v} every day."],
             lambda rng: {"v": f"{_time(rng, 7, 10)}–{_time(rng, 17, 23)}"}),
        Fact("Price protection", ["If the price drops within {v} days of purchase, we refund the difference."],
             ["Do you refund the difference if the price drops?", "How long is price protection?"],
             ["If the price drops within {v} days of purchase, we refund the difference."], _num(3, 30)),
    ],
}
PREFIX = {"zh": ["", "亲，", "你好，", "请问", "在吗？", "客服你好，"], "en": ["", "Hi, ", "Hello! ", "Quick question: "]}
SUFFIX = {"zh": ["", "谢谢", "有点急", "麻烦告诉我一下"], "en": ["", " Thanks!", " I'm in a hurry.", ""]}
ABSTAIN = {"zh": ["亲，这个问题我需要帮您核实一下，确认后马上回复您哦~", "抱歉亲，这个我这边暂时查不到，帮您转人工客服确认一下哦。"],
           "en": ["Let me check that for you and get back to you shortly.",
                  "I don't have that information right now; let me confirm with a colleague and get back to you."]}


def _product_facts(lang: str, rng: random.Random) -> list[tuple[Fact, dict[str, str]]]:
    out = []
    for name, material in rng.sample(PRODUCTS[lang], 2):
        price = str(rng.randint(19, 599) if lang == "zh" else rng.randint(9, 129))
        if lang == "zh":
            f = Fact(f"商品 > {name}", [f"{name}：售价{{v}}元，材质{material}。"],
                     [f"{name}多少钱？", f"{name}现在卖多少", f"{name}是什么材质的？"],
                     [f"亲，{name}售价{{v}}元，材质是{material}哦~"], lambda r: {})
        else:
            f = Fact(f"Products > {name}", [f"The {name} costs ${{v}} and is made of {material}."],
                     [f"How much is the {name}?", f"What is the {name} made of?"],
                     [f"The {name} costs ${{v}} and is made of {material}."], lambda r: {})
        out.append((f, {"v": price}))
    return out


def shop(lang: str, rng: random.Random) -> list[tuple[Fact, dict[str, str]]]:
    facts = [(f, f.draw(rng)) for f in rng.sample(FACTS[lang], k=min(len(FACTS[lang]), rng.randint(6, 10)))]
    return facts + _product_facts(lang, rng)


def samples(n_shops: int, per_shop: int, system: str, seed: int = 0, p_absent: float = 0.2,
            budget_tokens: int = 240) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for s in range(n_shops):
        lang = "zh" if s % 2 == 0 else "en"
        facts = shop(lang, rng)
        chunks = [make_chunk(f"synth-{s}", "policy", f.title, rng.choice(f.policy).format(**v)) for f, v in facts]
        for _ in range(per_shop):
            gold = rng.randrange(len(facts))
            fact, values = facts[gold]
            question = rng.choice(PREFIX[lang]) + rng.choice(fact.questions) + rng.choice(SUFFIX[lang])
            others = [c for i, c in enumerate(chunks) if i != gold]
            shown = rng.sample(others, k=min(len(others), rng.randint(2, 3)))
            absent = rng.random() < p_absent
            if not absent:
                shown.insert(rng.randrange(len(shown) + 1), chunks[gold])
            units = [Unit(c, u, 1.0) for c in shown for u in units_of(c)]  # as the service shows them
            block, _ = knowledge_block(units, budget_tokens, lang)
            answer = rng.choice(ABSTAIN[lang]) if absent else rng.choice(fact.answers).format(**values)
            out.append({"messages": [{"role": "system", "content": f"{system}\n\n{block}"},
                                     {"role": "user", "content": question},
                                     {"role": "assistant", "content": answer}],
                        "meta": {"id": f"synth-{s}-{len(out)}", "session_id": f"synth-{s}",
                                 "source": "synth-grounding", "gold_absent": absent}})
    rng.shuffle(out)
    return out


def write(path: str | Path, rows: list[dict]) -> int:
    from endcloud.runs import write_jsonl

    return write_jsonl(path, rows)
