"""Several app servers on one PostgreSQL act as one app (issue 24), in Chromium.

Two real `streamlit run app.py` servers, A and B, on two ports, both with
WRITER_DATABASE_URL on ONE fresh database of the session's throwaway PostgreSQL
(tests/pg_server.py) and the same settings, against one `FakeOpenAI` whose reply is
held mid-article. Each server has its own folder (writer.log, unsaved/), as on two
machines; nothing but the database is shared.

- **Follow and Stop from the other server**: an article started on A, in one browser
  context; B, in another, lists it in its sidebar and its Write page follows the text
  as it grows (from the drafts A saves); Stop on B's page reaches A (a request on the
  row that A's watcher honours): the provider sees the disconnect and the row is saved
  `stopped` with its partial text within 2 s of the click (measured and printed); A's
  page says it stopped, B's shows the saved text.
- **A server dies mid-article**: a third server, C, is killed (SIGKILL) while it
  writes; B, which was following the article, shows it stopped / interrupted once its
  heartbeat is stale (WRITER_HEARTBEAT_S=1 here: 3 missed beats), its last draft kept.

Screenshots of B (1280×800) following and after the Stop, in English and Chinese
(`?lang=zh`), go to $TEST_SCREENSHOTS (default test-artifacts/, git-ignored).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from fake_openai import Reply
from netfaults import drained
from test_browser import (  # noqa: F401 (fixtures)
    ARTICLE,
    ARTIFACTS,
    TARGET,
    browser,
    chromium_path,
    fake_provider,
    streamlit_server,
    wait_for_idle,
)
from test_browser_jobs import (  # noqa: F401 (fixtures)
    HeldReply,
    _server_output_on_failure,
    _servers,
    poll,
    server_env,
    shown,
    start_article,
    tab,
    words_of,
)
from writer.generation.counting import count_words
from writer.storage import liveness, pg
from writer.storage.connection import connect

pytestmark = pytest.mark.browser

HEARTBEAT_S = 1.0  # WRITER_HEARTBEAT_S on every server: a dead one's rows are stale after 3 s
STOP_LIMIT_S = 2.0  # issue 24: any server's Stop stops the article within 2 s
SHOTS = Path(os.environ.get("TEST_SCREENSHOTS") or ARTIFACTS)
STOPPED = "Stopped; the text written so far is saved as #{id}."
DIED = "The writing process died"


# ---- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def database(pg_server):
    """One fresh PostgreSQL database for every server of this module; dropped at the end."""
    url = pg_server.new_database()
    try:
        yield url
    finally:
        pg.close_pool()
        pg_server.drop_database(url)


def env_for(fake, database: str) -> dict:
    """A server's environment: the same settings on every server (as docs/deploy.md says)."""
    return server_env(fake, WRITER_DATABASE_URL=database, WRITER_HEARTBEAT_S=str(HEARTBEAT_S))


@pytest.fixture(scope="module")
def two_servers(chromium_path, fake_provider, database, tmp_path_factory):
    """Servers A and B on one database, each in a folder of its own."""
    with streamlit_server(tmp_path_factory.mktemp("server-a"), env_for(fake_provider, database)) as a, \
            streamlit_server(tmp_path_factory.mktemp("server-b"),
                             env_for(fake_provider, database)) as b:
        yield a, b


@pytest.fixture
def servers(two_servers, fake_provider):
    for server in two_servers:
        server.check_alive()
        _servers.append(server)  # their output is shown if the test fails
    yield two_servers
    with fake_provider._lock:
        fake_provider._queue.clear()


# ---- helpers ----------------------------------------------------------------------------

def row(database: str, article_id: int) -> dict:
    """The article's row, read on a plain connection (a `Store` would also recover stale
    rows by this process's own heartbeat setting: the servers must do that)."""
    conn = connect(database)
    try:
        cursor = conn.execute("SELECT id, status, error_kind, content, stop_requested_by, "
                              "heartbeat_at FROM articles WHERE id = ?", [article_id])
        names = [c[0] for c in cursor.description]
        return dict(zip(names, cursor.fetchone()))
    finally:
        conn.close()


def fake_port(fake) -> int:
    return int(fake.base_url.rsplit(":", 1)[1].split("/")[0])


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path))  # the viewport: 1280×800
    return path


def report(text: str) -> None:
    print(f"\n[browser-servers] {text}", file=sys.stderr)


# ---- tests ------------------------------------------------------------------------------

