"""End to end in a real browser: `streamlit run app.py` driven by Debian's chromium.

One Streamlit server and one `FakeOpenAI` per module; one browser context (= one
Streamlit session) per test. What is checked is what a user sees: the article
appearing while it streams, the word-count progress bar moving, the result, the
History page, Stop in every state of a request. Debian's chromium is used because
`playwright install` needs the network; without it the tests skip, except under CI
(CI=true), where they fail.

The server's output is shown in the report of a failing test. A screenshot of
the finished Write page goes to test-artifacts/write.png (git-ignored).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Reply
from netfaults import ServedReply, connecting_to, drained, unanswered_port
from serving import CHROMIUM as CHROMIUM_PATH
from serving import CHROMIUM_ARGS, NotServing, stop, wait_until_serving
from writer.generation.counting import count_words
from writer.runs.pacing import overshoot_percent
from writer.storage.store import Store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(CHROMIUM_PATH)
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

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"streamlit died (code {self.proc.returncode}):\n{self.log()}",
                        pytrace=False)


@contextlib.contextmanager
def streamlit_server(tmp: Path, env: dict, extra_pythonpath: str | None = None):
    """`streamlit run app.py` on a free loopback port with `env` and a scratch DB."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))},
           "WRITER_DB": str(tmp / "writer.db"), "WRITER_UI_LANGUAGE": "en",
           "WRITER_NO_DOTENV": "1", **env}
    if extra_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([extra_pythonpath, str(ROOT)])
    with serve_app(tmp, env, log_name="streamlit.log") as server:
        yield server


