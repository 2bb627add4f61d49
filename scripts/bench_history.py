"""Benchmark: search, the History page and the Usage page over a large history.

Fills a scratch database with N realistic articles (half Chinese, half English,
300–3,000 words each) through the real schema and migrations, then measures, in
one run, the library calls and page renders against the raw SQLite time of the
very same SQL (captured with sqlite-utils' tracer and replayed on a plain
sqlite3 connection), and prints a Markdown table with p50/p95, the ratio and the
targets: search p95 ≤ 50 ms, History first render ≤ 1 s, Usage ≤ 1 s.

    .venv/bin/python scripts/bench_history.py [--articles 100000] [--db PATH] [--keep]
                                              [--reps 3] [--page-reps 5] [--plans]
                                              [--database-url postgresql://…]

`--db PATH` reuses (and never deletes) a database: filling is skipped when it
already holds N articles or more. Without it the database lives in a temporary
directory that is removed at the end unless `--keep` is given. 100,000 articles
make a database of a few GB and take minutes to fill (the FTS5 trigram index is
built by the triggers as rows are inserted).

`--database-url URL` measures PostgreSQL as well, on the very same articles: the SQLite
database is filled (or reused) as above, then copied into that PostgreSQL database
(emptied first unless it already holds the same number of articles); every search and
usage call then runs on both, interleaved, and the table shows PostgreSQL's p50/p95
beside SQLite's (ratio = PostgreSQL p50 / SQLite p50). The copy disables the grams
trigger and fills `articles.grams` from the Python twin of its rule (writer/storage/
grams.py `tokens`, lowercased: ~10× faster than the trigger's SQL), builds the GIN indexes
once at the end, then checks a sample of rows against `writer_grams` and ANALYZEs.
`--plans` prints PostgreSQL's EXPLAIN of each first query. Pages are not measured there.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlite_utils  # noqa: E402

from writer.generation.counting import count_words  # noqa: E402
from writer.storage import grams, pg, usage  # noqa: E402
from writer.storage.prices import PriceTable  # noqa: E402
from writer.storage.search import Filters, distinct, search  # noqa: E402
from writer.storage.store import Store  # noqa: E402

SEARCH_TARGET_MS = 50
PAGE_TARGET_MS = 1000

# -- capturing the SQL the app runs --------------------------------------------------------
# Every sqlite-utils Database created from here on reports its statements to `_trace`
# (query() and execute() both call the tracer), so the SQL a library call or a page run
# executes can be replayed, unchanged, on a raw sqlite3 connection.
_captured: list | None = None
_original_init = sqlite_utils.Database.__init__


def _trace(sql, params):
    if _captured is not None:
        _captured.append((sql, params))


def _traced_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    if self._tracer is None:
        self._tracer = _trace


sqlite_utils.Database.__init__ = _traced_init


class capture:
    """with capture() as sql: ...  -> sql is the list of (statement, params) run inside."""

    def __init__(self, conn: sqlite3.Connection | None = None):
        self.conn = conn  # the Store's own connection (not sqlite-utils'): traced too

    def __enter__(self):
        global _captured
        _captured = self.statements = []
        if self.conn is not None:  # the statement with its values in place
            self.conn.set_trace_callback(lambda sql: self.statements.append((sql, None)))
        return self.statements

    def __exit__(self, *exc):
        global _captured
        _captured = None
        if self.conn is not None:
            self.conn.set_trace_callback(None)


def reads(statements):
    return [(s, p) for s, p in statements if s.lstrip().split(None, 1)[0].upper() in ("SELECT", "WITH")]


def replay(conn: sqlite3.Connection, statements) -> float:
    """Seconds to run `statements` on a raw connection and fetch every row."""
    start = time.perf_counter()
    for sql, params in statements:
        conn.execute(sql, params if params is not None else ()).fetchall()
    return time.perf_counter() - start


# -- realistic articles ---------------------------------------------------------------------
# (English product, Chinese product, English features, Chinese features)
DOMAINS = [
    ("coffee machine", "咖啡机", ["cold brew mode", "built-in grinder", "milk frother", "one-touch espresso"],
     ["冷萃模式", "内置磨豆器", "奶泡器", "一键意式浓缩"]),
    ("running shoes", "跑鞋", ["carbon plate", "breathable mesh upper", "responsive foam", "wide toe box"],
     ["碳板", "透气网面", "回弹中底", "宽楦设计"]),
    ("project management software", "项目管理软件",
     ["Gantt charts", "task automation", "real-time collaboration", "time tracking"],
     ["甘特图", "任务自动化", "实时协作", "工时统计"]),
    ("CRM platform", "客户管理系统", ["sales pipeline", "lead scoring", "email integration", "custom dashboards"],
     ["销售漏斗", "线索评分", "邮件集成", "自定义看板"]),
    ("skincare serum", "精华液",
     ["vitamin C formula", "hyaluronic acid", "fragrance-free formula", "dermatologist testing"],
     ["维C配方", "玻尿酸", "无香精配方", "皮肤科测试"]),
    ("electric bike", "电动自行车", ["removable battery", "hydraulic brakes", "pedal assist", "foldable frame"],
     ["可拆卸电池", "液压刹车", "助力骑行", "折叠车架"]),
    ("smart speaker", "智能音箱", ["voice assistant", "multi-room audio", "smart home control", "privacy switch"],
     ["语音助手", "多房间音频", "智能家居控制", "隐私开关"]),
    ("cloud storage service", "云存储服务",
     ["end-to-end encryption", "automatic backup", "file versioning", "team folders"],
     ["端到端加密", "自动备份", "文件版本管理", "团队文件夹"]),
    ("online course", "在线课程",
     ["live Q&A sessions", "project-based lessons", "certificate of completion", "lifetime access"],
     ["直播答疑", "项目制学习", "结业证书", "永久回看"]),
    ("noise-cancelling headphones", "降噪耳机",
     ["active noise cancelling", "transparency mode", "40-hour battery life", "multipoint Bluetooth"],
     ["主动降噪", "通透模式", "40小时续航", "多点蓝牙连接"]),
    ("standing desk", "升降桌", ["dual motors", "memory presets", "anti-collision sensor", "cable tray"],
     ["双电机", "记忆高度", "防撞感应", "理线槽"]),
    ("air purifier", "空气净化器", ["HEPA filter", "PM2.5 sensor", "sleep mode", "app control"],
     ["HEPA滤网", "PM2.5传感器", "睡眠模式", "手机App控制"]),
    ("pet food", "宠物粮", ["grain-free recipe", "real chicken", "probiotics", "vet-approved formula"],
     ["无谷配方", "鲜鸡肉", "益生菌", "兽医推荐配方"]),
    ("travel backpack", "旅行背包",
     ["laptop compartment", "water-resistant fabric", "carry-on size", "hidden pockets"],
     ["电脑隔层", "防泼水面料", "登机尺寸", "防盗口袋"]),
    ("AI writing assistant", "AI 写作助手",
     ["streaming output", "brand voice presets", "SEO suggestions", "multilingual drafts"],
     ["流式输出", "品牌语气预设", "SEO建议", "多语言草稿"]),
    ("mechanical keyboard", "机械键盘", ["hot-swappable switches", "RGB backlight", "wireless mode", "PBT keycaps"],
     ["热插拔轴体", "RGB背光", "无线模式", "PBT键帽"]),
    ("meal kit", "预制菜",
     ["pre-portioned ingredients", "15-minute recipes", "recyclable packaging", "weekly menu"],
     ["定量食材", "15分钟快手菜", "可回收包装", "每周菜单"]),
    ("yoga mat", "瑜伽垫", ["non-slip surface", "alignment lines", "natural rubber", "extra cushioning"],
     ["防滑表面", "体位线", "天然橡胶", "加厚缓冲"]),
    ("robot vacuum", "扫地机器人", ["laser navigation", "self-emptying base", "mopping module", "no-go zones"],
     ["激光导航", "自动集尘", "拖地模块", "禁区设置"]),
    ("electric toothbrush", "电动牙刷", ["pressure sensor", "two-minute timer", "travel case", "sonic cleaning"],
     ["压力感应", "两分钟定时", "旅行收纳盒", "声波清洁"]),
    ("smartwatch", "智能手表", ["heart rate monitoring", "sleep tracking", "built-in GPS", "seven-day battery"],
     ["心率监测", "睡眠监测", "GPS定位", "七天续航"]),
    ("tea set", "茶具",
     ["hand-painted porcelain", "gift box", "heat-resistant glass", "traditional craftsmanship"],
     ["手绘瓷器", "礼盒包装", "耐热玻璃", "传统工艺"]),
    ("camping tent", "露营帐篷", ["quick setup", "rainfly", "UV protection", "lightweight poles"],
     ["速开设计", "防雨外帐", "防紫外线", "轻量帐杆"]),
    ("email marketing tool", "邮件营销工具",
     ["drag-and-drop editor", "audience segmentation", "open rate reports", "automation flows"],
     ["拖拽式编辑器", "用户分群", "打开率报告", "自动化流程"]),
    ("online store builder", "电商建站工具",
     ["customizable themes", "one-click checkout", "inventory sync", "multi-currency support"],
     ["可定制主题", "一键结账", "库存同步", "多币种支持"]),
    ("language learning app", "语言学习App",
     ["daily streaks", "speech recognition", "offline lessons", "spaced repetition"],
     ["每日打卡", "语音识别", "离线课程", "间隔重复"]),
    ("EV home charger", "家用充电桩", ["fast charging", "smart scheduling", "weatherproof design", "energy monitoring"],
     ["快充", "智能预约", "防水设计", "能耗监测"]),
    ("baby stroller", "婴儿推车",
     ["one-hand fold", "all-terrain wheels", "reclining seat", "large storage basket"],
     ["单手收车", "全地形轮", "可躺座椅", "大容量置物篮"]),
    ("hotel booking app", "酒店预订App", ["free cancellation", "member prices", "late checkout", "24/7 support"],
     ["免费取消", "会员价", "延迟退房", "7×24小时客服"]),
    ("coworking space", "联合办公空间", ["hot desks", "meeting rooms", "high-speed Wi-Fi", "community events"],
     ["灵活工位", "会议室", "高速Wi-Fi", "社群活动"]),
]

EN_AUDIENCES = ["busy parents", "small business owners", "remote teams", "college students",
                "marketing managers", "first-time buyers", "software developers",
                "fitness enthusiasts", "frequent travelers", "home cooks"]
ZH_AUDIENCES = ["上班族", "宝妈", "小企业主", "大学生", "运营团队", "设计师", "健身爱好者",
                "经常出差的人", "新手父母", "独居青年"]
EN_BENEFITS = ["a calmer morning routine", "faster results with less effort", "more time for what matters",
               "professional quality at home", "a better customer experience", "fewer surprises and lower costs",
               "peace of mind", "a healthier daily habit"]
ZH_BENEFITS = ["更高效的工作节奏", "更好的用户体验", "更多属于自己的时间", "专业级的效果", "更低的使用成本",
               "更安心的生活", "更健康的日常习惯", "更高的性价比"]
EN_BRANDS = ["Northwind", "Brightly", "Lumen", "Kestrel", "Oakridge", "Maple & Co."]
ZH_BRANDS = ["小鹿", "青禾", "星河", "木森", "云朵", "极光"]

EN_PRODUCT_SENTENCES = [
    "Our {p} is built for {a} who want {b} without the usual trade-offs.",
    "The {f} is the feature our customers mention first in their reviews.",
    "In a survey of {n} {a}, most said the {f} changed how they use a {p}.",
    "If you are comparing options, look closely at the {f} and the {f2} before you buy a {p}.",
    "{brand} designed the {p} around one simple idea: {b}.",
    "Unlike cheaper alternatives, this {p} keeps its {f} reliable after months of daily use.",
    "Setting up the {p} takes less than {n} minutes, even for first-time buyers.",
    "Thanks to the {f2}, {a} get {b} from day one.",
    "We tested the {p} for {n} days in real homes and offices.",
    "Every {p} ships with free shipping, a 30-day return policy and a two-year warranty.",
    "Here is what {a} should know before choosing a {p}.",
    "The result is {b}, and a {p} you will actually enjoy using.",
    "Pair the {f} with the {f2} and you get the best of both worlds.",
    "Battery life, build quality and the {f} all matter, but price matters too.",
    "Our {p} now supports {f}, one of the most requested updates this year.",
    "Customers who upgraded to the new {p} report {b} within the first month.",
    "The {f2} is easy to overlook, yet it is what makes the {p} feel premium.",
    "For {a}, the {p} is less about specifications and more about {b}.",
]
EN_GENERIC_SENTENCES = [
    "Great customer experience is built one small interaction at a time.",
    "A clear value proposition helps readers understand why your product matters.",
    "Content marketing works best when it answers the questions your customers already ask.",
    "Social proof, such as reviews and case studies, lowers the risk of trying something new.",
    "A strong call to action tells readers exactly what to do next.",
    "Measure your conversion rate before and after each change, so you know what actually works.",
    "Small business owners rarely have time for long manuals, so keep the onboarding simple.",
    "Limited time offers create urgency, but they only work if the offer is genuinely good.",
    "Email marketing still delivers one of the best returns of any channel.",
    "Your brand story should be short enough to tell in one breath.",
    "Search engines reward pages that are useful, fast and easy to read.",
    "Remote teams need tools that keep everyone on the same page without extra meetings.",
    "Good product descriptions focus on benefits first and specifications second.",
    "Readers skim before they read, so use headings, short paragraphs and lists.",
    "Seasonal campaigns perform better when they are planned at least six weeks ahead.",
    "Live streaming has become a powerful channel for product launches.",
    "Customer support is part of the product, not an afterthought.",
    "Personalization increases engagement, but respect your customers' privacy.",
    "Free shipping remains one of the strongest reasons to complete a purchase.",
    "Testing two headlines against each other is the fastest way to learn what your audience cares about.",
    "User experience is what people remember long after the campaign ends.",
    "Loyalty programs reward your best customers and turn them into advocates.",
    "Every piece of content should have one goal and one audience.",
    "Sustainability is no longer a niche concern for shoppers.",
    "Short videos and carousels drive most of the reach on social media today.",
    "A simple pricing page answers objections before they become support tickets.",
    "Write for one reader, not for everyone at once.",
]
ZH_PRODUCT_SENTENCES = [
    "我们的{p}专为{a}打造，让你轻松获得{b}。",
    "{f}是用户在评价中提到最多的功能。",
    "在一项覆盖{n}位{a}的调查中，大多数人表示{f}彻底改变了他们使用{p}的方式。",
    "如果你正在挑选{p}，一定要重点比较{f}和{f2}。",
    "{brand}在设计这款{p}时只坚持一个原则：{b}。",
    "和市面上的低价产品不同，这款{p}在连续使用数月后，{f}依然稳定可靠。",
    "第一次使用的新手也能在{n}分钟内完成{p}的安装和设置。",
    "借助{f2}，{a}从第一天起就能感受到{b}。",
    "我们在真实的家庭和办公室里对这款{p}进行了为期{n}天的测试。",
    "每一台{p}都支持全国包邮、七天无理由退换和两年质保。",
    "在选择{p}之前，{a}需要了解以下几点。",
    "最终的结果是{b}，以及一款你真正愿意每天使用的{p}。",
    "把{f}和{f2}结合起来，你就能同时兼顾效率与体验。",
    "续航时间、做工质量和{f}都很重要，但价格同样是关键因素。",
    "新版{p}现已支持{f}，这是今年呼声最高的更新之一。",
    "升级到新款{p}的用户表示，第一个月就感受到了{b}。",
    "{f2}很容易被忽略，但正是它让这款{p}显得与众不同。",
    "对{a}来说，{p}的意义不在于参数，而在于{b}。",
]
ZH_GENERIC_SENTENCES = [
    "好的用户体验来自每一次细小的互动。",
    "清晰的价值主张能帮助读者快速理解产品为什么值得购买。",
    "内容营销最有效的方式，是回答用户本来就会问的问题。",
    "真实的用户评价和案例能显著降低新用户的尝试门槛。",
    "一个明确的行动号召，会告诉读者下一步该做什么。",
    "每次调整之前和之后都要记录转化率，这样才知道什么真正有效。",
    "小企业主很少有时间阅读冗长的说明书，所以上手流程一定要简单。",
    "限时优惠能制造紧迫感，但前提是优惠本身足够有吸引力。",
    "私域流量的核心在于长期经营，而不是一次性的促销。",
    "品牌故事要足够简短，最好一口气就能讲完。",
    "搜索引擎更青睐有用、加载快并且易于阅读的页面。",
    "在小红书上，真实的使用体验往往比精美的广告更有说服力。",
    "直播带货让新品上市的节奏变得更快。",
    "好的产品描述先讲好处，再讲参数。",
    "读者通常先浏览再细读，所以要多用小标题、短段落和列表。",
    "节日营销活动至少要提前六周开始准备。",
    "售后服务本身就是产品的一部分，而不是事后的补充。",
    "个性化推荐能提升用户参与度，但也要尊重用户隐私。",
    "包邮依然是促成下单最有力的理由之一。",
    "标题的对比测试是了解受众真正关心什么的最快方法。",
    "会员体系能够奖励忠实用户，并把他们变成品牌的推荐者。",
    "每一篇内容都应该只有一个目标和一个受众。",
    "越来越多的消费者开始关注环保和可持续发展。",
    "短视频和图文笔记贡献了社交媒体上的大部分曝光。",
    "性价比永远是大众消费者最关心的问题之一。",
    "简洁的价格页面能在用户提问之前就打消他们的顾虑。",
    "写作时心里只想着一位读者，而不是所有人。",
]
EN_TOPICS = ["How a {p} helps {a} get {b}", "{n} reasons {a} love our {p}",
             "The complete guide to choosing a {p}", "{p}: the {f} explained",
             "Is the {f} worth it? An honest {p} review", "Launching the new {brand} {p}",
             "Why {a} are switching to a {p}", "{p} buying guide for {a}"]
ZH_TOPICS = ["{p}如何帮助{a}实现{b}", "选购{p}的{n}个实用技巧", "{p}测评：{f}到底值不值",
             "{brand}新款{p}正式上市", "为什么越来越多的{a}选择{p}", "写给{a}的{p}选购指南",
             "一文读懂{p}的{f}", "{p}的{f}和{f2}怎么选"]
EN_HEADINGS = ["Why the {f} matters", "What {a} told us", "Getting started", "The details",
               "How it compares", "Our verdict", "Frequently asked questions"]
ZH_HEADINGS = ["为什么{f}很重要", "{a}怎么说", "快速上手", "细节解析", "横向对比", "我们的结论", "常见问题"]
STYLES = ["professional", "casual", "persuasive", "storytelling"]
CUSTOM_STYLES = ["witty and concise", "温暖、真诚", "like a friendly expert", "小红书风格"]
CONTENT_TYPES = [("blog", 45, 800, 3000), ("marketing_copy", 20, 300, 2000),
                 ("product_description", 20, 300, 1500), ("social_post", 15, 300, 800)]
# provider, model, share %, output tokens per English word, per Chinese character
MODELS = [("openai", "gpt-4o-mini", 40, 1.33, 0.95), ("deepseek", "deepseek-chat", 30, 1.3, 0.62),
          ("qwen", "qwen-plus", 23, 1.3, 0.65), ("openrouter", "mixtral-8x22b-instruct", 7, 1.4, 1.0)]
STATUSES = [("completed", 88), ("stopped", 5), ("truncated", 4), ("failed", 3)]
ERRORS = ["APIConnectionError: connection reset by peer after 3 retries",
          "RateLimitError: 429 Too Many Requests (retried 4 times)",
          "APITimeoutError: no data for 30 s (stream stalled)",
          "InternalServerError: 502 Bad Gateway"]


class ArticleFactory:
    """Articles assembled from pre-generated paragraph pools: fast and seeded."""

    def __init__(self, rng: random.Random, paragraphs_per_domain: int = 60, generic_paragraphs: int = 400):
        self.rng = rng
        self.prices = PriceTable.load()
        weights = [1 / (i + 1) ** 0.7 for i in range(len(DOMAINS))]  # some products are far more common
        rng.shuffle(weights)
        self.domain_weights = weights
        self.pools = {}
        for lang in ("en", "zh"):
            generic = [self._paragraph(lang, None) for _ in range(generic_paragraphs)]
            self.pools[lang] = [([self._paragraph(lang, d) for _ in range(paragraphs_per_domain)], generic)
                                for d in range(len(DOMAINS))]

    def _slots(self, lang: str, domain: int | None) -> dict:
        rng = self.rng
        en, zh, en_f, zh_f = DOMAINS[domain if domain is not None else rng.randrange(len(DOMAINS))]
        features = en_f if lang == "en" else zh_f
        f, f2 = rng.sample(features, 2)
        return {"p": en if lang == "en" else zh, "f": f, "f2": f2,
                "a": rng.choice(EN_AUDIENCES if lang == "en" else ZH_AUDIENCES),
                "b": rng.choice(EN_BENEFITS if lang == "en" else ZH_BENEFITS),
                "brand": rng.choice(EN_BRANDS if lang == "en" else ZH_BRANDS),
                "n": rng.choice([3, 5, 7, 10, 12, 14, 21, 30, 50, 120, 300, 500])}

    def _paragraph(self, lang: str, domain: int | None) -> tuple[str, int]:
        rng = self.rng
        product = EN_PRODUCT_SENTENCES if lang == "en" else ZH_PRODUCT_SENTENCES
        generic = EN_GENERIC_SENTENCES if lang == "en" else ZH_GENERIC_SENTENCES
        slots = self._slots(lang, domain)
        sentences = []
        for _ in range(rng.randint(3, 7) if lang == "en" else rng.randint(4, 8)):
            if domain is not None and rng.random() < 0.7:
                sentences.append(rng.choice(product).format(**slots))
            else:
                sentences.append(rng.choice(generic))
        text = (" " if lang == "en" else "").join(sentences)
        return text, count_words(text)

    def article(self, created: dt.datetime) -> dict:
        rng = self.rng
        lang = "zh" if rng.random() < 0.5 else "en"
        domain = rng.choices(range(len(DOMAINS)), self.domain_weights)[0]
        slots = self._slots(lang, domain)
        topic = rng.choice(EN_TOPICS if lang == "en" else ZH_TOPICS).format(**slots)
        ctype, _, low, high = rng.choices(CONTENT_TYPES, [c[1] for c in CONTENT_TYPES])[0]
        target = rng.randint(low, high)
        status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        goal = {"completed": target * rng.uniform(0.95, 1.1), "stopped": target * rng.uniform(0.1, 0.8),
                "truncated": target * rng.uniform(0.6, 0.95),
                "failed": target * rng.uniform(0.0, 0.5) if rng.random() < 0.5 else 0}[status]
        domain_pool, generic_pool = self.pools[lang][domain]
        headings = EN_HEADINGS if lang == "en" else ZH_HEADINGS
        parts, words = [], 0
        if goal:
            parts.append(f"# {topic}")
            words = count_words(topic)
        while words < goal:
            if len(parts) > 2 and rng.random() < 0.2:
                heading = "## " + rng.choice(headings).format(**slots)
                parts.append(heading)
                words += count_words(heading)
            text, n = rng.choice(domain_pool if rng.random() < 0.75 else generic_pool)
            parts.append(text)
            words += n
        if status == "truncated" and parts:  # cut mid-sentence, as max_tokens does
            last = parts.pop()
            words -= count_words(last)
            last = last[: len(last) // 2]
            parts.append(last)
            words += count_words(last)
        content = "\n\n".join(parts)

        provider, model, _, per_en, per_zh = rng.choices(MODELS, [m[2] for m in MODELS])[0]
        input_tokens = rng.randint(180, 420) + len(topic) // 2
        output_tokens = int(words * (per_en if lang == "en" else per_zh) * rng.uniform(0.95, 1.05))
        if status == "failed" and not content:
            output_tokens = 0
        source = "reported" if rng.random() < 0.93 else "estimated"
        price = self.prices.lookup(model, provider)
        tps = rng.uniform(25, 110)
        ttft = rng.uniform(250, 2500)
        duration = ttft + output_tokens / tps * 1000
        keywords = rng.sample(DOMAINS[domain][2 if lang == "en" else 3], rng.randint(0, 3))
        style = rng.choice(STYLES) if rng.random() < 0.9 else rng.choice(CUSTOM_STYLES)
        return {
            "created_at": _iso(created),
            "updated_at": _iso(created + dt.timedelta(milliseconds=duration)),
            "topic": topic,
            "content_type": ctype,
            "style": style,
            "language": lang,
            "target_words": target,
            "audience": slots["a"] if rng.random() < 0.7 else "",
            "keywords": json.dumps(keywords, ensure_ascii=False),
            "words": words,
            "content": content,
            "status": status,
            "provider": provider,
            "model": model,
            "max_tokens": 8192,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "usage_source": source,
            "cost": price.cost(input_tokens, output_tokens) if price else None,
            "currency": price.currency if price else None,
            "price_input_per_1m": price.input_per_1m if price else None,
            "price_output_per_1m": price.output_per_1m if price else None,
            "ttft_ms": round(ttft, 1),
            "duration_ms": round(duration, 1),
            "tokens_per_s": round(tps, 1) if output_tokens else None,
            "finish_reason": {"completed": "stop", "truncated": "length"}.get(status),
            "error": rng.choice(ERRORS) if status == "failed" else None,
            "retries": rng.choices([0, 1, 2], [90, 8, 2])[0],
            "resumes": rng.choices([0, 1], [96, 4])[0],
            "fallback": 0,
            "served_by": provider,
            "worker_pid": None,
        }


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fill(path: Path, wanted: int, batch: int = 2000) -> dict:
    """Top the database up to `wanted` articles; ids increase with created_at."""
    store = Store(path)
    existing = store.count()
    info = {"existing": existing, "inserted": 0, "seconds": 0.0, "generate_s": 0.0}
    if existing >= wanted:
        store.close()
        return info
    need = wanted - existing
    rng = random.Random(42 + existing)
    factory = ArticleFactory(rng)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start_at = now - dt.timedelta(days=365)
    if existing:
        newest = store.db.execute("SELECT max(created_at) FROM articles").fetchone()[0]
        start_at = max(start_at, dt.datetime.fromisoformat(newest.replace("Z", "+00:00")))
    span_ms = max(1, int((now - start_at).total_seconds() * 1000))
    offsets = sorted(rng.randrange(1, span_ms) for _ in range(need))
    # A scratch database: no fsync per batch, a bigger cache for the FTS segment merges.
    store.db.execute("PRAGMA synchronous = OFF")
    store.db.execute("PRAGMA cache_size = -262144")
    # The grams index (writer/storage/grams.py) is filled afterwards by its Python twin,
    # as the migration and `reindex` do, instead of its trigger's SQL row by row.
    (trigger_sql,) = store.conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                                        "AND name = 'articles_grams_ai'").fetchone()
    first_new = store.conn.execute("SELECT coalesce(max(id), 0) + 1 FROM articles").fetchone()[0]
    store.conn.execute("DROP TRIGGER articles_grams_ai")
    started = time.perf_counter()
    last_report = started
    done = 0
    while done < need:
        t0 = time.perf_counter()
        rows = [factory.article(start_at + dt.timedelta(milliseconds=o))
                for o in offsets[done:done + batch]]
        info["generate_s"] += time.perf_counter() - t0
        with store.db.atomic():
            store.articles.insert_all(rows)
        done += len(rows)
        if time.perf_counter() - last_report > 15 or done == need:
            last_report = time.perf_counter()
            elapsed = last_report - started
            print(f"  filled {done:,}/{need:,} in {elapsed:.0f} s ({done / elapsed:.0f} articles/s)",
                  file=sys.stderr, flush=True)
    with store.db.atomic():
        store.conn.execute(f"INSERT INTO {grams.GRAMS_TABLE} (rowid, grams) SELECT a.id, "
                           f"{grams.register(store.conn)} FROM articles a WHERE a.id >= ? "
                           f"AND {grams.indexed_sql('a')} ORDER BY a.id", [first_new])
        store.conn.execute(trigger_sql)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    info["inserted"] = need
    info["seconds"] = time.perf_counter() - started
    store.close()
    return info


# -- measuring ------------------------------------------------------------------------------
def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Results:
    def __init__(self):
        self.rows = []
        self.plans = {}
        self.notes = []

    def add(self, name, lib_ms, raw_ms=None, target=None, first=None, extra=""):
        self.rows.append({"name": name, "n": len(lib_ms), "p50": statistics.median(lib_ms),
                          "p95": pct(lib_ms, 0.95), "first": first,
                          "raw50": statistics.median(raw_ms) if raw_ms else None,
                          "raw95": pct(raw_ms, 0.95) if raw_ms else None, "target": target, "extra": extra})


def measure_calls(name, calls, store, raw, results, reps, target=None, plan=False, extra_fn=None):
    """calls: list of (label, fn). Each runs once to warm up, then `reps` times, interleaved
    with a raw replay of exactly the SQL it ran."""
    lib, rawt, per_call = [], [], []
    for i, (label, fn) in enumerate(calls):
        with capture(store.conn) as statements:
            out = fn()
        sql = reads(statements)
        if plan and i == 0:
            results.plans[f"{name} · {label}"] = [
                (s, [r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + s, p or ())]) for s, p in sql]
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
            rawt.append(replay(raw, sql) * 1000)
        lib += times
        per_call.append((max(times), label, extra_fn(out) if extra_fn else ""))
    results.add(name, lib, rawt, target)
    return per_call


def page_run(at, action) -> tuple[float, list]:
    with capture() as statements:
        t0 = time.perf_counter()
        action(at)
        elapsed = (time.perf_counter() - t0) * 1000
    if at.exception:
        raise RuntimeError(f"page raised: {at.exception[0].value}")
    return elapsed, reads(statements)


def measure_pages(db_path: Path, raw, results, reps: int) -> None:
    from streamlit.testing.v1 import AppTest

    for name in [n for n in os.environ if n.startswith(("WRITER_", "OPENAI_"))]:
        del os.environ[name]
    os.environ.update(WRITER_DB=str(db_path), WRITER_NO_DOTENV="1", WRITER_UI_LANGUAGE="en")
    os.chdir(ROOT)

    def fresh():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        t0 = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(f"app.py raised: {at.exception[0].value}")
        return at, (time.perf_counter() - t0) * 1000

    def record(name, action_for, reps, target, setup=None):
        lib, rawt = [], []
        for _ in range(reps):
            at, _ = fresh()
            if setup:
                setup(at)
            ms, sql = page_run(at, action_for)
            lib.append(ms)
            rawt.append(replay(raw, sql) * 1000)
        results.add(name, lib, rawt, target, first=lib[0])
        return at

    # Write page (the default page) first: it also pays for importing Streamlit.
    write = []
    for _ in range(reps):
        write.append(fresh()[1])
    results.add("Write page, first render (app start)", write, None, None, first=write[0])

    history = ROOT / "pages" / "history.py"
    at = record("History page, first render", lambda a: a.switch_page("views/history.py").run(),
                reps, PAGE_TARGET_MS)
    history_src = history.read_text(encoding="utf-8")
    keys = [w.key for w in at.text_input]
    search_key = "history_query" if "history_query" in keys else next(
        (k for k in keys if k and ("search" in k or "query" in k)), None)
    if search_key:
        for label, queries in (("History search, zh (3+ chars)", ["用户体验", "咖啡机", "流式输出"]),
                               ("History search, en (3+ chars)", ["customer experience", "streaming",
                                                                  "robot vacuum"]),
                               ("History search, 1–2 chars", ["咖啡", "AI", "量子"])):
            lib, rawt = [], []
            for q in queries:
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
                at.run()
                at.switch_page("views/history.py").run()
                ms, sql = page_run(at, lambda a, q=q: a.text_input(key=search_key).input(q).run())
                lib.append(ms)
                rawt.append(replay(raw, sql) * 1000)
            results.add(label, lib, rawt, PAGE_TARGET_MS)
    else:
        results.notes.append("History page has no search text_input: page search not measured.")
    if "history_page" in history_src:
        def last_page(a):
            widget = a.number_input(key="history_page")
            widget.set_value(int(widget.max) if widget.max is not None else 40).run()
        record("History page, jump to last page", last_page, max(2, reps // 2), PAGE_TARGET_MS,
               setup=lambda a: a.switch_page("views/history.py").run())

    usage_page = ROOT / "pages" / "usage.py"
    if not usage_page.exists():
        results.notes.append("views/usage.py does not exist yet: Usage page not measured.")
        return
    at = record("Usage page, first render (default period)",
                lambda a: a.switch_page("views/usage.py").run(), reps, PAGE_TARGET_MS)
    if any(w.key == "usage_period" for w in at.date_input):
        today = dt.datetime.now(dt.timezone.utc).date()
        record("Usage page, last 365 days",
               lambda a: a.date_input(key="usage_period").set_value(
                   (today - dt.timedelta(days=364), today)).run(),
               max(2, reps // 2), PAGE_TARGET_MS, setup=lambda a: a.switch_page("views/usage.py").run())


ZH_QUERIES = ["流式输出", "用户体验", "咖啡机", "扫地机器人", "降噪耳机", "性价比", "品牌故事", "转化率",
              "私域流量", "小红书", "空气净化器", "智能手表", "机械键盘", "预制菜", "露营帐篷", "续航时间",
              "售后服务", "限时优惠", "直播带货", "新品上市", "无谷配方", "会员体系", "咖啡机 冷萃模式",
              "量子计算", "元宇宙营销"]
EN_QUERIES = ["streaming", "customer experience", "coffee machine", "robot vacuum", "noise-cancelling",
              "battery life", "free shipping", "limited time", "conversion rate", "brand story",
              "small business", "remote teams", "email marketing", "standing desk", "air purifier",
              "running shoes", "smartwatch", "mechanical keyboard", "return policy", "onboarding",
              "hot-swappable", "espresso milk", '"customer support"', "quantum computing", "blockchain"]
ONE_CHAR_QUERIES = ["茶", "鑫", "的", "机", "量", "爱", "猫", "库"]  # CJK: articles_grams (m014)
TWO_CHAR_QUERIES = ["咖啡", "跑鞋", "降噪", "营销", "量子", "续航", "品牌", "体验"]
SHORT_LATIN_QUERIES = ["AI", "UX", "Go", "5G"]  # 1–2 Latin/digit characters: articles_grams (m015)
MIXED_QUERIES = ["咖啡 冷萃模式", "量子 计算机", "降噪 续航时间", "鑫 品牌故事", "的 用户体验", "营销 转化率"]


def filtered_queries(today: dt.date) -> list[tuple[str, Filters]]:
    d = lambda days: (today - dt.timedelta(days=days)).isoformat()  # noqa: E731
    return [
        ("customer experience + failed", Filters(query="customer experience", status="failed")),
        ("用户体验 + zh + last 30 days", Filters(query="用户体验", language="zh", since=d(30), until=d(0))),
        ("streaming + en + blog", Filters(query="streaming", language="en", content_type="blog")),
        ("咖啡机 + deepseek-chat", Filters(query="咖啡机", model="deepseek-chat")),
        ("battery life + 300–365 days ago", Filters(query="battery life", since=d(365), until=d(300))),
        ("量子计算 + zh (no match)", Filters(query="量子计算", language="zh")),
        ("咖啡 (short) + truncated", Filters(query="咖啡", status="truncated")),
        ("量子 (short) + zh + last 30 days", Filters(query="量子", language="zh", since=d(30), until=d(0))),
        ("茶 (1 char) + deepseek-chat", Filters(query="茶", model="deepseek-chat")),
        ("降噪 续航时间 + blog", Filters(query="降噪 续航时间", content_type="blog")),
        ("鑫 (rare) + failed", Filters(query="鑫", status="failed")),
        ("的 用户体验 (both common) + stopped", Filters(query="的 用户体验", status="stopped")),
        ("no query, status stopped", Filters(status="stopped")),
        ("no query, 140–200 days ago", Filters(since=d(200), until=d(140))),
        ("no query, qwen + social_post + zh", Filters(provider="qwen", content_type="social_post", language="zh")),
        ("no query, failed + mixtral (211 matches)", Filters(status="failed", model="mixtral-8x22b-instruct")),
    ]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def print_table(results: Results) -> None:
    def ms(v):
        return "–" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

    print("| measurement | n | p50 ms | p95 ms | first ms | raw SQL p50 | raw SQL p95 | ratio | target | ok |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results.rows:
        ratio = f"{r['p50'] / r['raw50']:.1f}×" if r["raw50"] else "–"
        target, ok = "–", ""
        if r["target"] == SEARCH_TARGET_MS:
            target, ok = f"p95 ≤ {SEARCH_TARGET_MS} ms", "✅" if r["p95"] <= SEARCH_TARGET_MS else "❌"
        elif r["target"] == PAGE_TARGET_MS:
            worst = max(r["p50"], r["first"] or 0)
            target, ok = "≤ 1 s", "✅" if worst <= PAGE_TARGET_MS else "❌"
        print(f"| {r['name']} | {r['n']} | {ms(r['p50'])} | {ms(r['p95'])} | {ms(r['first'])} | "
              f"{ms(r['raw50'])} | {ms(r['raw95'])} | {ratio} | {target} | {ok} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="reuse this database (never deleted)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per library call")
    parser.add_argument("--page-reps", type=int, default=5, help="fresh sessions per page render")
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN QUERY PLAN of each query")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--database-url", help="also measure this PostgreSQL database (filled from "
                        "the SQLite one; never a database that holds anything else)")
    args = parser.parse_args()

    tmp = None
    if args.db:
        path = args.db.resolve()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
        path = tmp / "bench.db"
    free = shutil.disk_usage(path.parent if path.parent.exists() else Path.cwd()).free
    print(f"database {path} (free disk {human_bytes(free)})", file=sys.stderr)
    try:
        if args.database_url:
            run_pg(args, path)
        else:
            run(args, path)
    finally:
        if tmp and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp:
            print(f"kept {path}", file=sys.stderr)


def run(args, path: Path) -> None:
    info = fill(path, args.articles)
    store = Store(path)
    raw = sqlite3.connect(path)
    total = store.count()
    langs = {lang: (n, words) for lang, n, words in raw.execute(
        "SELECT language, count(*), avg(words) FROM articles GROUP BY 1")}
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    chars = raw.execute("SELECT sum(length(content)) FROM articles").fetchone()[0] or 0
    fts_pages = raw.execute("SELECT count(*) FROM articles_fts_data").fetchone()[0]
    results = Results()
    today = dt.datetime.now(dt.timezone.utc).date()

    # Warm the page cache (the database is read once end to end, as a long-running app would).
    t0 = time.perf_counter()
    raw.execute("SELECT sum(length(content)), sum(length(topic)) FROM articles").fetchone()
    raw.execute("SELECT count(*) FROM articles_fts_data WHERE length(block) > 0").fetchone()
    warm_s = time.perf_counter() - t0

    hits = lambda page: page.total_label  # noqa: E731
    per_query = []
    for name, queries in (("search, zh, 3+ chars", ZH_QUERIES), ("search, en, 3+ chars", EN_QUERIES),
                          ("search, 1 CJK char", ONE_CHAR_QUERIES), ("search, 2 CJK chars", TWO_CHAR_QUERIES),
                          ("search, 1–2 Latin chars", SHORT_LATIN_QUERIES),
                          ("search, short CJK + long term", MIXED_QUERIES)):
        calls = [(q, lambda q=q: search(store, Filters(query=q))) for q in queries]
        per_query += measure_calls(f"{name} ({len(queries)} queries)", calls, store, raw, results, args.reps,
                                   SEARCH_TARGET_MS, args.plans, hits)
    calls = [(label, lambda f=f: search(store, f)) for label, f in filtered_queries(today)]
    per_query += measure_calls(f"search with filters ({len(calls)} combinations)", calls, store, raw, results,
                               args.reps, SEARCH_TARGET_MS, args.plans, hits)
    calls = [(q, lambda q=q: search(store, Filters(query=q), limit=25, offset=500))
             for q in ("用户体验", "customer experience", "咖啡机")]
    per_query += measure_calls("search, page 21 (offset 500)", calls, store, raw, results, args.reps,
                               SEARCH_TARGET_MS, args.plans, hits)
    calls = [(c, lambda c=c: distinct(store, c)) for c in ("model", "provider")]
    measure_calls("distinct model / provider (filter boxes)", calls, store, raw, results, args.reps,
                  None, args.plans)

    since = (today - dt.timedelta(days=364)).isoformat()
    for by in ("day", "model", "provider", "type"):
        measure_calls(f"usage.by_group({by}), last 365 days", [(by, lambda by=by: usage.by_group(
            store, by, since, today.isoformat()))], store, raw, results, max(5, args.reps * 3), None, args.plans)
    month = usage.month_bounds(today)
    measure_calls("usage.totals, this month", [("totals", lambda: usage.totals(store, *month))], store, raw,
                  results, max(5, args.reps * 3), None, args.plans)
    measure_calls("usage.articles (500 newest), last 365 days",
                  [("articles", lambda: usage.articles(store, since, today.isoformat()))], store, raw, results,
                  max(5, args.reps * 3), None, args.plans)

    if not args.skip_pages:
        measure_pages(path, raw, results, args.page_reps)

    # ---- report --------------------------------------------------------------------------
    print()
    print(f"$ .venv/bin/python scripts/bench_history.py {' '.join(sys.argv[1:])}")
    zh, en = langs.get("zh", (0, 0)), langs.get("en", (0, 0))
    print(f"articles {total:,} (zh {zh[0]:,}, avg {zh[1] or 0:,.0f} characters / en {en[0]:,}, avg "
          f"{en[1] or 0:,.0f} words), {chars / 1e6:,.0f} M characters of content; database {human_bytes(size)} "
          f"(FTS blocks: {fts_pages:,} rows)")
    if info["inserted"]:
        print(f"fill: {info['inserted']:,} articles in {info['seconds']:.0f} s "
              f"({info['inserted'] / info['seconds']:.0f} articles/s; generating the text took "
              f"{info['generate_s']:.1f} s of that, the rest is insert + FTS5 trigram triggers)")
    else:
        print(f"fill: skipped, the database already had {info['existing']:,} articles")
    print(f"SQLite {sqlite3.sqlite_version} · Python {platform.python_version()} · "
          f"{os.cpu_count()} CPUs · page cache warmed in {warm_s:.1f} s · "
          f"{args.reps} timed runs per search query, {args.page_reps} fresh sessions per page")
    print()
    print_table(results)
    print()
    print("raw SQL = the same statements (captured from the store's connection) replayed on a plain sqlite3 "
          "connection; ratio = p50 / raw p50. Page rows: p50 over fresh sessions, 'first' = the "
          "first session in this process.")
    slow = sorted(per_query, reverse=True)[:10]
    print("slowest searches (worst of runs, ms · query · hits): " +
          "; ".join(f"{ms:.0f} · {label} · {extra}" for ms, label, extra in slow))
    for note in results.notes:
        print("note:", note)
    if args.plans:
        print_plans(results.plans)
    store.close()
    raw.close()


def print_plans(plans_by_name: dict) -> None:
    """--plans: each measured query's SQL and the plan the database chose for it."""
    print()
    for name, plans in plans_by_name.items():
        print(f"## {name}")
        for sql, plan in plans:
            print("  " + " ".join(sql.split())[:400])
            for line in plan:
                print("    -", line)


