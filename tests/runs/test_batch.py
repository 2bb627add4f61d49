"""Batch writing (writer/runs/batch.py) in process, against the loopback provider: a batch of
50 rows with rate limits and failing rows, Stop and Resume, Retry of one row, results,
a refusing provider, a runner that died. The key flows run on SQLite and PostgreSQL
(`database`), and so does a batch that two servers run at once (issue 24): every row
written exactly once."""
from __future__ import annotations

import csv
import io
import re
import sqlite3
import threading
import zipfile

import openpyxl
import pytest

from fake_openai import Reply
from test_workers import wait_for as wait_until
from writer.access import AccessDenied, Actor
from writer.config import load_settings
from writer.io.sheet import RESULT_COLUMNS, briefs, read_table
from writer.kinds import BatchStatus, LengthOutcome, Status
from writer.providers.choice import choose_provider
from writer.runs import batch
from writer.runs.registry import Registry
from writer.storage import batches as stored
from writer.storage.liveness import utc_iso
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ROWS = 50
FAIL_ROWS = (7, 23, 41)
TARGET = 50  # words, English: 0.8-1.2x is 40..60
CONCURRENCY = 4


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    return wait_until(condition, timeout, what)


def sheet(rows: int = ROWS, fail=FAIL_ROWS) -> bytes:
    """A CSV of English briefs at 50 words, with a column the app does not know (sku)."""
    lines = ["topic,length,language,sku"]
    for n in range(1, rows + 1):
        flag = " FAIL" if n in fail else ""
        lines.append(f"Topic {n:02d}{flag} about kettles,{TARGET},English,SKU-{n}")
    return ("\n".join(lines) + "\n").encode()


def words_reply(first: int, last: int, *, sentence_every: int | None = None,
                delay: float = 0.0) -> Reply:
    """w<first>x … w<last>x. in chunks of three words (chunk ends between words). The
    "x": a full stop right after a digit is not a sentence end ("3.5") for length control."""
    pieces = []
    for i in range(first, last + 1):
        end = "." if i == last or (sentence_every and i % sentence_every == 0) else ""
        pieces.append(f"w{i}x{end}" + (" " if i < last else ""))
    chunks = ["".join(pieces[j:j + 3]) for j in range(0, len(pieces), 3)]
    return Reply(chunks=chunks, chunk_delay=delay, usage=(60, 2 * (last - first + 1)))


class Provider:
    """The loopback provider's behaviour for a batch of kettle topics:

    - 429 (Retry-After 0.3 s) whenever more than `busy` requests are active, and on
      every 13th request (a schedule), when `throttle` is on;
    - 400 for topics with FAIL while `fail` is on;
    - otherwise an answer around the 50-word target: rows n % 3 == 0 ramble on to 70
      words (length control ends them at a sentence), n % 3 == 1 stop at 30 (length
      control asks for the rest), the others write 55; a continuation (its messages
      carry the text so far) writes the rest up to 55."""

    def __init__(self, fake, *, busy: int = 3, throttle: bool = True, fail: bool = True,
                 delay: float = 0.005, status: int | None = None):
        self.fake, self.busy, self.throttle, self.fail = fake, busy, throttle, fail
        self.delay, self.status = delay, status
        self.lock = threading.Lock()
        self.requests = 0
        self.throttled = 0
        self.by_row: dict[int, int] = {}
        self.continued: dict[int, int] = {}  # row -> words already written when continued
        fake.responder = self

    def __call__(self, body: dict) -> Reply:
        messages = body.get("messages") or []
        text = " ".join(str(m.get("content")) for m in messages if m.get("role") != "assistant")
        number = int(re.search(r"Topic (\d+)", text).group(1))
        written = " ".join(str(m["content"]) for m in messages if m.get("role") == "assistant")
        have = len(written.split())
        with self.lock:
            self.requests += 1
            count = self.requests
            self.by_row[number] = self.by_row.get(number, 0) + 1
            if have:
                self.continued[number] = have
            throttled = self.throttle and (self.fake.active > self.busy or count % 13 == 0)
            if throttled:
                self.throttled += 1
        if self.status is not None:
            return Reply(status=self.status, error_message="go away")
        if throttled:
            return Reply(status=429, headers={"Retry-After": "0.3"}, error_message="slow down")
        if self.fail and "FAIL" in text:
            return Reply(status=400, error_message="rows marked FAIL are refused")
        if have:
            return words_reply(have + 1, 55, delay=self.delay)
        if number % 3 == 0:
            return words_reply(1, 70, sentence_every=10, delay=self.delay)
        if number % 3 == 1:
            return words_reply(1, 30, delay=self.delay)
        return words_reply(1, 55, delay=self.delay)


