"""The Providers page in a real browser: `streamlit run app.py`, Debian's chromium, the
loopback `FakeOpenAI` as the configured provider, a scratch database.

A user opens the page from the sidebar, ticks the cost confirmation and runs a check
(5 runs, 10 streams at once): the progress bar moves by itself (a fragment that reruns
every 0.5 s) and the graded report replaces it when the check ends. Then a slower check
is cancelled mid-answer: the provider sees the stream closed and nothing more, the
report shows the check cancelled and it is saved that way.

The fake answers by the request's `max_tokens` (prompts/_check.toml): 24 = first-token
runs, 640 = the long answer, 16 = the concurrency streams. Same machinery as
tests/views/test_browser_batch.py, with a server and a fake of this module's own.
Screenshot (1280×800): test-artifacts/providers-report.png.
"""
from __future__ import annotations

import contextlib
import re
import sqlite3
import sys

import pytest

from fake_openai import FakeOpenAI, Reply
from scripted_check import LONG, LONG_TEXT, STREAM, TTFT, ByKind
from serving import GRID_JS
from test_browser import ARTIFACTS, browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import poll, server_env, tab

pytestmark = pytest.mark.browser

LOOPBACK = "127.0.0.1"  # the name the app gives OPENAI_BASE_URL=http://127.0.0.1:…/v1
NAV = ("Write", "Batch", "Brand kits", "History", "Usage & cost", "Providers", "Settings")
CHECK_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def providers_server(chromium_path, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("browser-providers")
    with FakeOpenAI() as fake:
        with streamlit_server(tmp, server_env(fake)) as server:
            yield server, fake


@pytest.fixture
def app(providers_server):
    server, fake = providers_server
    if server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {server.proc.returncode}):\n{server.log()}",
                    pytrace=False)
    yield server, fake
    state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
    print(f"--- streamlit output ({server.url}, {state}) ---\n{server.log()}", file=sys.stderr)


# ---- helpers ----------------------------------------------------------------------------

def report_rows(frame) -> dict[str, dict]:
    """The report table's rows (glide's accessible table) by metric."""
    return {row["Metric"]: row for row in frame.evaluate(GRID_JS) or [] if row.get("Metric")}


def saved(server) -> list[tuple]:
    """(id, provider, status) of every saved check."""
    with contextlib.closing(sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True,
                                            timeout=10)) as conn:
        try:
            return conn.execute("SELECT id, provider, status FROM provider_checks "
                                "ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # no database yet
            return []


def open_providers_page(page):
    """From the app's first page, by the sidebar's link."""
    from playwright.sync_api import expect

    page.get_by_role("textbox", name="Topic", exact=True).wait_for()
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link")).to_have_text([re.compile(f"{name}$") for name in NAV])
    nav.get_by_role("link", name="Providers", exact=True).click()
    expect(page).to_have_url(re.compile(r"/providers"))
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="Providers", exact=True)).to_be_visible()
    expect(main.get_by_role("heading", name="Configured providers")).to_be_visible()
    return main


def confirm_and_run(main) -> None:
    """Tick the cost confirmation (Run is disabled until then) and click Run."""
    from playwright.sync_api import expect

    run = main.get_by_role("button", name=re.compile("Run the check$"))
    expect(run).to_be_disabled()
    expect(main.get_by_test_id("stAlertContentInfo").first).to_contain_text(
        "This check sends 16 requests")  # the defaults: 5 runs, long answer, 10 streams
    main.get_by_test_id("stCheckbox").filter(has_text="I understand this check costs") \
        .locator("label").click()
    expect(main.get_by_role("checkbox", name=re.compile("I understand"))).to_be_checked()
    expect(run).to_be_enabled()
    run.click()


# ---- tests ------------------------------------------------------------------------------

