"""History in a real browser, as a reader in Shanghai sees it at 1280×800.

`streamlit run app.py` against a scratch database with articles whose UTC times are
known, opened by Debian's chromium with `timezone_id="Asia/Shanghai"` (the app takes
the zone from the browser, `st.context.timezone`): the list and the opened article
show Shanghai times (17:30Z is 01:30 the next day), the date filter means Shanghai
days, every column of the list — cost included — fits in the window (the sidebar
takes ~300 px of it), lengths carry the article's unit, and a request the provider
refused is listed as such and, opened, shows only what went wrong. Then the same in
the Chinese UI, and a link to one batch's articles (the Batch page's) opens the
folded "More filters" with that batch set.

Same machinery as tests/views/test_browser_jobs.py (`streamlit_server`, `server_env`,
`poll`), with a server of this module's own. On a failure a screenshot goes to
test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import contextlib
import re
import sys

import pytest

from fake_openai import FakeOpenAI
from serving import GRID_JS
from test_browser import browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import VIEWPORT, poll, server_env, tab
from writer.storage.store import Store

pytestmark = pytest.mark.browser

ZONE = "Asia/Shanghai"

# In time order (ids rise with created_at). Local times are Shanghai's (UTC+8).
ARTICLES = [
    dict(created_at="2026-11-20T02:10:00.000Z", topic="Launching our spring espresso machine",
         language="en", content_type="blog", status="completed", words=812, target_words=800,
         content="# Spring espresso\n\nMornings are short.", cost=0.0123, currency="USD",
         provider="openai", model="gpt-4o-mini"),
    dict(created_at="2026-11-25T12:00:00.000Z", topic="请求被拒绝的文章", language="zh",
         content_type="blog", status="failed", words=0, target_words=800, content="",
         error="HTTP 401: invalid api key", error_kind="auth", provider="deepseek.com",
         model="deepseek-chat"),
    dict(created_at="2026-11-26T15:59:00.000Z", topic="双十一咖啡节活动预告", language="zh",
         content_type="social_post", status="stopped", words=212, target_words=300,
         content="双十一咖啡节来了。", cost=0.0021, currency="CNY", provider="deepseek.com",
         model="deepseek-chat"),  # 2026-11-26 23:59 in Shanghai
    dict(created_at="2026-11-26T17:30:00.000Z", topic="春季新品咖啡机上市", language="zh",
         content_type="marketing_copy", status="completed", words=412, target_words=800,
         content="# 春季新品\n\n早上多睡十分钟。", cost=0.0034, currency="CNY",
         provider="deepseek.com", model="deepseek-chat"),  # 2026-11-27 01:30 in Shanghai
]
ENGLISH, REFUSED, LATE, NEWEST = 1, 2, 3, 4  # their ids


@pytest.fixture(scope="module")
def history_server(chromium_path, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("browser-history")
    store = Store(tmp / "writer.db")  # the server's database (streamlit_server's WRITER_DB)
    try:
        store.db["batches"].insert({"created_at": "2026-11-26T17:00:00.000Z", "status": "done",
                                    "file_name": "咖啡选题.csv", "settings": "{}",
                                    "columns": "[]", "total_rows": 1, "valid_rows": 1,
                                    "completed_rows": 1, "failed_rows": 0})  # batch #1
        for row in ARTICLES:
            store.articles.insert({"style": "professional", "keywords": "[]", "audience": "",
                                   "updated_at": row["created_at"], **row})
        store.articles.update(NEWEST, {"batch_id": 1, "batch_row": 1})
    finally:
        store.close()
    with FakeOpenAI() as fake:
        with streamlit_server(tmp, server_env(fake)) as server:
            yield server


@pytest.fixture
def server(history_server):
    if history_server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {history_server.proc.returncode}):\n"
                    f"{history_server.log()}", pytrace=False)
    yield history_server
    print(f"--- streamlit output ({history_server.url}) ---\n{history_server.log()}",
          file=sys.stderr)


@contextlib.contextmanager
def shanghai_tab(browser, url: str):  # noqa: F811
    """A fresh session in a browser whose clock is Shanghai's, at 1280×800."""
    with tab(browser, url, timezone_id=ZONE) as page:
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == ZONE
        yield page


HEADERS_JS = """(element) => [...element.querySelectorAll('table[role="grid"] thead th')]
    .map(th => th.innerText.trim())"""


def grid(frame) -> dict[int, dict]:
    """The list's rows (glide's accessible table) by article id."""
    rows = frame.evaluate(GRID_JS) or []
    return {int(r["ID"] if "ID" in r else r["编号"]): r for r in rows if r}


def listed(frame, ids: set[int], what: str) -> dict[int, dict]:
    poll(lambda: set(grid(frame)) == ids, what)
    return grid(frame)


def assert_every_column_fits(page, frame, headers: list[str]) -> None:
    """The list's header is `headers` and it is drawn whole inside the window: the grid
    ends within the viewport and does not scroll sideways (its cells are a canvas, so
    "no column past the right edge" is "nothing to scroll to")."""
    assert frame.evaluate(HEADERS_JS) == headers
    box = frame.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], box
    scroll = frame.evaluate("""(e) => { const s = e.querySelector('.dvn-scroller');
        return s && {scroll: s.scrollWidth, client: s.clientWidth}; }""")
    assert scroll and scroll["scroll"] <= scroll["client"], scroll


