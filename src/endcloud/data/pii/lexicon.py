"""Word lists the detectors lean on: surnames, place names, cue words, carrier names.

Kept apart from the regexes so a newcomer can extend a list without reading a pattern. Every
list here is data, not logic; `detectors.py` compiles them once at import.
"""

from __future__ import annotations

import functools
import re

# The ~250 most common single-character Chinese surnames (covers > 90% of the population) and
# the compound surnames still in use. Left out on purpose: rare surnames that are everyday
# function words (和 时 成 边 单 安 全 应 向), which cost far more precision than they add recall.
ZH_SURNAMES_1 = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔汤常温康施文牛樊葛邢齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左"
    "柳甘祝包宁尚符舒阮柯纪梅童凌毕季裴霍涂苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶"
    "解牟艾尤阳穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂佟臧闵苟邬"
    "卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
    # less common ones from the Hundred Family Surnames that are not everyday words
    "洪阎奚谌邸蔺鄢晁竺郜郦逯訾阙禹仝荆鞠扈甯濮缑亓闻钮嵇酆宓郗邰郁琚蓟"
    # the rest of the Hundred Family Surnames (and 冼) that are rarely a word on their own (not
    # 哈 or 支: "好的哈亲", "我是支付时" on real JDDC)
    "廉萧湛狄贝伏谈茅昝裘宣贲诸滑荀羊於惠芮羿储汲邴糜弓牧隗蓬班仰伊钭厉戎祖束幸韶薄宿怀"
    "鄂索咸籍赖屠阴胥苍莘贡逄扶堵宰雍璩寿燕冀郏浦慕茹宦慎戈庾暨衡弘匡禄殳沃蔚夔隆厍勾融阚毋"
    "乜巢蒯盖桓晋楚汝钦帅亢况郈琴佴伯赏墨谯笪冼"
)
ZH_SURNAMES_2 = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙",
                 "宇文", "司徒", "夏侯", "令狐", "端木", "南宫", "西门", "独孤", "万俟", "闻人", "赫连",
                 "澹台", "公冶", "宗政", "濮阳", "淳于", "单于", "太叔", "申屠", "仲孙", "轩辕", "钟离",
                 "鲜于", "闾丘", "司空", "亓官", "司寇", "子车", "颛孙", "巫马", "公西", "漆雕", "乐正",
                 "壤驷", "公良", "拓跋", "夹谷", "宰父", "谷梁", "段干", "百里", "东郭", "南门", "呼延",
                 "羊舌", "微生", "梁丘", "左丘", "东门", "第五")

# Characters that end a Chinese given name: a name never runs into these (function words and
# the first characters of words that follow a name: 电话, 地址, 收件…). Single characters only;
# 先生/女士 are handled as suffix cues, so 生/小/士 may still appear in a given name.
ZH_NAME_STOP = (
    "的了吗呢吧啊呀哦哈嘛是在和与及或就都也还要把被给从到对向跟请您你我他她它们这那哪个些么什怎"
    "电话手机号码地址邮箱收寄送件人说问讲叫看买卖退换货款单订快递"
    "不没有已经会能可以想让帮麻烦谢好吧嗯喂哎啦咯呗么二三四五六七八九十百千万元块"
)

# Words that look like surname + given name but are not names.
ZH_NOT_NAMES = frozenset({
    "谢谢", "谢了", "高兴", "高手", "方便", "方法", "方式", "文件", "明天", "明白", "时间", "时候",
    "安全", "安装", "全部", "全新", "成功", "成本", "常见", "常用", "包装", "包邮", "包裹", "金额",
    "和谐", "关于", "关注", "关系", "关闭", "应该", "应用", "向您", "于是", "石头", "白色", "黄色",
    "蓝色", "单号", "单子", "路上", "路过", "华为", "小米", "毕竟", "连接", "连续", "管理", "简单",
    "车子", "米色", "商品", "商家", "宁可", "尚未", "左右", "万一", "万元", "古典", "吉利",
    "麻烦", "查询", "查看", "查到", "查一下", "查下", "迟到", "江湖", "曲线", "解决", "解释", "席位",
    "卫生", "宗旨", "师傅", "和您", "仲裁", "池子", "艾特", "申请", "申诉", "任何", "沈阳", "杭州",
    "页面", "服务", "系统", "热线", "中心",
})

