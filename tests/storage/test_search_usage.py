"""Search (Chinese full text, filters, short-query fallback) and usage reports, on both
databases (the `database` fixture: SQLite, then PostgreSQL)."""
import datetime as dt
import html
from zoneinfo import ZoneInfo

import pytest

from test_search_short import insert
from writer.access import Actor
from writer.storage import usage
from writer.storage.prices import PriceTable
from writer.storage.search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    Filters,
    SearchError,
    distinct,
    highlight_html,
    query_terms,
    search,
    snippet_html,
)
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ARTICLES = [
    # created_at, topic, content, language, type, status, provider, model, in, out, cost,
    # currency, source
    ("2026-10-03T09:00:00.000Z", "流式输出为什么重要", "流式输出让读者更快看到第一个字。咖啡也是。", "zh",
     "blog", "completed", "openai", "gpt-4o-mini", 1000, 2000, 0.00135, "USD", "reported"),
    ("2026-11-02T09:00:00.000Z", "Coffee machine launch", "Our espresso machine brews in 30 seconds.",
     "en", "product_description", "completed", "deepseek.com", "deepseek-chat", 500, 800, 0.0034, "CNY",
     "reported"),
    ("2026-11-10T09:00:00.000Z", "春季营销文案", "春天来了，咖啡机八折。用户体验第一。", "zh",
     "marketing_copy", "stopped", "deepseek.com", "deepseek-chat", 400, 300, 0.0017, "CNY", "estimated"),
    ("2026-11-20T09:00:00.000Z", "Local llama notes", "Unpriced model output about STREAMING.", "en",
     "blog", "completed", "localhost:11434", "llama3.1:8b", 100, 200, None, None, "reported"),
]




@pytest.fixture
def store(database):
    store = Store(database)
    keys = ("created_at", "topic", "content", "language", "content_type", "status", "provider",
            "model", "input_tokens", "output_tokens", "cost", "currency", "usage_source")
    for values in ARTICLES:
        insert(store, {**dict(zip(keys, values)), "target_words": 300, "words": 10})
    yield store
    store.close()


def ids(page):
    return [r["id"] for r in page.rows]


def test_chinese_full_text_search_finds_substrings(store):
    assert ids(search(store, Filters(query="流式输出"))) == [1]
    assert ids(search(store, Filters(query="用户体验"))) == [3]
    assert ids(search(store, Filters(query="营销文"))) == [3]  # a topic substring


def test_english_search_is_case_insensitive_and_terms_combine(store):
    assert ids(search(store, Filters(query="streaming"))) == [4]
    assert ids(search(store, Filters(query="espresso machine"))) == [2]
    assert ids(search(store, Filters(query='"machine brews"'))) == [2]
    assert ids(search(store, Filters(query="espresso llama"))) == []


def test_one_and_two_character_queries(store):
    page = search(store, Filters(query="咖啡"))
    assert ids(page) == [3, 1] and not page.uses_fallback  # newest first, the CJK index (m014)
    page = search(store, Filters(query="30"))
    assert ids(page) == [2] and not page.uses_fallback  # digits: the same index (m015)
    page = search(store, Filters(query="s."))
    assert ids(page) == [2] and page.uses_fallback  # punctuation: the substring scan
    assert ids(search(store, Filters(query="茶"))) == []
    assert ids(search(store, Filters(query="春"))) == [3]
    assert ids(search(store, Filters(query="咖啡 用户体验"))) == [3]  # fallback AND trigram


def test_like_wildcards_in_a_query_are_literal(store):
    assert ids(search(store, Filters(query="%"))) == []
    assert ids(search(store, Filters(query="_"))) == []


def test_filters(store):
    assert ids(search(store, Filters(status="stopped"))) == [3]
    assert ids(search(store, Filters(language="en"))) == [4, 2]
    assert ids(search(store, Filters(content_type="blog"))) == [4, 1]
    assert ids(search(store, Filters(model="deepseek-chat", query="咖啡"))) == [3]
    assert ids(search(store, Filters(since="2026-11-01", until="2026-11-10"))) == [3, 2]
    assert ids(search(store, Filters(until="2026-10-31"))) == [1]
    assert distinct(store, "model") == ["deepseek-chat", "gpt-4o-mini", "llama3.1:8b"]


SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8, no daylight saving
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # UTC-8 in November