# -- PostgreSQL ------------------------------------------------------------------------------
def fill_pg(url: str, sqlite_path: Path, batch: int = 1000) -> dict:
    """Copy every article of the SQLite database into the PostgreSQL one (COPY), with
    `grams` from the Python twin of `writer_grams` (trigger off while copying), the GIN
    indexes built once at the end, a sample checked against the trigger's function."""
    import psycopg

    from writer.storage.search_pg import BASELINE as SEARCH_INDEXES
    from writer.storage.search_pg import GRAMS_FUNCTION

    Store(url).close()  # the schema (migrations)
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    wanted = source.execute("SELECT count(*) FROM articles").fetchone()[0]
    info = {"existing": 0, "inserted": 0, "seconds": 0.0}
    with psycopg.connect(url, autocommit=True) as pgc:
        info["existing"] = pgc.execute("SELECT count(*) FROM articles").fetchone()[0]
        if info["existing"] == wanted:
            return info
        started = time.perf_counter()
        pg_columns = {r[0] for r in pgc.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'articles'")}
        columns = [r[1] for r in source.execute("PRAGMA table_info(articles)") if r[1] in pg_columns]
        pgc.execute("TRUNCATE articles CASCADE")
        pgc.execute("DROP INDEX IF EXISTS idx_articles_trgm")
        pgc.execute("DROP INDEX IF EXISTS idx_articles_grams")
        pgc.execute("ALTER TABLE articles DISABLE TRIGGER articles_grams")
        topic_at, content_at, status_at = (columns.index(c) for c in ("topic", "content", "status"))
        done = 0
        with pgc.cursor() as cur, cur.copy(
                f"COPY articles ({', '.join(columns)}, grams) FROM STDIN") as copy:
            for row in source.execute(f"SELECT {', '.join(columns)} FROM articles ORDER BY id"):
                text = f"{row[topic_at] or ''} {row[content_at] or ''}"
                writing = row[status_at] in grams.WRITING
                copy.write_row([*row, None if writing else
                                sorted(set((grams.tokens(text) or "").lower().split()))])
                done += 1
                if done % 20_000 == 0:
                    print(f"  copied {done:,}/{wanted:,} in {time.perf_counter() - started:.0f} s",
                          file=sys.stderr, flush=True)
        pgc.execute("ALTER TABLE articles ENABLE TRIGGER articles_grams")
        pgc.execute("SELECT setval(pg_get_serial_sequence('articles', 'id'), "
                    "(SELECT max(id) FROM articles))")
        pgc.execute("SET maintenance_work_mem = '512MB'")
        for statement in SEARCH_INDEXES:
            if statement.startswith("CREATE INDEX"):
                t0 = time.perf_counter()
                pgc.execute(statement)
                print(f"  {statement.split(' ON ')[0]}: {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr, flush=True)
        differ = pgc.execute(
            f"SELECT count(*) FROM (SELECT grams, {GRAMS_FUNCTION}(topic || ' ' || content) AS g "
            "FROM articles TABLESAMPLE BERNOULLI (0.3) REPEATABLE (1) WHERE grams IS NOT NULL) s "
            "WHERE NOT (grams @> g AND g @> grams)").fetchone()[0]
        if differ:
            raise SystemExit(f"{differ} sampled rows have grams unlike {GRAMS_FUNCTION}: the copy is wrong")
        pgc.execute("VACUUM ANALYZE articles")
        info["inserted"] = done
        info["seconds"] = time.perf_counter() - started
    source.close()
    return info


def measure_both(name, calls, pg_store, sq_store, results, reps, target=None, plan=False, extra_fn=None):
    """calls: list of (label, fn(store)). Each runs once per database to warm up, then
    `reps` times on each, alternating; PostgreSQL's times are the row's, SQLite's its
    'raw' columns."""
    lib, other, per_call = [], [], []
    for i, (label, fn) in enumerate(calls):
        out = fn(pg_store)
        if plan and i == 0:
            results.plans[f"{name} · {label}"] = explain_pg(pg_store, fn)
        fn(sq_store)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(pg_store)
            times.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            fn(sq_store)
            other.append((time.perf_counter() - t0) * 1000)
        lib += times
        per_call.append((max(times), label, extra_fn(out) if extra_fn else ""))
    results.add(name, lib, other, target)
    return per_call


def explain_pg(store, fn) -> list:
    """EXPLAIN (ANALYZE) of each SELECT `fn` runs on the PostgreSQL store, under the
    planner settings (`SET LOCAL`) it ran with."""
    statements, execute, settings = [], store.conn.execute, []

    def traced(sql, params=()):
        word = sql.strip().upper()
        if word in ("BEGIN", "COMMIT", "ROLLBACK"):
            settings.clear()
        elif word.startswith("SET LOCAL"):
            settings.append(sql)
        else:
            statements.append((sql, params, list(settings)))
        return execute(sql, params)
    store.conn.execute = traced
    try:
        fn(store)
    finally:
        del store.conn.execute
    plans = []
    for sql, params, local in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            execute("BEGIN")
            try:
                for setting in local:
                    execute(setting)
                lines = [r[0] for r in execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)]
            finally:
                execute("ROLLBACK")
            plans.append((" ".join(local) + " " + sql if local else sql, lines))
    return plans


def run_pg(args, path: Path) -> None:
    if not pg.is_url(args.database_url):
        raise SystemExit("--database-url must be a postgresql:// URL")
    info = fill(path, args.articles)
    pg_info = fill_pg(args.database_url, path)
    pg_store, sq_store = Store(args.database_url), Store(path)
    raw = sqlite3.connect(path)
    total = pg_store.count()
    if total != sq_store.count():
        raise SystemExit(f"PostgreSQL holds {total:,} articles, SQLite {sq_store.count():,}")
    size, version, ctype = pg_store.conn.execute(
        "SELECT pg_size_pretty(pg_database_size(current_database())), version(), "
        "(SELECT datctype FROM pg_database WHERE datname = current_database())").fetchone()
    index_sizes = pg_store.conn.execute(
        "SELECT string_agg(relname || ' ' || pg_size_pretty(pg_relation_size(oid)), ', ') FROM pg_class "
        "WHERE relname IN ('idx_articles_trgm', 'idx_articles_grams')").fetchone()[0]
    # Warm both caches: every article read once, as a long-running app would have.
    t0 = time.perf_counter()
    raw.execute("SELECT sum(length(content)), sum(length(topic)) FROM articles").fetchone()
    raw.execute("SELECT count(*) FROM articles_fts_data WHERE length(block) > 0").fetchone()
    pg_store.conn.execute("SELECT sum(length(content)), sum(cardinality(grams)) FROM articles").fetchone()
    warm_s = time.perf_counter() - t0
    load_before = os.getloadavg()
    results = Results()
    today = dt.datetime.now(dt.timezone.utc).date()
    hits = lambda page: page.total_label  # noqa: E731
    per_query = []
    for name, queries in (("search, zh, 3+ chars", ZH_QUERIES), ("search, en, 3+ chars", EN_QUERIES),
                          ("search, 1 CJK char", ONE_CHAR_QUERIES), ("search, 2 CJK chars", TWO_CHAR_QUERIES),
                          ("search, 1–2 Latin chars", SHORT_LATIN_QUERIES),
                          ("search, short CJK + long term", MIXED_QUERIES)):
        calls = [(q, lambda st, q=q: search(st, Filters(query=q))) for q in queries]
        per_query += measure_both(f"{name} ({len(queries)} queries)", calls, pg_store, sq_store, results,
                                  args.reps, SEARCH_TARGET_MS, args.plans, hits)
    calls = [(label, lambda st, f=f: search(st, f)) for label, f in filtered_queries(today)]
    per_query += measure_both(f"search with filters ({len(calls)} combinations)", calls, pg_store, sq_store,
                              results, args.reps, SEARCH_TARGET_MS, args.plans, hits)
    calls = [(q, lambda st, q=q: search(st, Filters(query=q), limit=25, offset=500))
             for q in ("用户体验", "customer experience", "咖啡机")]
    per_query += measure_both("search, page 21 (offset 500)", calls, pg_store, sq_store, results,
                              args.reps, SEARCH_TARGET_MS, args.plans, hits)
    calls = [(c, lambda st, c=c: distinct(st, c)) for c in ("model", "provider")]
    measure_both("distinct model / provider (filter boxes)", calls, pg_store, sq_store, results, args.reps,
                 None, args.plans)
    since = (today - dt.timedelta(days=364)).isoformat()
    for by in ("day", "model", "provider", "type"):
        measure_both(f"usage.by_group({by}), last 365 days", [(by, lambda st, by=by: usage.by_group(
            st, by, since, today.isoformat()))], pg_store, sq_store, results, max(5, args.reps * 3), None,
            args.plans)
    month = usage.month_bounds(today)
    measure_both("usage.totals, this month", [("totals", lambda st: usage.totals(st, *month))], pg_store,
                 sq_store, results, max(5, args.reps * 3), None, args.plans)
    measure_both("usage.articles (500 newest), last 365 days",
                 [("articles", lambda st: usage.articles(st, since, today.isoformat()))], pg_store, sq_store,
                 results, max(5, args.reps * 3), None, args.plans)
    load_after = os.getloadavg()

    print()
    print(f"$ .venv/bin/python scripts/bench_history.py {' '.join(sys.argv[1:])}")
    print(f"articles {total:,} on both databases; PostgreSQL database {size} (LC_CTYPE {ctype}; "
          f"{index_sizes})")
    if pg_info["inserted"]:
        print(f"copy into PostgreSQL: {pg_info['inserted']:,} articles in {pg_info['seconds']:.0f} s "
              "(COPY, grams from Python, GIN indexes built after, VACUUM ANALYZE)")
    else:
        print(f"copy into PostgreSQL: skipped, it already had {pg_info['existing']:,} articles")
    if info["inserted"]:
        print(f"SQLite fill: {info['inserted']:,} articles in {info['seconds']:.0f} s")
    print(f"{version.split(',')[0]} · SQLite {sqlite3.sqlite_version} · Python {platform.python_version()} · "
          f"{os.cpu_count()} CPUs · load average {load_before[0]:.1f} before, {load_after[0]:.1f} after · "
          f"caches warmed in {warm_s:.1f} s · {args.reps} timed runs per search query on each database")
    print()
    print_table(results)
    print()
    print("p50/p95 = PostgreSQL (library call through Store, on loopback); 'raw SQL' columns = SQLite, the "
          "same call on the same articles, alternating; ratio = PostgreSQL p50 / SQLite p50.")
    slow = sorted(per_query, reverse=True)[:10]
    print("slowest PostgreSQL searches (worst of runs, ms · query · hits): " +
          "; ".join(f"{ms:.0f} · {label} · {extra}" for ms, label, extra in slow))
    if args.plans:
        print_plans(results.plans)
    pg_store.close()
    sq_store.close()
    raw.close()


if __name__ == "__main__":
    main()