@contextlib.contextmanager
def serve_app(tmp: Path, env: dict, *, address: str = "127.0.0.1", port: int | None = None,
              args: tuple[str, ...] = (), log_name: str | None = None):
    """`streamlit run app.py` in the repository's folder (so its .streamlit/config.toml)
    with exactly `env`, bound to `address`, reached on 127.0.0.1; stopped at the end."""
    port = port or _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true", "--server.address", address,
           "--browser.gatherUsageStats", "false", *args]
    log_path = tmp / (log_name or f"streamlit-{port}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(proc, f"http://127.0.0.1:{port}", log_path, Path(env["WRITER_DB"]))
    try:
        try:
            wait_until_serving(proc, f"{server.url}/_stcore/health", timeout_s=STARTUP_TIMEOUT_S,
                               log=server.log, name="streamlit",
                               ok=lambda body: body.strip() == b"ok")
        except NotServing as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def blackhole():
    """A loopback port where a TCP connect hangs, open for the whole module:
    (port, local ports of the sockets filling its accept queue)."""
    with unanswered_port() as hole:
        yield hole


# Two more providers from WRITER_PROVIDERS_FILE, picked on the Write page only by the
# Stop tests that need them: "blackhole" hangs on connect; "flaky" is the same fake
# under another name, so the broken streams that make the engine fall back to
# non-streamed requests (counted per provider, per server process) never touch the
# default provider the other tests use.
PROVIDERS_TOML = """
[[providers]]
name = "blackhole"
base_url = "http://127.0.0.1:{blackhole_port}/v1"
api_key_env = "BLACKHOLE_KEY"
models = ["gpt-4o-mini"]

[[providers]]
name = "flaky"
base_url = "{fake_url}"
api_key_env = "FLAKY_KEY"
models = ["gpt-4o-mini"]
"""
DEFAULT_PROVIDER = "127.0.0.1"  # the name the app gives OPENAI_BASE_URL=http://127.0.0.1:…
DEFAULT_TITLE = "Loopback"  # … and what the pages call it (WRITER_PROVIDER_NAME)


@pytest.fixture(scope="module")
def app_server(chromium_path, fake_provider, blackhole, tmp_path_factory):
    """The app against the fake provider (the default), plus the providers file above."""
    tmp = tmp_path_factory.mktemp("browser")
    providers_file = tmp / "providers.toml"
    providers_file.write_text(PROVIDERS_TOML.format(blackhole_port=blackhole[0],
                                                    fake_url=fake_provider.base_url))
    env = {"OPENAI_BASE_URL": fake_provider.base_url, "OPENAI_API_KEY": "sk-test",
           "WRITER_MODEL": "gpt-4o-mini", "WRITER_PROVIDERS_FILE": str(providers_file),
           "WRITER_PROVIDER_NAME": DEFAULT_TITLE,
           "BLACKHOLE_KEY": "sk-blackhole", "FLAKY_KEY": "sk-flaky"}
    with streamlit_server(tmp, env) as server:
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
        const button = event.target.closest('button');
        if (timing.click === null && button && button.innerText.includes('Generate'))
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
    english_article(page)
    page.get_by_role("spinbutton", name="Target length (words)").fill(str(TARGET))


def english_article(page) -> None:
    """Article language English; the length field is then counted in words."""
    from playwright.sync_api import expect

    page.get_by_test_id("stRadio").filter(has_text="Article language") \
        .get_by_text("English", exact=True).click()
    expect(page.get_by_role("spinbutton", name="Target length (words)")).to_be_visible()


def free_form(page) -> None:
    """Turn length control off: the whole reply is kept (ARTICLE is ~45 % over TARGET,
    which length control would end at the first sentence past the target)."""
    from playwright.sync_api import expect

    box = page.get_by_role("checkbox", name="Hold to the target length", exact=False)
    page.get_by_test_id("stCheckbox").filter(has_text="Hold to the target length") \
        .locator("label").click()
    expect(box).not_to_be_checked()


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
    free_form(page)
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
    metric = main.get_by_test_id("stMetric")  # figures that wrap, not a table
    expect(metric.filter(has_text="Input tokens")).to_contain_text("350")
    expect(metric.filter(has_text="Output tokens")).to_contain_text("420")
    expect(metric.filter(has_text="Cost")).to_contain_text("USD")
    expect(metric.filter(has_text="Words")).to_contain_text(f"{ARTICLE_WORDS} / {TARGET} words")
    for box in (metric.nth(i).bounding_box() for i in range(metric.count())):
        assert box["x"] + box["width"] <= 1400, box  # none cut off at the viewport's edge
    percent = overshoot_percent(ARTICLE_WORDS, TARGET)
    expect(main.get_by_test_id("stProgress")).to_have_text(
        f"{ARTICLE_WORDS} / {TARGET} words ({percent}% over target)")
    expect(paragraph(main, LAST_WORDS)).to_be_visible()  # the whole article stays on the page
    expect(main.get_by_role("button", name="Markdown", exact=True)).to_be_visible()

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
        free_form(page)
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


def test_length_control_ends_the_article_on_a_sentence_past_the_target(page, fake_provider,
                                                                         app_server):
    """The default: the same ~290-word reply for a 200-word target ends at the first
    sentence end past 200 words, and the provider stream is closed there."""
    from playwright.sync_api import expect

    reply = Reply(**{**REPLY, "chunk_delay": 0.02})
    fake_provider.queue(reply)
    slot = len(fake_provider.chunks_sent)
    disconnects = len(fake_provider.disconnects)
    fill_brief(page, "length control in the browser")
    expect(page.get_by_role("checkbox", name="Hold to the target length", exact=False)) \
        .to_be_checked()  # on by default
    page.get_by_role("button", name="Generate").click()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("stAlertContentSuccess")).to_be_visible()
    article_id = max(r["id"] for r in Store(app_server.db_path).recent())
    row = Store(app_server.db_path).get(article_id)
    assert row["length_outcome"] == "on_target" and TARGET <= row["words"] <= 1.2 * TARGET
    assert row["content"].rstrip().endswith(".") and ARTICLE.startswith(row["content"].rstrip())
    assert fake_provider.chunks_sent[slot] < len(reply.pieces())  # closed before the end
    deadline = time.monotonic() + 5
    while len(fake_provider.disconnects) == disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake_provider.disconnects) > disconnects
    expect(main.get_by_test_id("stProgress")).to_have_text(
        f"{row['words']} / {TARGET} words · on target")
    expect(main.get_by_text("Length: on target", exact=False)).to_be_visible()
    expect(main.get_by_role("button", name="Continue")).to_have_count(0)