@pytest.fixture
def late_night(store):
    """Three articles around midnight in Shanghai (ids 5, 6, 7, in time order)."""
    for stamp in ("2026-11-26T15:59:59.999Z",  # 2026-11-26 23:59:59.999 in Shanghai
                  "2026-11-26T16:00:00.000Z",  # 2026-11-27 00:00 in Shanghai
                  "2026-11-26T17:00:00.000Z"):  # 2026-11-27 01:00 in Shanghai
        insert(store, {"created_at": stamp, "topic": "夜间推送文案", "language": "zh",
                               "content": "双十一夜间推送。", "status": "completed"})
    return store


def test_dates_are_the_readers_local_days(late_night):
    store, day = late_night, dt.date(2026, 11, 27)
    assert ids(search(store, Filters(since=day, until=day, tz=SHANGHAI))) == [7, 6]
    assert ids(search(store, Filters(since=day - dt.timedelta(days=1),
                                     until=day - dt.timedelta(days=1), tz=SHANGHAI))) == [5]
    assert ids(search(store, Filters(since=day, until=day))) == []  # a UTC day: nothing yet
    assert ids(search(store, Filters(since="2026-11-26", until="2026-11-26"))) == [7, 6, 5]
    assert ids(search(store, Filters(since="2026-11-27", tz=SHANGHAI))) == [7, 6]  # open ended
    assert ids(search(store, Filters(until="2026-11-26", tz=SHANGHAI))) == [5, 4, 3, 2, 1]
    assert ids(search(store, Filters(since=day, until=day, tz=LOS_ANGELES))) == []
    assert ids(search(store, Filters(since="2026-11-26", until="2026-11-26",
                                     tz=LOS_ANGELES))) == [7, 6, 5]


def test_full_text_search_keeps_the_local_date_bounds(late_night):
    """The FTS rowid bounds (an id range for the date range) use the same local days."""
    store, day = late_night, dt.date(2026, 11, 27)
    assert ids(search(store, Filters(query="夜间推送", since=day, until=day, tz=SHANGHAI))) == [7, 6]
    assert ids(search(store, Filters(query="夜间推送", until="2026-11-26", tz=SHANGHAI))) == [5]
    assert ids(search(store, Filters(query="夜间推送", since=day, tz=SHANGHAI))) == [7, 6]
    assert ids(search(store, Filters(query="夜间推送", since=day, until=day))) == []
    assert ids(search(store, Filters(query="夜间推送", since="2026-11-26",
                                     until="2026-11-26"))) == [7, 6, 5]
    assert ids(search(store, Filters(query="夜间", since=day, tz=SHANGHAI))) == [7, 6]  # fallback


def test_what_the_list_needs_and_what_counts_as_filtering(late_night):
    rows = search(late_night, Filters(tz=SHANGHAI)).rows
    assert {r["language"] for r in rows} == {"zh", "en"}  # for 字 / 词 in the Words column
    assert not Filters(tz=SHANGHAI).narrowed  # the reader's zone alone filters nothing
    assert Filters(status="failed", tz=SHANGHAI).narrowed
    assert Filters(since=dt.date(2026, 11, 27)).narrowed


def test_search_index_follows_updates_and_deletes(store):
    store.update(1, content="完全不同的内容")
    assert ids(search(store, Filters(query="流式输出"))) == [1]  # still in the topic
    assert ids(search(store, Filters(query="完全不同"))) == [1]
    store.delete(1, actor=ADMIN)
    assert ids(search(store, Filters(query="完全不同"))) == []


def test_pagination_and_capped_count(store):
    page = search(store, Filters(), limit=2, offset=0)
    assert ids(page) == [4, 3] and page.total == 4
    assert ids(search(store, Filters(), limit=2, offset=2)) == [2, 1]


def test_highlighting_escapes_html_and_marks_matches():
    assert highlight_html("Stream <b> streaming", ["stream"]) == \
        "<mark>Stream</mark> &#60;b&#62; <mark>stream</mark>ing"
    text = "前言" * 100 + "流式输出很重要" + "后记" * 100
    snippet = snippet_html(text, ["流式输出"])
    assert "<mark>流式输出</mark>" in snippet and snippet.startswith("…") and snippet.endswith("…")
    assert query_terms('a "b c"  d') == ["a", "b c", "d"]


