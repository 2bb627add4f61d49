"""The Batch page in a real browser: `streamlit run app.py`, Debian's chromium, the
loopback `FakeOpenAI` answering as `ScriptedWriter` (about the length asked).

A user uploads a spreadsheet with Chinese headers and an extra column, sees the two
rows that cannot be written marked in the preview, starts the batch, watches it end,
downloads the results (CSV with a BOM, the extra column carried over) and follows
the link to History, which lists only that batch's articles. Then: Stop a running
batch and Resume it from the page, and every row has exactly one article.

Same machinery as tests/views/test_browser_jobs.py, with a server and a fake of this
module's own. Screenshots (1280×800) go to test-artifacts/ (git-ignored):
batch-running.png and batch-done.png.
"""
from __future__ import annotations

import contextlib
import csv
import io
import re
import sqlite3
import sys

import pytest

from fake_openai import FakeOpenAI, Reply
from scripted_writer import ScriptedWriter
from serving import GRID_JS
from test_browser import ARTIFACTS, browser, chromium_path, streamlit_server  # noqa: F401 (fixtures)
from test_browser_jobs import poll, server_env, tab
from writer.brief import Brief
from writer.kinds import Status
from writer.storage.store import Store

pytestmark = pytest.mark.browser

CSV_ROWS = [
    ["主题", "类型", "字数", "语言", "SKU"],
    ["便携咖啡机 MiniBrew 上手体验", "产品描述", "120", "中文", "SKU-001"],
    ["Cold brew at home", "blog", "150", "英文", "SKU-002"],
    ["", "博客", "100", "中文", "SKU-003"],  # no topic
    ["双十一咖啡节活动预告", "社交媒体帖子", "100", "中文", "SKU-004"],
    ["Espresso grinder guide", "博客", "两百", "英文", "SKU-005"],  # not a number
    ["办公室咖啡角改造方案", "营销文案", "120", "中文", "SKU-006"],
    ["Latte art basics", "blog", "100", "en", "SKU-007"],
    ["Travel mug review", "产品描述", "100", "English", "SKU-008"],
]
CSV_TEXT = "\n".join(",".join(row) for row in CSV_ROWS) + "\n"
INVALID = {3: "✗ empty topic", 5: "✗ length «两百» is not a whole number from 50 to 20000"}
VALID = [n for n in range(1, len(CSV_ROWS)) if n not in INVALID]  # 6 rows
TOPIC = {n: CSV_ROWS[n][0] for n in VALID}
DONE_TIMEOUT_MS = 30_000


# ---- fixtures ---------------------------------------------------------------------------

class Writer:
    """ScriptedWriter("exact"), except that requests about a topic in `hold` stream
    three chunks and then wait until the client goes away (a row "in flight")."""

    def __init__(self):
        self.writer = ScriptedWriter("exact", chunk_chars=24)
        self.hold: set[str] = set()
        self.topics: list[str | None] = []  # the batch topic of each request

    def __call__(self, request: dict) -> Reply:
        prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages") or [])
        topic = next((t for t in TOPIC.values() if t in prompt), None)
        self.topics.append(topic)
        reply = self.writer(request)
        if topic in self.hold:
            reply.stall_after, reply.stall_seconds = 3, 30
        return reply


@pytest.fixture(scope="module")
def batch_server(chromium_path, tmp_path_factory):  # noqa: F811
    """This module's fake provider and app server (a scratch database)."""
    tmp = tmp_path_factory.mktemp("browser-batch")
    with FakeOpenAI() as fake:
        with streamlit_server(tmp, server_env(fake)) as server:
            yield server, fake


@pytest.fixture
def app(batch_server):
    server, fake = batch_server
    if server.proc.poll() is not None:
        pytest.fail(f"streamlit died (code {server.proc.returncode}):\n{server.log()}",
                    pytrace=False)
    fake.responder = Writer()
    yield server, fake, fake.responder
    fake.responder.hold.clear()
    state = "running" if server.proc.poll() is None else f"exited with {server.proc.returncode}"
    print(f"--- streamlit output ({server.url}, {state}) ---\n{server.log()}", file=sys.stderr)