ZH_NAME_PREFIX_CUES = (
    "我叫", "我的名字是", "我的名字叫", "名字叫", "名字是", "本人", "收件人", "收货人", "联系人",
    "签收人", "寄件人", "持卡人", "姓名", "户名", "用户名叫", "买家", "客户", "顾客",
    "购买人", "下单人", "订购人", "申请人", "取件人", "提货人", "抬头", "落款", "署名",
    # a person word, then the name: 我妈叫…, 我朋友…, 同事…
    "妈叫", "爸叫", "公叫", "婆叫", "子叫", "儿叫", "友叫", "事叫", "他叫", "她叫", "名叫",
    "我朋友", "我同事", "我室友", "我同学", "我老公", "我老婆", "我妈妈", "我爸爸", "我儿子", "我女儿",
    "我爷爷", "我奶奶", "我姐姐", "我哥哥", "我弟弟", "我妹妹", "我先生", "我太太", "我爱人", "我家人",
)
# Only these: "师傅", "老师", "姐" follow ordinary words far too often ("和师傅说", "安排师傅").
ZH_NAME_SUFFIX_CUES = ("先生", "女士", "小姐")
# Other titles after a surname (钟师傅, 岑经理, 张总): only the surname is the name
ZH_TITLES = ("师傅", "经理", "老师", "阿姨", "大爷", "大妈", "同学", "医生", "律师", "老板", "总")

# Provinces, municipalities, autonomous regions, SARs and the larger cities: an address that is
# not introduced by a cue word must start with one of these.
ZH_PLACES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南",
    "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
    "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "郑州", "长沙", "沈阳", "青岛",
    "济南", "大连", "厦门", "福州", "宁波", "无锡", "合肥", "昆明", "南昌", "贵阳", "南宁", "太原",
    "石家庄", "哈尔滨", "长春", "呼和浩特", "乌鲁木齐", "兰州", "西宁", "银川", "拉萨", "海口",
    "三亚", "东莞", "佛山", "珠海", "中山", "惠州", "温州", "绍兴", "嘉兴", "金华", "台州", "常州",
    "南通", "徐州", "扬州", "烟台", "潍坊", "洛阳", "宜昌", "襄阳", "株洲", "岳阳", "赣州", "泉州",
    "漳州", "桂林", "柳州", "绵阳", "遵义", "唐山", "保定", "邯郸",
)
ZH_ADDRESS_CUES = (
    "收货地址", "收件地址", "配送地址", "家庭地址", "详细地址", "新地址", "地址", "住址", "寄到",
    "送到", "发到", "送货到", "配送到", "寄往", "住在", "家住", "家在",
)
# Characters that cannot be part of a Chinese address component (they end the address).
ZH_ADDRESS_STOP = "的了吗呢吧啊呀哦是我你他她就也还要把被给从送寄哪么什怎这那个请您谢在,，。.!?！？:：;；、 "

EN_STREET_TYPES = ("Street", "Avenue", "Road", "Boulevard", "Lane", "Drive", "Court", "Way",
                   "Place", "Terrace", "Parkway", "Circle", "Highway", "Square", "Crescent", "Close",
                   "Gardens", "Grove", "Row", "Mews", "Hill", "Walk", "Alley", "Trail", "Loop", "Parade",
                   "Esplanade", "Quay", "Wharf", "Green", "Rise", "Vale", "Heights", "Expressway", "Pike")
EN_STREET_ABBREVIATIONS = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl", "Pkwy", "Cir", "Hwy", "Sq",
                           "Cres", "Cl", "Gdns", "Gr", "Trl", "Ter", "Tce", "Pde", "Hts", "Expy")