def test_snippets_keep_markdown_as_text():
    """A snippet goes into st.markdown: a topic's link or image syntax stays text."""
    from markdown_it import MarkdownIt

    topic = "[点此重新登录](http://evil.example/login) ![x](http://evil.example/t.png) **b**"
    for snippet in (snippet_html(topic, ["重新"]), highlight_html(topic, []),
                    highlight_html(topic, ["evil"])):
        rendered = MarkdownIt("commonmark").render(snippet)
        assert "<a " not in rendered and "<img" not in rendered and "<strong>" not in rendered
    shown = html.unescape(MarkdownIt("commonmark").render(highlight_html(topic, [])))
    assert topic in shown  # the characters as typed, literally
    assert "<mark>重新</mark>" in snippet_html(topic, ["重新"])


@pytest.mark.parametrize("query", [
    " ".join(f"{chr(0x4e00 + i % 500)}{'x' if i % 2 else ''}" for i in range(1200)),
    " ".join(f"term{i}" for i in range(1200)),
    "a" * (MAX_QUERY_CHARS + 1),
])
def test_a_huge_query_is_refused_with_a_message_not_an_sql_error(store, query):
    """1,200 short terms made SQLite raise "Expression tree is too large"."""
    with pytest.raises(SearchError) as refused:
        search(store, Filters(query=query))
    assert refused.value.key in ("user_errors.search_terms", "user_errors.search_length")
    assert refused.value.values["limit"] in (MAX_QUERY_TERMS, MAX_QUERY_CHARS)


def test_the_most_terms_allowed_still_search(store):
    query = " ".join(["咖"] * (MAX_QUERY_TERMS - 1) + ["streaming"])
    assert len(query_terms(query)) == MAX_QUERY_TERMS
    assert ids(search(store, Filters(query=query))) == []  # every term must match
    assert ids(search(store, Filters(query=" ".join(["咖"] * MAX_QUERY_TERMS)))) == [3, 1]


def test_usage_sums_per_currency_and_counts_unpriced(store):
    totals = usage.totals(store)
    assert totals["articles"] == 4 and totals["unpriced"] == 1 and totals["estimated"] == 1
    assert totals["cost"] == {"USD": pytest.approx(0.00135), "CNY": pytest.approx(0.0051)}
    assert totals["input_tokens"] == 2000 and totals["output_tokens"] == 3300


def test_usage_groupings_and_period(store):
    by_model = {(r["group"], r["currency"]): r for r in usage.by_group(store, "model")}
    assert by_model[("deepseek-chat", "CNY")]["articles"] == 2
    assert by_model[("llama3.1:8b", None)]["cost"] is None
    assert by_model[("llama3.1:8b", None)]["unpriced_articles"] == 1
    days = usage.by_group(store, "day", "2026-11-01", "2026-11-30")
    assert [r["group"] for r in days] == ["2026-11-02", "2026-11-10", "2026-11-20"]
    assert {r["group"] for r in usage.by_group(store, "type")} == {
        "blog", "marketing_copy", "product_description"}
    with pytest.raises(ValueError):
        usage.by_group(store, "week")
    csv_text = usage.to_csv(usage.by_group(store, "provider"))
    assert csv_text.splitlines()[0].startswith("group,currency,articles")


def test_budget_levels_and_burn_down(store):
    day = dt.date(2026, 11, 20)
    assert usage.budget_status(store, "CNY", day) is None
    store.set_budget("CNY", 0.006, actor=ADMIN)  # spent 0.0051 → 85 %
    status = usage.budget_status(store, "CNY", day)
    assert status["level"] == "warn" and status["spent"] == pytest.approx(0.0051)
    store.set_budget("CNY", 0.005, actor=ADMIN)
    assert usage.budget_status(store, "CNY", day)["level"] == "over"
    store.set_budget("CNY", 1, actor=ADMIN)
    assert usage.budget_status(store, "CNY", day)["level"] == "ok"
    burn = usage.burn_down(store, "CNY", day)
    assert len(burn) == 30 and burn[1]["spent"] == pytest.approx(0.0034)
    assert burn[19]["spent"] == pytest.approx(0.0051) and burn[20]["spent"] is None
    assert burn[-1]["even_pace"] == pytest.approx(1)
    store.set_budget("CNY", None, actor=ADMIN)
    assert store.budgets() == {}