# ---- helpers ----------------------------------------------------------------------------

def grid(frame) -> dict[int, dict]:
    """An st.dataframe's rows (glide's accessible table), by the first column (Row, ID)."""
    rows = frame.evaluate(GRID_JS) or []
    return {int(next(iter(r.values()))): r for r in rows if r}


def db(server) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=10)


def batch_articles(server, batch_id: int) -> list[tuple]:
    """(batch_row, article id, status, updated_at) of every article of the batch,
    deleted ones included."""
    with contextlib.closing(db(server)) as conn:
        return conn.execute("SELECT batch_row, id, status, updated_at FROM articles "
                            "WHERE batch_id = ? ORDER BY batch_row, id", [batch_id]).fetchall()


def contents(server, batch_id: int, numbers) -> dict[int, tuple[int, str]]:
    """(article id, text) of these rows."""
    with contextlib.closing(db(server)) as conn:
        found = conn.execute("SELECT batch_row, id, content FROM articles WHERE batch_id = ? "
                             "AND deleted_at IS NULL", [batch_id]).fetchall()
    return {row: (article, text) for row, article, text in found if row in numbers}


def states(server, batch_id: int) -> dict[int, str]:
    return {row: status for row, _, status, _ in batch_articles(server, batch_id)}


def assert_one_article_per_row(server, batch_id: int) -> None:
    found = batch_articles(server, batch_id)
    rows = [row for row, *_ in found]
    assert sorted(rows) == VALID, f"articles per row: {found}"  # none twice, none missing
    with contextlib.closing(db(server)) as conn:
        (batch,) = conn.execute("SELECT status, valid_rows, completed_rows, failed_rows "
                                "FROM batches WHERE id = ?", [batch_id]).fetchall()
    assert batch == ("done", len(VALID), len(VALID), 0), batch


def open_batch_page(page):
    """From the app's first page, by the sidebar's link."""
    from playwright.sync_api import expect

    page.get_by_role("textbox", name="Topic", exact=True).wait_for()
    nav = page.get_by_test_id("stSidebarNav")
    expect(nav.get_by_role("link")).to_have_text(  # (each after its icon's name)
        [re.compile(f"{name}$") for name in ("Write", "Batch", "Brand kits", "History",
                                             "Usage & cost", "Providers", "Settings")])
    nav.get_by_role("link", name="Batch", exact=True).click()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="Batch writing")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/batch"))
    expect(page.get_by_test_id("stSidebar")).to_contain_text("AI Writing Assistant")  # app.py's
    uploader = main.get_by_test_id("stFileUploader")
    new = main.get_by_role("radio", name="New batch", exact=True)  # the segmented control
    expect(uploader.or_(new).first).to_be_visible()
    if new.count():  # a batch exists (another test of this module): the form is one click away
        new.click()
    expect(uploader).to_be_visible()
    return main


def batch_ids(server) -> set[int]:
    with contextlib.closing(db(server)) as conn:
        return {i for (i,) in conn.execute("SELECT id FROM batches")}