def new_batch(store, data: bytes | None = None, *, concurrency: int = CONCURRENCY,
              file_name: str = "kettles.csv") -> int:
    settings = load_settings()
    table = read_table(data or sheet(), file_name)
    rows = briefs(table)
    return batch.create(store, file_name=file_name, table=table, rows=rows,
                        provider=choose_provider(settings), concurrency=concurrency)


def run_batch(batch_id: int, registry: Registry, timeout: float = 45.0, **kwargs):
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings), **kwargs, actor=ADMIN)
    run.start()
    assert run.done.wait(timeout), "the batch did not end"
    assert run.error is None, run.error
    return run




@pytest.fixture
def db_store(database):
    """A Store on the test's database (either backend)."""
    s = Store(database)
    yield s
    s.close()


def articles(store, batch_id: int) -> list[dict]:
    return store.rows("SELECT * FROM articles WHERE batch_id = ? ORDER BY batch_row, id",
                      [batch_id])


def by_row(store, batch_id: int) -> dict[int, dict]:
    return {r["row_no"]: r for r in batch.rows(store, batch_id)}


def assert_written_once(store, batch_id: int) -> list[dict]:
    """One article per batch row, never two (deleted ones included)."""
    found = articles(store, batch_id)
    numbers = [a["batch_row"] for a in found]
    assert len(numbers) == len(set(numbers)), "a row was written twice"
    return found


def assert_on_target(row: dict) -> None:
    assert row["length_outcome"] == LengthOutcome.ON_TARGET, row
    assert 0.8 * TARGET <= row["words"] <= 1.2 * TARGET, row


# -- the acceptance test: 50 rows, rate limits, failing rows ------------------------

