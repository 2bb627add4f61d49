import contextlib
import os
import sqlite3
import subprocess

import pytest

from writer.access import Actor
from writer.brief import Brief
from writer.storage import connection
from writer.storage import store as store_mod
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)


def test_article_lifecycle(database):
    store = Store(database)
    brief = Brief(topic="测试", keywords="a, b", target_words=300)
    article_id = store.create_article(brief, provider="p", model="m", max_tokens=1000)
    row = store.get(article_id)
    assert row["status"] == "streaming" and row["keywords"] == ["a", "b"]
    assert row["created_at"].endswith("Z") and "T" in row["created_at"]
    store.save_draft(article_id, "部分", 2)
    assert store.get(article_id)["content"] == "部分"
    store.update(article_id, status="completed", content="全文", words=2, cost=None)
    row = store.get(article_id)
    assert row["status"] == "completed" and row["cost"] is None
    assert [r["id"] for r in store.recent()] == [article_id]
    assert store.count() == 1


def test_rejects_unknown_status(database):
    store = Store(database)
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    try:
        store.update(article_id, status="done")
    except ValueError as exc:
        assert "unknown status" in str(exc)
    else:
        raise AssertionError("status 'done' was accepted")


def test_never_stores_the_api_key(backend_env, fake, stored):
    from writer.config import load_settings
    from writer.runs.job import Job

    settings = load_settings()
    job = Job(Brief(topic="secret check"), settings)
    list(job.run())
    raw = stored(backend_env["database"])  # SQLite: the file, -wal and -shm; PG: every row
    assert b"secret check" in raw  # what the test reads holds the article
    assert b"sk-test-secret" not in raw
    store = Store(backend_env["database"])
    assert store.conn.execute("select count(*) from articles").fetchone()[0] == 1
    store.close()
    assert store_mod.STATUSES == ("queued", "streaming", "completed", "stopped", "failed",
                                  "truncated")


# -- ids never reused, soft delete, heartbeat column -----------------------------------
def test_ids_are_never_reused(database):
    store = Store(database)
    brief = Brief(topic="x")
    first = store.create_article(brief, provider="p", model="m", max_tokens=10)
    second = store.create_article(brief, provider="p", model="m", max_tokens=10)
    assert store.delete(second, actor=ADMIN)
    third = store.create_article(brief, provider="p", model="m", max_tokens=10)
    assert third > second > first
    store.conn.execute("DELETE FROM articles WHERE id = ?", [third])  # even a hard delete
    assert store.create_article(brief, provider="p", model="m", max_tokens=10) > third


def test_delete_keeps_the_row_and_its_spend_but_not_its_text(database):
    store = Store(database)
    article_id = store.create_article(Brief(topic="花钱的文章"), provider="p", model="m",
                                      max_tokens=10)
    store.update(article_id, status="completed", content="正文", words=2, input_tokens=100,
                 output_tokens=200, cost=0.25, currency="CNY")
    assert store.delete(article_id, actor=ADMIN) is True
    assert store.delete(article_id, actor=ADMIN) is False  # already deleted
    assert store.delete(999, actor=ADMIN) is False
    assert store.get(article_id) is None
    assert store.recent() == [] and store.count() == 0
    row = store.get(article_id, include_deleted=True)
    assert row["deleted_at"] and row["content"] == "" and row["words"] == 0
    assert row["topic"] == "花钱的文章" and row["cost"] == 0.25 and row["output_tokens"] == 200


def test_a_job_finishing_after_a_delete_saves_its_spend_and_no_text(database):
    store = Store(database)
    article_id = store.create_article(Brief(topic="still streaming"), provider="p", model="m",
                                      max_tokens=10)
    store.save_draft(article_id, "draft text", 2)
    assert store.delete(article_id, actor=ADMIN)
    store.save_draft(article_id, "more draft text", 3)  # a no-op
    assert store.update(article_id, status="stopped", content="the whole text", words=3,
                        topic="renamed", input_tokens=7, output_tokens=9, cost=0.01,
                        currency="USD") is True
    row = store.get(article_id, include_deleted=True)
    assert row["content"] == "" and row["words"] == 0 and row["topic"] == "still streaming"
    assert (row["status"], row["input_tokens"], row["output_tokens"], row["cost"]) == (
        "stopped", 7, 9, 0.01)
    assert store.update(12345, status="completed") is False  # a missing row never raises
    assert store.reopen(article_id, provider="p", model="m") is False  # cannot continue it
    assert store.get(article_id, include_deleted=True)["status"] == "stopped"


