"""The built-in demo corpus: e-commerce customer-service dialogues the project writes itself.

`make demo` needs data without a download, so this module composes ~200 multi-turn exchanges
(half Chinese, half English) for one fictional shop from templates and slot values. Every
policy number lives once in `POLICY`, so all replies agree with each other. Some customer
turns carry fake personal data (phones, e-mails, order and tracking numbers, names,
addresses) and noise (full-width characters, emoji, URLs, two messages in a row) so the
masking and cleaning stages have work to do.

    >>> from endcloud.data.demo_corpus import demo_dialogues
    >>> dialogues = demo_dialogues(seed=0)
    >>> dialogues[0].turns[0].role
    'user'
"""

from __future__ import annotations

import random
from typing import Any

from endcloud.records import Dialogue, Turn

SOURCE = "demo"
LANGS: tuple[str, ...] = ("zh", "en")

# The shop's one policy table. A value is either shared by both languages or a {"zh", "en"}
# pair (currency amounts, place names); `_slots` picks the right one.
POLICY: dict[str, Any] = {
    "shop": "endcloud demo shop",
    "shop_zh": "endcloud 演示小店",
    "hours": "8:30–21:30",
    "warehouse": {"zh": "嘉兴仓", "en": "our Allentown, Pennsylvania warehouse"},
    "ship_hours": 36,            # paid orders leave the warehouse within 36 h
    "metro_days": "1–2", "other_days": "3–4", "remote_days": "6–9",
    "free_ship": {"zh": 147, "en": 27},
    "return_days": 11,           # no-reason returns, counted from the day of delivery
    "return_fee": {"zh": 9, "en": 7},
    "exchange_days": 19,         # size/colour exchanges; first exchange ships free both ways
    "refund_days": "2–4",        # business days after the warehouse receives the return
    "card_days": "5–8",          # extra days some card issuers take to post the refund
    "cancel_refund_hours": 6,    # refund after cancelling an order that has not shipped
    "price_protect_days": 10,
    "coupon_min": {"zh": 288, "en": 65}, "coupon_off": {"zh": 26, "en": 9},
    "invoice_days": 5,           # e-invoice issued within 5 business days of delivery
    "damage_hours": 60,          # report damaged/wrong items with photos within 60 h
    "stale_days": 4,             # no tracking update for 4 days -> we reship or refund
    "warranty_months": 18,
    "apology": {"zh": 15, "en": 6},   # apology coupon for delays and complaints
    "callback_hours": 8,
    "return_address": {"zh": "浙江省嘉兴市南湖区演示路17号 endcloud退货组",
                       "en": "Returns Dept., 417 Demo Road, Allentown, PA 18100"},
}

# ---- slot values ------------------------------------------------------------------------

# (zh name, en name, kind, zh price, en price, zh fact, en fact, zh care, en care)
PRODUCTS: list[tuple[str, str, str, int, int, str, str, str, str]] = [
    ("纯棉圆领T恤", "cotton crew-neck T-shirt", "apparel", 129, 19,
     "面料是100%精梳棉，230g重磅，不透也不容易起球", "100% combed cotton, 230 gsm, so it is opaque and resists pilling",
     "建议30℃以下反面机洗，不要漂白哦", "machine wash inside out below 30 °C and skip the bleach"),
    ("羊毛针织开衫", "wool-blend cardigan", "apparel", 399, 59,
     "62%美利奴羊毛+38%锦纶，手感软糯不扎人", "62% merino wool and 38% nylon, soft and not itchy",
     "建议手洗或干洗，平铺晾干不变形", "hand wash or dry clean it and dry it flat so it keeps its shape"),
    ("高腰直筒牛仔裤", "high-waist straight jeans", "apparel", 259, 45,
     "97%棉+3%氨纶，有微弹，久坐不勒", "97% cotton and 3% elastane, with a little stretch for comfort",
     "前两次洗会轻微掉色，建议单独冷水洗", "the first two washes may bleed a little, so wash them separately in cold water"),
    ("加绒连帽卫衣", "fleece-lined hoodie", "apparel", 219, 39,
     "410g毛圈棉，内里加绒不掉毛", "410 gsm cotton terry with a fleece lining that does not shed",
     "建议翻面洗涤，低温烘干或自然晾干", "wash it inside out and tumble dry low or hang dry"),
    ("蓝牙降噪耳机", "noise-cancelling Bluetooth earbuds", "goods", 499, 79,
     "支持蓝牙5.3，兼容iPhone和安卓，单次续航9小时，加充电盒共31小时",
     "Bluetooth 5.3, works with iPhone and Android, 9 hours per charge and 31 hours with the case",
     "整机保修18个月，非人为损坏免费换新", "they carry an 18-month warranty and we replace them free for non-accidental faults"),
    ("65W氮化镓充电器", "65 W GaN charger", "goods", 159, 29,
     "支持PD/QC快充，兼容MacBook Air、iPad和主流手机，双口同时用时按45W+20W分配",
     "PD/QC fast charging for MacBook Air, iPad and most phones; with both ports in use it splits 45 W + 20 W",
     "保修18个月，请勿在潮湿环境使用", "it has an 18-month warranty; please keep it away from damp places"),
    ("不锈钢保温杯", "stainless-steel vacuum flask", "goods", 119, 25,
     "316不锈钢内胆，容量480ml，保温10小时、保冷20小时", "316 stainless steel, 480 ml, keeps drinks hot for 10 hours and cold for 20",
     "不建议放洗碗机，杯盖硅胶圈可以拆下清洗", "hand wash only; the silicone ring in the lid comes out for cleaning"),
    ("骨瓷餐具四件套", "4-piece bone china dinner set", "goods", 189, 35,
     "高温骨瓷（骨粉含量42%），无铅釉面，可进微波炉和洗碗机", "fine bone china (42% bone ash) with a lead-free glaze, microwave and dishwasher safe",
     "避免冷热骤变，比如刚从冰箱拿出直接加热", "avoid sudden temperature changes, like heating it straight from the fridge"),
]
# (size, height cm, weight kg, chest cm) — the size chart quoted in exchange replies
SIZES: list[tuple[str, str, str, int]] = [
    ("S", "155–160", "45–52", 88), ("M", "160–167", "52–60", 92), ("L", "167–173", "60–68", 96),
    ("XL", "173–178", "68–76", 100), ("XXL", "178–185", "76–85", 104),
]
COLOURS = {"zh": ["黑色", "白色", "雾霾蓝", "燕麦色", "墨绿色"],
           "en": ["black", "white", "dusty blue", "oatmeal", "forest green"]}