def test_a_long_article_shows_its_outline_and_sections(page, fake_provider, app_server):
    from playwright.sync_api import expect

    from scripted_writer import ScriptedWriter

    fake_provider.responder = ScriptedWriter("exact", chunk_delay=0.004)
    try:
        page.get_by_role("textbox", name="Topic", exact=True).fill("a long guide")
        english_article(page)
        page.get_by_role("spinbutton", name="Target length (words)").fill("1600")
        page.get_by_role("button", name="Generate").click()
        main = page.get_by_test_id("stMain")
        expect(main.get_by_test_id("stProgress")).to_contain_text(re.compile(r"section [2-8] / [3-8]"),
                                                                  timeout=30_000)
        expect(main.get_by_text("Outline", exact=True)).to_be_visible()
        expect(main.get_by_test_id("stAlertContentSuccess")).to_be_visible(timeout=60_000)
    finally:
        fake_provider.responder = None
    article_id = max(r["id"] for r in Store(app_server.db_path).recent())
    row = Store(app_server.db_path).get(article_id)
    assert row["outline"] and row["length_outcome"] == "on_target"
    assert 1280 <= row["words"] <= 1920 and row["content"].count("\n## ") >= 3


# The Stop button's click, in the page's own clock (Date.now(): the system clock, ms).
STOP_CLICK_JS = r"""() => {
    window.__stopClick = null;
    document.addEventListener('click', (event) => {
        const button = event.target.closest('button');  // its text also holds the icon's name
        if (window.__stopClick === null && button && /(^|\s)Stop$/.test(button.innerText.trim()))
            window.__stopClick = Date.now();
    }, true);
}"""


def wait_until(condition, what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def pick_provider(page, label: str) -> None:
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name="Provider", exact=True)
    box.click()
    page.get_by_role("option", name=label, exact=True).click()
    expect(box).to_have_value(label)
    wait_for_idle(page)  # the rerun the change started is over