def test_fifty_rows_with_rate_limits_and_failing_rows(env, fake, store, registry):
    provider = Provider(fake)
    batch_id = new_batch(store)
    ended = []
    run = run_batch(batch_id, registry, on_row=lambda n, h: ended.append(n))

    rows = by_row(store, batch_id)
    assert len(rows) == ROWS and sorted(ended) == list(range(1, ROWS + 1))
    # Failed rows: exactly the FAIL rows, each with the provider's message.
    failed = {n for n, r in rows.items() if r["state"] == Status.FAILED}
    assert failed == set(FAIL_ROWS)
    for n in FAIL_ROWS:
        assert "HTTP 400" in rows[n]["error"] and "rows marked FAIL are refused" in rows[n]["error"]
        assert rows[n]["error_kind"] == "bad_request"
    # Every other row completed, once, within its length range.
    completed = {n for n, r in rows.items() if r["state"] == Status.COMPLETED}
    assert completed == set(range(1, ROWS + 1)) - set(FAIL_ROWS)
    for n in completed:
        assert_on_target(rows[n])
    found = assert_written_once(store, batch_id)
    assert len(found) == ROWS  # one article per row written, failed ones included
    assert all(a["deleted_at"] is None for a in found)
    # Length control did its job both ways: ramblers ended at a sentence (50 words),
    # short answers were topped up with a second request (30 + 25 = 55).
    assert {rows[n]["words"] for n in completed if n % 3 == 0} == {50}
    assert {rows[n]["words"] for n in completed if n % 3 == 1} == {55}
    assert set(provider.continued.values()) == {30}
    assert {n for n in provider.continued} == {n for n in completed if n % 3 == 1}
    # The rate limit was hit, the batch slowed down, and no row failed for it.
    assert provider.throttled >= 3 and run.backoff.hits == provider.throttled
    assert run.backoff.cuts >= 1
    assert sum(r["retries"] or 0 for r in rows.values()) == provider.throttled
    assert not any(r["error_kind"] == "rate_limit" for r in rows.values())
    # Concurrency respected (every row has at most one request open at a time).
    assert 2 <= fake.max_active <= CONCURRENCY
    # The batch is done, its counts saved.
    saved = batch.get(store, batch_id)
    assert saved["status"] == BatchStatus.DONE and saved["note"] is None
    assert (saved["completed_rows"], saved["failed_rows"]) == (ROWS - 3, 3)
    assert saved["heartbeat_at"] is None
    counts = batch.counts(list(rows.values()))
    assert counts["ended"] == ROWS and counts["valid"] == ROWS
    assert counts["words"] == sum(rows[n]["words"] for n in completed)
    assert counts["cost"]["USD"] > 0
    progress = run.progress(list(rows.values()))
    assert (progress.completed, progress.failed, progress.in_flight) == (ROWS - 3, 3, 0)
    assert progress.throttled == provider.throttled

    # -- the results, as files ------------------------------------------------------
    data, mime, name = batch.export(store, batch_id, "csv")
    assert data.startswith(b"\xef\xbb\xbf") and mime == "text/csv"
    assert name == f"batch-{batch_id}-kettles.csv"
    header, *lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert header == ["topic", "length", "language", "sku", *RESULT_COLUMNS]
    assert len(lines) == ROWS
    column = {name: i for i, name in enumerate(header)}
    for n, line in enumerate(lines, 1):
        assert line[column["sku"]] == f"SKU-{n}"  # the input's own column, carried through
        assert line[column["row"]] == str(n)
        assert line[column["article_id"]] == str(rows[n]["article_id"])
        assert line[column["status"]] == rows[n]["state"]
        if n in FAIL_ROWS:
            assert "HTTP 400" in line[column["error"]] and line[column["article"]] == ""
        else:
            assert line[column["error"]] == "" and line[column["article"]].startswith("w1x w2x ")
            assert line[column["article"]].rstrip().endswith(".")

    data, _, name = batch.export(store, batch_id, "xlsx")
    assert name.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet_rows = list(book.active.iter_rows(values_only=True))
    assert list(sheet_rows[0]) == header and len(sheet_rows) == ROWS + 1
    assert sheet_rows[1][column["sku"]] == "SKU-1"
    assert sheet_rows[2][column["words"]] == rows[2]["words"]

    data, mime, name = batch.export(store, batch_id, "zip")
    assert mime == "application/zip" and name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert len(names) == ROWS - len(FAIL_ROWS)  # one Markdown file per written row
        assert all(n.endswith(".md") for n in names)
        assert names[0].startswith("0001-topic-01")
        assert "w1x w2x" in archive.read(names[0]).decode("utf-8")
    with pytest.raises(batch.BatchError, match="unknown results format"):
        batch.export(store, batch_id, "pdf")

    # -- Retry one failed row, once the provider accepts it ---------------------------
    provider.fail = provider.throttle = False
    before = {n: provider.by_row.get(n, 0) for n in range(1, ROWS + 1)}
    run_batch(batch_id, registry, only=[FAIL_ROWS[0]])
    after = by_row(store, batch_id)
    retried = after[FAIL_ROWS[0]]
    assert retried["state"] == Status.COMPLETED and retried["error"] is None
    assert retried["article_id"] == rows[FAIL_ROWS[0]]["article_id"]  # its own article
    assert_on_target(retried)
    asked = {n for n in before if provider.by_row.get(n, 0) != before[n]}
    assert asked == {FAIL_ROWS[0]}  # nothing else was sent
    assert {after[n]["state"] for n in FAIL_ROWS[1:]} == {Status.FAILED}
    assert len(assert_written_once(store, batch_id)) == ROWS
    assert batch.get(store, batch_id)["failed_rows"] == 2