# (name, name for the address, zone, area code for en phones)
CITIES = {"zh": [("上海", "上海市浦东新区", "metro", ""), ("北京", "北京市朝阳区", "metro", ""),
                 ("深圳", "广东省深圳市南山区", "metro", ""), ("成都", "四川省成都市武侯区", "other", ""),
                 ("武汉", "湖北省武汉市洪山区", "other", ""), ("乌鲁木齐", "新疆乌鲁木齐市天山区", "remote", "")],
          "en": [("New York", "New York, NY 100", "metro", "212"), ("Boston", "Boston, MA 021", "metro", "617"),
                 ("Chicago", "Chicago, IL 606", "other", "312"), ("Austin", "Austin, TX 787", "other", "512"),
                 ("San Francisco", "San Francisco, CA 941", "other", "415"),
                 ("Anchorage", "Anchorage, AK 995", "remote", "907")]}
# (carrier, tracking prefix, digits)
CARRIERS = {"zh": [("顺丰", "SF", 13), ("中通", "ZT", 12), ("圆通", "YT", 13), ("京东物流", "JDV", 12)],
            "en": [("UPS", "1Z", 16), ("FedEx", "", 12), ("USPS", "9400", 18), ("DHL", "", 10)]}
NAMES = {"zh": [("张伟", "zhangwei"), ("李娜", "lina"), ("王芳", "wangfang"), ("刘洋", "liuyang"),
                ("陈静", "chenjing"), ("赵磊", "zhaolei")],
         "en": [("Emily Carter", "emily.carter"), ("James Miller", "jmiller"), ("Sofia Nguyen", "sofia.n"),
                ("Daniel Okafor", "d.okafor"), ("Hannah Lee", "hannahlee"), ("Marcus Brown", "mbrown")]}
STREETS = {"zh": ["人民路", "中山路", "建设路", "和平街"], "en": ["Maple Ave", "Oak Street", "Elm Road", "Lakeview Dr"]}
MAIL_DOMAINS = ["example.com", "example.org", "example.net"]
TAX_ID = "91330100MA2DEMO{:03d}"  # well-formed but obviously fake 18-character 统一社会信用代码

# ---- dialogue templates -----------------------------------------------------------------
# topic -> lang -> steps; a step is (customer variants, agent variants). Step 0 opens the
# dialogue; a random, ordered subset of the rest follows; `CLOSING` may end it. Any agent
# variant answers any customer variant, except in `PAIRED` steps, where the customer variants
# ask different things and agent variant i answers customer variant i.
Step = tuple[list[str], list[str]]

