"""Background jobs in a real browser: an article outlives the page that shows it.

Each article runs in a worker owned by the Streamlit server (writer/runs/registry.py);
pages only attach to it. What a user can do while one is written — open another
page, reload, watch it from a second tab, switch the UI language — must not stop it
(the provider sees one request and no disconnect); Stop in the sidebar, from any
page, must; a server that is shut down saves what was written; with
WRITER_MAX_STREAMS=1 a second article waits in line and starts by itself.

Same machinery as test_browser.py (Debian's chromium, `FakeOpenAI` on loopback, a
scratch database) with servers of this module's own: one shared by most tests, and
a dedicated one for the shutdown and the queue tests.
"""
from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from fake_openai import FakeOpenAI, Reply
from test_browser import (  # noqa: F401 (fixtures)
    ARTICLE,
    ARTIFACTS,
    LAST_WORDS,
    MARKER,
    TARGET,
    UI_TIMEOUT_MS,
    browser,
    chromium_path,
    fake_provider,
    fill_brief,
    free_form,
    paragraph,
    streamlit_server,
)
from writer.generation.counting import count_words
from writer.storage.store import Store

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 800}
TOTAL_CHUNKS = len(Reply(text=ARTICLE, chunk_chars=20).pieces())
PROGRESS_RE = re.compile(rf"\d+ / {TARGET} words")
ARTICLE_ID_RE = re.compile(r"[?&]article=(\d+)")

# A second, shorter article (the queue test), so a page showing the wrong one is seen.
ARTICLE_B = ("Queues keep a busy provider fair to everyone who asks. "
             "The second article waits for its turn and starts by itself. "
             "Nobody has to click again, and nothing is lost while it waits.\n\n"
             "When the first one ends, the next one in line begins at once.\n")
MARKER_B = "Queues keep a busy"

_servers: list = []  # the servers the running test uses (their output is shown on failure)


def server_env(fake: FakeOpenAI, **extra) -> dict:
    # No file watcher: an edit to a source file while the tests run would make
    # Streamlit re-import the app's modules, and with them create a new, empty job
    # registry (the running jobs would vanish from the pages). A server in use is
    # not edited; a working tree during development is.
    return {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test",
            "WRITER_MODEL": "gpt-4o-mini", "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none", **extra}


# ---- fixtures ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _server_output_on_failure():
    """Print the output of the servers the test used; pytest shows it only on failure."""
    _servers.clear()
    yield
    for reply in _held:  # nothing stays held past its test
        reply.release()
    _held.clear()
    for server in _servers:
        state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
        print(f"--- streamlit output ({server.url}, {state}) ---\n{server.log()}", file=sys.stderr)
    _servers.clear()


@pytest.fixture(scope="module")
def jobs_server(chromium_path, fake_provider, tmp_path_factory):
    """This module's app server, against this module's fake provider."""
    tmp = tmp_path_factory.mktemp("browser-jobs")
    with streamlit_server(tmp, server_env(fake_provider)) as server:
        yield server


@pytest.fixture
def app(jobs_server, fake_provider):
    """(server, fake) for one test; nothing it queued at the fake outlives it."""
    if jobs_server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {jobs_server.proc.returncode}):\n{jobs_server.log()}",
                    pytrace=False)
    _servers.append(jobs_server)
    yield jobs_server, fake_provider
    with fake_provider._lock:
        fake_provider._queue.clear()


@contextlib.contextmanager
def own_server(tmp_path, **env):
    """A dedicated fake provider and app server (for tests that end it or limit it)."""
    with FakeOpenAI() as fake:
        with streamlit_server(tmp_path, server_env(fake, **env)) as server:
            _servers.append(server)
            yield server, fake


@contextlib.contextmanager
def tab(browser, url: str, *, js_errors_allowed: bool = False, **context_options):
    """A fresh browser context (= a Streamlit session of its own) on `url`, 1280×800,
    en-US unless `context_options` say otherwise (locale, timezone_id, permissions).
    If the test fails, a screenshot of this tab goes to test-artifacts/ (git-ignored)."""
    from playwright.sync_api import expect

    context = browser.new_context(**{"viewport": VIEWPORT, "locale": "en-US", **context_options})
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        page.get_by_test_id("stSidebarNav").wait_for()  # the app has painted
        yield page
    except BaseException:
        with contextlib.suppress(Exception):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"jobs-failure-{time.time():.0f}-{id(page)}.png"))
        raise
    finally:
        context.close()
    assert js_errors_allowed or not errors, f"JavaScript errors on the page: {errors}"


# ---- helpers ----------------------------------------------------------------------------