def test_stop_mid_way_then_resume_writes_every_row_once(env, fake, db_store, registry):
    store = db_store
    provider = Provider(fake, throttle=False, delay=0.03)
    batch_id = new_batch(store)
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings), actor=ADMIN).start()
    assert batch.current(settings, batch_id) is run
    assert batch.get(store, batch_id)["status"] == BatchStatus.RUNNING

    def mid_way():
        done = sum(r["state"] == Status.COMPLETED for r in batch.rows(store, batch_id))
        # A row well short of its end (> 15 words to go): it is still streaming when Stop lands.
        streaming = [h for h in list(run.in_flight.values()) if 0 < h.words < 40]
        return done >= 5 and streaming
    wait_for(mid_way, what="some rows completed and some streaming")
    assert run.stop(wait_s=15, actor=ADMIN)
    assert run.stopping and run.note == "stopped"

    stopped_at = by_row(store, batch_id)
    states = [r["state"] for r in stopped_at.values()]
    assert Status.STREAMING not in states and Status.QUEUED not in states
    partial = {n: r for n, r in stopped_at.items()
               if r["state"] == Status.STOPPED and r["words"]}
    assert partial, "a row was stopped with text"
    completed_before = {n for n, r in stopped_at.items() if r["state"] == Status.COMPLETED}
    assert states.count("pending") >= ROWS // 2  # most never started
    saved = batch.get(store, batch_id)
    assert saved["status"] == BatchStatus.PAUSED and saved["note"] == "stopped"
    assert_written_once(store, batch_id)
    contents = {n: store.get(r["article_id"])["content"] for n, r in partial.items()}

    # Resume: a new run, fast answers this time.
    provider.delay = 0.002
    seen_before = dict(provider.by_row)
    run_batch(batch_id, registry)
    rows = by_row(store, batch_id)
    sent_again = {n for n in rows if provider.by_row.get(n, 0) > seen_before.get(n, 0)}
    assert not sent_again & completed_before  # completed rows are never written again
    # A row stopped past its target (under load Stop may land on one) is not written again
    # (batch.needs_writing): it stays stopped, as it was.
    past = {n for n, r in stopped_at.items() if r["state"] == Status.STOPPED
            and r["words"] >= r["target_words"]}
    assert not sent_again & past and all(rows[n]["state"] == Status.STOPPED for n in past)
    assert {n for n, r in rows.items() if r["state"] == Status.COMPLETED} == \
        set(range(1, ROWS + 1)) - set(FAIL_ROWS) - past
    assert {rows[n]["state"] for n in FAIL_ROWS} == {Status.FAILED}
    for n, before in partial.items():
        if n in past:
            continue
        # Stopped rows went on in their own article, from where they stopped.
        assert rows[n]["article_id"] == before["article_id"]
        article = store.get(rows[n]["article_id"])
        assert article["content"].startswith(contents[n].rstrip())
        assert provider.continued.get(n, 0) >= before["words"]
        assert_on_target(rows[n])
    found = assert_written_once(store, batch_id)
    assert len(found) == ROWS
    saved = batch.get(store, batch_id)
    assert saved["status"] == BatchStatus.DONE
    assert (saved["completed_rows"], saved["failed_rows"]) == (ROWS - 3 - len(past), 3)


def test_a_provider_that_refuses_pauses_the_batch_instead_of_failing_every_row(
        env, fake, db_store, registry):
    store = db_store
    provider = Provider(fake, throttle=False, fail=False, status=401)
    batch_id = new_batch(store)
    run = run_batch(batch_id, registry)
    assert run.note.startswith("provider_refused") and "API key" in run.note
    rows = by_row(store, batch_id)
    failed = [n for n, r in rows.items() if r["state"] == Status.FAILED]
    pending = [n for n, r in rows.items() if r["state"] == "pending"]
    assert 1 <= len(failed) <= CONCURRENCY
    assert len(pending) >= ROWS - CONCURRENCY
    assert provider.requests <= CONCURRENCY  # it stopped asking
    saved = batch.get(store, batch_id)
    assert saved["status"] == BatchStatus.PAUSED and saved["note"].startswith("provider_refused")

    # The key is fixed: Resume writes everything, the failed rows in their own article.
    provider.status = None
    first_articles = {n: rows[n]["article_id"] for n in failed}
    run = run_batch(batch_id, registry)
    assert run.note is None
    rows = by_row(store, batch_id)
    assert {r["state"] for r in rows.values()} == {Status.COMPLETED}
    assert all(rows[n]["article_id"] == first_articles[n] for n in failed)
    assert len(assert_written_once(store, batch_id)) == ROWS
    assert batch.get(store, batch_id)["status"] == BatchStatus.DONE