TOPICS: dict[str, dict[str, list[Step]]] = {
    "shipping": {
        "zh": [
            (["亲，{product}下单后多久能发货呀？我在{city}。", "请问寄到{city}一般几天能到？想买{product}送人，有点急"],
             ["亲，您好~ 付款后{ship_hours}小时内从{warehouse}发出哦，默认{carrier}，寄到{city}一般{eta}天就能收到呢。",
              "您好亲，{product}是现货，{ship_hours}小时内发货；{city}正常{eta}天送达，满{free_ship}元包邮哦~"]),
            (["能指定发{carrier_alt}吗？加钱也行", "可以换成{carrier_alt}吗？"],
             ["可以的亲，下单时备注“{carrier_alt}”就好，如有运费差价客服会联系您补，不影响发货时效哦~",
              "亲，支持指定{carrier_alt}哦，在订单备注里写上，我们仓库会优先安排出库。"]),
            (["周末也发货吗？", "今天是周六，下单了明天会发吗？"],
             ["亲，仓库周六正常发货，周日和法定节假日暂停，节后按付款顺序依次发出哦~",
              "周六上午11点前付款的订单当天就能发出哦亲，周日休息，寄{city}的周一一早优先发。"]),
            (["到了能先打电话吗？我电话{phone}", "收件人{name}，电话{phone}，派送前麻烦联系下"],
             ["好的亲，已备注快递员派送前拨打{phone}联系您，号码只用于本单配送，请放心~",
              "收到~ 已在订单上备注派送前电话联系，如果白天不方便也可以选择放快递柜哦。"]),
        ],
        "en": [
            (["Hi, how long does shipping to {city} take for the {product}?", "If I order the {product} today, when will it reach {city}?"],
             ["Hi there! Orders leave {warehouse} within {ship_hours} hours of payment, and {carrier} usually delivers to {city} in {eta} business days.",
              "Thanks for asking! The {product} is in stock and ships within {ship_hours} hours; delivery to {city} typically takes {eta} business days, and shipping is free over ${free_ship}."]),
            (["Can I choose {carrier_alt} instead?", "Is {carrier_alt} an option? I don't mind paying extra."],
             ["Sure! Just add \"{carrier_alt}\" in the order notes; if there's a price difference we'll email you before shipping, and it won't slow the order down.",
              "Yes, {carrier_alt} is available at checkout under shipping options, and the dispatch time stays the same."]),
            (["Do you ship on weekends?", "It's Saturday, will my order go out before Monday?"],
             ["Our warehouse ships on Saturdays; on Sundays and public holidays it's closed, and orders go out in payment order the next working day.",
              "Orders paid before 11 am on Saturday ship the same day; anything later goes out first thing Monday."]),
            (["Could the driver call me first? It's {phone}.", "Please deliver to {name}, phone {phone}, and call before arriving."],
             ["Done. I've asked the driver to call {phone} before delivery; your number is used only for this shipment.",
              "Noted on the order: the courier will call ahead. You can also pick a safe-drop spot in the tracking link if you're out."]),
        ],
    },
    "order_status": {
        "zh": [
            (["亲，我的订单号{order}，到哪了？", "帮我查下订单{order}的物流呗，好几天了"],
             ["亲，帮您查到啦：订单已于{days}天前从{warehouse}发出，{carrier}单号{tracking}，目前在{city}转运中心，预计{eta}天内送达哦~",
              "您好亲，订单{order}已发货，{carrier}运单号{tracking}，现在到{city}分拣中心了，正常{eta}天内派送呢。"]),
            (["物流好几天都没更新了，是不是丢了？", "怎么{days}天了还显示在路上？"],
             ["亲别着急，我已联系{carrier}核查，8小时内给您回复；如果超过{stale_days}天没有任何更新，我们直接给您补发或全额退款。",
              "抱歉让您久等了亲，转运高峰偶尔会延迟扫描，我这边已提交催件，超过{stale_days}天无更新会为您补发哦。"]),
            (["能发我个查询链接吗？", "在哪里可以看物流？"],
             ["亲，在“我的订单”里点{order}就能看到实时物流，也可以在{carrier}官网输入单号{tracking}查询哦~",
              "可以在订单详情页直接查看哦，或者关注{carrier}公众号输入运单号{tracking}。"]),
        ],
        "en": [
            (["Where is my order #{order}?", "Hi, can you check order #{order}? It's been a few days."],
             ["Hi! Order #{order} left {warehouse} {days} days ago with {carrier}, tracking number {tracking}. It's at the {city} sorting hub and should arrive within {eta} business days.",
              "Thanks for waiting! Your order shipped {days} days ago via {carrier} (tracking {tracking}) and is now in {city}; expected delivery is within {eta} business days."]),
            (["The tracking hasn't updated in days. Is it lost?", "Why has it said 'in transit' for {days} days?"],
             ["Sorry for the worry. I've opened a trace with {carrier} and will reply within 8 hours; if there's no scan for {stale_days} days, we'll reship or refund you in full, your choice.",
              "Scans are sometimes skipped at busy hubs. I've asked {carrier} to check, and if nothing moves for {stale_days} days we'll send a replacement right away."]),
            (["Is there a link where I can track it?", "Where can I see the tracking?"],
             ["You can track it under My Orders > #{order}, or enter {tracking} on the {carrier} website.",
              "The order page shows live tracking, and {carrier}'s site works with tracking number {tracking} too."]),
        ],
    },
    "returns": {
        "zh": [
            (["亲，{product}收到了不太喜欢，能退吗？", "买的{product}想退货，支持七天无理由吗"],
             ["可以的亲~ {product}签收后{return_days}天内支持无理由退货，商品不影响二次销售（吊牌、包装完好）就行哦。",
              "支持的亲，{product}享受{return_days}天无理由退货，在订单页点“申请退货”，选择上门取件就可以啦~"]),
            (["退货运费谁出？", "寄回去要我付运费吗？"],
             ["亲，无理由退货的运费需要您承担，一般{return_fee}元左右；如果下单时买了运费险，会自动理赔哦。质量问题的话运费由我们出~",
              "无理由退货运费是{return_fee}元左右由您承担哈，质量问题我们全额承担，运费险用户会自动赔付。"]),
            (["退货地址是哪里？", "我自己寄回可以吗，寄到哪"],
             ["亲，退货地址：{return_address}，包裹里请放一张写有订单号的纸条，方便仓库快速处理哦~",
              "可以自己寄的亲，{product}寄到{return_address}，寄出后在订单页填写快递单号就好。"]),
            (["衣服我洗过一次了还能退吗？", "拆了包装还能退吗"],
             ["亲，洗过或穿过会影响二次销售，就不支持无理由退货了哦；如果是质量问题，拍照给我们一样可以处理的。",
              "只拆包装不影响的亲，只要商品完好、配件齐全都可以退哦~"]),
        ],
        "en": [
            (["Hi, I don't love the {product}. Can I return it?", "Do you take returns on the {product}? It isn't what I expected."],
             ["Of course! You can return it within {return_days} days of delivery for any reason, as long as it's unused with tags and packaging intact.",
              "Yes, the {product} is covered by our {return_days}-day no-reason return. Click \"Return item\" on the order page and book a free pickup slot."]),
            (["Who pays for return shipping?", "Do I have to pay to send it back?"],
             ["For change-of-mind returns the label costs ${return_fee}, deducted from the refund; if the item is faulty or wrong, return shipping is on us.",
              "A no-reason return costs ${return_fee} for the prepaid label. Quality problems are free to return."]),
            (["What's the return address?", "Can I mail it back myself?"],
             ["Sure, send it to: {return_address}. Put a note with your order number inside so the warehouse can match it quickly.",
              "Yes, please ship it to {return_address} and enter the tracking number on the order page once it's sent."]),
            (["I washed it once, can I still return it?", "I opened the box, is that OK?"],
             ["Sorry, washed or worn items can't take a no-reason return, but if there's a quality issue send us photos and we'll sort it out.",
              "Opening the box is fine, as long as the {product} is unused and all accessories are included."]),
        ],
    },
    "refunds": {
        "zh": [
            (["亲，退货寄回去{days}天了，钱怎么还没到？订单号{order}", "退款什么时候到账呀？{product}已经寄回了"],
             ["亲，帮您查了，仓库已签收退货，退款会在签收后{refund_days}个工作日内原路退回哦，您耐心等一下~",
              "您好亲，退款流程是仓库签收后{refund_days}个工作日内审核完成，款项原路退回到您的付款账户哦。"]),
            (["是退到微信还是银行卡？", "我用信用卡付的，退到哪"],
             ["亲，原路退回哦：微信/支付宝余额一般即时到账，银行卡和信用卡要以银行为准，通常再需{card_days}个工作日。",
              "原路退回的亲，信用卡的话银行入账一般需要{card_days}个工作日，会显示为一笔退款冲正。"]),
            (["能退{amount}元吗？还是要扣运费", "退款金额是全额吗"],
             ["亲，无理由退货会扣除{return_fee}元退货运费，其余原路退回；质量问题全额退款哦。",
              "如果是质量问题就是全额退的亲；无理由退货的话退款金额是实付款减去{return_fee}元运费。"]),
        ],
        "en": [
            (["I sent the return back {days} days ago, where's my refund? Order #{order}", "When will I get my refund for the {product}?"],
             ["Thanks for your patience! Refunds go out within {refund_days} business days after the warehouse receives the return, back to your original payment method.",
              "Once the warehouse scans your return in, we refund within {refund_days} business days to the card or wallet you paid with."]),
            (["Will it go back to my credit card?", "I paid with PayPal, where does the money go?"],
             ["It always goes back to the original payment method. PayPal usually shows it the same day; card issuers can take another {card_days} business days to post it.",
              "Refunds return to the original payment method; for credit cards allow {card_days} business days for the bank to show the credit."]),
            (["Do I get the full ${amount} back?", "Is the shipping deducted?"],
             ["For a no-reason return we deduct the ${return_fee} return label; faulty or wrong items are refunded in full.",
              "Quality issues get a full refund. Change-of-mind returns are refunded minus the ${return_fee} label."]),
        ],
    },
    "exchanges": {
        "zh": [
            (["亲，{product}买了{size}码有点小，我{height}cm {weight}斤，能换{size_alt}吗？", "{size}码偏小，想换大一码，怎么操作"],
             ["可以的亲~ 签收{exchange_days}天内支持换码，首次换码来回运费都由我们承担；按尺码表{size_alt}码对应身高{height_alt}cm、胸围{chest_alt}cm，您穿正合适。",
              "亲，在订单页点“换货”选{size_alt}码就好，{exchange_days}天内都能换，首次换码免运费哦~ {size_alt}码胸围{chest_alt}cm，比{size}码大4cm。"]),
            (["{size_alt}码还有{colour}的吗？", "能顺便换成{colour_alt}吗？"],
             ["有的亲，{colour}{size_alt}码目前有现货，换货寄回签收后12小时内给您发新的~",
              "可以的亲，{colour_alt}也有{size_alt}码现货，换货单里选好颜色就行哦。"]),
            (["尺码表在哪看？", "你们家尺码偏大还是偏小？"],
             ["亲，商品详情页最下面有尺码表哦：S码155–160cm，M码160–167cm，L码167–173cm，XL码173–178cm，按身高体重选一般不会错~",
              "这款{product}是标准码哦亲，体重在两个码之间的话建议选大一码，宽松一点更舒服。"]),
        ],
        "en": [
            (["The {product} in {size} is too small. I'm {height} cm and {weight} kg, can I swap for {size_alt}?", "Can I exchange my {product} for a bigger size?"],
             ["Absolutely! Exchanges are accepted within {exchange_days} days of delivery and the first size swap ships free both ways. Per our size chart, {size_alt} fits {height_alt} cm with a {chest_alt} cm chest, so it should fit well.",
              "Yes, choose \"Exchange\" on the order page and pick {size_alt}; you have {exchange_days} days and the first exchange is free. {size_alt} measures {chest_alt} cm at the chest, 4 cm more than {size}."]),
            (["Do you have {size_alt} in {colour}?", "Could I switch to {colour_alt} while I'm at it?"],
             ["Yes, {size_alt} in {colour} is in stock, and we ship it within 12 hours of receiving your return.",
              "Sure, {colour_alt} is available in {size_alt}; just select it on the exchange form."]),
            (["Where's your size chart?", "Do your clothes run small or large?"],
             ["It's at the bottom of each product page: S 155–160 cm, M 160–167 cm, L 167–173 cm, XL 173–178 cm. Height and weight are the best guide.",
              "The {product} runs true to size; if you're between two sizes, we suggest the larger one for a relaxed fit."]),
        ],
    },
    "discounts": {
        "zh": [
            (["亲，优惠券为什么用不了？我买了{amount}元", "满减怎么算的呀，我凑了{amount}元还是没减"],
             ["亲，店铺券是满{coupon_min}减{coupon_off}哦，您现在是{amount}元，再凑{gap}元就能用啦~",
              "您好亲，满减门槛是{coupon_min}元，当前{amount}元还差{gap}元，可以看看{product}，刚好凑单哦~"]),
            (["刚买完就降价了，能补差价吗？", "我{days}天前买的{product}，今天便宜了{diff}元"],
             ["可以的亲，我们支持{price_protect_days}天价保，下单{price_protect_days}天内降价，在订单页点“申请价保”，差价{diff}元原路退回哦~",
              "亲，在{price_protect_days}天价保期内的，差价会原路退回给您，我这边也可以直接帮您申请~"]),
            (["店铺券和平台券能一起用吗？", "两张店铺券能叠加吗"],
             ["亲，一个订单可以用一张店铺券+一张平台券，两张店铺券不能叠加哦。",
              "店铺券每单限用一张哈，但可以和平台满减一起用，结算页会自动选最优组合~"]),
        ],
        "en": [
            (["Why won't my coupon work? My cart is ${amount}.", "The 'spend and save' discount isn't applying at ${amount}."],
             ["The store coupon is ${coupon_off} off orders of ${coupon_min} or more; your cart is ${amount}, so adding ${gap} more will unlock it.",
              "That coupon needs a ${coupon_min} minimum; you're ${gap} short right now. The {product} would get you there!"]),
            (["The price dropped right after I bought it. Can I get the difference?", "I bought the {product} {days} days ago and it's ${diff} cheaper today."],
             ["Yes! We offer {price_protect_days}-day price protection: click \"Price protection\" on the order page and the ${diff} difference goes back to your original payment.",
              "You're within our {price_protect_days}-day price protection window, so we'll refund the difference to your card. I can file it for you now."]),
            (["Can I stack two store coupons?", "Can I use a store coupon with a sitewide promo?"],
             ["For the {product} (and any order), you can use one store coupon plus one sitewide promotion; two store coupons can't be combined.",
              "One store coupon per order, but it stacks with sitewide promos, and checkout picks the best combination automatically."]),
        ],
    },
    "invoices": {
        "zh": [
            (["亲，能开发票吗？订单号{order}", "买的{product}需要开公司发票，怎么弄"],
             ["可以的亲，{product}这单可以开电子普通发票和增值税专用发票，确认收货后{invoice_days}个工作日内开出哦~",
              "亲，支持开票的，订单页点“申请开票”，填写抬头和税号，确认收货后{invoice_days}个工作日内发到您邮箱。"]),
            (["抬头是杭州演示科技有限公司，税号{tax_id}，发到{email}", "税号{tax_id}，邮箱{email}"],
             ["好的亲，已登记：抬头和税号都已备注，发票开出后会发送到您留的邮箱，请注意查收~",
              "收到亲，信息已提交财务，{invoice_days}个工作日内开出，开好后短信也会提醒您。"]),
            (["发票能写成办公用品吗？", "可以开明细吗"],
             ["亲，发票内容只能按实际商品明细开具哦，不能改成其他品类，请理解~",
              "可以开商品明细的亲，会按订单里的{product}等商品名称和金额逐项列出。"]),
        ],
        "en": [
            (["Can I get an invoice for order #{order}?", "I need a company invoice for the {product}."],
             ["Of course! We issue e-invoices within {invoice_days} business days after delivery; request one from the order page.",
              "Yes, click \"Request invoice\" on the order page and add your company details; we email it within {invoice_days} business days of delivery."]),
            (["Please send it to {email}, company name Demo Trading LLC.", "Billing name {name}, email {email}."],
             ["Got it, your billing details for the {product} order are saved and the invoice will go to the email you gave us.",
              "Thanks, I've passed this to our accounts team; you'll have it within {invoice_days} business days."]),
            (["Can the invoice list each item?", "Can you put 'office supplies' on it instead?"],
             ["Yes, the invoice itemises the {product} and every other line on the order, with amounts.",
              "Sorry, invoices have to match the actual items purchased, so we can't change the description."]),
        ],
    },
    "product": {
        "zh": [
            (["亲，{product}是什么材质的？", "请问{product}怎么样，参数能说下吗"],
             ["亲，{product}{fact}，性价比很高哦~", "您好亲，这款{fact}，回购率很高的~"]),
            (["平时怎么保养？", "有什么要注意的吗"],
             ["亲，{care}，这样能用得更久~", "注意事项：{care}，有问题随时找我们哦。"]),
            (["有{colour_alt}吗？", "{colour}的还有货吗"],
             ["有的亲，{colour_alt}目前有现货，下单选对应颜色就可以啦~", "{colour}库存充足的亲，今天下单{ship_hours}小时内发出。"]),
            (["这个链接里的是同一款吗 https://shop.endcloud.example/item/{item_id}", "和你们直播间那款一样吗"],
             ["是同一款{product}的亲，只是链接不同，价格和售后都一样哦~", "一样的亲，直播间和店铺同款同价，都享受{return_days}天无理由退货。"]),
        ],
        "en": [
            (["What is the {product} made of?", "Can you tell me more about the {product}?"],
             ["Sure! The {product} is {fact}.", "Happy to help: it's {fact}, and it's one of our best sellers."]),
            (["Any care tips?", "Anything I should know before using it?"],
             ["Good question: {care}. That keeps it in great shape.", "Just one thing: {care}. Reach out anytime if something seems off."]),
            (["Is it available in {colour_alt}?", "Do you still have it in {colour}?"],
             ["Yes, {colour_alt} is in stock; just select it before adding to cart.", "{colour} is in stock and ships within {ship_hours} hours if you order today."]),
            (["Is this the same item? https://shop.endcloud.example/item/{item_id}", "Is it the same one as in your livestream?"],
             ["Yes, it's the same {product}, just a different listing; the price and after-sales terms are identical.",
              "It's the same {product}, with the same price and {return_days}-day returns."]),
        ],
    },
    "damaged": {
        "zh": [
            (["亲，{product}收到就是坏的！外箱都压扁了", "收到的{product}颜色发错了，我买的是{colour}"],
             ["非常抱歉亲，给您添麻烦了！请在签收{damage_hours}小时内拍一下外箱和商品照片发我，我们给您免费补发或全额退款，您选~",
              "太抱歉了亲，这是我们的失误！麻烦发几张照片过来，核实后马上给您补发正确的商品，错发的我们安排上门取回，运费我们出。"]),
            (["照片发了，要补发", "图片看下，我要退款"],
             ["收到照片了亲，已为您登记，新的{product}会在12小时内发出，坏的不用寄回，直接处理掉就好~",
              "看到了亲，确实是运输问题，已为您申请全额退款，{refund_days}个工作日内原路退回，另外补偿您一张{apology}元无门槛券。"]),
            (["以后发货包装能不能好一点", "你们仓库打包太随便了吧"],
             ["亲，已把这单反馈给仓库，{product}这类商品以后统一加气泡柱和加厚纸箱，走顺丰发货~",
              "您说得对亲，已备注仓库加固包装，以后您的订单都会重点检查，给您带来不便真的很抱歉。"]),
        ],
        "en": [
            (["My {product} arrived broken, the box was crushed!", "I got the wrong colour {product}, I ordered {colour}."],
             ["I'm so sorry about that! Please send photos of the box and the item within {damage_hours} hours of delivery, and we'll reship for free or refund in full, whichever you prefer.",
              "Sorry, that's our mistake! Send a quick photo and we'll ship the right one today, plus a prepaid label to return the wrong item at no cost."]),
            (["Photos attached. I'd like a replacement.", "Here are the pictures, please refund me."],
             ["Thanks for the photos. The replacement {product} ships within 12 hours, and there's no need to send the damaged one back.",
              "Confirmed, it was damaged in transit. Your full refund is on its way within {refund_days} business days, plus a ${apology} coupon for the trouble."]),
            (["Can you pack things better in future?", "Your warehouse packing is pretty careless."],
             ["Absolutely. I've reported this to the warehouse, and items like the {product} now ship double-boxed with air cushions.",
              "You're right, and I'm sorry. I've flagged your account so future orders get extra padding and a check before dispatch."]),
        ],
    },
    "complaints": {
        "zh": [
            (["你们怎么回事？等了{days}天还没到，客服也不回！", "快递员态度很差，直接把{product}扔门口了"],
             ["非常抱歉亲，让您等这么久还没及时回复，是我们做得不好！我马上帮您跟进，{callback_hours}小时内一定给您答复。",
              "真的很抱歉给您带来不好的体验，我们已向{carrier}投诉该快递员，也会督促他们整改。"]),
            (["我要投诉，太失望了", "你们得给个说法"],
             ["理解您的心情亲，已为您升级到客服主管处理，{callback_hours}小时内会电话联系您，同时补偿您一张{apology}元无门槛券，聊表歉意。",
              "完全理解亲，已记录投诉并转主管跟进，另外给您账户发了{apology}元补偿券，真的很抱歉。"]),
            (["打这个电话吧 {phone}，白天都在", "联系我{phone}，我叫{name}"],
             ["好的亲，已备注{phone}，主管会在{hours}之间给您回电，请留意来电~",
              "收到，已记录联系方式，主管今天就会联系您，再次向您道歉。"]),
        ],
        "en": [
            (["This is ridiculous. {days} days and still no package, and nobody answers!", "The courier just threw my {product} on the porch."],
             ["I'm really sorry, that's not the service we aim for. I'm on it now and will get you an answer within {callback_hours} hours.",
              "I'm sorry, that's unacceptable. I've filed a complaint with {carrier} about the driver."]),
            (["I want to file a complaint.", "What are you going to do about it?"],
             ["Understood. I've escalated this to a supervisor who'll call within {callback_hours} hours, and added a ${apology} coupon to your account as an apology.",
              "Totally fair. A supervisor now owns this case, and I've credited a ${apology} coupon for the trouble."]),
            (["Call me at {phone}.", "My name is {name}, number {phone}."],
             ["Thank you, noted: {phone}. A supervisor will call between {hours} today.", "Got it, you'll hear from us today. Again, I apologise."]),
        ],
    },
    "address_change": {
        "zh": [
            (["亲，订单{order}地址填错了，能改吗？", "刚下单的地址写错了，还能改吗"],
             ["亲，查到订单还没出库，可以改的，把新地址、收件人和电话发我就好~",
              "可以的亲，{product}这单未发货前都能修改，请提供完整的新地址哦。"]),
            (["改成{address}，{name}，{phone}", "新地址：{address}，收件人{name}，手机{phone}"],
             ["好的亲，已帮您改成{address}，订单详情里可以看到新地址，{ship_hours}小时内发出~",
              "已修改成功亲，请在订单页核对一下，如有问题随时说哦。"]),
            (["如果已经发货了还能改吗？", "要是发出去了怎么办"],
             ["发货后的话我们可以联系{carrier}转寄，一般会多2–3天，个别偏远地区可能需要补转寄费哦。",
              "发出后需要快递改派，我们会帮您联系，一般延迟2–3天送达。"]),
        ],
        "en": [
            (["I put the wrong address on order #{order}. Can I change it?", "Can I update the shipping address on my order?"],
             ["Yes, it hasn't left the warehouse yet, so just send me the new address, name and phone number.",
              "No problem, addresses can be changed until dispatch. What's the new one?"]),
            (["Please ship to {address}, {name}, {phone}.", "New address: {address}. Recipient {name}, phone {phone}."],
             ["All set, the address is now {address}, and the order ships within {ship_hours} hours.",
              "Updated! You can double-check it on the order page."]),
            (["What if it had already shipped?", "And if it's already on the way?"],
             ["Then we'd ask {carrier} to reroute it, which usually adds 2–3 days.",
              "We'd request a carrier redirect; it typically adds 2–3 days to delivery."]),
        ],
    },
    "cancellation": {
        "zh": [
            (["亲，订单{order}不想要了，能取消吗", "{product}拍错了，帮我取消下订单"],
             ["可以的亲，订单还没发货，已帮您取消，款项{cancel_refund_hours}小时内原路退回哦~",
              "亲，未发货订单可以直接在订单页点“取消订单”，退款{cancel_refund_hours}小时内原路到账。"]),
            (["已经发货了怎么办？", "如果显示已发出呢"],
             ["已发货的话您可以直接拒收，包裹退回仓库后{refund_days}个工作日内给您退款；或者签收后走{return_days}天无理由退货哦。",
              "发出后就没法拦截了亲，您拒收就好，仓库收到退件后{refund_days}个工作日内原路退款。"]),
            (["用的优惠券会退回吗？", "取消了优惠券还能用吗"],
             ["亲，未过期的优惠券取消订单后会自动退回您的账户哦~",
              "会退回的亲，券在有效期内可以继续使用。"]),
        ],
        "en": [
            (["Please cancel order #{order}.", "I ordered the {product} by mistake, can you cancel it?"],
             ["Done, it hadn't shipped yet, so it's cancelled and the refund reaches your original payment within {cancel_refund_hours} hours.",
              "Sure, unshipped orders can be cancelled from the order page, and the refund goes back within {cancel_refund_hours} hours."]),
            (["What if it already shipped?", "It says dispatched, what now?"],
             ["Then just refuse the delivery, and once it's back at the warehouse we refund within {refund_days} business days. You could also accept it and use the {return_days}-day return.",
              "Shipped parcels can't be stopped, but refusing delivery works; the refund follows within {refund_days} business days of it returning."]),
            (["Do I get my coupon back?", "What happens to the coupon I used?"],
             ["Yes, unexpired coupons return to your account automatically when an order is cancelled.",
              "It's restored to your account and can be used until its expiry date."]),
        ],
    },
}

