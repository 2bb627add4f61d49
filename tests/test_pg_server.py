"""The throwaway PostgreSQL of tests/pg_server.py, which the PostgreSQL backend's tests
stand on: it starts, hands out isolated databases with the extensions the backend uses,
and leaves no server, port or directory behind."""
from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from pg_server import PgServer, PgServerError, database_of

TESTS = Path(__file__).resolve().parent


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def _alive(pid: int) -> bool:
    """Running, not merely a zombie its (adopting) parent has yet to reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return True
    return False


def test_the_server_answers_on_loopback_as_writer(pg_server):
    with psycopg.connect(pg_server.url) as conn:
        user, listen, fsync, encoding = conn.execute(
            "SELECT current_user, current_setting('listen_addresses'), current_setting('fsync'), "
            "current_setting('server_encoding')").fetchone()
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert (user, listen, fsync, encoding) == ("writer", "127.0.0.1", "off", "UTF8")
        assert conn.execute("SHOW max_connections").fetchone()[0] == "200"
        if os.geteuid() == 0:  # initdb refuses root: the server runs as postgres
            postgres = pwd.getpwnam("postgres").pw_uid
            assert _uid_of(backend) == postgres
            assert pg_server.data.stat().st_uid == postgres
    assert pg_server.url == f"postgresql://writer@127.0.0.1:{pg_server.port}/postgres"


def test_a_new_database_takes_a_table_rows_and_a_select(pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO docs (title) VALUES (%s), (%s)", ("Erste", "第二"))
        conn.commit()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT id, title FROM docs ORDER BY id").fetchall()
        assert conn.execute("SELECT current_database()").fetchone()[0] == database_of(pg_url)
    assert rows == [(1, "Erste"), (2, "第二")]


def test_two_new_databases_are_isolated(pg_server):
    first, second = pg_server.new_database(), pg_server.new_database()
    try:
        assert database_of(first) != database_of(second)
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
            conn.execute("INSERT INTO only_here VALUES (1)")
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone()[0] is None
            conn.execute("CREATE TABLE only_here (x int)")  # same name, its own table
            assert conn.execute("SELECT count(*) FROM only_here").fetchone()[0] == 0
    finally:
        pg_server.drop_database(first)
        pg_server.drop_database(second)


def test_pg_trgm_and_citext_can_be_created_in_a_new_database(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_trgm")
        conn.execute("CREATE EXTENSION citext")
        assert conn.execute("SELECT similarity('writer', 'writers') > 0.5").fetchone()[0] is True
        assert conn.execute("SELECT 'Anna@Example.org'::citext = 'anna@example.org'::citext"
                            ).fetchone()[0] is True
        conn.execute("CREATE TABLE t (body text)")
        conn.execute("CREATE INDEX t_trgm ON t USING gin (body gin_trgm_ops)")


def test_a_named_database_and_drop_ending_its_open_connections(pg_server):
    url = pg_server.new_database("named_db_for_test")
    assert database_of(url) == "named_db_for_test"
    still_open = psycopg.connect(url)
    try:
        pg_server.drop_database(url)
        with pytest.raises(psycopg.OperationalError):
            still_open.execute("SELECT 1")
    finally:
        still_open.close()
    with psycopg.connect(pg_server.url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'named_db_for_test'"
                            ).fetchone()[0] == 0
    with pytest.raises(PgServerError):
        pg_server.drop_database(pg_server.url)  # the server's own database stays


def test_stop_removes_the_directory_and_closes_the_port():
    server = PgServer().start()
    root, port = server.root, server.port
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    with psycopg.connect(server.new_database()) as conn:
        conn.execute("SELECT 1")
    assert root.is_dir() and _alive(postmaster)

    server.stop()

    assert not root.exists()
    assert not _alive(postmaster)
    assert _refused(port)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://writer@127.0.0.1:{port}/postgres", connect_timeout=5)
    server.stop()  # a second stop is harmless


def test_the_script_prints_a_url_and_removes_everything_at_ctrl_c():
    proc = subprocess.Popen([sys.executable, str(TESTS / "pg_server.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        said = proc.stderr.readline()
        assert url.startswith("postgresql://writer@127.0.0.1:"), (url, said, proc.stderr.read())
        root = Path(said.split("files in ", 1)[1].split(";", 1)[0])
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert root.is_dir()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not root.exists()
    assert _refused(int(url.split(":")[-1].split("/")[0]))
