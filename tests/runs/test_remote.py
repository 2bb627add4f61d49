"""Rows another process writes on the same database (writer/runs/remote.py): which are
listed, and how a Stop request is honoured by the process that writes the row. Every
test runs on both databases (`backend`: a SQLite file, or a fresh PostgreSQL database
with WRITER_DATABASE_URL), except the SQLite-only one about unreadable files, which has
a PostgreSQL counterpart. The cross-process Stop of a real CLI is
tests/cli/test_cli_remote_stop.py; two app servers on one PostgreSQL are
tests/views/test_browser_servers.py."""
from __future__ import annotations

import sqlite3

import pytest

from writer.access import ADMIN, WRITER, AccessDenied, Actor
from writer.brief import Brief
from writer.kinds import Status
from writer.runs import remote
from writer.runs.registry import shared
from writer.storage import liveness, pg
from writer.storage.connection import connect, immediate
from writer.storage.store import Store


def new_row(store, topic: str, author: str = "alice", status=Status.STREAMING) -> int:
    return store.create_article(Brief(topic=topic), provider="p", model="m", max_tokens=10,
                                status=status, author=author)


def sql(db: str, query: str, args=()) -> list:
    """`query` in a write transaction of its own on either database; its rows as tuples."""
    conn = connect(db)
    try:
        with immediate(conn):
            cursor = conn.execute(query, args)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    finally:
        conn.close()


class FakeJob:
    def __init__(self):
        self.cancel_requested = False
        self.cancels = 0

    def cancel(self, wait_s: float = 2.0) -> bool:
        self.cancel_requested = True
        self.cancels += 1
        return False


@pytest.fixture
def store(backend):
    s = Store(backend)
    yield s
    s.close()


@pytest.fixture
def reg(backend):
    registry = shared(backend)
    yield registry
    for article_id in registry.tracked():
        registry.untrack(article_id)


def test_other_processes_running_rows_are_listed_and_stale_ones_are_not(backend, store, reg):
    db = backend
    fresh = new_row(store, "fresh elsewhere")
    queued = new_row(store, "queued elsewhere", author="bob", status=Status.QUEUED)
    stale = new_row(store, "its writer died")
    old = "2000-01-01T00:00:00.000Z"
    sql(db, "UPDATE articles SET heartbeat_at = ? WHERE id = ?", [old, stale])
    assert old < liveness.stale_cutoff()
    mine = new_row(store, "written here")
    reg.track(mine, job=FakeJob())
    gone = new_row(store, "deleted")
    sql(db, "UPDATE articles SET deleted_at = ? WHERE id = ?", [liveness.utc_iso(), gone])
    done = new_row(store, "finished")
    sql(db, "UPDATE articles SET status = 'done' WHERE id = ?", [done])

    listed = remote.elsewhere(reg)
    assert [(r.article_id, r.topic, r.author, r.status) for r in listed] == [
        (fresh, "fresh elsewhere", "alice", Status.STREAMING),
        (queued, "queued elsewhere", "bob", Status.QUEUED)]
    assert not any(r.stopping for r in listed)
    assert [r.article_id for r in remote.elsewhere(reg, queued)] == [queued]
    assert remote.elsewhere(reg, stale) == []

    # Stopping what runs nowhere (stale, ended, tracked nowhere) asks nobody.
    assert reg.cancel(stale, wait_s=0, actor=Actor("admin", ADMIN)) is False
    assert reg.cancel(done, wait_s=0, actor=Actor("admin", ADMIN)) is False
    assert sql(db, "SELECT count(*) FROM articles WHERE stop_requested_at IS NOT NULL") == [(0,)]

    # A writer may not ask to stop someone else's; its author and an admin may.
    with pytest.raises(AccessDenied):
        reg.cancel(queued, wait_s=0, actor=Actor("alice", WRITER))
    assert sql(db, "SELECT stop_requested_at FROM articles WHERE id = ?", [queued]) == [(None,)]
    assert reg.cancel(queued, wait_s=0, actor=Actor("bob", WRITER)) is False  # not waited for
    assert reg.cancel(fresh, wait_s=0, actor=Actor("root", ADMIN)) is False
    assert sql(db, "SELECT stop_requested_by FROM articles WHERE id IN (?, ?) ORDER BY id",
               [fresh, queued]) == [("root",), ("bob",)]
    assert [r.stopping for r in remote.elsewhere(reg)] == [True, True]


def test_the_writing_process_honours_only_requests_made_for_its_run(backend, store, reg):
    db = backend
    article_id = new_row(store, "stopped by request")
    # A request left from an earlier run of the row is ignored: Continue clears it.
    assert liveness.request_stop(db, article_id, "someone")
    assert store.reopen(article_id, provider="openai", model="gpt-4o-mini")
    job = FakeJob()
    reg.track(article_id, job=job)
    assert remote.poll(reg) == [] and job.cancels == 0

    # A request from a server whose clock is far behind this one's still stops the run
    # (no clocks are compared: servers' clocks may differ).
    assert liveness.request_stop(db, article_id, "alice")
    sql(db, "UPDATE articles SET stop_requested_at = ? WHERE id = ?",
        ["2000-01-01T00:00:00.000Z", article_id])
    assert remote.poll(reg) == [article_id] and job.cancels == 1
    assert remote.poll(reg) == [] and job.cancels == 1  # asked once: it is stopping

    # A row that has ended takes no request.
    sql(db, "UPDATE articles SET status = 'stopped' WHERE id = ?", [article_id])
    assert not liveness.request_stop(db, article_id, "alice")


def test_the_watcher_stops_a_tracked_job_that_another_process_asked_to_stop(backend, store, reg):
    import threading

    db = backend
    article_id = new_row(store, "watched")
    stopped = threading.Event()

    class Job(FakeJob):
        def cancel(self, wait_s: float = 2.0) -> bool:
            stopped.set()
            return super().cancel(wait_s)

    reg.track(article_id, job=Job())  # starts the process's watcher
    assert liveness.request_stop(db, article_id, "alice")
    assert stopped.wait(30), "the watcher did not honour the request"


def test_a_database_that_cannot_be_read_now_lists_nothing(tmp_path):
    """The sidebar asks on every page run: a file not migrated yet (another program made
    it) or held by an exclusive lock gives an empty list, never an error (the page
    itself says what is wrong with the database). SQLite only: files and locks; the
    PostgreSQL cases are the next test."""
    path = tmp_path / "new.db"
    sqlite3.connect(path).close()  # a file with no tables
    assert liveness.running_rows(path) == []
    store = Store(tmp_path / "w.db")
    holder = sqlite3.connect(store.path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        assert liveness.running_rows(store.path) == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_a_postgresql_database_that_cannot_be_read_now_lists_nothing(pg_url):
    """The same on PostgreSQL: a database with no tables yet (no server has started on it)
    and a server that does not answer give an empty list, never an error."""
    from pg_server import free_port

    try:
        assert liveness.running_rows(pg_url) == []
        down = f"postgresql://writer@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
        assert liveness.running_rows(down) == []
    finally:
        pg.close_pool()