SHOWN_JS = """(marker) => {
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main) return null;
    const hit = [...main.querySelectorAll('[data-testid="stMarkdownContainer"]')]
        .map(e => e.innerText).find(text => text.includes(marker));
    return hit === undefined ? null : hit;
}"""


HOLD_MAX_S = 30.0  # a held stream goes on by itself after this (a failed test never hangs)
_held: list["HeldReply"] = []


class _HeldPieces(list):
    """The fake reads `pieces[i]` right before it sends chunk i: hold there."""

    def __init__(self, pieces: list[str], reply: "HeldReply"):
        super().__init__(pieces)
        self.reply = reply

    def __getitem__(self, index):
        if index == self.reply.hold_after:
            self.reply.held.set()
            self.reply.gate.wait(HOLD_MAX_S)
        return super().__getitem__(index)


@dataclass
class HeldReply(Reply):
    """A streamed reply that stops after `hold_after` content chunks, its connection
    open, until `release()`; then the rest flows at `chunk_delay`. The test decides
    when "mid-stream" ends, not a race against the clock."""

    hold_after: int = 10

    def __post_init__(self):
        self.held, self.gate = threading.Event(), threading.Event()
        _held.append(self)

    def pieces(self) -> list[str]:
        return _HeldPieces(super().pieces(), self)

    @property
    def prefix(self) -> str:
        return "".join(Reply.pieces(self)[:self.hold_after])

    def release(self) -> None:
        self.gate.set()


def held(text: str = ARTICLE, hold_after: int = 10) -> HeldReply:
    return HeldReply(text=text, chunk_chars=20, chunk_delay=0.02, hold_after=hold_after)


def wait_held(page, reply: HeldReply, marker: str = MARKER) -> None:
    """The fake holds the stream and the page shows all that was sent before it."""
    poll(lambda: reply.held.is_set(), "the fake to hold the stream")
    poll(lambda: shown(page, marker) == words_of(reply.prefix), "the page to show the text so far")


def words_of(text: str | None) -> str:
    return " ".join((text or "").split())


def shown(page, marker: str = MARKER) -> str:
    """The article text in the main area (whitespace normalised), '' when none."""
    return words_of(page.evaluate(SHOWN_JS, marker))


def poll(condition, what: str, timeout_s: float = 15, every_s: float = 0.02) -> float:
    """Wait for `condition()`; the time.monotonic() right after it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)
    return time.monotonic()


def start_article(page, fake: FakeOpenAI, topic: str, reply: Reply) -> tuple[int, int]:
    """Queue `reply` at the fake, fill the brief (free form) and click Generate.
    Returns the article id (from the URL the page moves to) and the request's index
    in the fake's records."""
    from playwright.sync_api import expect

    slot = len(fake.requests)
    fake.queue(reply)
    fill_brief(page, topic)
    free_form(page)
    page.get_by_role("button", name="Generate").click()
    expect(page).to_have_url(ARTICLE_ID_RE)
    return int(ARTICLE_ID_RE.search(page.url).group(1)), slot


def sent(fake: FakeOpenAI, slot: int) -> int:
    return fake.chunks_sent[slot] if len(fake.chunks_sent) > slot else 0


def row_of(server, article_id: int) -> dict:
    store = Store(server.db_path)
    try:
        return store.get(article_id)
    finally:
        store.close()


def assert_completed(server, fake: FakeOpenAI, article_id: int, slot: int, disconnects: int,
                     text: str = ARTICLE) -> None:
    """The row holds the whole reply, from one request, and no connection was cut."""
    row = row_of(server, article_id)
    assert row["status"] == "completed", (row["status"], row["error_kind"], row["error"])
    assert row["content"] == text
    assert len(fake.requests) == slot + 1, f"{len(fake.requests) - slot} requests for one article"
    assert sent(fake, slot) == len(Reply(text=text, chunk_chars=20).pieces())
    assert len(fake.disconnects) == disconnects, "the provider saw a disconnect"


def sidebar_entry(page, article_id: int):
    """The sidebar's box for one running article (its link, progress and Stop)."""
    sidebar = page.get_by_test_id("stSidebar")
    stop = page.locator(f".st-key-sidebar-stop-{article_id}")
    return sidebar, sidebar.get_by_test_id("stVerticalBlock").filter(has=stop).last, stop


# ---- tests ------------------------------------------------------------------------------

