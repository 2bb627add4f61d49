"""The Chinese UI's details in a real browser (`streamlit run app.py`, Debian's
chromium, the loopback `FakeOpenAI`), at 1280×800 as the marketing team's laptops:

- an out-of-range target length is refused next to the field in the UI language,
  and nothing is sent or saved (the browser's own English tooltip never decides);
- a 401 shows only the error and what to do: no progress bar, figures, download
  or "partial" wording; the provider's English detail is one collapsed line;
- the UI language survives a reload (the address's ?lang=, and a cookie for a
  bookmark without it);
- the first request on a freshly started server to /history opens the real app
  (its navigation and sidebar), not a file of the views folder run on its own;
- the Copy button puts the article on the clipboard as HTML and as plain text.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest

from fake_openai import FakeOpenAI, Reply
from test_browser import browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import poll, server_env, tab

pytestmark = pytest.mark.browser

NAV_ZH = ["写作", "批量写作", "品牌规范", "历史记录", "用量与费用", "模型服务评测", "设置"]
ARTICLE = ("# 新品咖啡机上市\n\n清晨的**第一杯咖啡**，只需三十秒。\n\n"
           "- 一键萃取\n- 静音研磨\n\n现在下单，立享早鸟价。\n")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def zh_server(chromium_path, fake, tmp_path_factory):  # noqa: F811
    """The app in its default UI language (Chinese) against the fake provider."""
    tmp = tmp_path_factory.mktemp("browser-ui")
    with streamlit_server(tmp, server_env(fake, WRITER_UI_LANGUAGE="zh")) as server:
        yield server


def zh_tab(browser, url: str, **context_options):  # noqa: F811
    """A fresh session of a Chinese browser at 1280×800."""
    return tab(browser, url, locale="zh-CN", **context_options)


def article_count(server) -> int:
    if not server.db_path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(server.db_path)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        except sqlite3.OperationalError:  # no table yet
            return 0


def length_field(page):
    return page.get_by_role("spinbutton", name=re.compile(r"^目标长度"))


def test_out_of_range_length_is_refused_in_chinese_and_nothing_is_written(
        browser, zh_server, fake):  # noqa: F811
    from playwright.sync_api import expect

    before, requests_before = article_count(zh_server), len(fake.requests)
    with zh_tab(browser, zh_server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        page.get_by_role("textbox", name="主题", exact=True).fill("春季新品咖啡机")
        for bad in ("10", "99999999"):
            length_field(page).fill(bad)
            length_field(page).press("Tab")
            refusal = main.get_by_test_id("stAlertContentError").get_by_role("paragraph")
            expect(refusal).to_have_text("目标长度须在 50 到 20000 之间。")
            page.get_by_role("button", name="生成", exact=True).click()
            # still one message, in Chinese, next to the field; nothing started
            expect(refusal).to_have_count(1)
            expect(refusal).to_have_text("目标长度须在 50 到 20000 之间。")
            box = refusal.bounding_box()
            field = length_field(page).bounding_box()
            assert 0 <= box["y"] - (field["y"] + field["height"]) < 80, (box, field)
        expect(main.get_by_test_id("stProgress")).to_have_count(0)
        assert article_count(zh_server) == before and len(fake.requests) == requests_before
        # the stale message goes away once the value is right
        length_field(page).fill("300")
        length_field(page).press("Tab")
        expect(main.get_by_test_id("stAlertContentError")).to_have_count(0)


def test_a_401_shows_only_the_error(browser, zh_server, fake):  # noqa: F811
    from playwright.sync_api import expect

    fake.queue(Reply(status=401, error_message="Incorrect API key provided: sk-test"))
    with zh_tab(browser, zh_server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        page.get_by_role("textbox", name="主题", exact=True).fill("密钥错误")
        length_field(page).fill("300")
        page.get_by_role("button", name="生成", exact=True).click()
        error = main.get_by_test_id("stAlertContentError").get_by_role("paragraph")
        expect(error).to_have_text(
            "请求失败，没有写出任何内容。API Key 被拒绝：请检查 .env 中的 OPENAI_API_KEY")
        # the provider's English detail: one collapsed line under it
        details = main.get_by_test_id("stExpander").filter(has_text="详情")
        expect(details).to_have_count(1)
        expect(details.get_by_text("HTTP 401")).not_to_be_visible()
        details.get_by_text("详情").click()
        expect(details.get_by_text(re.compile("HTTP 401"))).to_be_visible()
        # nothing that looks like an article
        for test_id in ("stProgress", "stDownloadButton", "stMetric"):
            expect(main.get_by_test_id(test_id)).to_have_count(0)
        text = main.inner_text()
        assert "部分" not in text and "已保存为" not in text and "Markdown" not in text, text
        assert "复制全文" not in text


def test_the_ui_language_survives_a_reload(browser, zh_server):  # noqa: F811
    from playwright.sync_api import expect

    with zh_tab(browser, zh_server.url + "/") as page:
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_role("link")).to_have_text([re.compile(f"{n}$") for n in NAV_ZH])
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stSelectbox").filter(has_text="UI / 界面").click()
        page.get_by_role("option", name="English").click()
        expect(page.get_by_role("heading", name="Write", exact=True)).to_be_visible()
        expect(page).to_have_url(re.compile(r"[?&]lang=en"))
        poll(lambda: any(c["name"] == "writer_ui_language" and c["value"] == "en"
                         for c in page.context.cookies()), "the language cookie")
        page.reload()
        expect(page.get_by_role("heading", name="Write", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="History", exact=True)).to_be_visible()
        # another page of the app, by its link: still English
        nav.get_by_role("link", name="History", exact=True).click()
        expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
        # a bookmark without ?lang= (a new tab of the same browser): the cookie
        other = page.context.new_page()
        other.goto(zh_server.url + "/usage")
        expect(other.get_by_test_id("stSidebarNav").get_by_role(
            "link", name="Usage & cost", exact=True)).to_be_visible()
        other.close()


def test_a_first_request_to_a_page_url_on_a_fresh_server_opens_the_app(
        browser, fake, tmp_path):  # noqa: F811
    """Streamlit runs a folder called pages/ next to app.py as a list of pages until
    app.py's first run ends: /history on a fresh server ran that file alone, the
    sidebar listing app, common, … The views live in views/ for that reason."""
    from playwright.sync_api import expect

    with streamlit_server(tmp_path, server_env(fake, WRITER_UI_LANGUAGE="zh")) as server:
        with zh_tab(browser, server.url + "/history") as page:
            nav = page.get_by_test_id("stSidebarNav")
            expect(page.get_by_role("heading", name="历史记录", exact=True)).to_be_visible()
            expect(nav.get_by_role("link")).to_have_text([re.compile(f"{n}$") for n in NAV_ZH])
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_test_id("stSelectbox").filter(has_text="UI / 界面")).to_be_visible()
            for stray in ("app", "common"):
                expect(nav.get_by_role("link", name=stray, exact=True)).to_have_count(0)


# An address such as http://10.0.0.5:8501 is not a secure context: the browser has no
# async clipboard API there, and the button falls back to a copy event.
NO_ASYNC_CLIPBOARD = "Object.defineProperty(window, 'ClipboardItem', {value: undefined});"


@pytest.mark.parametrize("clipboard", ["async API", "copy event (plain-http address)"])
def test_copy_puts_rich_text_and_plain_text_on_the_clipboard(browser, zh_server, fake,  # noqa: F811
                                                             clipboard):
    from playwright.sync_api import expect

    fake.queue(Reply(text=ARTICLE, chunk_chars=12))
    with zh_tab(browser, zh_server.url + "/",
                permissions=["clipboard-read", "clipboard-write"]) as page:
        if clipboard != "async API":
            page.add_init_script(NO_ASYNC_CLIPBOARD)
            page.reload()
            assert page.evaluate("() => window.ClipboardItem === undefined")
        main = page.get_by_test_id("stMain")
        page.get_by_role("textbox", name="主题", exact=True).fill("新品咖啡机")
        length_field(page).fill("100")
        page.get_by_test_id("stCheckbox").filter(has_text="控制篇幅").locator("label").click()
        page.get_by_role("button", name="生成", exact=True).click()
        expect(main.get_by_test_id("stAlertContentSuccess")).to_contain_text("完成")
        for name in ("Word (.docx)", "HTML"):  # the downloads are on the Write page too
            expect(main.get_by_role("button", name=name, exact=True)).to_be_visible()
        main.get_by_role("button", name="复制全文").click()
        expect(main.locator(".writer-copy [role=status]")).to_contain_text("已复制")
        clipboard = page.evaluate("""async () => {
            const [item] = await navigator.clipboard.read();  // reading needs no ClipboardItem
            const read = async (type) => item.types.includes(type)
                ? await (await item.getType(type)).text() : null;
            return {html: await read("text/html"), text: await read("text/plain")};
        }""")
    assert "<h1>新品咖啡机上市</h1>" in clipboard["html"]
    assert "<strong>第一杯咖啡</strong>" in clipboard["html"] and "<li>一键萃取</li>" in clipboard["html"]
    assert clipboard["text"].startswith("新品咖啡机上市\n\n清晨的第一杯咖啡")
    assert "#" not in clipboard["text"] and "**" not in clipboard["text"]