def upload_and_start(page, main, server) -> int:
    """Upload the CSV, check the preview, click Start; the new batch's id."""
    from playwright.sync_api import expect

    main.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        {"name": "咖啡选题.csv", "mimeType": "text/csv", "buffer": CSV_TEXT.encode("utf-8")})
    metrics = main.get_by_test_id("stMetric")
    expect(metrics).to_have_text([re.compile(r"Rows\s*8"), re.compile(r"Ready\s*6"),
                                  re.compile(r"With errors \(skipped\)\s*2")])
    expect(main.get_by_text("Kept and carried to the results: SKU")).to_be_visible()
    expect(main.get_by_test_id("stAlertContentInfo")).to_contain_text("Estimate for 6 rows")
    preview = main.get_by_test_id("stDataFrame")
    poll(lambda: len(grid(preview)) == 8, "the preview's 8 rows")
    rows = grid(preview)
    assert {n: r["Check"] for n, r in rows.items() if r["Check"] != "✓"} == INVALID
    assert [rows[n]["Topic"] for n in VALID] == [TOPIC[n] for n in VALID]
    assert (rows[5]["Topic"], rows[5]["Target length (words)"]) == ("Espresso grinder guide",
                                                                      "两百")
    assert (rows[1]["Content type"], rows[2]["Article language"]) == ("Product description",
                                                                      "English")

    known = batch_ids(server)
    main.get_by_role("button", name="Start writing 6 rows").click()
    poll(lambda: batch_ids(server) - known, "the batch to be saved")
    (batch_id,) = batch_ids(server) - known
    expect(page).to_have_url(re.compile(rf"[?&]batch={batch_id}\b"))  # it shows the new one
    return batch_id


