"""The storage suite runs on both databases: `database` is a fresh SQLite file or a fresh
PostgreSQL database (the session's throwaway server, tests/pg_server.py), and
`backend_env` is the `env` fixture pointed at it (WRITER_DATABASE_URL for PostgreSQL).
A test that is about one database only (SQLite's files and WAL, old SQLite schemas,
query plans) keeps `tmp_path` / `env` and says why in its docstring.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from writer.storage import pg

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    """Where a Store opens: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        yield tmp_path / "w.db"
        return
    url = request.getfixturevalue("pg_url")
    yield url
    pg.close_pool()  # before the database is dropped: no pooled connection outlives it


@pytest.fixture
def backend_env(env, database, monkeypatch):
    """`env`, with the database of this run of the test (WRITER_DB for SQLite, else
    WRITER_DATABASE_URL); `backend_env["database"]` is what `Store(...)` takes."""
    values = dict(env)
    if pg.is_url(database):
        monkeypatch.setenv("WRITER_DATABASE_URL", database)
        values["WRITER_DATABASE_URL"] = database
    else:
        monkeypatch.setenv("WRITER_DB", str(database))
        values["WRITER_DB"] = str(database)
    values["database"] = database
    return values


def stored_bytes(database) -> bytes:
    """Everything `database` holds where a reader of it could find text. SQLite: the bytes
    of its files (the WAL and a journal included). PostgreSQL: every live row of every
    table, as text (dead row versions and the server's files are VACUUM's: see
    tests/storage/test_delete.py)."""
    if not pg.is_url(database):
        return b"".join(Path(f"{database}{suffix}").read_bytes()
                        for suffix in ("", "-wal", "-shm", "-journal")
                        if Path(f"{database}{suffix}").exists())
    import psycopg
    from psycopg import sql

    with psycopg.connect(database, autocommit=True) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")]
        return "\n".join(
            str(text) for table in tables for (text,) in conn.execute(
                sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table)))).encode()


@pytest.fixture
def stored():
    """`stored_bytes`, for the tests (a conftest is not imported by name)."""
    return stored_bytes
