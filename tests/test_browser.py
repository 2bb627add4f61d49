"""End to end in a real browser: `streamlit run app.py` driven by Debian's chromium.

One Streamlit server and one `FakeOpenAI` per module; one browser context (= one
Streamlit session) per test. What is checked is what a user sees: the article
appearing while it streams, the word-count progress bar moving, the result, the
History page. Debian's chromium is used because `playwright install` needs the
network; without it the tests skip, except under CI (CI=true), where they fail.

The server's output is shown in the report of a failing test. A screenshot of
the finished Write page goes to test-artifacts/write.png (git-ignored).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Reply
from writer.counting import count_words
from writer.pacing import overshoot_percent
from writer.store import Store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
STARTUP_TIMEOUT_S = 30
UI_TIMEOUT_MS = 15_000

TOPIC = "Why streaming output matters"
TARGET = 200
FIRST_WORDS = "Readers decide within seconds"
MARKER = "Readers decide"  # inside the first 20-character chunk
LAST_WORDS = "keep the reader with you."


def _article() -> str:
    """Close to 300 words of plain English prose (no Markdown that would change the text)."""
    sentences = [
        f"{FIRST_WORDS} whether an assistant is worth waiting for.",
        "When the first words arrive at once, the wait feels shorter and the reader starts to read.",
        "A blank screen, even for a few seconds, makes people wonder whether anything is happening.",
        "Streaming turns that silence into progress that anyone can see and follow.",
        "It also lets a writer stop early when the draft is clearly heading the wrong way.",
        "That saves time, tokens and money, which matters for teams that write every day.",
        "A progress bar that counts words against the target tells the reader how far along it is.",
        "It should move smoothly, not in sudden jumps that hide the real pace of the model.",
        "Good streaming is more than sending bytes as soon as they exist.",
        "The interface has to paint the text without freezing, even when the article grows long.",
        "Painting every tiny fragment wastes effort, so updates are grouped on a short budget.",
        "The first fragment is still shown immediately, because that moment shapes the whole experience.",
        "Errors deserve the same care: a clear message and a saved draft beat a spinning wheel.",
        "If the connection drops halfway, the partial article should survive and be easy to resume.",
        "Costs should be visible too, so nobody is surprised by the bill at the end of the month.",
        "Token counts, the time to the first token and the total time help compare providers fairly.",
        "History matters as much as the live view, since writers return to earlier drafts.",
        "A simple table, a way to open any article and a download button cover most needs.",
        "None of this is complicated, but each detail removes a small doubt from the reader's mind.",
        f"Show the first words quickly, count them honestly and {LAST_WORDS}",
    ]
    paragraphs = [" ".join(sentences[i:i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs) + "\n"


ARTICLE = _article()
ARTICLE_WORDS = count_words(ARTICLE)
assert 280 <= ARTICLE_WORDS <= 300, ARTICLE_WORDS
REPLY = dict(text=ARTICLE, chunk_chars=20, chunk_delay=0.03, usage=(350, 420))
PROGRESS_RE = re.compile(rf"(\d+) / {TARGET} words")


# ---- fixtures ---------------------------------------------------------------------------

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        reason = (f"{CHROMIUM} not found: browser tests need Debian's chromium "
                  "(`apt-get install chromium`); `playwright install` cannot download browsers here")
        if _in_ci():
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def fake_provider():
    with FakeOpenAI() as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path, db_path: Path):
        self.proc, self.url, self.log_path, self.db_path = proc, url, log_path, db_path

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")


@contextlib.contextmanager
def streamlit_server(tmp: Path, env: dict, extra_pythonpath: str | None = None):
    """`streamlit run app.py` on a free loopback port with `env` and a scratch DB."""
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))},
           "WRITER_DB": str(tmp / "writer.db"), "WRITER_UI_LANGUAGE": "en",
           "WRITER_NO_DOTENV": "1", **env}
    if extra_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([extra_pythonpath, str(ROOT)])
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false"]
    log_path = tmp / "streamlit.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(proc, f"http://127.0.0.1:{port}", log_path, tmp / "writer.db")
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before it was healthy:\n"
                            f"{server.log()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit was not healthy after {STARTUP_TIMEOUT_S} s:\n{server.log()}",
                            pytrace=False)
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def app_server(chromium_path, fake_provider, tmp_path_factory):
    """The app against the fake provider."""
    env = {"OPENAI_BASE_URL": fake_provider.base_url, "OPENAI_API_KEY": "sk-test",
           "WRITER_MODEL": "gpt-4o-mini"}
    with streamlit_server(tmp_path_factory.mktemp("browser"), env) as server:
        yield server


@pytest.fixture(autouse=True)
def server_log_on_failure(request):
    """Print the server's output after each test; pytest shows it only when the test fails."""
    if "app_server" not in request.fixturenames:
        yield
        return
    server: AppServer = request.getfixturevalue("app_server")
    if server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {server.proc.returncode}):\n{server.log()}", pytrace=False)
    yield
    state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
    print(f"--- streamlit output so far (server {state}) ---\n{server.log()}", file=sys.stderr)


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser, app_server):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_server.url + "/")
    page.get_by_role("textbox", name="Topic", exact=True).wait_for()
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# ---- helpers ----------------------------------------------------------------------------