def screenshot(page, name: str) -> None:
    """The viewport of `tab` (1280×800), scrolled to the batch's selector: its status,
    progress, buttons and table."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("stMain").get_by_test_id("stSelectbox").first.evaluate(
        "e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / name))


# ---- tests ------------------------------------------------------------------------------

def test_upload_check_start_download_and_history(browser, app):  # noqa: F811
    from playwright.sync_api import expect

    server, fake, writer = app
    store = Store(server.db_path)
    try:  # an article of no batch: History's batch filter must leave it out
        other = store.create_article(Brief(topic="written on the Write page", language="en"),
                                     provider="127.0.0.1", model="gpt-4o-mini", max_tokens=None,
                                     status=Status.STOPPED)
    finally:
        store.close()

    with tab(browser, server.url + "/") as page:
        main = open_batch_page(page)
        batch_id = upload_and_start(page, main, server)
        expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
            "Done — rows written: 6, failed: 0.", timeout=DONE_TIMEOUT_MS)
        expect(main.get_by_test_id("stProgress")).to_contain_text("6 / 6 rows · ")
        expect(main.get_by_role("button", name=re.compile("Stop|Resume|Retry"))).to_have_count(0)
        assert_one_article_per_row(server, batch_id)
        assert states(server, batch_id) == {n: "completed" for n in VALID}

        table = main.get_by_test_id("stDataFrame")
        poll(lambda: len(grid(table)) == 8, "the batch's 8 rows")
        rows = grid(table)
        ids = {row: article for row, article, *_ in batch_articles(server, batch_id)}
        for n in VALID:
            assert rows[n]["Status"] == "completed", rows[n]
            assert rows[n]["Topic"] == TOPIC[n]
            assert rows[n]["Article"] == f"/?article={ids[n]}", rows[n]  # the link's target
        assert {n: (rows[n]["Status"], rows[n]["Error"]) for n in INVALID} == {
            3: ("invalid", "empty topic"),
            5: ("invalid", "length «两百» is not a whole number from 50 to 20000")}
        screenshot(page, "batch-done.png")

        # Results: CSV for Excel (UTF-8 with a BOM), the input's columns first.
        with page.expect_download() as info:
            main.get_by_role("button", name="CSV (Excel)").click()
        download = info.value
        assert download.suggested_filename == f"batch-{batch_id}.csv"
        data = open(download.path(), "rb").read()
        assert data.startswith(b"\xef\xbb\xbf"), data[:20]
        results = list(csv.DictReader(io.StringIO(data[3:].decode("utf-8"))))
        assert list(results[0])[:5] == CSV_ROWS[0]
        assert [r["SKU"] for r in results] == [row[4] for row in CSV_ROWS[1:]]
        assert {int(r["row"]): r["status"] for r in results} == {
            **{n: "completed" for n in VALID}, 3: "invalid", 5: "invalid"}
        assert all(r["article"] for r in results if r["status"] == "completed")

        # History, by the page's link: this batch's articles and no other.
        main.get_by_role("link", name="These articles in History").click()
        expect(page).to_have_url(re.compile(rf"/history\?(.*&)?batch={batch_id}\b"))
        expect(main.get_by_role("heading", name="History")).to_be_visible()
        expect(main.get_by_role("combobox", name="Batch")).to_have_value(
            f"#{batch_id} · 咖啡选题.csv")
        expect(main.get_by_text("Articles: 6", exact=True)).to_be_visible()
        listed = main.get_by_test_id("stDataFrame")
        poll(lambda: set(grid(listed)) == set(ids.values()), "History to list the batch's 6")
        assert other not in grid(listed)


def test_stop_a_running_batch_and_resume_it(browser, app):  # noqa: F811
    from playwright.sync_api import expect

    server, fake, writer = app
    held = {7, 8}  # the last two rows: in flight when Stop is clicked
    writer.hold = {TOPIC[n] for n in held}
    with tab(browser, server.url + "/") as page:
        main = open_batch_page(page)
        disconnects = len(fake.disconnects)
        batch_id = upload_and_start(page, main, server)
        poll(lambda: states(server, batch_id) == {
            **{n: "completed" for n in VALID if n not in held}, 7: "streaming", 8: "streaming"},
            "four rows written and two in flight", timeout_s=20, every_s=0.05)
        expect(main.get_by_test_id("stProgress")).to_contain_text("4 / 6 rows · ")
        table = main.get_by_test_id("stDataFrame")
        poll(lambda: [grid(table).get(n, {}).get("Status") for n in held] == ["streaming"] * 2,
             "the table to show the two rows in flight")
        stop = main.get_by_role("button", name="Stop (pause)")
        expect(stop).to_be_enabled()
        screenshot(page, "batch-running.png")
        before = {row: updated for row, _, status, updated in batch_articles(server, batch_id)
                  if status == "completed"}

        stop.click()
        expect(main.get_by_test_id("stAlertContentInfo")).to_contain_text("Paused.")
        resume = main.get_by_role("button", name="Resume (2 rows left)")
        expect(resume).to_be_visible()
        expect(stop).to_have_count(0)
        assert states(server, batch_id) == {
            **{n: "completed" for n in VALID if n not in held}, 7: "stopped", 8: "stopped"}
        stopped_at = len(writer.topics)
        poll(lambda: len(fake.disconnects) == disconnects + 2, "the held streams to be closed")
        kept = contents(server, batch_id, held)  # what each had written, saved
        assert all(text for _, text in kept.values()), kept

        writer.hold.clear()
        resume.click()
        # No click after Resume: the page follows the run it started until it ends.
        expect(main.get_by_test_id("stAlertContentSuccess")).to_have_text(
            "Done — rows written: 6, failed: 0.", timeout=DONE_TIMEOUT_MS)
        poll(lambda: {r.get("Status") for n, r in grid(table).items() if n in VALID}
             == {"completed"}, "the table to show every row completed")

    assert_one_article_per_row(server, batch_id)
    assert len(batch_articles(server, batch_id)) == len(VALID)
    after = {row: updated for row, _, _, updated in batch_articles(server, batch_id)}
    assert {row: after[row] for row in before} == before  # written once, never again
    resumed = contents(server, batch_id, held)  # went on in the same articles
    assert all(resumed[n][0] == kept[n][0] and resumed[n][1].startswith(kept[n][1]) and
               len(resumed[n][1]) > len(kept[n][1]) for n in held), (kept, resumed)
    again = writer.topics[stopped_at:]
    assert again and set(again) == {TOPIC[n] for n in held}, again  # only the stopped rows
    assert set(writer.topics[:stopped_at]) == set(TOPIC.values())
