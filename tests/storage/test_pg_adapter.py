"""writer/storage/pg.py, the PostgreSQL adapter: SQLite-spelled SQL translated for
psycopg (and nothing else touched), values in and out as SQLite gives them, errors as
`PgError` with their SQLSTATE, one-line StorageErrors that say what to fix and never
show a URL's password, and the connection pool: reused, and a connection the server
ended replaced instead of failing the next Store. Against the session's throwaway
server (tests/pg_server.py)."""
from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import PurePosixPath

import pytest
from pg_server import free_port

from writer.brief import Brief
from writer.kinds import Status
from writer.storage import connection, pg
from writer.storage.connection import DB_ERRORS, StorageError
from writer.storage.pg import PgConnection, PgError, translate
from writer.storage.store import Store

PASSWORD = "hunter2-Sekr1t"


@pytest.fixture
def url(pg_url):
    yield pg_url
    pg.close_pool()  # before the database is dropped


@pytest.fixture
def conn(url):
    conn = PgConnection(url)
    yield conn
    conn.close()


# -- translate ---------------------------------------------------------------------
@pytest.mark.parametrize("sqlite, postgresql", [
    ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
    ("UPDATE t SET x = :cost WHERE :cost IS NULL OR y = :y_2",
     "UPDATE t SET x = %(cost)s WHERE %(cost)s IS NULL OR y = %(y_2)s"),
    ("SELECT [group], [order] FROM [t]", 'SELECT "group", "order" FROM "t"'),
    ("SELECT a % 2, 'x' || ? FROM t", "SELECT a %% 2, 'x' || %s FROM t"),
    # inside literals, quoted names and comments nothing changes but the doubled `%`
    ("SELECT '? :name [x] 50%' FROM t WHERE a = ?", "SELECT '? :name [x] 50%%' FROM t WHERE a = %s"),
    ("SELECT 'it''s ?', \"odd ? [name]\" FROM t", "SELECT 'it''s ?', \"odd ? [name]\" FROM t"),
    ("SELECT 1 -- why? :because [so] 100%\nFROM t WHERE a = ?",
     "SELECT 1 -- why? :because [so] 100%%\nFROM t WHERE a = %s"),
    # casts are not named parameters
    ("SELECT x::text, '{}'::text[], CAST(? AS NUMERIC) FROM t",
     "SELECT x::text, '{}'::text[], CAST(%s AS NUMERIC) FROM t"),
    ("SELECT ?::bigint, a::int", "SELECT %s::bigint, a::int"),
])
def test_translate_changes_only_the_spelling(sqlite, postgresql):
    assert translate(sqlite) == postgresql


def test_translated_sql_runs_with_its_parameters(conn):
    assert conn.execute("SELECT ? + 1, '? :a [b] 5%', 7 % 4, ? IS NULL",
                        [41, None]).fetchone() == (42, "? :a [b] 5%", 3, True)
    assert conn.execute("SELECT :a || '%' || :a, :n::text", {"a": "x", "n": 5}).fetchone() == (
        "x%x", "5")
    conn.execute("CREATE TABLE [t] ([group] TEXT, n BIGINT)")
    conn.executemany("INSERT INTO [t] ([group], n) VALUES (?, ?)", [("a", 1), ("b", 2)])
    assert conn.execute('SELECT "group", n FROM t ORDER BY n').fetchall() == [("a", 1), ("b", 2)]
    assert conn.columns("t") == ["group", "n"]


# -- values ------------------------------------------------------------------------
def test_numeric_results_are_int_or_float_never_decimal(conn):
    row = conn.execute("SELECT sum(x), round(CAST(0.1 AS NUMERIC) + 0.2, 8), 1.5::numeric, "
                       "avg(x), count(*) FROM (VALUES (1::bigint), (2::bigint)) AS v(x)").fetchone()
    assert row == (3, 0.3, 1.5, 1.5, 2)
    assert [type(v) for v in row] == [int, float, float, float, int]
    assert not any(isinstance(v, Decimal) for v in row)


def test_bools_enums_and_paths_are_passed_as_sqlite_stores_them(conn):
    assert conn.execute("SELECT ? + 0, ? + 0, ?, ?", [True, False, Status.COMPLETED,
                                                      PurePosixPath("/a/b.db")]).fetchone() == (
        1, 0, "completed", "/a/b.db")
    assert conn.execute("SELECT :on + 0, :s", {"on": True, "s": Status.FAILED}).fetchone() == (
        1, "failed")


def test_a_store_saves_bools_and_enums_in_integer_and_text_columns(url):
    store = Store(url)
    article_id = store.create_article(Brief(topic="t"), provider="p", model="m", max_tokens=5,
                                      status=Status.QUEUED)
    assert store.update(article_id, status=Status.COMPLETED, fallback=True, length_control=False)
    row = store.get(article_id)
    assert (row["status"], row["fallback"], row["length_control"]) == ("completed", 1, 0)
    store.close()


# -- errors ------------------------------------------------------------------------
@pytest.mark.parametrize("sql, sqlstate", [
    ("SELECT * FROM no_such_table", "42P01"),
    ("SELEC 1", "42601"),
    ("SELECT no_such_column FROM pg_class", "42703"),
    ("SELECT 1 / 0", "22012"),
])
def test_errors_are_pg_errors_with_their_sqlstate(conn, sql, sqlstate):
    with pytest.raises(PgError) as caught:
        conn.execute(sql)
    assert caught.value.sqlstate == sqlstate
    assert isinstance(caught.value, DB_ERRORS) and "\n" not in str(caught.value)
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