EN_HONORIFICS = r"(?:Mrs|Mr|Ms|Miss|Mx|Dr|Prof)\.?"
EN_NAME_CUES = (
    r"my name is", r"my name's", r"name is", r"this is", r"I am", r"I'm", EN_HONORIFICS, r"name:", r"recipient:", r"recipient is", r"addressed to",
    r"ship(?:ped)? (?:it |this |them )?to", r"deliver(?:ed)? (?:it |this |them )?to",  # 2+ words
    r"(?:best |kind |warm )?regards,?", r"thanks,", r"thank you,", r"cheers,", r"sincerely,",
    r"dear", r"hi", r"hello", r"signed,?", r"cardholder:?", r"account holder:?",
    r"attn:?", r"attention:?", r"order for", r"ship to:", r"deliver to:", r"c/o",
    r"(?:for|to) my (?:wife|husband|mom|mum|mother|dad|father|son|daughter|sister|brother|friend|partner)",
)
# Capitalised words that follow a cue but are not names ("Hi there", "This is Amazing").
EN_NOT_NAMES = frozenset({
    "There", "Team", "Support", "Sir", "Madam", "Customer", "Everyone", "All", "The", "This", "That",
    "It", "Is", "A", "An", "My", "Your", "Our", "Not", "Very", "So", "Sorry", "Just", "Still",
    "Here", "Again", "Please", "Thanks", "Thank", "Hello", "Hi", "Dear", "Regards", "Amazon",
    "Order", "Customer Service", "Service", "In", "On", "At", "Going", "Looking", "Writing",
    "Trying", "Waiting", "Calling", "Having", "Unable", "Happy", "Glad", "Interested", "Ready",
    "Frustrated", "Confused", "Concerned", "New", "Back", "Done", "Good", "Fine", "OK", "Okay",
    "Yes", "No", "Urgent", "Annoyed", "Disappointed", "About", "Following", "Reaching",
})

# Express carriers whose name (followed by a number) marks a tracking number.
CARRIERS = (
    "顺丰", "圆通", "中通", "申通", "韵达", "百世", "极兔", "德邦", "京东物流", "京东快递", "邮政",
    "EMS", "ems", "UPS", "FedEx", "DHL", "USPS", "SF Express", "YTO", "ZTO", "STO",
)

# Brands and products that a tagger reads as person names (surname + given name): never masked.
ZH_NAME_BRANDS = frozenset({
    "李宁", "王老吉", "张小泉", "老干妈", "周大福", "周生生", "周六福", "杨国福", "周黑鸭", "张亮", "王守义",
    "李锦记", "陈克明", "黄飞红", "马应龙", "乔丹", "刘一手", "谭木匠", "王致和", "张裕", "杜康", "徐福记",
    "金六福", "谢馥春", "戴春林", "孔凤春", "曹素功", "胡庆余堂", "同仁堂", "杨掌柜", "李子柒", "钟薛高",
    "汤臣倍健", "马大姐", "雷蛇", "戴尔", "西门子", "米其林", "荣耀", "康康", "陶华碧", "沈大成", "王小卤", "周村", "黄天鹅", "贾国龙", "张飞牛肉", "陈皮",
    "老凤祥", "金龙鱼", "王麻子", "周大生", "谢瑞麟", "钱大妈", "江小白", "小天鹅", "小米", "小熊", "小鹏",
    "小度", "小牛", "老庙", "老铺", "金利来", "马克华菲", "鲁花", "白象", "雷允上", "胡姬花", "冯氏", "东方树叶",
})
# Surnames that are also verbs or prepositions before a title: 祝老板 (wish the boss), 给老师, 跟经理
ZH_VERB_SURNAMES = frozenset("祝和给跟向让叫找问请")
# Role and kinship words a tagger sometimes marks as names (and 老/小 + a surname character that is
# a word: 老师 is no familiar form).
ZH_NAME_ROLES = frozenset({"老公", "老婆", "老板", "老师", "师傅", "小哥", "小姐姐", "阿姨", "叔叔", "宝宝",
                           "亲亲", "客服", "快递员", "老乡", "同学", "顾客", "常客", "客户", "买家", "卖家",
                           "用户", "会员", "店家", "店主", "老牛", "老常", "小龙", "小姐", "小妹", "小哥哥",
                           "姐姐", "妹妹", "哥哥", "弟弟", "美女", "帅哥", "人员", "专员", "团队", "小弟", "小二", "咚咚"})
