"""The Batch page through AppTest, against the loopback provider and a scratch database.

AppTest cannot upload a file, so each batch is created through writer.batch (the
same `create` + `BatchRun` the Start button calls) in the registry the pages use;
the page is opened by link (`?batch=N`). What is checked is the batch view: each
row's state with its error or reason, the progress line, Stop on a running batch,
Resume and Retry (no completed row written twice), the link to History filtered by
the batch, and both UI languages. The upload → preview → Start path, the downloads
and the page's own refresh after Resume (a fragment rerun, which AppTest does not
do) are checked in a real browser (tests/views/test_browser_batch.py).
"""
from __future__ import annotations

import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from test_pages import ROOT
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.io.i18n import Translator
from writer.io.sheet import briefs, read_table
from writer.providers.choice import choose_provider
from writer.runs import batch as batches
from writer.runs.job import Job
from writer.storage.store import Store

TOPICS = ("alpha kettle", "bravo lamp", "charlie desk", "delta chair", "echo mug",
          "foxtrot pen", "golf bag")
# Rows 1, 2, 5, 6 are valid; row 3 has no topic, row 4 a length that is not a number.
CSV = ("topic,length,sku\n"
       "alpha kettle,100,A-1\n"
       "bravo lamp,100,B-2\n"
       ",100,C-3\n"
       "charlie desk,abc,D-4\n"
       "delta chair,100,E-5\n"
       "echo mug,100,F-6\n")
VALID = [1, 2, 5, 6]
HELD_TEXT = "Held back: " + "slowly " * 40

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


class ByTopic:
    """The fake's responder: an answer per topic (found in the request's messages).
    `fail`: topics answered HTTP 400 (a row fails, the batch goes on); `hold`: every
    stream sends three chunks and then waits until the client goes away."""

    def __init__(self):
        self.fail: set[str] = set()
        self.hold = False
        self.asked: list[str] = []  # the topic of each request, in order

    def __call__(self, request: dict) -> Reply:
        prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages") or [])
        topic = next((t for t in TOPICS if t in prompt), "?")
        self.asked.append(topic)
        if topic in self.fail:
            return Reply(status=400, error_message=f"no product called {topic}")
        if self.hold:
            return Reply(text=HELD_TEXT, chunk_chars=10, stall_after=3, stall_seconds=30)
        return Reply(text=f"{topic.title()} explained. " + "Plain words about it. " * 12)


@pytest.fixture
def script(fake) -> ByTopic:
    fake.responder = ByTopic()
    return fake.responder


@pytest.fixture
def registry(env):
    """The registry the pages use; at the end every run of this database is stopped."""
    from views.common import registry

    reg = registry()
    yield reg
    for run in reg.runs("batch"):
        if not run.done.is_set():
            run.stop(wait_s=10, actor=ADMIN)
    reg.shutdown(wait_s=5)


def make_batch(csv: str = CSV, *, name: str = "briefs.csv", concurrency: int = 2) -> int:
    settings = load_settings()
    store = Store(settings.db_path)
    try:
        table = read_table(csv.encode(), name)
        return batches.create(store, file_name=name, table=table,
                              rows=briefs(table, {"language": "en"}),
                              provider=choose_provider(settings), concurrency=concurrency,
                              length_control=False, actor=ADMIN)
    finally:
        store.close()


def start(batch_id: int, registry, only: list[int] | None = None) -> batches.BatchRun:
    settings = load_settings()
    return batches.BatchRun(settings, batch_id, registry, choose_provider(settings),
                            only=only, actor=ADMIN).start()


