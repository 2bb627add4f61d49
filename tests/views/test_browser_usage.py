"""The Usage page in a real browser, in Chinese: `streamlit run app.py` on a scratch
database holding an article and a failed request of this month, Debian's chromium at
1280×800. The reader opens 用量与费用 from the sidebar, sees the metrics laid out
whole (a failed request counted apart), and downloads the CSV: UTF-8 with a BOM (Excel
in Chinese reads it right) and the table's Chinese headings.

Same machinery as tests/views/test_browser_batch.py. A screenshot goes to
test-artifacts/usage-zh.png (git-ignored).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import sys

import pytest

from fake_openai import FakeOpenAI
from serving import GRID_JS
from test_browser import ARTIFACTS, browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import poll, server_env, tab
from writer.storage.store import Store

pytestmark = pytest.mark.browser

BOM = b"\xef\xbb\xbf"
HEADINGS = ["日期", "币种", "文章数", "失败的请求", "输入 tokens", "输出 tokens", "费用",
            "估算篇数", "未定价篇数"]


@pytest.fixture(scope="module")
def usage_server(chromium_path, tmp_path_factory):  # noqa: F811
    """A Chinese UI on a database with this month's article and failed request."""
    tmp = tmp_path_factory.mktemp("browser-usage")
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")[:23] + "Z"
    store = Store(tmp / "writer.db")  # the path streamlit_server gives the app
    try:
        common = {"created_at": now, "language": "zh", "content_type": "blog",
                  "provider": "api.openai.com", "model": "gpt-4o-mini", "currency": "USD",
                  "target_words": 300}
        store.articles.insert({**common, "topic": "咖啡机上市", "content": "正文。" * 50,
                               "words": 150, "status": "completed", "input_tokens": 1200,
                               "output_tokens": 2400, "cost": 0.00162, "usage_source": "reported"})
        store.articles.insert({**common, "topic": "被拒绝的请求", "content": "", "words": 0,
                               "status": "failed", "input_tokens": 0, "output_tokens": 0,
                               "cost": 0.0, "usage_source": "estimated"})
    finally:
        store.close()
    with FakeOpenAI() as fake:  # never asked: no article is written here
        with streamlit_server(tmp, server_env(fake, WRITER_UI_LANGUAGE="zh")) as server:
            yield server


@pytest.fixture
def server(usage_server):
    if usage_server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {usage_server.proc.returncode}):\n{usage_server.log()}",
                    pytrace=False)
    yield usage_server
    state = "running" if usage_server.proc.poll() is None else \
        f"exited with {usage_server.proc.returncode}"
    print(f"--- streamlit output ({usage_server.url}, {state}) ---\n{usage_server.log()}",
          file=sys.stderr)


def test_usage_csv_download_is_chinese_with_a_bom(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    with tab(browser, server.url + "/") as page:
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="用量与费用", exact=True).click()
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="用量与费用")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/usage"))

        metrics = main.get_by_test_id("stMetric")
        expect(metrics).to_have_text([re.compile(r"^文章数\s*1$"), re.compile(r"^失败的请求\s*1"),
                                      re.compile(r"^输入 tokens\s*1,200$"),
                                      re.compile(r"^输出 tokens\s*2,400$"),
                                      re.compile(r"^费用（USD）\s*0\.0016 USD$")])
        # Laid out whole at 1280 px: no figure cut off, none narrower than its text.
        values = main.get_by_test_id("stMetricValue")
        clipped = values.evaluate_all("""els => els.filter(e => [e, ...e.querySelectorAll('*')]
            .some(x => x.scrollWidth > x.clientWidth + 1)).map(e => e.innerText)""")
        assert clipped == [], clipped
        table = main.get_by_test_id("stDataFrame").first  # the grouped table
        expect(table).to_be_visible()
        poll(lambda: table.evaluate(GRID_JS), "the grouped table's cells")
        (shown,) = table.evaluate(GRID_JS)
        assert list(shown) == HEADINGS  # the CSV below has the same headings

        with page.expect_download() as info:
            main.get_by_role("button", name="导出 CSV").click()
        download = info.value
        assert re.fullmatch(r"usage-day-\d{4}-\d{2}-01-\d{4}-\d{2}-\d{2}\.csv",
                            download.suggested_filename), download.suggested_filename
        data = open(download.path(), "rb").read()
        assert data.startswith(BOM), data[:20]
        rows = list(csv.reader(io.StringIO(data[len(BOM):].decode("utf-8"))))
        assert rows[0] == HEADINGS
        (row,) = rows[1:]
        record = dict(zip(HEADINGS, row))
        assert (record["币种"], record["文章数"], record["失败的请求"]) == ("USD", "1", "1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "usage-zh.png"))
