"""The schema on PostgreSQL (writer/storage/pg_schema.py) against SQLite's
(writer/storage/migrations.py): the same migrations by name and order, applied once even
when several servers open a fresh database together, and the same columns in every
table, so every storage module reads and writes both alike."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from writer.storage import migrations, pg, pg_schema
from writer.storage.connection import StorageError, table_columns, utc_now
from writer.storage.migrations import MIGRATIONS
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
# SQLite's search indexes are FTS5 virtual tables and their shadow tables; PostgreSQL's
# are indexes on `articles` (pg_trgm) and its `grams` column.
SQLITE_ONLY = re.compile(r"^(sqlite_|articles_fts|articles_grams)")
PG_ONLY_COLUMNS = {"articles": {"grams"}}
# SQLite type (as migrations write it) -> the PostgreSQL types it becomes
TYPES = {"INTEGER": {"bigint"}, "REAL": {"double precision"}, "FLOAT": {"double precision"},
         "TEXT": {"text", "citext"}}


@pytest.fixture
def url(pg_url):
    yield pg_url
    pg.close_pool()  # before the database is dropped


def _applied(url: str) -> list[tuple[str, str]]:
    conn = pg.PgConnection(url)
    try:
        return conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()
    finally:
        conn.close()


def test_both_databases_have_the_same_migrations_in_the_same_order():
    names = [fn.__name__ for fn in MIGRATIONS]
    assert list(pg_schema.PG_MIGRATIONS) == names
    assert names == sorted(names) and len(set(names)) == len(names)  # mNNN_, append-only
    assert all(callable(fn) for fn in pg_schema.PG_MIGRATIONS.values())


def test_a_fresh_database_gets_every_migration_and_a_second_migrate_does_nothing(url):
    store = Store(url)
    before = _applied(url)
    assert [name for name, _ in before] == [fn.__name__ for fn in MIGRATIONS]
    assert len({at for _, at in before}) == 1  # one transaction
    assert pg_schema.pending(store.conn) == [] and migrations.pending(store.conn) == []
    assert migrations.migrate(store.conn) == []
    assert pg_schema.migrate(store.conn, utc_now()) == []
    store.close()
    Store(url).close()  # and opening again
    assert _applied(url) == before


def test_a_migration_added_later_is_applied_once(url, monkeypatch):
    Store(url).close()
    calls = []

    def m999_extra(conn) -> None:
        calls.append(1)
        conn.execute_raw("ALTER TABLE articles ADD COLUMN extra TEXT")

    monkeypatch.setitem(pg_schema.PG_MIGRATIONS, "m999_extra", m999_extra)
    store = Store(url)
    assert "extra" in table_columns(store.conn, "articles")
    assert migrations.migrate(store.conn) == []
    store.close()
    Store(url).close()
    assert calls == [1] and _applied(url)[-1][0] == "m999_extra"


def test_a_failing_migration_leaves_nothing_half_done(url, monkeypatch):
    def m999_broken(conn) -> None:
        conn.execute_raw("ALTER TABLE articles ADD COLUMN extra TEXT")
        conn.execute_raw("ALTER TABLE no_such_table ADD COLUMN x TEXT")

    monkeypatch.setitem(pg_schema.PG_MIGRATIONS, "m999_broken", m999_broken)
    with pytest.raises(StorageError) as caught:
        Store(url)
    assert 'relation "no_such_table" does not exist' in str(caught.value)
    assert str(caught.value).startswith("cannot open ") and "\n" not in str(caught.value)
    conn = pg.PgConnection(url)
    try:  # DDL is transactional: not even the baseline was kept
        assert conn.execute("SELECT to_regclass('articles'), to_regclass('_migrations')"
                            ).fetchone() == (None, None)
    finally:
        conn.close()


def test_threads_opening_a_fresh_database_at_once_all_succeed_and_migrate_once(url):
    start = threading.Barrier(6)
    opened: list = []
    errors: list = []

    def open_store() -> None:
        try:
            start.wait(30)
            store = Store(url)
            opened.append(store.count())
            store.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and opened == [0] * 6
    applied = _applied(url)
    assert [name for name, _ in applied] == [fn.__name__ for fn in MIGRATIONS]
    assert len({at for _, at in applied}) == 1  # by one of them, in one transaction


def test_migrate_itself_runs_once_when_called_together(url):
    start = threading.Barrier(4)
    results: list = []
    errors: list = []

    def run() -> None:
        conn = pg.PgConnection(url)
        try:
            start.wait(30)
            results.append(pg_schema.migrate(conn, utc_now()))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    names = [fn.__name__ for fn in MIGRATIONS]
    assert sorted(results, key=len) == [[], [], [], names]  # one applied all, three found none


def test_processes_opening_a_fresh_database_at_once_all_succeed(url):
    code = ("import sys; from writer.storage.store import Store; s = Store(sys.argv[1]); "
            "print(s.count()); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outcomes = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outcomes
    assert [out.strip() for out, _ in outcomes] == ["0", "0", "0"]
    applied = _applied(url)
    assert [name for name, _ in applied] == [fn.__name__ for fn in MIGRATIONS]
    assert len({at for _, at in applied}) == 1


def _sqlite_tables(store: Store) -> dict[str, list[tuple[str, str, str]]]:
    """{table: [(column, declared type, its SQL)]} of a SQLite store, FTS tables left out."""
    tables = {}
    for name, sql in store.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
        if SQLITE_ONLY.match(name):
            continue
        tables[name] = [(row[1], row[2].upper(), sql)
                        for row in store.conn.execute(f"PRAGMA table_info([{name}])")]
    return tables


def test_every_table_has_the_same_columns_on_both_databases(url, tmp_path):
    lite, post = Store(tmp_path / "w.db"), Store(url)
    try:
        tables = _sqlite_tables(lite)
        pg_tables = {name for (name,) in post.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        assert pg_tables == set(tables)
        assert {"articles", "versions", "users", "sessions", "person_budgets", "batches",
                "batch_rows", "brands", "prices", "budgets", "provider_checks",
                "_migrations"} <= pg_tables
        for table in sorted(tables):
            sqlite_columns = set(table_columns(lite.conn, table))
            pg_columns = set(table_columns(post.conn, table))
            assert pg_columns - sqlite_columns == PG_ONLY_COLUMNS.get(table, set()), table
            assert sqlite_columns - pg_columns == set(), table
    finally:
        lite.close()
        post.close()


def test_types_match_and_case_free_names_are_citext(url, tmp_path):
    lite, post = Store(tmp_path / "w.db"), Store(url)
    try:
        pg_types = {(table, column): kind for table, column, kind in post.conn.execute(
            "SELECT table_name, column_name, CASE WHEN data_type = 'USER-DEFINED' THEN udt_name "
            "ELSE data_type END FROM information_schema.columns "
            "WHERE table_schema = current_schema()")}
        nocase, citext = set(), {key for key, kind in pg_types.items() if kind == "citext"}
        for table, columns in _sqlite_tables(lite).items():
            for column, kind, sql in columns:
                assert pg_types[(table, column)] in TYPES.get(kind, {"text"}), (table, column, kind)
                if re.search(rf"\[?{column}\]?\s+TEXT[^,]*COLLATE NOCASE", sql):
                    nocase.add((table, column))
        assert nocase == citext == {("users", "name"), ("sessions", "user_name"),
                                    ("person_budgets", "author")}
    finally:
        lite.close()
        post.close()
