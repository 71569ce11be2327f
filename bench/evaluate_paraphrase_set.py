"""A small hand-labelled paraphrase set (zh + en, e-commerce customer service) for the similarity check.

Each pair says the same thing in other words. Unrelated pairs are built from it by pairing the first
sentence of one pair with the second sentence of another (same domain, different meaning), so the
test is harder than pairing shop talk with weather.
"""

PARAPHRASES_ZH = [
    ("亲，您的订单今天下午就会发货哦", "您的包裹今天下午会寄出的，亲"),
    ("这款商品支持七天无理由退货", "这个东西七天内不喜欢可以直接退"),
    ("快递一般三到五天能送到", "物流大概需要3至5天到达"),
    ("不好意思，这个颜色已经卖完了", "抱歉亲，这个颜色目前没有库存了"),
    ("请您提供一下订单号，我帮您查询", "麻烦把订单编号发我一下，我给您查查"),
    ("退款已经原路退回到您的账户了", "钱已经按原来的支付方式退给您了"),
    ("这个价格已经是最低价了，没法再便宜了", "亲，这已经是底价了，不能再优惠了"),
    ("我们默认发中通快递", "一般情况下是用中通给您寄的"),
    ("您可以申请换货，我们承担运费", "可以给您换一件，来回运费我们出"),
    ("发票会随包裹一起寄给您", "发票和商品放在同一个快递里寄出"),
    ("这件衣服偏小，建议拍大一码", "这款尺码偏小一些，您最好选大一号"),
    ("优惠券在结算的时候会自动使用", "下单付款时系统会自动帮您抵扣优惠券"),
    ("地址可以修改，我帮您备注一下", "能改地址的，我这边给您做个备注"),
    ("商品有质量问题的话我们包退包换", "如果是质量问题，退换货都没问题"),
    ("您好，请问有什么可以帮您的吗", "您好，有什么需要我帮忙的吗"),
    ("预售商品要等十五天后才发货", "这个是预售款，大约半个月以后发出"),
    ("这台手机保修一年", "手机享受一年的质保服务"),
    ("周末仓库不发货，周一统一发出", "仓库周六周日休息，下周一会一起寄出"),
    ("您的快递已经到驿站了，记得去取", "包裹已经放在驿站了，请及时领取"),
    ("感谢您的耐心等待，祝您生活愉快", "谢谢您耐心等候，祝您每天开心"),
]

PARAPHRASES_EN = [
    ("Your order will ship this afternoon.", "We'll send out your package later today."),
    ("You can return this item within 30 days.", "Returns are accepted for up to thirty days."),
    ("Delivery usually takes three to five business days.", "Shipping normally arrives in 3-5 working days."),
    ("Sorry, this color is out of stock.", "Unfortunately we have no more of that colour left."),
    ("Could you give me your order number, please?", "Please share your order ID with me."),
    ("The refund has been sent back to your card.", "We've returned the money to your original payment method."),
    ("This is already our lowest price.", "We can't go any lower than the current price."),
    ("We will cover the shipping cost for the exchange.", "The exchange shipping is on us."),
    ("The invoice is included in the package.", "You'll find the receipt inside the box."),
    ("This shirt runs small, so order one size up.", "The shirt is a bit tight; pick a larger size."),
    ("The coupon is applied automatically at checkout.", "Your discount code will be added when you pay."),
    ("I can change the delivery address for you.", "Let me update the shipping address for you."),
    ("Items with defects can be returned or replaced.", "If the product is faulty, we'll refund or replace it."),
    ("Hello, how can I help you today?", "Hi there, what can I do for you?"),
    ("Pre-order items ship in about two weeks.", "Preorders will be dispatched in roughly 14 days."),
    ("This phone comes with a one-year warranty.", "The phone is covered by a 12-month guarantee."),
    ("Our warehouse doesn't ship on weekends.", "No orders go out on Saturday or Sunday."),
    ("Your parcel is waiting at the pickup point.", "The package has arrived at the collection point."),
    ("I'd like to cancel my order.", "Please cancel my purchase."),
    ("Thank you for your patience.", "Thanks for waiting so patiently."),
]


def labelled_pairs() -> list[tuple[str, str, int, str]]:
    """(a, b, label, lang): label 1 = paraphrase, 0 = unrelated (a from pair i, b from pair i+7)."""
    out = []
    for lang, pairs in (("zh", PARAPHRASES_ZH), ("en", PARAPHRASES_EN)):
        n = len(pairs)
        out += [(a, b, 1, lang) for a, b in pairs]
        out += [(pairs[i][0], pairs[(i + 7) % n][1], 0, lang) for i in range(n)]
    return out