PAIRED: frozenset[tuple[str, int]] = frozenset({
    ("returns", 3), ("refunds", 1), ("exchanges", 1), ("exchanges", 2), ("invoices", 2),
    ("product", 2), ("product", 3), ("damaged", 0), ("damaged", 1), ("complaints", 0),
})

# Closings are composed from parts so that they rarely repeat word for word.
CLOSING: dict[str, tuple[list[str], list[str], list[str]]] = {
    "zh": (["好的，谢谢亲~", "明白了，辛苦啦", "好的知道了，谢谢🙏", "行，那就这样吧", "OK，谢谢"],
           ["不客气亲~ ", "应该的呢~ ", "亲客气啦~ ", "不用谢哦~ ", "感谢您的耐心~ "],
           ["{product}有任何问题随时找我们", "后续有问题直接在这个对话里留言就好", "祝您购物愉快",
            "期待您收到{product}后的好评哦", "客服{hours}都在线哦"]),
    "en": (["Great, thanks!", "OK, that helps. Thank you.", "Perfect, appreciate it 🙂", "Thanks for the help.", "Got it, thanks"],
           ["You're welcome! ", "My pleasure! ", "Glad I could help! ", "Anytime! ", "Thanks for your patience! "],
           ["Enjoy your {product}.", "Just reply here if anything else comes up.", "Have a great day.",
            "We're online {hours} if you need us.", "Hope you enjoy the {product}."]),
}
CLOSING_SIGN = {"zh": ["~", "，{shop_zh}客服小云随时在线~", "！", "，天天开心~"],
                "en": ["", " — {shop}", " Take care!", " Best, the {shop} team"]}