# A person named right after these, with or without a surname: 主播佳佳说…, 客服甘露，…, 我儿子建国…
ZH_ROLE_NAME_CUES = ("主播", "博主", "达人", "客服", "抄送", "儿子", "女儿", "孙子", "孙女", "外孙", "邻居")
# Cues for a familiar form (老王, 小李) right after them: 麻烦老王…, 请小李…, 交给老孙…
ZH_FAMILIAR_CUES = ("同事", "朋友", "室友", "同学", "邻居", "落款", "就写", "写的", "让", "叫", "找", "给", "问",
                    "跟", "和", "是", "麻烦", "请", "拜托", "告诉", "通知", "联系", "转告", "等")
# What may follow a familiar form: a verb, a time word, a clause end.
ZH_FAMILIAR_AFTER = ("会", "说", "帮", "让", "来", "去", "在", "要", "已经", "签", "收", "拿", "取", "打", "下楼",
                     "到", "明天", "今天", "后天", "今晚", "晚上", "下午", "上午", "中午", "早上", "待会", "一会",
                     "稍后", "马上", "就", "也", "再", "负责", "确认", "处理", "联系", "通知", "送", "接", "看",
                     "过来", "回来")

# Common given names (English-speaking countries plus names frequent among their customers from
# elsewhere), title case. A capitalised word from this list followed by another capitalised word
# is read as a person's name anywhere in a message; words that are also everyday English words
# (Will, May, Grace as a noun at the start of a sentence is fine, but not Hope, Joy, Summer...)
# are left out.
EN_GIVEN_NAMES = frozenset("""
Aaron Abigail Adam Adrian Ahmed Aidan Aiden Aisha Alan Albert Alejandro Alex Alexander Alexandra
Alexis Ali Alice Alicia Alison Allison Amanda Amelia Amir Amy Ana Andre Andrea Andrew Andy Angela
Angelo Anita Ann Anna Anne Annie Anthony Antonio Arjun Arthur Ashley Audrey Austin Ava Barbara
Ben Benjamin Beth Bethany Betty Bill Billy Blake Bob Bobby Brad Bradley Brandon Brenda Brian
Bruce Bryan Caleb Cameron Carl Carla Carlos Carmen Carol Caroline Carolyn Catherine Charles
Charlie Charlotte Chelsea Cheryl Chloe Chloé Chris Christian Christina Christine Christopher
Cindy Claire Clara Colin Connor Craig Cynthia Daniel Daniela Danielle Danny David Dean Deborah
Debra Denise Dennis Derek Diana Diane Diego Dmitri Dominic Donald Donna Doris Dorothy Douglas
Dylan Ed Eddie Edward Elena Eli Elijah Elizabeth Ella Ellen Emily Emma Eric Erica Erik Erin
Ethan Eugene Eva Evan Evelyn Fatima Felix Fernando Fiona Frances Francesca Francis Frank Fred
Gabriel Gabriela Gareth Gary Gavin George Georgia Gerald Gina Giovanni Giulia Gloria Gordon Grace
Graham Greg Gregory Hannah Harold Harry Hassan Heather Helen Henry Hiroshi Holly Hugo Ian Igor
Isaac Isabel Isabella Isabelle Ivan Jack Jackson Jacob Jacqueline Jake James Jamie Jane Janet
Janice Jason Javier Jean Jeff Jeffrey Jennifer Jenny Jeremy Jerry Jess Jessica Jesse Jesús Jill
Jim Jimmy Joan Joanna Joe Joel Johan John Johnny Jon Jonathan Jordan Jorge José Joseph Josh
Joshua Joyce Juan Judith Judy Julia Julian Julie Justin Karen Karl Kate Katherine Kathleen Kathy
Katie Kayla Keith Kelly Ken Kenji Kenneth Kevin Kim Kimberly Kyle Lars Laura Lauren Leah Lee Leo
Leon Liam Linda Lindsay Lisa Logan Lorenzo Louis Louise Lucas Lucy Luis Luke Lydia Madison Maria
María Marie Marilyn Mario Mark Marcus Margaret Martha Martin Mary Mason Matt Matthew Maya Megan
Mehmet Melissa Mia Michael Michelle Miguel Mike Min Mohammed Mohammad Monica Nancy Natalie Nathan
Neil Nicholas Nick Nicole Nina Noah Olga Oliver Olivia Omar Oscar Owen Pablo Pamela Patricia
Patrick Paul Paula Pedro Peter Philip Phillip Pierre Priya Rachel Rahul Ralph Randy Raj Rajesh
Ravi Raymond Rebecca Richard Rick Rita Rob Robert Robin Roger Ronald Rosa Ruby Russell Ruth
Ryan Sam Samantha Samuel Sandra Sara Sarah Scott Sean Seán Sebastian Sergei Shannon Sharon Shawn
Simon Sofia Sophia Sophie Stephanie Stephen Steve Steven Susan Tanya Taylor Teresa Thomas Tiffany
Tim Timothy Tina Todd Tom Tony Tracy Travis Tyler Valerie Vanessa Victor Victoria Vincent
Virginia Walter Wayne Wendy William Yuki Zachary Zoe Zoë Björn Anders Sven Ingrid Astrid Freya
Hans Klaus Jürgen Stefan Thomas Luca Marco Matteo Giuseppe Francesco Sofía Lucía Mateo Santiago
Valentina Camila Ahmad Yusuf Mustafa Layla Noor Zainab Anil Sanjay Deepak Anjali Pooja Neha Vikram
Wei Jun Hui Ling Mei Jian Hao Yan Xin Jing Tao Lei Hiro Akira Haruto Sakura Minh Linh Thanh
Dave Dan Liz Meg Sue Pete Ted Tommy Jenna Jacky Kat Alfie Archie Freddie Harvey Reggie Ollie
""".split())
# Words that make a capitalised run a place or an organisation, not a person.
EN_ORG_WORDS = frozenset("""
Park Business Centre Center Plaza Building House Tower Towers Estate Ltd Limited Inc LLC Corp Co
Company Group Store Shop Mall Hotel Hospital School College University Station Airport Bank
Office Street Road Avenue Lane Drive City County State Republic Kingdom Island Islands North
South East West Central Mount Lake River Bay Beach Valley Airways Airlines Express Services
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April June July
September October November December Christmas Easter Black Cyber Prime Day Sale Week Weekend
""".split())
# Chinese surnames in pinyin: one of these followed by a capitalised word is a name ("Li Wei").
# Left out: He, Ma, Hu, You - English words at the start of a sentence.
EN_PINYIN_SURNAMES = frozenset("""
Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Zhu Guo Lin Luo Zheng Liang Xie Tang Han
Feng Deng Cao Peng Zeng Xiao Tian Dong Pan Yuan Cai Jiang Yu Du Ye Cheng Wei Su Lu Ding Shen Ren
Yao Cui Zhong Tan Fang Jin Qian Qin Gao Song Xue Lei Hou Long Duan Kong Meng Mao Bai Jia Gu
""".split())
# Surnames written first (Vietnamese, Korean): one of these before capitalised words is a name
# ("Nguyen Van An", "Choi Min-jun"). The ambiguous ones (Le Creuset, Do Not, Song Title) count only
# in a run of three words, the usual Vietnamese length.
EN_SURNAMES_FIRST = frozenset("""
Nguyen Nguyễn Tran Trần Pham Phạm Hoang Hoàng Huynh Huỳnh Phan Vu Vũ Vo Võ Dang Đặng Bui Bùi
Dinh Đinh Truong Trương Duong Dương Ngo Ngô Doan Đoàn Trinh Trịnh Luong Lương Quach Quách Lê Đỗ Hồ
Le Do Ho Ha Mai Ly Lam Ta
Choi Jung Kang Cho Yoon Jang Lim Shin Seo Kwon Hwang Ahn Jeon Baek Heo Song Moon Hong
""".split())
EN_SURNAMES_FIRST_AMBIGUOUS = frozenset("Le Do Ho Ha Mai Ly Lam Ta Song Moon Hong Jung Cho Shin".split())
# Words that end an English name (a name never runs into them).
EN_NAME_STOPWORDS = frozenset("""
and or but is was are were am be been here again from with the a an i my your our his her their
to for of on in at by it its this that there please thanks thank so just also too still not no
yes ok okay lol who which what when where why how if then than as did do does has have had will
would can could should
""".split())
# Brands that are a person's name (designers, founders): never masked as a NAME.
EN_NAME_BRANDS = frozenset({
    "Tim Hortons", "Marie Claire", "Ben & Jerry's", "Dr. Martens", "Victoria's Secret", "Levi's", "Wendy's", "McDonald's",
    "Marks & Spencer", "Johnson & Johnson", "Trader Joe's", "Kiehl's", "Carter's", "Macy's", "Kellogg's",
    "Calvin Klein", "Tommy Hilfiger", "Kate Spade", "Hugo Boss", "Tom Ford", "Vera Wang", "Jimmy Choo",
    "Paul Smith", "Stella McCartney", "Steve Madden", "Kenneth Cole", "Anne Klein", "Betsey Johnson",
    "Jo Malone", "Bobbi Brown", "Estée Lauder", "Giorgio Armani", "Alexander McQueen", "Christian Louboutin",
    "Yves Saint Laurent", "Johnnie Walker", "Jack Daniel's", "John Deere", "Martha Stewart", "Sam Edelman",
    "Vince Camuto", "Oscar de la Renta", "Carolina Herrera", "Diane von Furstenberg", "Jean Paul Gaultier",
    "Ted Lapidus", "Laura Ashley", "Karl Lagerfeld", "Paul Mitchell", "Aveda", "Clarks", "Dr. Scholl's",
    "Ralph Lauren", "Michael Kors", "Tory Burch", "Marc Jacobs", "Louis Vuitton", "Christian Dior",
    "Ted Baker", "Fred Perry", "Ben Sherman", "Eddie Bauer", "Helly Hansen", "Vera Bradley", "Cole Haan",
    "Ann Taylor", "Stuart Weitzman", "Rebecca Minkoff", "Charlotte Tilbury", "Laura Mercier", "Sally Hansen",
    "John Frieda", "Lilly Pulitzer", "Jessica Simpson", "Nicole Miller", "Betty Crocker", "Le Creuset",
    "Levi Strauss", "Ben & Jerry's", "Dr. Martens",
})