def test_times_dates_layout_and_units_for_a_reader_in_shanghai(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    with shanghai_tab(browser, server.url + "/history") as page:
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="History")).to_be_visible()
        table = main.get_by_test_id("stDataFrame")
        rows = listed(table, {1, 2, 3, 4}, "the four articles")
        assert {i: r["Created"] for i, r in rows.items()} == {
            ENGLISH: "2026-11-20 10:10", REFUSED: "2026-11-25 20:00",
            LATE: "2026-11-26 23:59", NEWEST: "2026-11-27 01:30"}
        assert rows[NEWEST]["Words"] == "412 / 800 characters"  # a Chinese article
        assert rows[ENGLISH]["Words"] == "812 / 800 words"
        assert (rows[REFUSED]["Status"], rows[REFUSED]["Words"], rows[REFUSED]["Cost"]) == (
            "failed request", "–", "–")
        assert rows[NEWEST]["Cost"] == "0.0034 CNY"
        assert_every_column_fits(page, table, ["ID", "Created", "Topic", "Status", "Words",
                                               "Cost", "Type"])
        expect(main.get_by_text("(UTC)")).to_have_count(0)

        # The newest article is open: its caption has the same local time, no "UTC".
        caption = main.get_by_test_id("stCaptionContainer").filter(has_text="Marketing copy")
        expect(caption).to_contain_text("2026-11-27 01:30")
        expect(caption).not_to_contain_text("UTC")

        # A Shanghai day: 2026-11-27 holds only the article of 17:30Z the day before.
        for end in ("start", "end"):  # typed into the year, month and day fields
            main.get_by_role("spinbutton", name=f"year, Dates {end} date").click()
            page.keyboard.type("20261127")
        main.get_by_role("heading", name="History").click()  # leaving the field sets it
        listed(table, {NEWEST}, "only the article of 2026-11-27 in Shanghai")
        expect(main.get_by_text("Articles: 1", exact=True)).to_be_visible()


def test_the_chinese_list_fits_and_counts_characters_and_words(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    with shanghai_tab(browser, server.url + "/history") as page:
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="History")).to_be_visible()
        page.get_by_test_id("stSidebar").get_by_role("combobox", name="UI / 界面").click()
        page.get_by_role("option", name="中文", exact=True).click()
        expect(main.get_by_role("heading", name="历史记录")).to_be_visible()
        table = main.get_by_test_id("stDataFrame")
        poll(lambda: "编号" in table.evaluate(HEADERS_JS), "the list in Chinese")
        rows = listed(table, {1, 2, 3, 4}, "the four articles")
        assert rows[NEWEST]["字数"] == "412 / 800 字" and rows[NEWEST]["时间"] == "2026-11-27 01:30"
        assert rows[ENGLISH]["字数"] == "812 / 800 词"
        assert rows[REFUSED]["状态"] == "请求失败"
        assert_every_column_fits(page, table, ["编号", "时间", "主题", "状态", "字数", "费用",
                                               "类型"])
        # Every filter box speaks Chinese; the less-used ones are folded away.
        expect(main.get_by_text("更多筛选（模型、模型服务、批量任务、品牌规范）")).to_be_visible()
        expect(main.get_by_text("Choose an option")).to_have_count(0)
        caption = main.get_by_test_id("stCaptionContainer").filter(has_text="营销文案")
        expect(caption).to_contain_text("2026-11-27 01:30")


def test_a_refused_request_shows_only_what_went_wrong(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    with shanghai_tab(browser, f"{server.url}/history?id={REFUSED}") as page:
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="请求被拒绝的文章")).to_be_visible()
        expect(main.get_by_test_id("stAlertContentError")).to_contain_text("OPENAI_API_KEY")
        expect(main.get_by_text("Once the problem above is fixed")).to_be_visible()
        expect(main.get_by_role("button", name="Write again with these settings")).to_be_visible()
        expect(main.get_by_role("button", name="Delete")).to_be_visible()
        expect(main.get_by_role("tab")).to_have_count(0)
        expect(main.get_by_test_id("stDownloadButton")).to_have_count(0)
        expect(main.get_by_role("button", name=re.compile("^Continue"))).to_have_count(0)
        caption = main.get_by_test_id("stCaptionContainer").filter(has_text="Blog article")
        expect(caption).to_contain_text("2026-11-25 20:00")


def test_a_batch_link_opens_the_more_filters_with_the_batch_set(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    with shanghai_tab(browser, f"{server.url}/history?batch=1") as page:
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("More filters (1 set)")).to_be_visible()
        batch = main.get_by_role("combobox", name="Batch")
        expect(batch).to_be_visible()
        expect(batch).to_have_value("#1 · 咖啡选题.csv")
        listed(main.get_by_test_id("stDataFrame"), {NEWEST}, "only the batch's article")