def test_a_batch_whose_runner_died_shows_as_paused_interrupted(env, fake, db_store, registry):
    store = db_store
    stale_id = new_batch(store, sheet(3, ()))
    fresh_id = new_batch(store, sheet(3, ()))
    with store.transaction() as conn:
        conn.execute("UPDATE batches SET status = 'running', worker_pid = 999999, "
                     "heartbeat_at = '2020-01-01T00:00:00.000Z' WHERE id = ?", [stale_id])
        conn.execute("UPDATE batches SET status = 'running', worker_pid = 999999, "
                     "heartbeat_at = ? WHERE id = ?", [utc_iso(), fresh_id])
    assert batch.recover(store) == [stale_id]
    stale = batch.get(store, stale_id)
    assert (stale["status"], stale["note"]) == (BatchStatus.PAUSED, "interrupted")
    fresh = batch.get(store, fresh_id)
    assert fresh["status"] == BatchStatus.RUNNING  # its runner is alive: left alone
    assert batch.recover(store) == []
    # Listing recovers too; a run started here joins the live run elsewhere (issue 24)
    # and writes the rows no live runner has claimed, each once.
    assert {b["id"]: b["status"] for b in batch.listing(store)} == {
        stale_id: "paused", fresh_id: "running"}
    Provider(fake, throttle=False, fail=False)
    run_batch(fresh_id, registry)
    assert {r["state"] for r in batch.rows(store, fresh_id)} == {Status.COMPLETED}
    assert len(assert_written_once(store, fresh_id)) == 3
    assert batch.get(store, fresh_id)["status"] == BatchStatus.DONE


def test_rows_a_live_runner_claimed_wait_for_it_and_a_dead_runners_are_taken_over(
        env, fake, db_store, registry):
    """Another runner (a server elsewhere) holds row 2 with a fresh claim and held row 3
    until it died (its claim stale): a run here writes rows 1 and 3 and waits for row
    2 until that runner gives it back; then writes it too. Each row once."""
    store = db_store
    Provider(fake, throttle=False, fail=False)
    batch_id = new_batch(store, sheet(3, ()), concurrency=3)
    assert stored.claim_rows(store, batch_id, "elsewhere", [2], 5) == [2]
    assert stored.claim_rows(store, batch_id, "dead", [3], 5) == [3]
    with store.transaction() as conn:
        conn.execute("UPDATE batch_rows SET claimed_at = '2020-01-01T00:00:00.000Z' "
                     "WHERE batch_id = ? AND row_no = 3", [batch_id])
    assert stored.claim_rows(store, batch_id, "third", [1, 2, 3], 5) == [1, 3]
    stored.release_rows(store, batch_id, "third")
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                         actor=ADMIN).start()
    wait_for(lambda: {n: r["state"] for n, r in by_row(store, batch_id).items()} ==
             {1: "completed", 2: "pending", 3: "completed"}, what="rows 1 and 3 written")
    assert not run.done.is_set() and run.todo == [2]  # row 2 waits for its runner
    assert stored.others_running(store, batch_id, run.runner)
    stored.release_rows(store, batch_id, "elsewhere")  # it gave row 2 back unwritten
    assert run.done.wait(30) and run.error is None
    assert {r["state"] for r in by_row(store, batch_id).values()} == {Status.COMPLETED}
    assert len(assert_written_once(store, batch_id)) == 3
    assert store.rows("SELECT claimed_by FROM batch_rows WHERE batch_id = ?", [batch_id]) == \
        [{"claimed_by": None}] * 3  # every claim given back
    assert batch.get(store, batch_id)["status"] == BatchStatus.DONE