# Given names of many countries (Jörg Michael's name dictionary, ~61k names, shipped by the
# gender-guesser package), for "Given Surname" pairs without a cue (Amara Okafor, Raúl Jiménez).
# Only pairs: a capitalised given name alone stays with the short list above, because this one
# also holds words (May, Will, Hope, Summer) that a sentence uses as words.
_MONTHS_DAYS = frozenset("""January February March April May June July August September October
November December Monday Tuesday Wednesday Thursday Friday Saturday Sunday""".split())
_WORLD_NAME = re.compile(r"[A-ZÀ-ÞĀ-ž][a-zß-ÿĀ-ž]+(?:[-'][A-Za-zÀ-ÿĀ-ž]+)?")


@functools.lru_cache(maxsize=1)
def world_given_names() -> frozenset[str]:
    """The dictionary's single-word given names, minus words this lexicon knows as not names
    (empty when gender-guesser is not installed: the short list then works alone)."""
    try:
        from gender_guesser.detector import Detector
    except ImportError:
        return frozenset()
    street = set(EN_STREET_TYPES) | set(EN_STREET_ABBREVIATIONS)
    return frozenset(n for n in Detector(case_sensitive=True).names
                     if len(n) >= 3 and _WORLD_NAME.fullmatch(n) and n not in _MONTHS_DAYS
                     and n not in EN_NOT_NAMES and n not in EN_ORG_WORDS and n not in street
                     and n.lower() not in EN_NAME_STOPWORDS)