SNAPSHOT_JS = """(marker) => {
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main) return {progress: [], article: null, success: []};
    const article = [...main.querySelectorAll('[data-testid="stMarkdownContainer"]')]
        .map(e => e.innerText).find(text => text.includes(marker));
    return {
        progress: [...main.querySelectorAll('[data-testid="stProgress"]')].map(e => e.innerText.trim()),
        article: article === undefined ? null : article,
        success: [...main.querySelectorAll('[data-testid="stAlertContentSuccess"]')].map(e => e.innerText),
    };
}"""

# Timestamps in the page's own clock: the Generate click, and the first DOM mutation
# after which the article's first words are in the main area.
TIMING_JS = """(marker) => {
    const timing = window.__writerTiming = {click: null, firstText: null};
    document.addEventListener('click', (event) => {
        if (timing.click === null && event.target.closest('[data-testid="stFormSubmitButton"]'))
            timing.click = performance.now();
    }, true);
    const main = document.querySelector('[data-testid="stMain"]');
    const observer = new MutationObserver(() => {
        if (timing.click !== null && main.textContent.includes(marker)) {
            timing.firstText = performance.now();
            observer.disconnect();
        }
    });
    observer.observe(main, {subtree: true, childList: true, characterData: true});
}"""


def paragraph(main, text: str):
    """The rendered Markdown paragraph holding `text` (not the copy in the source code block)."""
    return main.get_by_test_id("stMarkdownContainer").get_by_role("paragraph").filter(has_text=text)


def fill_brief(page, topic: str) -> None:
    page.get_by_role("textbox", name="Topic", exact=True).fill(topic)
    page.get_by_role("spinbutton", name="Target length (words)").fill(str(TARGET))
    page.get_by_test_id("stRadio").filter(has_text="Article language") \
        .get_by_text("English", exact=True).click()


def generate_and_watch(page, fake: FakeOpenAI, timeout_s: float = 20) -> dict:
    """Queue the article, click Generate, and poll the DOM every ~50 ms until the
    success message shows. Each snapshot records how many chunks the fake had sent
    *after* the DOM was read, so `sent < total` proves the stream was still going."""
    reply = Reply(**REPLY)
    total = len(reply.pieces())
    fake.queue(reply)
    slot = len(fake.chunks_sent)  # this request's index in the fake's records
    page.evaluate(TIMING_JS, MARKER)
    page.get_by_role("button", name="Generate").click()
    snapshots = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snap = page.evaluate(SNAPSHOT_JS, MARKER)
        snap["sent"] = fake.chunks_sent[slot] if len(fake.chunks_sent) > slot else 0
        snapshots.append(snap)
        if snap["success"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"no success message after {timeout_s} s; last DOM snapshot: {snapshots[-1]}")
    timing = page.evaluate("window.__writerTiming")
    return {"snapshots": snapshots, "total_chunks": total, "slot": slot, "timing": timing}