def test_server_b_follows_and_stops_an_article_written_on_server_a(browser, servers, fake_provider,
                                                                   database):
    from playwright.sync_api import expect

    server_a, server_b = servers
    fake = fake_provider
    topic = "One app on two servers"
    # 12 chunks 0.25 s apart (A saves a draft every 2 s, so one is saved before the
    # hold), held until B shows it; then 24 more, the drafts growing; then the stream
    # stalls, its connection open (the fake polls it: it sees the disconnect at once).
    reply = HeldReply(text=ARTICLE, chunk_chars=20, chunk_delay=0.25, hold_after=12,
                      stall_after=36, stall_seconds=60)
    partial = "".join(Reply.pieces(reply)[:36])  # what A has when the stream stalls
    disconnects = len(fake.disconnects)
    with tab(browser, server_a.url + "/") as page_a:
        article_id, slot = start_article(page_a, fake, topic, reply)
        poll(lambda: reply.held.is_set(), "the fake to hold the stream")
        poll(lambda: words_of(row(database, article_id)["content"]),
             "server A to have saved a first draft")

        with tab(browser, f"{server_b.url}/?article={article_id}") as page_b, \
                tab(browser, f"{server_b.url}/?article={article_id}&lang=zh",
                    locale="zh-CN") as page_zh, \
                tab(browser, f"{server_b.url}/history") as page_history:
            main_b, sidebar_b = page_b.get_by_test_id("stMain"), page_b.get_by_test_id("stSidebar")
            # B lists what A writes, and follows its saved text.
            expect(sidebar_b.get_by_text("Writing now (1)")).to_be_visible()
            expect(sidebar_b.get_by_role("link", name=f"#{article_id} · {topic}")).to_be_visible()
            first = words_of(row(database, article_id)["content"])
            poll(lambda: shown(page_b) == first, "B to show A's first draft")
            stop_b = page_b.locator(f".st-key-elsewhere-stop-{article_id}").get_by_role("button")
            expect(stop_b).to_be_visible()

            # The text grows on A; B follows it from the drafts A saves.
            seen = [first]
            reply.release()

            def grown() -> bool:
                text = shown(page_b)
                if text and text != seen[-1]:
                    assert words_of(ARTICLE).startswith(text), text  # only ever A's text
                    assert len(text) > len(seen[-1]), (seen[-1], text)  # never back
                    seen.append(text)
                return len(seen) >= 3
            poll(grown, "B to follow two more of A's drafts", timeout_s=20, every_s=0.05)
            assert row(database, article_id)["status"] == "streaming"
            # B's History opens it too (the newest article) and follows the same drafts.
            expect(page_history.get_by_test_id("stMain").get_by_role("heading", name="History")) \
                .to_be_visible()
            poll(lambda: len(shown(page_history)) >= len(seen[1]) and
                 words_of(ARTICLE).startswith(shown(page_history)), "B's History to follow it")
            expect(page_history.locator(f".st-key-elsewhere-stop-{article_id}")).to_be_visible()
            poll(lambda: shown(page_zh) and words_of(ARTICLE).startswith(shown(page_zh)),
                 "B (in Chinese) to show the text so far")
            shots = [screenshot(page_b, "servers-b-following-en.png"),
                     screenshot(page_zh, "servers-b-following-zh.png")]

            # The stream stalls after 36 chunks; A has read them all and shows them.
            poll(lambda: fake.chunks_sent[slot] == 36 and drained(fake_port(fake)),
                 "the fake to stall after 36 chunks, all of them read by A")
            poll(lambda: shown(page_a) == words_of(partial), "A to show the 36 chunks")
            assert len(fake.disconnects) == disconnects
            # No draft is saved while the stream stalls: B's page and sidebar settle on the
            # last one A saved (the same words in both, and in the row).
            last = row(database, article_id)
            label = f"{count_words(last['content'])} / {TARGET} words"
            entry = sidebar_b.get_by_test_id("stVerticalBlock").filter(
                has=page_b.locator(f".st-key-sidebar-stop-{article_id}")).last
            expect(entry.get_by_test_id("stProgress")).to_have_text(label)
            expect(main_b.get_by_test_id("stProgress")).to_have_text(label)
            poll(lambda: shown(page_b) == words_of(last["content"]), "B to show A's last draft")

            # Stop on B.
            clicked = time.monotonic()
            stop_b.click()
            poll(lambda: len(fake.disconnects) > disconnects, "the provider to see the disconnect",
                 timeout_s=10, every_s=0.005)
            closed_after = fake.disconnects[disconnects] - clicked  # the fake's own timestamp
            stopped = poll(lambda: row(database, article_id)["status"] != "streaming",
                           "the row to leave streaming", timeout_s=10, every_s=0.01)
            saved_after = stopped - clicked
            report(f"Stop on server B of an article written on server A: provider disconnect "
                   f"{closed_after * 1000:.0f} ms, row saved stopped {saved_after * 1000:.0f} ms "
                   f"after the click (A looks for requests every 0.5 s)")
            saved = row(database, article_id)
            assert saved["status"] == "stopped", saved
            assert saved["error_kind"] is None, saved  # stopped by the request, not recovered
            assert saved["content"] == partial
            assert saved["stop_requested_by"]  # who pressed Stop, on B
            assert len(fake.requests) == slot + 1  # one request, never retried after the Stop
            assert closed_after < STOP_LIMIT_S, f"disconnect {closed_after:.2f} s after Stop"
            assert saved_after < STOP_LIMIT_S, f"row saved {saved_after:.2f} s after Stop"

            # B shows the saved article, stopped; A's page says it stopped.
            expect(main_b.get_by_text(STOPPED.format(id=article_id))).to_be_visible()
            poll(lambda: shown(page_b) == words_of(partial), "B to show the saved partial text")
            expect(sidebar_b.get_by_text("Writing now", exact=False)).to_have_count(0)
            expect(page_b.locator(f".st-key-elsewhere-stop-{article_id}")).to_have_count(0)
            main_a = page_a.get_by_test_id("stMain")
            expect(main_a.get_by_text(STOPPED.format(id=article_id))).to_be_visible()
            expect(page_a.get_by_test_id("stSidebar").get_by_text("Writing now", exact=False)) \
                .to_have_count(0)
            poll(lambda: shown(page_zh) == words_of(partial), "B (in Chinese) to show the partial")
            poll(lambda: shown(page_history) == words_of(partial), "B's History to show the partial")
            expect(page_history.locator(f".st-key-elsewhere-stop-{article_id}")).to_have_count(0)
            wait_for_idle(page_zh)
            wait_for_idle(page_b)
            shots += [screenshot(page_b, "servers-b-stopped-en.png"),
                      screenshot(page_zh, "servers-b-stopped-zh.png")]
    report("screenshots: " + ", ".join(str(p) for p in shots))