def test_history_mid_stream_and_back_does_not_stop_the_article(browser, app):
    """Leave the Write page for History while the article streams: it goes on (the
    sidebar shows its progress there) and completes with no page attached to it; back
    on Write, the whole article and what was typed are there."""
    from playwright.sync_api import expect

    server, fake = app
    topic = "leaving the page mid-stream"
    disconnects = len(fake.disconnects)
    reply = held()
    with tab(browser, server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        article_id, slot = start_article(page, fake, topic, reply)
        wait_held(page, reply)
        expect(main.get_by_text("only Stop ends it", exact=False)).to_be_visible()

        page.get_by_test_id("stSidebarNav").get_by_role("link", name="History").click()
        expect(main.get_by_role("heading", name="History")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/history"))
        sidebar, entry, _ = sidebar_entry(page, article_id)
        expect(sidebar.get_by_text("Writing now (1)")).to_be_visible()
        expect(entry.get_by_role("link", name=f"#{article_id} · {topic}")).to_be_visible()
        expect(entry.get_by_test_id("stProgress")).to_have_text(
            f"{count_words(reply.prefix)} / {TARGET} words")
        assert row_of(server, article_id)["status"] == "streaming"

        # The rest streams while no page shows it; the sidebar entry then goes away.
        reply.release()
        poll(lambda: row_of(server, article_id)["status"] != "streaming", "the article to end",
             every_s=0.05)
        assert_completed(server, fake, article_id, slot, disconnects)
        expect(sidebar.get_by_text("Writing now", exact=False)).to_have_count(0)
        expect(main.get_by_role("heading", name="History")).to_be_visible()

        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Write", exact=True).click()
        expect(page).to_have_url(re.compile(rf"[?&]article={article_id}\b"))
        expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
            f"Done: saved as #{article_id}")
        expect(paragraph(main, LAST_WORDS)).to_be_visible()
        assert shown(page) == words_of(ARTICLE)
        expect(page.get_by_role("textbox", name="Topic", exact=True)).to_have_value(topic)


def test_reload_mid_stream_shows_the_text_so_far_then_the_rest(browser, app):
    from playwright.sync_api import expect

    server, fake = app
    disconnects = len(fake.disconnects)
    reply = held(hold_after=15)
    with tab(browser, server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        article_id, slot = start_article(page, fake, "reloading mid-stream", reply)
        wait_held(page, reply)

        reloaded = time.monotonic()
        page.reload()
        page.get_by_role("textbox", name="Topic", exact=True).wait_for(timeout=3_000)
        form_after = time.monotonic() - reloaded
        expect(paragraph(main, MARKER)).to_be_visible(timeout=3_000 - form_after * 1000)
        seen_after = time.monotonic() - reloaded
        # All the text so far in the first paint after the reload, not a restart from
        # nothing: the fake is still holding the stream, so nothing new came meanwhile.
        assert shown(page) == words_of(reply.prefix)
        assert not reply.gate.is_set() and sent(fake, slot) == reply.hold_after
        expect(main.get_by_test_id("stProgress")).to_have_text(
            f"{count_words(reply.prefix)} / {TARGET} words")
        print(f"\n[browser-jobs] reload: the text so far back {seen_after * 1000:.0f} ms after "
              f"page.reload() (the form: {form_after * 1000:.0f} ms)", file=sys.stderr)
        # It comes with the page's first paint, not after a wait of its own.
        assert seen_after - form_after < 0.5, (form_after, seen_after)

        reply.release()  # the rest streams into the reloaded page
        expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
            f"Done: saved as #{article_id}")
        expect(paragraph(main, LAST_WORDS)).to_be_visible()
        assert shown(page) == words_of(ARTICLE)
    assert_completed(server, fake, article_id, slot, disconnects)


def test_two_tabs_watch_one_article(browser, app):
    from playwright.sync_api import expect

    server, fake = app
    disconnects = len(fake.disconnects)
    reply = held()
    with tab(browser, server.url + "/") as first:
        main1 = first.get_by_test_id("stMain")
        article_id, slot = start_article(first, fake, "two tabs, one article", reply)
        wait_held(first, reply)
        with tab(browser, f"{server.url}/?article={article_id}") as second:
            main2 = second.get_by_test_id("stMain")
            expect(paragraph(main2, MARKER)).to_be_visible()
            assert shown(second) == words_of(reply.prefix)  # the text so far, at once
            expect(main2.get_by_role("button", name="Stop")).to_be_visible()
            reply.release()  # the rest streams into both
            for page, main in ((first, main1), (second, main2)):
                expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
                    f"Done: saved as #{article_id}")
                expect(paragraph(main, LAST_WORDS)).to_be_visible()
                assert shown(page) == words_of(ARTICLE)
    assert_completed(server, fake, article_id, slot, disconnects)