def test_a_constraint_error_in_a_store_is_a_storage_error_and_the_transaction_rolls_back(url):
    store = Store(url)
    with pytest.raises(StorageError) as caught:
        with store.transaction() as conn:
            conn.execute("INSERT INTO budgets (currency, monthly_amount) VALUES ('USD', 1)")
            conn.execute("INSERT INTO budgets (currency, monthly_amount) VALUES ('USD', 2)")
    assert isinstance(caught.value.__cause__, PgError)
    assert caught.value.__cause__.sqlstate == "23505"  # unique_violation
    assert "duplicate key" in str(caught.value) and "\n" not in str(caught.value)
    assert not store.conn.in_transaction and store.budgets() == {}
    store.close()


def _one_line_without_password(exc: BaseException) -> str:
    message = str(exc)
    assert message and "\n" not in message
    assert PASSWORD not in message and PASSWORD not in repr(exc.args)
    return message


def test_an_unreachable_server_names_the_fix_and_never_the_password():
    port = free_port()  # nothing listens there
    url = f"postgresql://writer:{PASSWORD}@127.0.0.1:{port}/writer"
    with pytest.raises(StorageError) as caught:
        Store(url)
    message = _one_line_without_password(caught.value)
    assert message.startswith("cannot reach the PostgreSQL server at ")
    assert f"127.0.0.1:{port}" in message
    assert "check that it runs and that WRITER_DATABASE_URL names its host and port" in message
    assert caught.value.exit_code == 1
    assert PASSWORD not in pg.redact_url(url) and pg.redact_url(url).startswith("postgresql://writer:")


def test_a_database_that_does_not_exist_names_the_fix_and_never_the_password(pg_server):
    url = pg_server.url_for("no_such_database_here").replace("writer@", f"writer:{PASSWORD}@")
    with pytest.raises(StorageError) as caught:
        Store(url)  # trust authentication: the password is accepted, the database is not
    message = _one_line_without_password(caught.value)
    assert 'database "no_such_database_here" does not exist' in message
    assert "create it (createdb) or fix WRITER_DATABASE_URL" in message


def test_a_write_waits_for_another_server_s_write_then_gives_a_storage_error(url, monkeypatch):
    """PostgreSQL's twin of test_store's locked SQLite file: a writer that holds the write
    lock (writer/storage/pg.py WRITE_LOCK) makes others wait at most LOCK_TIMEOUT_S."""
    monkeypatch.setattr(pg, "LOCK_TIMEOUT_S", 0.2)
    pg.close_pool()  # new connections take the short timeout
    store = Store(url)
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    other = PgConnection(url)
    try:
        with other.write():  # another server, in the middle of its write transaction
            with pytest.raises(StorageError) as caught:
                store.save_draft(article_id, "t", 1)
            message = _one_line_without_password(caught.value)
            assert message.startswith("the database postgresql://")
            assert message.endswith(f"{url.rsplit('@', 1)[1]} is locked by another program; try again")
            assert caught.value.__cause__.sqlstate == "55P03"  # lock_not_available
            assert store.get(article_id)["status"] == "streaming"  # reading still works
            assert not store.conn.in_transaction
    finally:
        other.close()
    store.save_draft(article_id, "t", 1)  # and writing works again once it lets go
    assert store.get(article_id)["content"] == "t"
    store.close()


# -- the pool ----------------------------------------------------------------------
def _backend_pid(store: Store) -> int:
    return store.conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _wait_until(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def test_the_pool_reuses_connections(url):
    first = Store(url)
    pid = _backend_pid(first)
    first.close()
    second = Store(url)
    assert _backend_pid(second) == pid  # the same server process: no new sign-in
    third = Store(url)  # while the second holds it: another connection
    assert _backend_pid(third) != pid
    second.close()
    third.close()


def test_a_connection_the_server_ended_is_replaced_not_handed_to_the_next_store(url):
    import psycopg

    store = Store(url)
    article_id = store.create_article(Brief(topic="kept"), provider="p", model="m", max_tokens=5)
    pid = _backend_pid(store)
    store.close()  # back to the pool, idle: the only one there
    assert [raw.info.backend_pid for raw, _ in pg._pool[url]] == [pid]
    with psycopg.connect(url, autocommit=True) as admin:  # outside the pool
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        _wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                          [pid]).fetchone() == (0,), "the backend has exited")
    store = Store(url)  # not the dead connection
    assert _backend_pid(store) != pid
    assert store.get(article_id)["topic"] == "kept"
    store.close()


def test_threads_share_the_pool_safely(url):
    Store(url).close()  # migrated once
    errors: list = []
    start = threading.Barrier(6)

    def work(n: int) -> None:
        try:
            start.wait(30)
            for i in range(10):
                store = Store(url)
                try:
                    store.create_article(Brief(topic=f"{n}-{i}"), provider="p", model="m",
                                         max_tokens=5)
                finally:
                    store.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    store = Store(url)
    assert store.count() == 60
    store.close()
    assert len(pg._pool[url]) <= pg.POOL_SIZE


def test_storage_error_for_a_url_never_shows_its_password():
    url = f"postgresql://writer:{PASSWORD}@db.example:5432/writer"
    error = connection.storage_error(url, PgError("permission denied for table articles"), "read")
    assert _one_line_without_password(error).startswith("cannot read postgresql://")
    assert "grant the user of WRITER_DATABASE_URL rights" in str(error)
    error = connection.storage_error(url, PgError('password authentication failed for user "w"'))
    assert "check the user and password in WRITER_DATABASE_URL" in _one_line_without_password(error)