def test_a_stale_heartbeat_interrupts_a_running_batch(env, store, monkeypatch):
    from writer.storage import liveness

    batch_id = new_batch(store, sheet(2, ()))
    conn = sqlite3.connect(env["WRITER_DB"])
    with conn:
        conn.execute("UPDATE batches SET status = 'running', "
                     "heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                     [batch_id])
    conn.close()
    assert batch.recover(store) == []
    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.02)  # stale after 3 missed beats
    wait_for(lambda: batch.recover(store) == [batch_id], timeout=5, what="a stale batch")
    assert batch.get(store, batch_id)["note"] == "interrupted"


def test_invalid_rows_are_kept_and_reported_but_never_sent(env, fake, db_store, registry):
    store = db_store
    provider = Provider(fake, throttle=False)
    data = (b"topic,length,language,sku\n"
            b"Topic 01 about kettles,50,en,A\n"
            b",50,en,B\n"
            b"Topic 03 about kettles,lots,en,C\n"
            b"Topic 04 about kettles,50,klingon,D\n"
            b"Topic 05 about kettles,50,en,E\n")
    batch_id = new_batch(store, data)
    saved = batch.get(store, batch_id)
    assert (saved["total_rows"], saved["valid_rows"]) == (5, 2)
    assert saved["settings"]["concurrency"] == CONCURRENCY
    run_batch(batch_id, registry)
    rows = by_row(store, batch_id)
    assert [rows[n]["state"] for n in range(1, 6)] == [
        "completed", "invalid", "invalid", "invalid", "completed"]
    assert rows[3]["invalid"] == {"code": "bad_length", "detail": "lots"}
    assert set(provider.by_row) == {1, 5}
    header, table = batch.results(store, batch_id)
    errors = [line[header.index("error")] for line in table]
    assert errors[1] == "empty_topic" and errors[2] == "bad_length: lots"
    assert errors[3] == "unknown_language: klingon" and errors[0] is None
    assert batch.get(store, batch_id)["status"] == BatchStatus.DONE
    with pytest.raises(batch.BatchError, match="every row has an error"):
        new_batch(store, b"topic,length\n,50\nx,1\n")


def test_estimate_prices_the_rows_and_warns_over_the_budget(env, store):
    settings = load_settings()
    provider = choose_provider(settings)
    rows = briefs(read_table(sheet(10, ()), "kettles.csv"))
    guess = batch.estimate([r.brief for r in rows], provider, settings, store)
    assert guess.rows == 10 and guess.currency == "USD" and not guess.free
    assert guess.output_tokens >= 10 * TARGET  # at least a token a word
    assert guess.input_tokens > 10 * 20
    assert guess.cost > 0 and guess.budget is None and not guess.over_budget
    store.set_budget("USD", guess.cost / 2, actor=ADMIN)
    guess = batch.estimate([r.brief for r in rows], provider, settings, store)
    assert guess.over_budget and guess.budget["budget"] == pytest.approx(guess.cost / 2)


def test_needs_writing_and_concurrency_bounds():
    assert batch.needs_writing({"state": "pending"})
    assert not batch.needs_writing({"state": "completed", "words": 10, "target_words": 50})
    assert not batch.needs_writing({"state": "invalid"})
    assert batch.needs_writing({"state": "stopped", "words": 10, "target_words": 50})
    assert not batch.needs_writing({"state": "stopped", "words": 55, "target_words": 50})
    assert batch.needs_writing({"state": "stopped", "words": 55, "target_words": 50},
                               length_control=False)
    assert batch.needs_writing({"state": "failed", "words": 55, "target_words": 50})
    assert [batch.clamp_concurrency(v) for v in (0, 1, 4, 8, 9, "x", None)] == \
        [1, 1, 4, 8, 8, 1, 1]


def test_a_live_batch_is_never_seen_as_interrupted_with_a_short_heartbeat(
        env, fake, store, registry, monkeypatch):
    from writer.storage import liveness

    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.3)  # stale after 0.9 s without a beat
    Provider(fake, throttle=False, fail=False, delay=0.04)
    batch_id = new_batch(store, sheet(6, ()), concurrency=2)
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings), actor=ADMIN).start()
    seen = []
    while not run.done.wait(0.05):
        seen.append(batch.get(store, batch_id)["status"])  # get() runs recover()
    # The run saves its final status just before it says it is done: a read in between
    # may see that end ("done"), never anything but running before it.
    while seen and seen[-1] == BatchStatus.DONE:
        seen.pop()
    assert set(seen) == {BatchStatus.RUNNING}
    assert batch.get(store, batch_id)["status"] == BatchStatus.DONE