def test_stop_in_the_sidebar_on_the_history_page(browser, app):
    """The fake holds the stream after 12 chunks, its connection open: Stop in the
    sidebar of the History page closes it within a second and saves those chunks."""
    from playwright.sync_api import expect

    server, fake = app
    topic = "stopped from the sidebar"
    # stall_after: the fake keeps polling the socket, so it sees the disconnect at once.
    reply = Reply(text=ARTICLE, chunk_chars=20, stall_after=12, stall_seconds=30)
    partial = "".join(reply.pieces()[:12])
    disconnects = len(fake.disconnects)
    with tab(browser, server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        article_id, slot = start_article(page, fake, topic, reply)
        # Shown on the page = in the job's feed: all of it is the job's text now.
        poll(lambda: shown(page) == words_of(partial), "the page to show the 12 chunks")

        page.get_by_test_id("stSidebarNav").get_by_role("link", name="History").click()
        expect(main.get_by_role("heading", name="History")).to_be_visible()
        sidebar, entry, stop = sidebar_entry(page, article_id)
        expect(entry.get_by_role("link", name=f"#{article_id} · {topic}")).to_be_visible()
        expect(entry.get_by_test_id("stProgress")).to_have_text(
            f"{count_words(partial)} / {TARGET} words")
        assert row_of(server, article_id)["status"] == "streaming"
        assert len(fake.disconnects) == disconnects and fake.chunks_sent[slot] == 12

        clicked = time.monotonic()
        stop.get_by_role("button", name="Stop").click()
        poll(lambda: len(fake.disconnects) > disconnects, "the provider to see the disconnect",
             timeout_s=5, every_s=0.005)
        closed_after = fake.disconnects[disconnects] - clicked  # the fake's own timestamp
        stopped = poll(lambda: row_of(server, article_id)["status"] != "streaming",
                       "the row to leave streaming", timeout_s=5, every_s=0.01)
        print(f"\n[browser-jobs] sidebar Stop: provider disconnect {closed_after * 1000:.0f} ms, "
              f"row seen stopped {(stopped - clicked) * 1000:.0f} ms after the click",
              file=sys.stderr)
        assert closed_after < 1.0, f"the provider connection closed {closed_after:.3f} s after Stop"
        row = row_of(server, article_id)
        assert row["status"] == "stopped", row["status"]
        assert row["error_kind"] is None, row["error_kind"]
        assert row["content"] == partial
        assert len(fake.requests) == slot + 1

        expect(entry).to_have_count(0)
        expect(sidebar.get_by_text("Writing now", exact=False)).to_have_count(0)
        expect(main.get_by_role("heading", name="History")).to_be_visible()  # still there


def test_switching_the_ui_language_mid_stream_does_not_stop_the_article(browser, app):
    from playwright.sync_api import expect

    server, fake = app
    disconnects = len(fake.disconnects)
    reply = held()
    with tab(browser, server.url + "/") as page:
        main = page.get_by_test_id("stMain")
        article_id, slot = start_article(page, fake, "switching the UI language", reply)
        wait_held(page, reply)

        box = page.get_by_test_id("stSidebar").get_by_role("combobox", name="UI / 界面")
        box.click()
        page.get_by_role("option", name="中文", exact=True).click()
        expect(page.get_by_test_id("stSidebarNav").get_by_role("link", name="写作", exact=True)).to_be_visible()
        expect(main.get_by_role("textbox", name="主题", exact=True)).to_be_visible()
        expect(main.get_by_role("button", name="停止")).to_be_visible()  # the job, in Chinese
        assert shown(page) == words_of(reply.prefix)
        assert row_of(server, article_id)["status"] == "streaming"

        reply.release()
        expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
            f"完成：已保存为 #{article_id}")
        expect(paragraph(main, LAST_WORDS)).to_be_visible()
        assert shown(page) == words_of(ARTICLE)
    assert_completed(server, fake, article_id, slot, disconnects)