def test_edited_prices_win_but_never_rewrite_history(store):
    store.set_price(provider="*", model="llama3.1:8b", input_per_1m=1, output_per_1m=2,
                    currency="USD", actor=ADMIN)
    table = PriceTable.load().with_edits(store.price_edits())
    assert table.lookup("llama3.1:8b").source == "edited"
    recalculated = {r["id"]: r for r in usage.recalculate(store, table)}
    assert recalculated[4]["charged"] is None
    assert recalculated[4]["today"] == pytest.approx((100 * 1 + 200 * 2) / 1e6)
    assert store.get(4)["cost"] is None  # the saved cost is untouched
    store.set_price(provider="deepseek.com", model="deepseek-chat", input_per_1m=9,
                    output_per_1m=9, currency="CNY", actor=ADMIN)
    table = PriceTable.load().with_edits(store.price_edits())
    assert table.lookup("deepseek-chat", "deepseek.com").input_per_1m == 9
    assert table.lookup("deepseek-chat", "other").input_per_1m == 2.0  # default for others
    with pytest.raises(ValueError):
        store.set_price(provider="*", model="", input_per_1m=1, output_per_1m=1, currency="USD", actor=ADMIN)


def test_full_text_search_combined_with_filters_and_dates(store):
    assert ids(search(store, Filters(query="咖啡机", status="stopped"))) == [3]
    assert ids(search(store, Filters(query="咖啡机", status="completed"))) == []
    assert ids(search(store, Filters(query="流式输出", since="2026-10-01", until="2026-10-31"))) == [1]
    assert ids(search(store, Filters(query="流式输出", since="2026-11-01"))) == []
    assert ids(search(store, Filters(query="machine", until="2026-11-05"))) == [2]


def test_counts_are_exact_when_cheap_and_open_ended_otherwise(store):
    page = search(store, Filters(query="咖啡", status="completed"), limit=1)  # filtered: no count
    assert ids(page) == [1] and not page.has_more and page.total == 1
    page = search(store, Filters(query="咖啡", language="zh"), limit=1)
    assert ids(page) == [3] and page.has_more and page.total is None
    assert page.total_label == "1+"
    page = search(store, Filters(query="咖啡"), limit=1)  # the CJK index only: exact count
    assert ids(page) == [3] and page.has_more and page.total == 2
    insert(store, {"created_at": "2026-11-21T00:00:00.000Z", "topic": "More streaming",
                           "content": "streaming again", "status": "completed"})
    page = search(store, Filters(query="streaming"), limit=1)  # full text only: exact count
    assert ids(page) == [5] and page.has_more and page.total == 2 and page.total_label == "2"
    last = search(store, Filters(query="咖啡"), limit=1, offset=1)
    assert ids(last) == [1] and not last.has_more and last.total == 2


def test_a_deleted_article_leaves_history_and_search_but_keeps_its_spend(store):
    day = dt.date(2026, 11, 20)
    store.set_budget("CNY", 0.006, actor=ADMIN)
    before = usage.totals(store)
    by_model = usage.by_group(store, "model")
    status = usage.budget_status(store, "CNY", day)
    burn = usage.burn_down(store, "CNY", day)
    month = usage.month_spend(store, day)

    assert store.delete(3, actor=ADMIN)  # 春季营销文案: CNY 0.0017, stopped, the only "春" article
    assert store.get(3) is None and store.get(3, include_deleted=True)["content"] == ""
    assert 3 not in [r["id"] for r in store.recent()] and store.count() == 3
    assert ids(search(store, Filters(query="营销文"))) == []  # its topic, via full text
    assert ids(search(store, Filters(query="春"))) == []  # via the substring fallback
    assert ids(search(store, Filters(query="咖啡"))) == [1]
    assert ids(search(store, Filters(status="stopped"))) == []
    assert ids(search(store, Filters())) == [4, 2, 1] and search(store, Filters()).total == 3
    page = search(store, Filters(query="营销文 咖啡"), limit=1)
    assert ids(page) == [] and page.total == 0
    assert "stopped" not in distinct(store, "status")
    assert distinct(store, "model") == ["deepseek-chat", "gpt-4o-mini", "llama3.1:8b"]

    # Usage and budgets: exactly as before the delete.
    assert usage.totals(store) == before
    assert usage.by_group(store, "model") == by_model
    assert usage.budget_status(store, "CNY", day) == status and status["level"] == "warn"
    assert usage.burn_down(store, "CNY", day) == burn
    assert usage.month_spend(store, day) == month
    listed = {r["id"]: r for r in usage.articles(store)}
    assert listed[3]["deleted"] == 1 and listed[3]["cost"] == pytest.approx(0.0017)
    assert {r["deleted"] for i, r in listed.items() if i != 3} == {0}
    assert "deleted" in usage.to_csv(usage.articles(store)).splitlines()[0]


