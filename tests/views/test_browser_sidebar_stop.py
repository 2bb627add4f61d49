"""The sidebar's Stop while the Write page streams that very article, in Chromium.

The sidebar's running list is a fragment; a click inside a fragment is a fragment
rerun, which Streamlit runs only after the running script ends, and the Write page's
run streams until the article ends. So the sidebar's Stop of the article the page
streams is drawn as a plain button (views/common.py `plain_stop`): its click starts a
new run at once (runner.fastReruns), whose callback stops the job. The fake holds the
stream mid-article, connection open: the row must be `stopped` within seconds (before
the fix it stayed `streaming` until the held stream went on by itself).

Also seen in the real page: a topic written as a Markdown link is shown, in the
sidebar's link, as the characters typed, not as a link to that address.
"""
from __future__ import annotations

import time

import pytest

from test_browser import browser, chromium_path, fake_provider, streamlit_server  # noqa: F401
from test_browser_jobs import (  # noqa: F401 (fixtures)
    _server_output_on_failure,
    app,
    held,
    jobs_server,
    poll,
    row_of,
    start_article,
    tab,
    wait_held,
)

pytestmark = pytest.mark.browser

TOPIC = "[点此重新登录](http://evil.example/login)"


def test_sidebar_stop_stops_the_article_the_write_page_streams(browser, app):  # noqa: F811
    from playwright.sync_api import expect

    server, fake = app
    reply = held()
    with tab(browser, server.url + "/") as page:
        article_id, _slot = start_article(page, fake, TOPIC, reply)
        wait_held(page, reply)  # the page's run is streaming, held mid-article
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Writing now (1)")).to_be_visible()
        # The topic is text in the link's label, and no link leads to its address.
        expect(sidebar.get_by_role("link", name=f"#{article_id} · {TOPIC}")).to_be_visible()
        assert page.locator('a[href^="http://evil.example"]').count() == 0

        stop = sidebar.get_by_role("button", name="Stop")
        expect(stop).to_have_count(1)
        assert row_of(server, article_id)["status"] == "streaming"
        clicked = time.monotonic()
        stop.click()
        stopped = poll(lambda: row_of(server, article_id)["status"] == "stopped",
                       "the row to be stopped after the sidebar's Stop", timeout_s=5,
                       every_s=0.05)
        print(f"\n[browser] sidebar Stop on the Write page: row stopped "
              f"{(stopped - clicked) * 1000:.0f} ms after the click")
        row = row_of(server, article_id)
        assert row["content"] == reply.prefix  # what was written is kept
        assert not reply.gate.is_set()  # the held stream never went on: Stop ended it
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text(f"Stopped; the text written so far is saved as #{article_id}",
                                exact=False)).to_be_visible()
        expect(sidebar.get_by_text("Writing now", exact=False)).to_have_count(0)