def wait_run(batch_id: int, timeout: float = 20) -> batches.BatchRun:
    """The run of this batch (the one the page started, if it did) has ended."""
    run = batches.current(load_settings(), batch_id)
    assert run is not None, f"batch #{batch_id} has no run in this process"
    assert run.done.wait(timeout), f"batch #{batch_id} still running after {timeout} s"
    assert run.error is None, run.error
    return run


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def open_page(page: str = "views/batch.py", **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    for name, value in query.items():
        at.query_params[name] = str(value)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def db_rows(batch_id: int) -> dict[int, dict]:
    store = Store(load_settings().db_path)
    try:
        return {r["row_no"]: r for r in batches.rows(store, batch_id, content=True)}
    finally:
        store.close()


def batch_of(batch_id: int) -> dict:
    store = Store(load_settings().db_path)
    try:
        return batches.get(store, batch_id)
    finally:
        store.close()


def articles_per_row(batch_id: int) -> dict[int, int]:
    """(live) articles per batch row, straight from SQLite."""
    store = Store(load_settings().db_path)
    try:
        return dict(store.conn.execute(
            "SELECT batch_row, count(*) FROM articles WHERE batch_id = ? AND deleted_at IS NULL "
            "GROUP BY batch_row", [batch_id]).fetchall())
    finally:
        store.close()


def table(at, t: Translator | None = None) -> dict[int, dict]:
    """The batch's row table, by row number; cells by their English column key
    (row, topic, status, words, cost, article, error)."""
    t = t or Translator("en")
    names = {t(f"batch.col_{c}"): c for c in ("row", "topic", "status", "words", "cost",
                                              "article", "error")}
    frame = at.dataframe[0].value.rename(columns=names)
    return {int(r["row"]): r for r in frame.to_dict("records")}


def progress_text(at) -> str:
    (bar,) = [el for el in at.main if el.type == "progress"]  # not the sidebar's
    return bar.proto.text


def keys(at) -> set[str]:
    return {b.key for b in at.button if b.key}


# ---- the batch view --------------------------------------------------------------------

def test_rows_show_their_state_error_and_reason_and_retry_failed(env, fake, script, registry):
    script.fail = {"bravo lamp"}
    batch_id = make_batch()
    start(batch_id, registry)
    wait_run(batch_id)

    at = open_page(batch=batch_id)
    assert at.title[0].value == "Batch writing"
    assert at.selectbox(key="batch_open").value == batch_id
    assert [w.value for w in at.warning] == ["Done — rows written: 3, failed: 1."]
    rows = table(at)
    assert {n: r["status"] for n, r in rows.items()} == {
        1: "completed", 2: "failed", 3: "invalid", 4: "invalid", 5: "completed", 6: "completed"}
    assert [rows[n]["topic"] for n in (1, 2, 4, 5, 6)] == [
        "alpha kettle", "bravo lamp", "charlie desk", "delta chair", "echo mug"]
    assert "no product called bravo lamp" in rows[2]["error"]
    assert "HTTP 400" in rows[2]["error"]
    assert rows[3]["error"] == "empty topic"
    assert rows[4]["error"] == "length «abc» is not a whole number from 50 to 20000"
    saved = db_rows(batch_id)
    for n in (1, 5, 6):
        assert rows[n]["error"] == ""
        assert rows[n]["article"] == f"/?article={saved[n]['article_id']}"
        assert rows[n]["words"] == f"{saved[n]['words']} / 100 words"
        assert rows[n]["cost"].endswith(" USD")
    assert rows[3]["article"] == "" and rows[4]["article"] == ""  # no article (not "None")
    words = sum(r["words"] or 0 for r in saved.values())
    assert re.fullmatch(rf"4 / 4 rows · {words:,} words · \d+\.\d{{4}} USD", progress_text(at))
    # Failed rows: Retry (all, or one); nothing left to resume; the results to download.
    assert keys(at) >= {f"batch-retry-{batch_id}", f"batch-retry-one-go-{batch_id}"}
    assert f"batch-resume-{batch_id}" not in keys(at)
    assert at.button(key=f"batch-retry-{batch_id}").label == "Retry failed rows (1)"
    assert at.selectbox(key=f"batch-retry-one-{batch_id}").options == ["Row 2"]
    assert [b.label for b in at.get("download_button")][-3:] == [
        "CSV (Excel)", "Excel (.xlsx)", "Markdown files (.zip)"]

    # Retry: only the failed row is asked for again, in its own article.
    script.fail.clear()
    asked_before = len(script.asked)
    at.button(key=f"batch-retry-{batch_id}").click().run()
    assert not at.exception
    wait_run(batch_id)
    assert script.asked[asked_before:] == ["bravo lamp"]
    after = db_rows(batch_id)
    assert after[2]["state"] == "completed" and after[2]["article_id"] == saved[2]["article_id"]
    for n in (1, 5, 6):
        assert after[n]["updated_at"] == saved[n]["updated_at"]  # not touched
    assert articles_per_row(batch_id) == {n: 1 for n in VALID}
    at.run()
    assert [s.value for s in at.success] == ["Done — rows written: 4, failed: 0."]
    assert not at.warning
    assert table(at)[2]["status"] == "completed" and table(at)[2]["error"] == ""
    assert not {f"batch-retry-{batch_id}", f"batch-resume-{batch_id}"} & keys(at)


def test_resume_writes_the_rest_and_no_completed_row_twice(env, fake, script, registry):
    batch_id = make_batch()
    start(batch_id, registry, only=[1, 2])  # a run that wrote two rows, then paused
    wait_run(batch_id)
    assert (batch_of(batch_id)["status"], batch_of(batch_id)["note"]) == ("paused", "stopped")
    before = db_rows(batch_id)
    asked_before = len(script.asked)

    at = open_page(batch=batch_id)
    assert [i.value for i in at.info] == [
        "Paused. Completed rows are saved; Resume writes the rest (stopped rows go on where "
        "they stopped)."]
    rows = table(at)
    assert {n: r["status"] for n, r in rows.items()} == {
        1: "completed", 2: "completed", 3: "invalid", 4: "invalid", 5: "waiting", 6: "waiting"}
    assert progress_text(at).startswith("2 / 4 rows · ")
    resume = at.button(key=f"batch-resume-{batch_id}")
    assert resume.label == "Resume (2 rows left)"
    assert f"batch-retry-{batch_id}" not in keys(at)

    resume.click().run()
    assert not at.exception
    run = wait_run(batch_id)
    assert run.only is None
    assert sorted(script.asked[asked_before:]) == ["delta chair", "echo mug"]
    after = db_rows(batch_id)
    assert {n: after[n]["state"] for n in VALID} == {n: "completed" for n in VALID}
    for n in (1, 2):  # the rows written before are the same articles, untouched
        assert (after[n]["article_id"], after[n]["content"], after[n]["updated_at"]) == \
            (before[n]["article_id"], before[n]["content"], before[n]["updated_at"])
    assert articles_per_row(batch_id) == {n: 1 for n in VALID}
    assert batch_of(batch_id)["status"] == "done"
    assert batch_of(batch_id)["completed_rows"] == 4

    at.run()
    assert [s.value for s in at.success] == ["Done — rows written: 4, failed: 0."]
    assert progress_text(at).startswith("4 / 4 rows · ")
    assert not {f"batch-resume-{batch_id}", f"batch-stop-{batch_id}"} & keys(at)
    assert {n: r["status"] for n, r in table(at).items() if n in VALID} == {
        n: "completed" for n in VALID}

    # A second Resume has nothing to write: a run that sends no request.
    start(batch_id, registry)
    wait_run(batch_id)
    assert len(script.asked) == asked_before + 2


def test_stop_pauses_a_running_batch_and_resume_goes_on_in_the_same_articles(
        env, fake, script, registry):
    script.hold = True
    batch_id = make_batch(concurrency=2)
    run = start(batch_id, registry)
    wait_for(lambda: len(run.in_flight) == 2 and
             all(h.feed.text for h in list(run.in_flight.values())), "two rows streaming")
    held = {n: h.article_id for n, h in run.in_flight.items()}
    assert sorted(held) == [1, 2]

    at = open_page(batch=batch_id)
    stop = at.button(key=f"batch-stop-{batch_id}")
    assert stop.label == "Stop (pause)" and not stop.disabled
    assert not {f"batch-resume-{batch_id}", f"batch-retry-{batch_id}"} & keys(at)
    rows = table(at)
    assert {n: rows[n]["status"] for n in VALID} == {
        1: "streaming", 2: "streaming", 5: "waiting", 6: "waiting"}
    assert progress_text(at).startswith("0 / 4 rows · ")
    assert not at.success and not at.warning and not at.info

    stop.click().run()
    assert not at.exception
    assert run.done.is_set()  # Stop waits until the rows in flight are saved
    assert (batch_of(batch_id)["status"], batch_of(batch_id)["note"]) == ("paused", "stopped")
    saved = db_rows(batch_id)
    sent = HELD_TEXT[:30]  # three chunks of ten characters, then the fake held the stream
    for n in (1, 2):
        assert saved[n]["state"] == "stopped" and saved[n]["article_id"] == held[n]
        assert saved[n]["content"] == sent
    assert saved[5]["state"] == saved[6]["state"] == "pending"
    assert len(fake.disconnects) == 2 and len(fake.requests) == 2
    assert [i.value for i in at.info][0].startswith("Paused.")
    rows = table(at)
    assert {n: rows[n]["status"] for n in VALID} == {
        1: "stopped", 2: "stopped", 5: "waiting", 6: "waiting"}
    assert at.button(key=f"batch-resume-{batch_id}").label == "Resume (4 rows left)"
    assert f"batch-stop-{batch_id}" not in keys(at)

    # Resume: the stopped rows go on in their own articles, the others start.
    script.hold = False
    at.button(key=f"batch-resume-{batch_id}").click().run()
    assert not at.exception
    wait_run(batch_id)
    after = db_rows(batch_id)
    assert {n: after[n]["state"] for n in VALID} == {n: "completed" for n in VALID}
    for n in (1, 2):
        assert after[n]["article_id"] == held[n]
        assert after[n]["content"].startswith(sent) and len(after[n]["content"]) > len(sent)
    assert articles_per_row(batch_id) == {n: 1 for n in VALID}
    assert len(fake.requests) == 6  # 2 held + 2 continued + 2 new
    assert sorted(script.asked[2:]) == ["alpha kettle", "bravo lamp", "delta chair", "echo mug"]
    at.run()
    assert [s.value for s in at.success] == ["Done — rows written: 4, failed: 0."]


@pytest.fixture
def two_batches(env, fake, script, registry):
    """Batch A (4 rows written), batch B (2 rows written) and an article of no batch:
    (A, B, A's article ids, B's article ids, the other article's id)."""
    first = make_batch()
    start(first, registry)
    wait_run(first)
    second = make_batch("主题,字数\nfoxtrot pen,100\ngolf bag,100\n", name="更多.csv")
    start(second, registry)
    wait_run(second)
    solo = registry.submit(Job(Brief(topic="alpha kettle on its own", language="en",
                                     target_words=100), load_settings(), length_control=False))
    assert solo.done.wait(10)
    first_ids = sorted(r["article_id"] for r in db_rows(first).values() if r["article_id"])
    second_ids = sorted(r["article_id"] for r in db_rows(second).values() if r["article_id"])
    assert len(first_ids) == 4 and len(second_ids) == 2
    return first, second, first_ids, second_ids, solo.article_id


def history_ids(at) -> list[int]:
    return sorted(at.dataframe[0].value["ID"])


def query(at, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_watch_link_and_history_filtered_by_batch(two_batches):
    first, second, first_ids, second_ids, solo = two_batches
    at = open_page(batch=first)
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    history = links["These articles in History"]
    assert (history.page, history.query_string) == ("history", f"batch={first}")
    # Watch a row: its article on the Write page.
    watch = at.selectbox(key=f"batch-watch-{first}")
    assert watch.options == [f"Row {n} · #{a}" for n, a in zip(VALID, first_ids)]
    watch.set_value(5).run()
    row5 = db_rows(first)[5]["article_id"]
    # the Write page is the app's default page: its link's path is ""
    link = next(p.proto for p in at.get("page_link") if p.proto.page in ("", "write"))
    assert (link.label, link.query_string) == (f"Open article #{row5}", f"article={row5}")

    # The link: History with that batch's articles only.
    at = open_page("views/history.py", batch=first)
    assert at.selectbox(key="f_batch").value == first
    assert history_ids(at) == first_ids
    assert any(c.value == "Articles: 4" for c in at.caption)
    assert at.selectbox(key="f_batch").options == ["All", f"#{second} · 更多.csv",
                                                   f"#{first} · briefs.csv"]
    at.selectbox(key="f_batch").set_value("").run()  # All: every article, no ?batch
    assert not at.exception
    assert history_ids(at) == sorted(first_ids + second_ids + [solo])
    assert query(at, "batch") is None
    at.selectbox(key="f_batch").set_value(second).run()
    assert history_ids(at) == second_ids and query(at, "batch") == str(second)
    # Other filters combine with it.
    at.selectbox(key="f_status").set_value("completed").run()
    assert history_ids(at) == second_ids


def test_history_batch_filter_can_be_cleared_after_picking_another_batch(two_batches):
    first, second, first_ids, second_ids, solo = two_batches
    at = open_page("views/history.py", batch=first)
    at.selectbox(key="f_batch").set_value(second).run()
    assert history_ids(at) == second_ids
    at.selectbox(key="f_batch").set_value("").run()
    assert history_ids(at) == sorted(first_ids + second_ids + [solo])


def test_history_link_applies_again_after_a_visit_to_another_page(two_batches):
    first, second, first_ids, second_ids, solo = two_batches
    at = open_page("views/history.py", batch=first)
    assert history_ids(at) == first_ids
    at.switch_page("views/batch.py").run()
    at.query_params["batch"] = str(first)  # "These articles in History" again
    at.switch_page("views/history.py").run()
    assert history_ids(at) == first_ids


def test_a_batch_link_opens_that_batch_among_several(env, fake, script, registry):
    first, second = make_batch(), make_batch(name="second.csv")
    start(first, registry, only=[1])
    wait_run(first)
    at = open_page(batch=first)
    assert at.selectbox(key="batch_open").value == first
    assert at.selectbox(key="batch_open").options[0].startswith(f"#{second} · second.csv")
    assert at.button_group(key="batch_view").value == "open"
    assert table(at)[1]["status"] == "completed"
    at.selectbox(key="batch_open").set_value(second).run()
    assert not at.exception
    assert query(at, "batch") == str(second)
    assert {r["status"] for n, r in table(at).items() if n in VALID} == {"waiting"}
    assert at.button(key=f"batch-resume-{second}").label == "Resume (4 rows left)"


def test_an_invalid_row_shows_its_own_topic_cell(env, fake, script, registry):
    batch_id = make_batch("sku,topic,length\nA-1,alpha kettle,100\nB-2,,100\n"
                          "C-3,charlie desk,abc\n")
    rows = table(open_page(batch=batch_id))
    assert rows[1]["topic"] == "alpha kettle"
    assert (rows[2]["status"], rows[2]["topic"]) == ("invalid", "")
    assert (rows[3]["status"], rows[3]["topic"]) == ("invalid", "charlie desk")


def test_a_batch_link_still_opens_that_batch_after_another_page(env, fake, script, registry):
    """/batch?batch=1 again (Back from the Write page it linked to): batch 1, not the
    newest one (the selector's state was dropped while another page ran)."""
    first, _newer = make_batch(), make_batch(name="second.csv")
    at = open_page(batch=first)
    assert at.selectbox(key="batch_open").value == first
    at.switch_page("views/write.py").run()
    at.query_params["batch"] = str(first)
    at.switch_page("views/batch.py").run()
    assert not at.exception
    assert at.selectbox(key="batch_open").value == first
    assert query(at, "batch") == str(first)
    # In the same visit, the form stays the form (the link is not applied again).
    at.button_group(key="batch_view").set_value("new").run()
    at.run()
    assert at.slider(key="batch_concurrency") and not at.dataframe


# ---- both languages ----------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "zh"])
def test_batch_page_in_both_languages_without_errors(env, fake, script, registry, monkeypatch,
                                                      language):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", language)
    t = Translator(language)

    at = open_page()  # no batch yet: the new-batch form, no view switch
    assert at.title[0].value == t("batch.title")
    assert not at.button_group
    assert at.slider(key="batch_concurrency").value == 4
    assert at.checkbox(key="batch_length_control").value is True
    assert [b.label for b in at.get("download_button")] == [t("batch.template")]

    script.fail = {"bravo lamp"}
    batch_id = make_batch()
    start(batch_id, registry, only=[1, 2])  # completed, failed, invalid and waiting rows
    wait_run(batch_id)
    at = open_page(batch=batch_id)
    assert at.title[0].value == t("batch.title")
    assert [i.value for i in at.info] == [t("batch.paused_stopped")]
    rows = table(at, t)
    assert {n: r["status"] for n, r in rows.items()} == {
        1: t("statuses.completed"), 2: t("statuses.failed"), 3: t("batch.row_invalid"),
        4: t("batch.row_invalid"), 5: t("batch.row_pending"), 6: t("batch.row_pending")}
    assert rows[3]["error"] == t("batch.error_empty_topic")
    assert rows[4]["error"] == t("batch.error_bad_length", value="abc")
    assert progress_text(at).startswith(t("batch.progress", done=2, total=4, words="", cost="")
                                        .split(" · ")[0])
    written = progress_text(at).split(" · ")[1]  # each unit totalled apart: 字 never added to words
    assert written.endswith((t("units.zh"), t("units.en"))) and written[0].isdigit()
    # Resume writes the 2 waiting rows and the failed one again; Retry only the failed one.
    assert at.button(key=f"batch-resume-{batch_id}").label == t("batch.resume", rows=3)
    assert at.button(key=f"batch-retry-{batch_id}").label == t("batch.retry_failed", rows=1)
    assert at.button_group(key="batch_view").options == [t("batch.view_new"),
                                                        t("batch.view_open", count=1)]

    at.button_group(key="batch_view").set_value("new").run()  # back to the form
    assert not at.exception
    assert not at.dataframe and at.slider(key="batch_concurrency")
    at.button_group(key="batch_view").set_value("open").run()
    assert not at.exception
    assert table(at, t)[2]["status"] == t("statuses.failed")


def test_a_batch_written_by_another_server_can_be_stopped_or_helped_from_here(
        env, fake, script, registry):
    """Another process (a CLI, another app server) runs the batch: the page says so and
    offers Stop (a request every runner honours at its next beat) and Help write (this
    server claims the rows nobody has claimed)."""
    batch_id = make_batch()
    store = Store(load_settings().database)
    try:
        with store.transaction() as conn:  # as a live runner elsewhere leaves it
            conn.execute("UPDATE batches SET status = 'running', worker_pid = 1, heartbeat_at = ? "
                         "WHERE id = ?", [time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                                          batch_id])
    finally:
        store.close()
    at = open_page(batch=batch_id)
    assert any("Another process" in i.value for i in at.info)
    assert {f"batch-stop-{batch_id}", f"batch-join-{batch_id}"} <= keys(at)
    assert batches.current(load_settings(), batch_id) is None  # nothing runs here yet
    at.button(key=f"batch-stop-{batch_id}").click().run()
    assert not at.exception
    assert batch_of(batch_id)["stop_requested_at"]  # the runner elsewhere pauses at its beat

    at = open_page(batch=batch_id)
    at.button(key=f"batch-join-{batch_id}").click().run()
    assert not at.exception
    assert batches.current(load_settings(), batch_id) is not None  # this server helps now