def wait_for_idle(page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


class StopWatcher(threading.Thread):
    """Polls every few ms, from before the click, until the article's row has left
    `streaming` and (`blackhole` given) the half-open connect to it is gone. Each
    time is taken right after the read that saw the change: an upper bound."""

    def __init__(self, db_path: Path, article_id: int, blackhole: tuple | None):
        super().__init__(name="stop-watcher", daemon=True)
        self.db_path, self.article_id, self.blackhole = db_path, article_id, blackhole
        self.row = self.row_seen_at = self.connect_gone_at = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            store = Store(self.db_path)  # a sqlite connection belongs to its thread
        except BaseException as exc:
            self.error = exc
            return
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.blackhole and self.connect_gone_at is None and \
                        not connecting_to(*self.blackhole):
                    self.connect_gone_at = time.monotonic()
                if self.row is None:
                    row = store.get(self.article_id)
                    if row["status"] != "streaming":
                        self.row, self.row_seen_at = row, time.monotonic()
                if self.row is not None and (not self.blackhole or self.connect_gone_at):
                    return
                time.sleep(0.002)
        except BaseException as exc:
            self.error = exc
        finally:
            store.close()


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


ARTICLE_HEAD = ARTICLE[:80]  # what the two broken streams of the fallback case deliver

# state -> (provider picked on the page, has text when stopped, has a provider connection)
STOP_STATES = {
    "flowing": (DEFAULT_PROVIDER, True, True),
    "stalled": (DEFAULT_PROVIDER, True, True),
    "connecting": ("blackhole", False, False),
    "waiting for headers": (DEFAULT_PROVIDER, False, True),
    "waiting for the first token": (DEFAULT_PROVIDER, False, True),
    "waiting to retry": (DEFAULT_PROVIDER, False, False),
    "non-streamed fallback": ("flaky", True, True),
}


@pytest.mark.parametrize("state", list(STOP_STATES),
                         ids=[name.replace(" ", "-") for name in STOP_STATES])
def test_stop_closes_the_provider_connection_and_keeps_the_partial(page, fake_provider, app_server,
                                                                  blackhole, state, capsys):
    """Stop in every state of a request: the provider connection (or the half-open
    connect) is shut within a second of the click, the row is `stopped` within a
    second, the page says Stopped and offers Continue when there is text."""
    from playwright.sync_api import expect

    provider, has_text, has_connection = STOP_STATES[state]
    fake, main = fake_provider, page.get_by_test_id("stMain")
    fake_port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    store = Store(app_server.db_path)
    last_id = max((r["id"] for r in store.recent(1)), default=0)
    slot = len(fake.chunks_sent)  # this state's first request in the fake's records
    disconnects_before = len(fake.disconnects)

    # A fresh browser context is a fresh session: the default provider is preselected,
    # whatever an earlier test picked.
    provider_box = page.get_by_role("combobox", name="Provider", exact=True)
    expect(provider_box).to_have_value(f"{DEFAULT_TITLE} · gpt-4o-mini")
    if provider != DEFAULT_PROVIDER:
        pick_provider(page, f"{provider} · gpt-4o-mini")

    replies = {
        "flowing": [Reply(text=ARTICLE, chunk_chars=20, chunk_delay=0.05)],
        "stalled": [Reply(text=ARTICLE, chunk_chars=20, stall_after=4, stall_seconds=30)],
        "connecting": [],
        "waiting for headers": [Reply(text=ARTICLE, header_delay=30)],
        "waiting for the first token": [ServedReply(text=ARTICLE, first_delay=30)],
        "waiting to retry": [Reply(status=429, headers={"Retry-After": "30"})],
        # Two streams break after two chunks each (the second one is the continuation),
        # so the engine asks the third time without streaming; that answer never comes.
        "non-streamed fallback": [Reply(text=ARTICLE, chunk_chars=20, drop_after=2),
                                  Reply(text=ARTICLE[40:], chunk_chars=20, drop_after=2),
                                  Reply(text=ARTICLE[80:], first_delay=30)],
    }[state]
    fake.queue(*replies)
    fill_brief(page, f"stop while {state}")
    page.get_by_role("button", name="Generate").click()

    # Wait for the state itself, never for a fixed time.
    if state == "flowing":
        expect(paragraph(main, MARKER)).to_be_visible()
        assert fake.chunks_sent[slot] < len(replies[0].pieces()), "the stream already ended"
    elif state == "stalled":
        expect(paragraph(main, MARKER)).to_be_visible()
        wait_until(lambda: fake.chunks_sent[slot] == 4 and drained(fake_port),
                   "the app to have read the 4 chunks sent before the stall")
    elif state == "connecting":
        wait_until(lambda: connecting_to(*blackhole), "a TCP connect in SYN_SENT")
    elif state == "waiting for headers":
        wait_until(lambda: len(fake.requests) > slot, "the request to reach the provider")
    elif state == "waiting for the first token":
        wait_until(lambda: replies[0].served_at is not None and drained(fake_port),
                   "the app to have read the headers and the role chunk")
    elif state == "waiting to retry":
        expect(main.get_by_test_id("stAlertContentWarning")).to_contain_text("retrying in")
    elif state == "non-streamed fallback":
        expect(paragraph(main, MARKER)).to_be_visible()
        wait_until(lambda: len(fake.requests) > slot + 2, "the third request")
        assert fake.requests[slot + 2].get("stream") is not True, fake.requests[slot + 2]
    assert not fake._queue, "a queued reply was not asked for"  # nothing leaks into later tests
    article_id = store.recent(1)[0]["id"]
    assert article_id > last_id and store.get(article_id)["status"] == "streaming"

    watcher = StopWatcher(app_server.db_path, article_id,
                          blackhole if state == "connecting" else None)
    watcher.start()  # polling from before the click, so what follows is timed to a few ms
    page.evaluate(STOP_CLICK_JS)
    before = time.monotonic()
    main.get_by_role("button", name="Stop").click()
    after = time.monotonic()
    clock_offset = time.time() - time.monotonic()  # wall clock → this process's monotonic
    click_epoch = page.evaluate("window.__stopClick") / 1000  # when the browser saw the click
    clicked = click_epoch - clock_offset
    assert before - 0.005 <= clicked <= after + 0.005, (before, clicked, after)

    deadline = clicked + 5
    while len(fake.disconnects) == disconnects_before and has_connection and \
            time.monotonic() < deadline:
        time.sleep(0.005)
    disconnected_at = fake.disconnects[disconnects_before] \
        if len(fake.disconnects) > disconnects_before else None  # the fake's own timestamp
    watcher.join(10)
    assert watcher.error is None, repr(watcher.error)
    row, stopped_seen_at, abandoned_at = watcher.row, watcher.row_seen_at, watcher.connect_gone_at
    store.close()

    assert row is not None, f"the row was still streaming 10 s after the click ({state})"
    assert row["status"] == "stopped", row["status"]
    assert row["error_kind"] != "interrupted", "stopped by the stale-row recovery, not by Stop"
    # A reader saw the row stopped at `seen_after` (the watcher's upper bound); the job
    # stamped the write (updated_at, ms) at `written_after`, just before committing it.
    seen_after = stopped_seen_at - clicked
    written_after = _epoch(row["updated_at"]) - click_epoch
    assert -0.002 <= written_after <= seen_after + 0.002, (written_after, seen_after)
    if has_connection:
        assert disconnected_at is not None, f"the provider never saw a disconnect ({state})"
        closed_after = disconnected_at - clicked
        shown = f"{closed_after * 1000:.0f} ms"
    elif state == "connecting":
        assert abandoned_at is not None, "the half-open connect is still in SYN_SENT"
        closed_after = abandoned_at - clicked
        shown = (f"n/a (no connection yet; the half-open connect was gone "
                 f"{closed_after * 1000:.0f} ms)")
    else:
        closed_after = 0.0
        shown = "n/a (no connection open while waiting)"
    with capsys.disabled():
        print(f"\n[browser] Stop ({state}): provider disconnect {shown}, "
              f"row stopped {seen_after * 1000:.0f} ms after the click "
              f"(written at {written_after * 1000:.0f} ms)")
    assert closed_after < 1.0, f"connection closed {closed_after:.3f} s after the click"
    assert seen_after < 1.0, f"the row was stopped {seen_after:.3f} s after the click"

    # The row: who was asked, what was kept.
    assert row["provider"] == provider
    if state == "non-streamed fallback":
        assert row["content"] == ARTICLE_HEAD and row["fallback"] == 1 and row["resumes"] == 2
    elif has_text:
        sent = "".join(replies[0].pieces()[:fake.chunks_sent[slot]])
        assert row["content"] and sent.startswith(row["content"])
        assert len(row["content"]) >= len(sent) - 20 * 2  # at most the chunks in flight are lost
    else:
        assert row["content"] == ""
    if state == "waiting to retry":
        assert row["retries"] == 1 and len(fake.requests) == slot + 1  # the retry was never sent
    if state == "connecting":
        assert len(fake.requests) == slot  # no failover to the fake after a Stop

    # The page: Stopped, and Continue only when there is text to continue.
    expect(main.get_by_test_id("stAlertContentInfo").filter(
        has_text=f"Stopped; the text written so far is saved as #{article_id}.")).to_be_visible()
    wait_for_idle(page)
    continue_button = main.get_by_role("button", name="Continue")
    if has_text:
        expect(continue_button).to_be_visible()
    else:
        expect(continue_button).to_have_count(0)


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
        # the offline note tells the truth: a demo, fluent but with unreliable facts
        expect(main.get_by_text("unreliable facts, figures and names", exact=False).first
               ).to_be_visible(timeout=UI_TIMEOUT_MS)
        # one line: Generate is above the fold at 1280×800 (the whole note in a tooltip)
        page.set_viewport_size({"width": 1280, "height": 800})
        generate_box = page.get_by_test_id("stBaseButton-primary").first.bounding_box()
        assert generate_box and generate_box["y"] + generate_box["height"] <= 800
        page.set_viewport_size({"width": 1400, "height": 1000})
        topic = page.get_by_role("textbox", name="Topic", exact=True)
        topic.fill("why streaming output matters")
        topic.press("Enter")
        expect(main.get_by_test_id("stAlertContentWarning")).to_have_count(0)
        english_article(page)
        page.get_by_role("spinbutton", name="Target length (words)").fill("150")
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