def full_page_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its own container, so grow the viewport to the content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => Math.max(
        ...['[data-testid="stMain"]', '[data-testid="stMainBlockContainer"]']
        .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": 1400, "height": min(max(1000, height + 80), 8000)})
    page.wait_for_timeout(300)  # let the layout settle after the resize
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


# ---- tests ------------------------------------------------------------------------------

def test_write_flow_streams_into_the_page(page, fake_provider, app_server, capsys):
    from playwright.sync_api import expect

    assert Store(app_server.db_path).count() == 0, "the write flow must run on an empty database"
    fill_brief(page, TOPIC)
    seen = generate_and_watch(page, fake_provider)
    snaps, total = seen["snapshots"], seen["total_chunks"]

    # The request reached the fake with what was typed in the form.
    request = fake_provider.requests[seen["slot"]]
    prompt = "\n".join(str(m.get("content", "")) for m in request["messages"])
    assert TOPIC in prompt and str(TARGET) in prompt

    # (a) article text in the DOM while the fake was still sending, and only part of it.
    streaming = [s for s in snaps if s["sent"] < total and not s["success"]]
    partial = [s for s in streaming if s["article"] and LAST_WORDS not in s["article"]]
    assert partial, ("the article never appeared before the stream ended; "
                     f"{len(snaps)} snapshots, sent per snapshot: {[s['sent'] for s in snaps]}")

    # (b) the progress bar counted words upwards while streaming.
    counts = []
    for s in streaming:
        for text in s["progress"]:
            match = PROGRESS_RE.search(text)
            if match and (not counts or counts[-1] != int(match.group(1))):
                counts.append(int(match.group(1)))
    assert len(counts) >= 2, f"progress text seen with fewer than 2 counts while streaming: {counts}"
    assert counts == sorted(counts) and counts[0] < counts[-1], f"word counts went down: {counts}"
    assert counts[0] < ARTICLE_WORDS

    # (c) the end state: saved, stats, overshoot.
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("stAlertContentSuccess")).to_contain_text("saved as #1")
    stats = main.locator("table").filter(has_text="Input tokens")
    expect(stats).to_contain_text("350")
    expect(stats).to_contain_text("420")
    expect(stats).to_contain_text("USD")
    expect(stats).to_contain_text(f"{ARTICLE_WORDS} / {TARGET}")
    percent = overshoot_percent(ARTICLE_WORDS, TARGET)
    expect(main.get_by_test_id("stProgress")).to_have_text(
        f"{ARTICLE_WORDS} / {TARGET} words ({percent}% over target)")
    expect(paragraph(main, LAST_WORDS)).to_be_visible()  # the whole article stays on the page
    expect(main.get_by_role("button", name="Download Markdown")).to_be_visible()

    row = Store(app_server.db_path).get(1)
    assert row["status"] == "completed" and row["content"] == ARTICLE

    full_page_screenshot(page, ARTIFACTS / "write.png")

    timing = seen["timing"]
    assert timing["click"] is not None and timing["firstText"] is not None, timing
    click_to_text = timing["firstText"] - timing["click"]
    with capsys.disabled():
        print(f"\n[browser] click → first article text in the DOM: {click_to_text:.0f} ms "
              f"(server-side time to first token: {row['ttft_ms']:.0f} ms; "
              f"progress counts seen while streaming: {len(counts)}; "
              f"DOM snapshots: {len(snaps)}; screenshot: {ARTIFACTS / 'write.png'})")


def test_history_lists_the_article(page, fake_provider, app_server):
    from playwright.sync_api import expect

    if Store(app_server.db_path).count() == 0:  # run on its own (-k history): write one first
        fill_brief(page, TOPIC)
        generate_and_watch(page, fake_provider)
        page.goto(app_server.url + "/")
        page.get_by_role("textbox", name="Topic", exact=True).wait_for()

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="History").click()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="History")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/history"))
    expect(main.get_by_test_id("stDataFrame")).to_be_visible()
    expect(main.get_by_role("combobox", name="Open article")).to_have_value(f"#1 · {TOPIC}")
    expect(paragraph(main, FIRST_WORDS)).to_be_visible()  # the article rendered below the table
    expect(paragraph(main, LAST_WORDS)).to_be_visible()
    expect(main.get_by_test_id("stAlertContentSuccess")).to_contain_text("saved as #1")

    download_button = main.get_by_role("button", name="Markdown", exact=True)
    expect(download_button).to_be_visible()
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == "1-why-streaming-output-matters.md"
    assert Path(download.path()).read_text(encoding="utf-8") == ARTICLE