def test_create_and_reopen_set_the_heartbeat(database):
    store = Store(database)
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    row = store.get(article_id)
    assert row["heartbeat_at"] == row["created_at"]
    store.update(article_id, status="stopped", heartbeat_at="2020-01-01T00:00:00.000Z")
    assert store.reopen(article_id, provider="q", model="n") is True
    row = store.get(article_id)
    assert row["status"] == "streaming" and row["heartbeat_at"] > "2026"
    assert row["provider"] == "q"


def test_rows_from_before_the_heartbeat_fall_back_to_updated_at(database):
    store = Store(database)
    old = store.create_article(Brief(topic="old"), provider="p", model="m", max_tokens=10)
    fresh = store.create_article(Brief(topic="fresh"), provider="p", model="m", max_tokens=10)
    store.conn.execute("UPDATE articles SET heartbeat_at = NULL, updated_at = ? WHERE id = ?",
                       ["2026-01-01T00:00:00.000Z", old])
    store.conn.execute("UPDATE articles SET heartbeat_at = NULL WHERE id = ?", [fresh])
    assert store.recover_interrupted() == [old]
    assert store.get(fresh)["status"] == "streaming"


def test_status_values_come_from_the_enum():
    from writer.kinds import Status

    assert store_mod.STATUSES == tuple(s.value for s in Status)
    assert all(type(s) is str for s in store_mod.STATUSES)


# -- StorageError: one line, never a raw sqlite3 exception -----------------------------
def _one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and message
    assert not isinstance(exc, sqlite3.Error)
    return message


def test_a_database_locked_by_another_program_is_a_storage_error(tmp_path, monkeypatch):
    """SQLite: another program's lock on the file (PostgreSQL's write lock: test_pg_adapter)."""
    from writer.storage.store import StorageError

    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "w.db"
    store = Store(path)
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        for write in (lambda: store.create_article(Brief(topic="y"), provider="p", model="m",
                                                   max_tokens=10),
                      lambda: store.save_draft(article_id, "t", 1),
                      lambda: store.update(article_id, status="completed"),
                      lambda: store.delete(article_id, actor=ADMIN),
                      lambda: store.set_budget("USD", 5, actor=ADMIN)):
            with pytest.raises(StorageError) as caught:
                write()
            assert "is locked by another program; try again" in _one_line(caught.value)
            assert str(path) in str(caught.value)
        assert store.get(article_id)["status"] == "streaming"  # WAL: reading still works
    finally:
        other.execute("ROLLBACK")
    assert store.delete(article_id, actor=ADMIN)  # and writing works again once it lets go
    store.close()

    other.execute("PRAGMA locking_mode = EXCLUSIVE")  # holds the file, readers included
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError) as caught:
            Store(path)
        assert "is locked by another program" in _one_line(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_file_that_cannot_be_a_database_is_a_storage_error(tmp_path):
    """SQLite: files (PostgreSQL's unreachable server, wrong database: test_pg_adapter)."""
    from writer.storage.store import StorageError

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StorageError) as caught:
        Store(not_a_folder / "w.db")
    assert _one_line(caught.value).startswith(f"cannot open {not_a_folder / 'w.db'}")

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError) as caught:
        Store(garbage)
    assert "not a usable SQLite database" in _one_line(caught.value)


@contextlib.contextmanager
def read_only(*paths):
    """Make paths read-only, for root too (chattr +i), and writable again afterwards."""
    if os.geteuid() != 0:
        for path in paths:
            path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            for path in paths:
                path.chmod(0o700 if path.is_dir() else 0o600)
        return
    try:
        done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("root ignores permissions and there is no chattr")
    if done.returncode:
        pytest.skip(f"root ignores permissions and chattr +i failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_a_read_only_folder_or_file_is_a_storage_error(tmp_path):
    """SQLite: file and folder modes."""
    from writer.storage.store import StorageError

    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "w.db"
    with read_only(folder):
        with pytest.raises(StorageError) as caught:
            Store(path)
    assert _one_line(caught.value) == (
        f"cannot open {path}: unable to open database file; check that its folder exists and "
        "is writable, or set WRITER_DB to another file")

    store = Store(path)
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    store.close()
    with read_only(path):
        store = Store(path)  # reading works
        assert store.get(article_id)["topic"] == "x"
        with pytest.raises(StorageError) as caught:
            store.update(article_id, status="completed")
        store.close()
    assert _one_line(caught.value).startswith(
        f"cannot save article #{article_id} in {path}: attempt to write a readonly database; "
        "make the file and its folder writable")