# Agents often end by tying the answer back to the customer's item; this also keeps
# replies built from the same template from repeating word for word.
FOLLOW_UP = {"zh": ["有关{product}的问题随时找我哦~", "{product}这边有任何进展我都会第一时间同步您~",
                    "还有什么可以帮您的吗？", "您看这样可以吗？", "{product}的订单我这边也帮您备注好了。"],
             "en": ["Anything else I can help with on the {product}?", "I've added a note to your {product} order as well.",
                    "Does that work for you?", "Let me know if anything about the {product} is unclear.",
                    "Anything else I can do for you today?"]}
HELLO = {"zh": ["在吗？", "亲在吗", "你好", "客服在不在"], "en": ["hi", "hello?", "Hi there", "anyone there?"]}
EMOJI = ["😊", "🙏", "😭", "👍", "🤔"]


# ---- composing --------------------------------------------------------------------------

def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _phone(rng: random.Random, lang: str, area: str) -> str:
    """A fake phone number in one of several common written forms."""
    if lang == "en":
        tail = f"01{_digits(rng, 2)}"  # 555-0100..0199 is reserved for fiction
        return rng.choice([f"({area}) 555-{tail}", f"{area}-555-{tail}", f"+1 {area} 555 {tail}"])
    head, mid, tail = rng.choice(["138", "139", "150", "186"]), rng.choice(["0013", "1234", "0000"]), _digits(rng, 4)
    return rng.choice([f"{head} {mid} {tail}", f"+86-{head}-{mid}-{tail}", f"{head}{mid}{tail}", f"{head}-{mid}-{tail}"])