def test_full_text_count_skips_deleted_articles(store):
    for n in range(3):
        insert(store, {"created_at": f"2026-11-2{n}T00:00:00.000Z", "topic": f"Streaming {n}",
                               "content": "again", "status": "completed"})
    assert search(store, Filters(query="streaming"), limit=1).total == 4
    store.delete(5, actor=ADMIN)
    store.delete(4, actor=ADMIN)
    page = search(store, Filters(query="streaming"), limit=1)
    assert ids(page) == [7] and page.has_more and page.total == 2


# ---- usage: local days, failed requests, the CSV (issue 13) ----------------------------

def _usage_row(store, created_at, **fields):
    row = {"created_at": created_at, "topic": "t", "content": "text", "language": "en",
           "content_type": "blog", "status": "completed", "provider": "openai",
           "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 20, "cost": 0.01,
           "currency": "USD", "usage_source": "reported", "target_words": 300, "words": 10,
           **fields}
    insert(store, row)


def test_usage_days_are_local_days_exactly_across_daylight_saving(database):
    from writer.io.timezones import zone

    store = Store(database)
    new_york = zone("America/New_York")  # EDT (UTC-4) until 2026-11-01 02:00, then EST (UTC-5)
    _usage_row(store, "2026-11-01T03:30:00.000Z")  # 10-31 23:30 EDT
    _usage_row(store, "2026-11-01T04:30:00.000Z")  # 11-01 00:30 EDT
    _usage_row(store, "2026-11-02T04:30:00.000Z")  # 11-01 23:30 EST (a fixed -4 says 11-02)
    _usage_row(store, "2026-11-02T05:30:00.000Z")  # 11-02 00:30 EST
    days = usage.by_group(store, "day", "2026-10-31", "2026-11-02", tz=new_york)
    assert [(r["group"], r["articles"]) for r in days] == [
        ("2026-10-31", 1), ("2026-11-01", 2), ("2026-11-02", 1)]
    # The period is local dates too, and an open period groups the same way.
    assert [r["articles"] for r in usage.by_group(store, "day", "2026-11-01", "2026-11-01",
                                                   tz=new_york)] == [2]
    assert usage.by_group(store, "day", tz=new_york) == days
    # UTC stays the default (the CLI): UTC dates.
    assert [(r["group"], r["articles"]) for r in usage.by_group(store, "day")] == [
        ("2026-11-01", 2), ("2026-11-02", 2)]
    assert usage.totals(store, "2026-11-01", "2026-11-01")["articles"] == 2
    assert usage.totals(store, dt.date(2026, 11, 1), dt.date(2026, 11, 1), tz=new_york)[
        "articles"] == 2


def test_usage_month_and_burn_down_follow_the_local_month(database):
    from writer.io.timezones import zone

    store = Store(database)
    shanghai = zone("Asia/Shanghai")
    _usage_row(store, "2026-11-30T17:00:00.000Z", cost=1.0)  # 12-01 01:00 in Shanghai
    store.set_budget("USD", 10, actor=ADMIN)
    december = dt.date(2026, 12, 1)
    assert usage.month_spend(store, december) == {}
    assert usage.month_spend(store, december, tz=shanghai) == {"USD": 1.0}
    assert usage.budget_status(store, "USD", december, tz=shanghai)["spent"] == 1.0
    assert usage.burn_down(store, "USD", december, tz=shanghai)[0]["spent"] == 1.0