# -- several servers on one batch (issue 24) ----------------------------------------

def test_two_servers_run_one_batch_and_write_every_row_exactly_once(
        env, fake, db_store, registry, capsys):
    """Server A (this process) runs a batch; server B (`python -m writer batch --resume`,
    another process on the same database) resumes it while A runs: B joins, claiming
    the rows A has not; both end when none is left. Every row is asked of the provider
    as often as it needs (once, twice when length control tops it up) and has exactly
    one article, written by A or by B."""
    import os
    import subprocess
    import sys
    import time

    from test_concurrency import ROOT

    store = db_store
    rows_total = 24
    provider = Provider(fake, throttle=False, fail=False, delay=0.03)
    batch_id = new_batch(store, sheet(rows_total, ()), concurrency=2)
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                         actor=ADMIN).start()
    wait_for(lambda: any(r["state"] == Status.COMPLETED for r in batch.rows(store, batch_id)),
             what="a first row written by server A")
    started = time.monotonic()
    server_b = subprocess.run([sys.executable, "-m", "writer", "batch", "--resume", str(batch_id),
                               "--yes", "--quiet", "--concurrency", "4"], cwd=ROOT,
                              env=dict(os.environ), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    assert run.done.wait(60) and run.error is None, run.error
    wall = time.monotonic() - started
    assert server_b.returncode == 0, server_b.stderr
    assert "Traceback" not in server_b.stderr
    found = assert_written_once(store, batch_id)
    assert len(found) == rows_total and {a["status"] for a in found} == {"completed"}
    by_writer = {}
    for article in found:
        by_writer.setdefault("A" if article["worker_pid"] == os.getpid() else "B",
                             []).append(article["batch_row"])
    with capsys.disabled():
        print(f"\n[batch] two servers on one batch of {rows_total} rows: A wrote "
              f"{len(by_writer.get('A', []))}, B wrote {len(by_writer.get('B', []))}; "
              f"B ran {wall:.1f} s")
    assert by_writer.get("A") and by_writer.get("B"), by_writer  # both wrote rows
    assert provider.by_row == {n: 2 if n % 3 == 1 else 1 for n in range(1, rows_total + 1)}
    saved = batch.get(store, batch_id)
    assert saved["status"] == BatchStatus.DONE and saved["completed_rows"] == rows_total
    assert store.rows("SELECT count(*) AS n FROM batch_rows WHERE batch_id = ? AND "
                      "claimed_by IS NOT NULL", [batch_id]) == [{"n": 0}]


def test_a_stop_asked_on_another_server_pauses_the_run_here(env, fake, db_store, registry):
    """`batch.request_stop` (any server, the batch's author or an admin) reaches this
    server's runner at its next beat: it pauses, its rows in flight saved as stopped;
    a run started afterwards is not stopped by that old request."""
    store = db_store
    Provider(fake, throttle=False, fail=False, delay=0.05)
    batch_id = new_batch(store, sheet(12, ()), concurrency=2)
    settings = load_settings()
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                         actor=ADMIN).start()
    wait_for(lambda: any(0 < h.words for h in list(run.in_flight.values())),
             what="a row streaming")
    with pytest.raises(AccessDenied):
        batch.request_stop(settings, batch_id, actor=Actor("mallory", "writer"))
    batch.request_stop(settings, batch_id, actor=ADMIN)
    assert run.done.wait(20) and run.note == "stopped"
    states = [r["state"] for r in batch.rows(store, batch_id)]
    assert Status.STREAMING not in states and "pending" in states
    saved = batch.get(store, batch_id)
    assert (saved["status"], saved["note"]) == (BatchStatus.PAUSED, "stopped")
    run = run_batch(batch_id, registry)  # Resume: the old request is not for it
    assert run.note is None
    assert {r["state"] for r in batch.rows(store, batch_id)} == {Status.COMPLETED}
    assert len(assert_written_once(store, batch_id)) == 12
