"""Write → revise → compare → choose, in a real browser (`streamlit run app.py`,
Debian's chromium, the loopback `FakeOpenAI`), 1280×800: a draft, a revision
streamed as version 2 with a preset and an instruction, the two versions side by side
with the differences marked, and version 1 made current again."""
from __future__ import annotations

import contextlib
import re
import sqlite3

import pytest

from fake_openai import FakeOpenAI, Reply
from test_browser import browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import poll, server_env, tab

pytestmark = pytest.mark.browser

DRAFT = ("# Quiet mornings\n\nThe new MiniBrew grinds so quietly that nobody wakes up.\n\n"
         "## One touch\n\nPress once and the espresso is ready in thirty seconds.\n")
REVISED = ("# Quiet mornings\n\nMiniBrew grinds in near silence.\n\n"
           "## One touch\n\nOne press, thirty seconds, espresso. Order today.\n")


@pytest.fixture(scope="module")
def server(chromium_path, tmp_path_factory):  # noqa: F811
    with FakeOpenAI() as fake:
        tmp = tmp_path_factory.mktemp("browser-versions")
        with streamlit_server(tmp, server_env(fake)) as app:
            yield app, fake


def saved(app, article_id: int) -> tuple:
    with contextlib.closing(sqlite3.connect(app.db_path)) as conn:
        return conn.execute("SELECT current_version, content, "
                            "(SELECT count(*) FROM versions WHERE article_id = a.id) "
                            "FROM articles a WHERE id = ?", [article_id]).fetchone()


def test_write_revise_compare_choose(browser, server):  # noqa: F811
    from playwright.sync_api import expect

    app, fake = server
    fake.queue(Reply(text=DRAFT, chunk_chars=8, usage=(120, 40)))
    with tab(browser, app.url + "/") as page:
        main = page.get_by_test_id("stMain")
        page.get_by_role("textbox", name="Topic", exact=True).fill("MiniBrew launch")
        page.get_by_test_id("stRadio").filter(has_text="Article language") \
            .get_by_text("English", exact=True).click()
        page.get_by_role("spinbutton", name="Target length (words)").fill("60")
        page.get_by_test_id("stCheckbox").filter(has_text="Hold to the target length") \
            .locator("label").click()
        page.get_by_role("button", name="Generate").click()
        expect(main.get_by_test_id("stAlertContentSuccess")).to_contain_text("saved as #1")
        expect(main.get_by_text("Revise this article")).to_be_visible()

        # Revise: a preset and an instruction, the whole article.
        fake.queue(Reply(text=REVISED, chunk_chars=8, usage=(300, 30)))
        # One form: the instruction and the pill reach the server with the click, so a
        # quick click cannot overtake them (it once did, when each widget reran alone).
        box = main.get_by_role("textbox", name=re.compile("What to change"))
        box.fill("end with a call to order")
        pill = main.get_by_role("radio", name="Shorter", exact=True)
        pill.click()
        expect(pill).to_have_attribute("aria-checked", "true")
        main.get_by_role("button", name="Write a new version").click()
        expect(main.get_by_text("Versions (2)")).to_be_visible()
        poll(lambda: saved(app, 1)[0] == 2, "version 2 to be current")
        assert saved(app, 1) == (2, REVISED.strip("\n"), 2)
        request = fake.requests[-1]["messages"][1]["content"]
        assert "shorter" in request and "end with a call to order" in request

        # Compare: what went (left, struck through) and what came (right).
        expect(main.locator(".writer-diff del").first).to_be_visible()
        expect(main.locator(".writer-diff ins").first).to_be_visible()
        left, right = (main.locator(".writer-diff").nth(i).inner_text() for i in (0, 1))
        assert "nobody wakes up" in left and "Order today" in right

        # Choose: version 1 is the article again.
        main.get_by_role("button", name="Make version 1 current").first.click()
        poll(lambda: saved(app, 1)[0] == 1, "version 1 to be current again")
        assert saved(app, 1)[1] == DRAFT
        expect(main.get_by_text("The new MiniBrew grinds so quietly").first).to_be_visible()