@pytest.mark.parametrize("fault", [
    {"stall_after": 4, "stall_seconds": 30},  # the provider has gone quiet mid-answer
    {"chunk_delay": 0.05},  # text still flowing
], ids=["stalled", "flowing"])
def test_stop_closes_the_provider_connection_and_keeps_the_partial(page, fake_provider,
                                                                  app_server, fault):
    from playwright.sync_api import expect

    reply = Reply(text=ARTICLE, chunk_chars=20, **fault)
    fake_provider.queue(reply)
    slot = len(fake_provider.chunks_sent)
    disconnects_before = len(fake_provider.disconnects)
    fill_brief(page, "stop this one")
    page.get_by_role("button", name="Generate").click()
    main = page.get_by_test_id("stMain")
    expect(paragraph(main, MARKER)).to_be_visible()
    if "stall_after" in fault:  # wait until the provider is really stalling
        deadline = time.monotonic() + 10
        while fake_provider.chunks_sent[slot] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    clicked = time.monotonic()
    main.get_by_role("button", name="Stop").click()
    deadline = clicked + 5
    while len(fake_provider.disconnects) == disconnects_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(fake_provider.disconnects) > disconnects_before, "the provider never saw a disconnect"
    closed_after = fake_provider.disconnects[-1] - clicked
    print(f"[browser] Stop ({'stalled' if 'stall_after' in fault else 'flowing'}): provider "
          f"connection closed {closed_after * 1000:.0f} ms after the click")
    assert closed_after < 1.0
    expect(main.get_by_test_id("stAlertContentInfo").filter(has_text="Stopped")).to_be_visible()
    article_id = max(r["id"] for r in Store(app_server.db_path).recent())
    row = Store(app_server.db_path).get(article_id)
    sent = "".join(reply.pieces()[:fake_provider.chunks_sent[slot]])
    assert row["status"] == "stopped" and row["content"] and sent.startswith(row["content"])
    assert len(row["content"]) >= len(sent) - 20 * 2  # at most the chunks in flight are lost
    expect(main.get_by_role("button", name="Continue")).to_be_visible()


def test_without_key_or_network_the_local_model_writes_in_the_browser(browser, tmp_path):
    """No OPENAI_API_KEY, a server whose every non-loopback connection is refused
    (tests/netguard), and a browser that records any request leaving the machine."""
    from playwright.sync_api import expect

    guard_log = tmp_path / "netguard.log"
    env = {"NETGUARD_LOG": str(guard_log)}
    with streamlit_server(tmp_path, env, extra_pythonpath=str(ROOT / "tests" / "netguard")) as server:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page = context.new_page()
        outside = []
        page.on("request", lambda r: outside.append(r.url)
                if not re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)[:/]", r.url)
                and not r.url.startswith(("data:", "blob:", "about:")) else None)
        page.goto(server.url + "/")
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("small bundled local model", exact=False).first).to_be_visible(
            timeout=UI_TIMEOUT_MS)
        expect(main.get_by_text("writes English only", exact=False).first).to_be_visible()
        page.get_by_role("textbox", name="Topic", exact=True).fill("why streaming output matters")
        page.get_by_role("spinbutton", name="Target length (words)").fill("150")
        page.get_by_test_id("stRadio").filter(has_text="Article language") \
            .get_by_text("English", exact=True).click()
        page.get_by_role("button", name="Generate").click()
        counts = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            snap = page.evaluate(SNAPSHOT_JS, "")
            match = re.search(r"(\d+) / 150 words", " ".join(snap["progress"]))
            if match and (not counts or counts[-1] != int(match.group(1))):
                counts.append(int(match.group(1)))
            if snap["success"] or main.get_by_test_id("stAlertContentWarning").count():
                break
            time.sleep(0.05)
        context.close()
        row = Store(server.db_path).get(1)
        assert row is not None, server.log()
        assert row["provider"] == "local" and row["status"] in ("completed", "truncated")
        assert row["usage_source"] == "reported" and row["output_tokens"] > 0
        assert len(counts) >= 2, f"the progress bar did not move while streaming: {counts}"
        assert not guard_log.exists(), f"the server tried the network: {guard_log.read_text()}"
        assert outside == [], f"the page requested outside addresses: {outside}"