def _slots(rng: random.Random, lang: str, topic: str) -> dict[str, Any]:
    """Draw one customer's facts: product, size, place, carrier, contact data, amounts."""
    zh = lang == "zh"
    pool = [p for p in PRODUCTS if topic != "exchanges" or p[2] == "apparel"]
    name_zh, name_en, _, price_zh, price_en, fact_zh, fact_en, care_zh, care_en = rng.choice(pool)
    price = price_zh if zh else price_en
    i = rng.randrange(len(SIZES) - 1)
    size, size_alt = SIZES[i], SIZES[i + 1]
    lo, hi = (int(x) for x in size_alt[1].split("–"))
    kg = rng.randint(*(int(x) for x in size_alt[2].split("–")))
    city, city_addr, zone, area = rng.choice(CITIES[lang])
    (carrier, prefix, n), (carrier_alt, *_) = rng.sample(CARRIERS[lang], 2)
    person, handle = rng.choice(NAMES[lang])
    street, number = rng.choice(STREETS[lang]), rng.randint(1, 399)
    address = (f"{city_addr}{street}{number}号{rng.randint(1, 12)}栋{rng.randint(1, 30)}0{rng.randint(1, 4)}室" if zh
               else f"{number} {street}, Apt {rng.randint(1, 20)}{rng.choice('ABCD')}, {city_addr}{_digits(rng, 2)}")
    colour, colour_alt = rng.sample(COLOURS[lang], 2)
    coupon_min = POLICY["coupon_min"][lang]
    amount = rng.randint(coupon_min * 2 // 3, coupon_min - 1)
    slots = {k: (v[lang] if isinstance(v, dict) else v) for k, v in POLICY.items()}
    slots.update(
        product=name_zh if zh else name_en, fact=fact_zh if zh else fact_en, care=care_zh if zh else care_en,
        size=size[0], size_alt=size_alt[0], height=rng.randint(lo, hi), weight=kg * 2 if zh else kg,
        height_alt=size_alt[1], chest_alt=size_alt[3], colour=colour, colour_alt=colour_alt,
        city=city, eta=POLICY[f"{zone}_days"], carrier=carrier, carrier_alt=carrier_alt,
        tracking=prefix + _digits(rng, n), phone=_phone(rng, lang, area), name=person,
        email=f"{handle}{rng.randint(1, 99)}@{rng.choice(MAIL_DOMAINS)}", address=address,
        order=_digits(rng, 18) if zh else f"ED-{_digits(rng, 8)}", amount=amount, gap=coupon_min - amount,
        days=rng.randint(2, 6), diff=max(1, price * rng.choice([5, 10, 15]) // 100),
        tax_id=TAX_ID.format(rng.randint(0, 999)), item_id=rng.randint(10000, 99999),
    )
    if not zh:  # the en refund question quotes the price paid
        slots["amount"] = price if topic == "refunds" else amount
    return slots


def _fullwidth(text: str) -> str:
    """ASCII letters and digits to their full-width forms (what some IMEs type)."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def _add_noise(rng: random.Random, turns: list[Turn], lang: str) -> list[str]:
    """Roughen some customer turns the way real chat logs are rough; return what was done."""
    done: list[str] = []
    users = [t for t in turns if t.role == "user"]
    latin = [t for t in users if any(c.isascii() and c.isalnum() for c in t.text)]
    if lang == "zh" and latin and rng.random() < 0.2:
        target = rng.choice(latin)
        target.text = _fullwidth(target.text)
        done.append("fullwidth")
    if rng.random() < 0.15:
        target = rng.choice(users)
        target.text += rng.choice(EMOJI)
        done.append("emoji")
    if rng.random() < 0.12:  # a bare "hello?" sent before the real question: two user turns in a row
        turns.insert(0, Turn("user", rng.choice(HELLO[lang])))
        done.append("double_message")
    return done


def _closing(rng: random.Random, lang: str) -> tuple[str, str]:
    users, acks, extras = CLOSING[lang]
    return rng.choice(users), rng.choice(acks) + rng.choice(extras) + rng.choice(CLOSING_SIGN[lang])


def _pick(rng: random.Random, step: Step, paired: bool) -> tuple[str, str]:
    users, agents = step
    i = rng.randrange(len(users))
    return users[i], agents[i] if paired else rng.choice(agents)


def _dialogue(rng: random.Random, index: int, topic: str, lang: str) -> Dialogue:
    """One exchange: the opening step, 1–4 ordered follow-ups, and maybe a thank-you."""
    slots = _slots(rng, lang, topic)
    steps = TOPICS[topic][lang]
    follow = sorted(rng.sample(range(1, len(steps)), rng.randint(1, len(steps) - 1)))
    pairs = [_pick(rng, steps[i], (topic, i) in PAIRED) for i in [0, *follow]]
    if len(pairs) < 6 and rng.random() < 0.7:
        pairs.append(_closing(rng, lang))
    tails = rng.sample(FOLLOW_UP[lang], len(FOLLOW_UP[lang]))  # no tail twice in one dialogue
    turns: list[Turn] = []
    for k, (user, agent) in enumerate(pairs):
        if k < len(pairs) - 1 and rng.random() < 0.7:
            agent += ("" if lang == "zh" else " ") + tails[k]
        turns += [Turn("user", user.format_map(slots)), Turn("assistant", agent.format_map(slots))]
    noise = _add_noise(rng, turns, lang)
    if any("http" in t.text for t in turns):
        noise.append("url")
    meta = {"lang": lang, "topic": topic, "noise": noise}
    return Dialogue(id=f"demo-{index:04d}", turns=turns, source=SOURCE, meta=meta)


def demo_dialogues(seed: int = 0, per_topic: int = 9) -> list[Dialogue]:
    """The demo corpus: `per_topic` dialogues for every topic in each language (216 by default).

    Deterministic for a given seed; the order interleaves topics and languages.
    """
    rng = random.Random(seed)
    return [_dialogue(rng, n * len(TOPICS) * len(LANGS) + t * len(LANGS) + l, topic, lang)
            for n in range(per_topic)
            for t, topic in enumerate(TOPICS)
            for l, lang in enumerate(LANGS)]