def test_run_a_check_and_read_its_graded_report(browser, app):  # noqa: F811
    from playwright.sync_api import expect

    server, fake = app
    # the long answer: about 2 s
    script = fake.responder = ByKind(long=Reply(text=LONG_TEXT, chunk_chars=12,
                                                 chunk_delay=0.05))
    with tab(browser, server.url + "/") as page:
        main = open_providers_page(page)
        port = fake.base_url.split(":")[2].split("/")[0]  # no WRITER_PROVIDER_NAME: host:port
        expect(main.get_by_text(f"{LOOPBACK}:{port} · gpt-4o-mini").first).to_be_visible()
        before, first = len(saved(server)), len(fake.requests)
        confirm_and_run(main)

        progress = main.get_by_test_id("stProgress")
        # 5 connections + 5 first-token runs + the long answer + 10 streams = 21 steps
        expect(progress).to_contain_text(re.compile(rf"Checking {LOOPBACK}:\d+: \d+ / 21 · "))
        cancel = main.get_by_role("button", name=re.compile("Cancel$"))
        expect(cancel).to_be_enabled()
        expect(main.get_by_role("button", name=re.compile("Run the check$"))).to_have_count(0)

        # No click: the fragment follows the check and the page shows the report at its end.
        expect(main.get_by_role("heading", name="Report")).to_be_visible(timeout=CHECK_TIMEOUT_MS)
        expect(progress).to_have_count(0, timeout=CHECK_TIMEOUT_MS)
        expect(main.get_by_role("combobox", name="Check")).to_have_value(
            re.compile(rf"^#{before + 1} · {LOOPBACK} · gpt-4o-mini · .* · completed$"))
        table = main.get_by_test_id("stDataFrame").first
        poll(lambda: "10 streams at once" in report_rows(table), "the report's rows")
        rows = report_rows(table)
        assert set(rows) >= {"Connection set-up", "Time to first text", "Inter-token interval",
                             "Inter-token CV", "Interruptions (gaps > 5 s)", "Tokens/s",
                             "10 streams at once"}, rows
        assert rows["Time to first text"]["Grade"] == "excellent", rows
        assert rows["Connection set-up"]["Grade"] == "excellent", rows
        assert rows["Interruptions (gaps > 5 s)"]["Grade"] == "excellent", rows
        assert rows["10 streams at once"]["Grade"] == "excellent", rows
        assert rows["10 streams at once"]["Value"].startswith("100% succeeded"), rows
        assert rows["Inter-token CV"]["Grade"] in {"excellent", "pass", "fail"}, rows
        expect(main.get_by_text("0.15 / 0.6 USD per 1M input / output tokens").first) \
            .to_be_visible()
        expect(main.get_by_role("heading", name="Side by side (latest check of each)")) \
            .to_be_visible()

        ARTIFACTS.mkdir(exist_ok=True)
        main.get_by_role("heading", name="Report").evaluate(
            "e => e.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(ARTIFACTS / "providers-report.png"))

    assert saved(server)[before:] == [(before + 1, LOOPBACK, "completed")]  # saved once
    assert (script.count(TTFT), script.count(LONG), script.count(STREAM)) == (5, 1, 10)
    assert len(fake.requests) - first == 16 and fake.max_active <= 10  # no retries


def test_cancel_a_running_check(browser, app):  # noqa: F811
    from playwright.sync_api import expect

    server, fake = app
    # the long answer: about 5 s
    script = fake.responder = ByKind(long=Reply(text=LONG_TEXT, chunk_chars=12,
                                                 chunk_delay=0.12))
    with tab(browser, server.url + "/") as page:
        main = open_providers_page(page)
        before = len(saved(server))
        first = len(fake.requests)
        confirm_and_run(main)

        poll(lambda: script.count(LONG) == 1, "the long answer to be asked", timeout_s=20)
        long_slot = next(i for i in range(first, len(fake.requests))
                         if fake.requests[i].get("max_tokens") == LONG)
        poll(lambda: fake.chunks_sent[long_slot] >= 3, "the long answer to stream")
        progress = main.get_by_test_id("stProgress")
        expect(progress).to_contain_text(re.compile(rf"Checking {LOOPBACK}:\d+: 10 / 21 · "))
        disconnects = len(fake.disconnects)
        main.get_by_role("button", name=re.compile("Cancel$")).click()

        expect(main.get_by_role("combobox", name="Check")).to_have_value(
            re.compile(rf"^#{before + 1} · {LOOPBACK} · .* · cancelled$"),
            timeout=CHECK_TIMEOUT_MS)
        expect(progress).to_have_count(0)
        poll(lambda: len(fake.disconnects) > disconnects, "the provider to see the close")
        sent_then = len(fake.requests)
        poll(lambda: saved(server)[before:] == [(before + 1, LOOPBACK, "cancelled")],
             "the check to be saved cancelled")
        table = main.get_by_test_id("stDataFrame").first
        poll(lambda: "Time to first text" in report_rows(table), "the report's rows")
        rows = report_rows(table)
        assert rows["Time to first text"]["Grade"] == "excellent", rows  # measured before
        assert "10 streams at once" not in rows, rows  # never started
        # The form is back for the next check; the confirmation starts unticked again.
        expect(main.get_by_role("button", name=re.compile("Run the check$"))).to_be_disabled()

    assert fake.chunks_sent[long_slot] < len(Reply(text=LONG_TEXT, chunk_chars=12).pieces())
    assert script.count(STREAM) == 0  # nothing after the cancel
    assert len(fake.requests) == sent_then == long_slot + 1
    assert fake.active == 0