def test_server_shutdown_stops_and_saves_the_article(browser, tmp_path):
    """SIGTERM to `streamlit run` while an article streams: the process exits and the
    article is saved `stopped` (by the server, not by the stale-row recovery) with
    the text it had."""
    from playwright.sync_api import expect

    reply = Reply(text=ARTICLE, chunk_chars=20, chunk_delay=0.15)  # ~13 s
    with own_server(tmp_path) as (server, fake):
        with tab(browser, server.url + "/", js_errors_allowed=True) as page:
            main = page.get_by_test_id("stMain")
            article_id, slot = start_article(page, fake, "server shutdown", reply)
            expect(paragraph(main, MARKER)).to_be_visible()
            poll(lambda: sent(fake, slot) >= 8, "8 chunks")
            shown_before = shown(page)
            assert row_of(server, article_id)["status"] == "streaming"

            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(timeout=10)
            except Exception:
                pytest.fail(f"streamlit still running 10 s after SIGTERM:\n{server.log()}",
                            pytrace=False)
            exited_after = time.monotonic() - signalled
            sent_then = sent(fake, slot)
        print(f"\n[browser-jobs] SIGTERM: exited with {code} after {exited_after * 1000:.0f} ms, "
              f"{sent_then}/{TOTAL_CHUNKS} chunks sent", file=sys.stderr)
        assert sent_then < TOTAL_CHUNKS, "the article had finished before the SIGTERM"
        row = row_of(server, article_id)
        assert row["status"] == "stopped", (row["status"], row["error_kind"], row["error"])
        assert row["error_kind"] is None, row["error_kind"]  # not "interrupted"
        assert row["content"] and ARTICLE.startswith(row["content"]), row["content"]
        assert len(words_of(row["content"])) >= len(shown_before)  # what was shown is kept
        assert "still running at shutdown" not in server.log()


def test_max_streams_queues_the_second_article(browser, tmp_path):
    """WRITER_MAX_STREAMS=1: B, started from another session while A streams, waits
    in line (row `queued`, the page and the sidebar say so) and starts by itself
    when A ends; the provider never has two requests at once."""
    from playwright.sync_api import expect

    reply_a, reply_b = held(), held(ARTICLE_B, hold_after=3)
    with own_server(tmp_path, WRITER_MAX_STREAMS="1") as (server, fake):
        with tab(browser, server.url + "/") as page_a, tab(browser, server.url + "/") as page_b:
            main_a, main_b = page_a.get_by_test_id("stMain"), page_b.get_by_test_id("stMain")
            id_a, _ = start_article(page_a, fake, "article A", reply_a)
            wait_held(page_a, reply_a)
            id_b, _ = start_article(page_b, fake, "article B", reply_b)
            expect(main_b.get_by_test_id("stProgress")).to_contain_text(
                "this one is number 1 in line and starts by itself")
            assert row_of(server, id_b)["status"] == "queued"
            assert row_of(server, id_a)["status"] == "streaming"
            assert len(fake.requests) == 1

            # A's tab moves to History: its sidebar lists both, B in line.
            page_a.get_by_test_id("stSidebarNav").get_by_role("link", name="History").click()
            expect(main_a.get_by_role("heading", name="History")).to_be_visible()
            sidebar, entry_a, _ = sidebar_entry(page_a, id_a)
            _, entry_b, _ = sidebar_entry(page_a, id_b)
            expect(sidebar.get_by_text("Writing now (2)")).to_be_visible()
            expect(entry_a.get_by_test_id("stProgress")).to_have_text(
                f"{count_words(reply_a.prefix)} / {TARGET} words")
            expect(entry_b.get_by_role("link", name=f"#{id_b} · article B")).to_be_visible()
            expect(entry_b.get_by_test_id("stProgress")).to_have_text("queued · number 1 in line")
            assert len(fake.requests) == 1

            # A ends; B starts by itself (its tab and the sidebar show it streaming).
            reply_a.release()
            wait_held(page_b, reply_b, MARKER_B)
            assert row_of(server, id_a)["status"] == "completed"
            assert row_of(server, id_b)["status"] == "streaming"
            expect(sidebar.get_by_text("Writing now (1)")).to_be_visible()
            expect(entry_a).to_have_count(0)
            expect(entry_b.get_by_test_id("stProgress")).to_have_text(
                f"{count_words(reply_b.prefix)} / {TARGET} words")

            reply_b.release()
            expect(main_b.get_by_test_id("stAlertContentSuccess")).to_have_text(
                f"Done: saved as #{id_b}")
            expect(paragraph(main_b, "the next one in line begins")).to_be_visible()
            assert shown(page_b, MARKER_B) == words_of(ARTICLE_B)
            assert shown(page_b) == ""  # not A's text
            expect(sidebar.get_by_text("Writing now", exact=False)).to_have_count(0)
        row_a, row_b = row_of(server, id_a), row_of(server, id_b)
        assert row_a["status"] == "completed" and row_a["content"] == ARTICLE
        assert row_b["status"] == "completed" and row_b["content"] == ARTICLE_B
        assert len(fake.requests) == 2 and fake.max_active == 1, (len(fake.requests),
                                                                  fake.max_active)
        prompt_b = "\n".join(str(m.get("content", "")) for m in fake.requests[1]["messages"])
        assert "article B" in prompt_b and len(fake.disconnects) == 0