def test_an_article_whose_server_died_is_shown_interrupted_by_another(browser, servers,
                                                                      fake_provider, database,
                                                                      tmp_path):
    from playwright.sync_api import expect

    _server_a, server_b = servers
    fake = fake_provider
    topic = "Written on a server that dies"
    # 12 chunks, 0.25 s apart (a draft is saved after 2 s), then a stall, connection open.
    reply = Reply(text=ARTICLE, chunk_chars=20, chunk_delay=0.25, stall_after=12,
                  stall_seconds=60)
    disconnects = len(fake.disconnects)
    with streamlit_server(tmp_path, env_for(fake, database)) as server_c:
        _servers.append(server_c)
        # C's page loses its server: its JavaScript errors are expected
        with tab(browser, server_c.url + "/", js_errors_allowed=True) as page_c:
            article_id, slot = start_article(page_c, fake, topic, reply)
            poll(lambda: fake.chunks_sent[slot] == 12 and drained(fake_port(fake)),
                 "the fake to stall after 12 chunks")
            poll(lambda: words_of(row(database, article_id)["content"]),
                 "server C to have saved a draft")
            with tab(browser, f"{server_b.url}/?article={article_id}") as page_b:
                main_b = page_b.get_by_test_id("stMain")
                sidebar_b = page_b.get_by_test_id("stSidebar")
                expect(sidebar_b.get_by_role("link", name=f"#{article_id} · {topic}")).to_be_visible()
                draft = row(database, article_id)["content"]
                poll(lambda: shown(page_b) == words_of(draft), "B to follow C's draft")
                expect(page_b.locator(f".st-key-elsewhere-stop-{article_id}")).to_be_visible()

                server_c.proc.kill()  # SIGKILL: no shutdown, no final save
                killed = time.monotonic()
                server_c.proc.wait(10)
                last_beat = row(database, article_id)["heartbeat_at"]
                expect(main_b.get_by_text(DIED, exact=False)).to_be_visible(timeout=20_000)
                shown_after = time.monotonic() - killed
                report(f"server C killed mid-article: server B shows it interrupted "
                       f"{shown_after * 1000:.0f} ms after the kill (heartbeat {HEARTBEAT_S:g} s, "
                       f"stale after {liveness.STALE_BEATS * HEARTBEAT_S:g} s)")
                saved = row(database, article_id)
                assert saved["status"] == "stopped", saved
                assert saved["error_kind"] == "interrupted", saved
                assert saved["content"] == draft  # the last draft is kept
                assert saved["heartbeat_at"] == last_beat  # nobody beat for it after the kill
                # Not before the row was stale: the last beat was at most one period before
                # the kill, and the row is stale 3 periods after it.
                assert shown_after >= (liveness.STALE_BEATS - 1) * HEARTBEAT_S - 0.2, shown_after
                assert shown(page_b) == words_of(draft)
                expect(sidebar_b.get_by_text("Writing now", exact=False)).to_have_count(0)
                expect(page_b.locator(f".st-key-elsewhere-stop-{article_id}")).to_have_count(0)
                poll(lambda: len(fake.disconnects) > disconnects,
                     "the provider to see the dead server's connection closed")
                screenshot(page_b, "servers-b-interrupted-en.png")