def test_failed_requests_are_not_articles_but_their_spend_counts(database):
    store = Store(database)
    _usage_row(store, "2026-11-02T09:00:00.000Z")
    _usage_row(store, "2026-11-02T10:00:00.000Z", status="failed", content="", words=0,
               input_tokens=5, output_tokens=0, cost=0.002, usage_source="estimated")
    _usage_row(store, "2026-11-02T11:00:00.000Z", status="failed", content="", words=0,
               input_tokens=0, output_tokens=0, cost=None, currency=None,
               usage_source="estimated", model="mystery")
    _usage_row(store, "2026-11-02T12:00:00.000Z", status="failed", content="half of it",
               words=3)  # failed mid-way with text: an article
    totals = usage.totals(store)
    assert (totals["articles"], totals["failed_requests"]) == (2, 2)
    assert totals["input_tokens"] == 10 + 5 + 0 + 10  # billed tokens still count
    assert totals["cost"] == {"USD": pytest.approx(0.022)}
    assert totals["estimated"] == 0 and totals["unpriced"] == 0
    by_model = {r["group"]: r for r in usage.by_group(store, "model")}
    assert (by_model["gpt-4o-mini"]["articles"], by_model["gpt-4o-mini"]["failed_requests"]) == (2, 1)
    assert (by_model["mystery"]["articles"], by_model["mystery"]["failed_requests"]) == (0, 1)
    assert by_model["mystery"]["unpriced_articles"] == 0
    listed = {r["id"]: r["failed_request"] for r in usage.articles(store)}
    assert listed == {1: 0, 2: 1, 3: 1, 4: 0}
    assert usage.articles(store, unpriced_only=True) == []


def test_usage_csv_code_names_or_headings_labels_bom_and_no_formulas(store):
    rows = usage.by_group(store, "type")
    assert usage.to_csv(rows).splitlines()[0] == (
        "group,currency,articles,failed_requests,input_tokens,output_tokens,cost,"
        "estimated_articles,unpriced_articles")
    headers = {"group": "内容类型", "articles": "文章数", "currency": "币种"}
    values = {"group": {"blog": "博客"}, "currency": {None: "未定价"}}
    text = usage.to_csv(rows, headers, values, bom=True)
    assert text.startswith("\ufeff内容类型,文章数,币种\r\n")
    assert "博客,1,未定价\r\n" in text and "博客,1,USD\r\n" in text
    assert usage.to_csv([], headers, bom=True) == "\ufeff内容类型,文章数,币种\r\n"
    guarded = usage.to_csv([{"a": "=1+1", "b": "+x", "c": "-2", "d": "@f", "e": -3, "f": "a=b"}])
    assert guarded.splitlines()[1] == "'=1+1,'+x,'-2,'@f,-3,a=b"  # numbers stay numbers


def test_usage_counts_a_row_with_no_usage_yet(database):
    """A row being written has no usage_source nor cost yet (NULL): an article, not an
    unpriced one, and never a None sum."""
    store = Store(database)
    _usage_row(store, "2026-11-02T09:00:00.000Z", status="streaming", usage_source=None,
               input_tokens=None, output_tokens=None, cost=None, currency=None)
    totals = usage.totals(store)
    assert (totals["articles"], totals["estimated"], totals["unpriced"]) == (1, 0, 0)
    assert usage.articles(store, unpriced_only=True) == []
    assert (totals["input_tokens"], totals["output_tokens"]) == (0, 0)


def test_usage_days_in_fixed_offsets_and_quarter_hour_zones(database):
    """A fixed-offset tzinfo and Kathmandu (UTC+5:45) group by their own local day on
    both databases (PostgreSQL: AT TIME ZONE the name, or the offset as an interval)."""
    from writer.io.timezones import zone

    store = Store(database)
    for stamp in ("2026-11-01T03:30:00.000Z", "2026-11-01T18:10:00.000Z",
                  "2026-11-01T18:20:00.000Z", "2026-11-02T05:30:00.000Z"):
        _usage_row(store, stamp)
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))  # 18:29Z is 23:59 there
    assert [(r["group"], r["articles"]) for r in usage.by_group(store, "day", tz=india)] == [
        ("2026-11-01", 3), ("2026-11-02", 1)]
    assert [(r["group"], r["articles"]) for r in usage.by_group(
        store, "day", tz=dt.timezone(dt.timedelta(hours=-8)))] == [("2026-10-31", 1), ("2026-11-01", 3)]
    kathmandu = zone("Asia/Kathmandu")  # 18:10Z is 23:55, 18:20Z is 00:05 the next day
    assert [(r["group"], r["articles"]) for r in usage.by_group(
        store, "day", "2026-11-01", "2026-11-02", tz=kathmandu)] == [("2026-11-01", 2), ("2026-11-02", 2)]
    store.close()
