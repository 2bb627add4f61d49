"""PostgreSQL connections (WRITER_DATABASE_URL, psycopg 3) that the storage modules use
as they use SQLite's: `conn.execute(sql, params)` with `?` placeholders, a cursor with
`fetchone`/`fetchall`/`rowcount`/`description`, `in_transaction`, and explicit
transactions (`writer/storage/connection.py` `immediate`).

The storage modules write one SQL that both databases run where the two agree (upserts
with `ON CONFLICT`, `RETURNING id`, `lower(x)` for case-free order); `translate` makes
only the spelling PostgreSQL wants — `%s` for `?`, `"name"` for `[name]`, `%%` for a
literal `%`. What differs in substance (search, the schema, the usage day in a time
zone) is written per database in the module concerned, on `conn.dialect`.

Write transactions take one advisory lock (`WRITE_LOCK`) first: like SQLite's `BEGIN
IMMEDIATE`, one writer at a time across every server, so a read-then-write inside a
transaction (the last admin, a budget, a draft on a deleted row) sees what it changes.
They are a few milliseconds each. Rows that several servers race for (a batch's rows)
are claimed with `FOR UPDATE SKIP LOCKED` as well.

Connections are pooled per URL and thread-safe to hand over (a `Store` is opened per
page run and job): `acquire` / `release`. psycopg is imported only when a URL is used.
A URL's password never appears in a message: `redact_url` (writer/logs.py).
"""
from __future__ import annotations

import contextlib
import enum
import functools
import os
import re
import select
import threading
import time
from pathlib import PurePath
from typing import Iterator

from writer.logs import redact_url  # noqa: F401 (this module's name for it too)

DIALECT = "postgresql"
WRITE_LOCK = 0x77726974  # "writ": the advisory lock every write transaction takes first
MIGRATE_LOCK = 0x6D696772  # "migr": migrations, once across servers starting together
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 8  # idle connections kept per URL
IDLE_CHECK_S = 30.0  # a connection idle longer than this is checked before reuse
# How long a statement waits for a lock (the write lock above all) before it fails with
# "lock timeout" (55P03), as SQLite's busy timeout (connection.BUSY_TIMEOUT_S): a writer
# that hangs inside its transaction must not hang every other writer with it.
LOCK_TIMEOUT_S = 15.0


class PgError(Exception):
    """A PostgreSQL error, as the storage modules catch it beside sqlite3.Error
    (`connection.DB_ERRORS`); `sqlstate` is PostgreSQL's code ("42P01": no such table)."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


def is_url(target) -> bool:
    return isinstance(target, str) and target.split(":", 1)[0] in ("postgresql", "postgres")


# -- SQL spelling ------------------------------------------------------------------
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|\[([A-Za-z_]\w*)\]|\?|%"
                    r"|(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite-spelled SQL as psycopg takes it: `?` → `%s`, `:name` → `%(name)s` and
    `[name]` → `"name"` outside literals and comments; every `%` doubled (psycopg reads
    `%` everywhere)."""
    def repl(match: re.Match) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if match.group(1) is not None:
            return f'"{match.group(1)}"'
        if match.group(2) is not None:  # a named parameter (:name)
            return f"%({match.group(2)})s"
        return text.replace("%", "%%")
    return _TOKEN.sub(repl, sql)


def _param(value):
    if isinstance(value, bool):  # INTEGER columns, as SQLite stores them
        return int(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    return value


def _params(params):
    if isinstance(params, dict):
        return {k: _param(v) for k, v in params.items()}
    return [_param(v) for v in (params or ())]


# -- connections -------------------------------------------------------------------
class PgCursor:
    """The part of sqlite3.Cursor the storage modules use."""

    def __init__(self, cursor):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self):
        return self._cursor.description

    @property
    def lastrowid(self):
        raise AttributeError("PostgreSQL has no lastrowid: use INSERT … RETURNING id")

    def fetchone(self):
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self):
        return iter(self.fetchall())


class PgConnection:
    """A pooled psycopg connection in autocommit (transactions are explicit, as in
    writer/storage/connection.py), spoken to as to sqlite3.Connection."""

    dialect = DIALECT

    def __init__(self, url: str, *, dict_rows: bool = False):
        self.url = url
        self.raw = acquire(url)
        self._row_factory = None
        if dict_rows:  # as sqlite3.Row: rows read by column name
            from psycopg.rows import dict_row

            self._row_factory = dict_row

    def execute(self, sql: str, params=()) -> PgCursor:
        psycopg = _psycopg()
        cursor = self.raw.cursor(row_factory=self._row_factory) if self._row_factory \
            else self.raw.cursor()
        try:
            cursor.execute(translate(sql), _params(params))
        except psycopg.Error as exc:
            raise _error(exc) from exc
        return PgCursor(cursor)

    def execute_raw(self, sql: str) -> None:
        """A statement as written (DDL with `$$` bodies): no translation, no parameters."""
        psycopg = _psycopg()
        try:
            self.raw.execute(sql)
        except psycopg.Error as exc:
            raise _error(exc) from exc

    def executemany(self, sql: str, rows) -> None:
        psycopg = _psycopg()
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(translate(sql), [_params(r) for r in rows])
        except psycopg.Error as exc:
            raise _error(exc) from exc

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @contextlib.contextmanager
    def write(self, lock: int = WRITE_LOCK) -> Iterator[PgConnection]:
        """BEGIN, the advisory write lock, then COMMIT (ROLLBACK on any error)."""
        if self.in_transaction:  # already inside one: become part of it
            yield self
            return
        self.execute("BEGIN")
        try:
            self.execute("SELECT pg_advisory_xact_lock(?)", [lock])
            yield self
        except BaseException:
            with contextlib.suppress(Exception):
                self.raw.rollback()
            raise
        try:
            self.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                self.raw.rollback()
            raise

    def columns(self, table: str) -> list[str]:
        return [name for (name,) in self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", [table])]

    def close(self) -> None:
        raw, self.raw = self.raw, None
        if raw is not None:
            release(self.url, raw)


def connect(url: str) -> PgConnection:
    return PgConnection(url)


def _error(exc) -> PgError:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return PgError(text, getattr(exc, "sqlstate", None))


@functools.cache
def _psycopg():
    import psycopg

    return psycopg


def _number_loader():
    """numeric (sum() of integers, round()) as int or float, as SQLite gives them."""
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        def load(self, data):
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)
    return NumberLoader


_pool: dict[str, list[tuple[object, float]]] = {}
_pool_lock = threading.Lock()
_pool_pid = os.getpid()


def acquire(url: str):
    """An open connection to `url`: an idle one from the pool (checked with a round
    trip when idle for long: the server may have restarted), else a new one."""
    global _pool_pid
    psycopg = _psycopg()
    with _pool_lock:
        if _pool_pid != os.getpid():  # a forked child never shares its parent's sockets
            _pool.clear()
            _pool_pid = os.getpid()
        idle = _pool.get(url, [])
        while idle:
            raw, since = idle.pop()
            if raw.closed or raw.broken:
                continue
            # An idle connection has nothing to read unless the server closed it (a restart,
            # pg_terminate_backend, idle timeouts): then it is checked, and replaced if dead.
            if _readable(raw) or time.monotonic() - since > IDLE_CHECK_S:
                try:
                    raw.execute("SELECT 1")
                except psycopg.Error:
                    with contextlib.suppress(Exception):
                        raw.close()
                    continue
            return raw
    try:
        # Client-side binding: values are sent as literals, so `? IS NULL`, `coalesce(?, …)`
        # and the like take their types from the SQL, as on SQLite (server-side binding
        # cannot type a bare parameter).
        raw = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                              application_name="writer", cursor_factory=psycopg.ClientCursor)
    except psycopg.Error as exc:
        raise _error(exc) from exc
    raw.adapters.register_loader("numeric", _number_loader())
    try:
        raw.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
    except psycopg.Error as exc:
        with contextlib.suppress(Exception):
            raw.close()
        raise _error(exc) from exc
    return raw


def _readable(raw) -> bool:
    """Whether the server sent something to an idle connection (a FATAL before it closed
    it, or the end of the stream): a poll of the socket, no round trip."""
    try:
        return bool(select.select([raw.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True  # no usable socket: check it (and drop it)


def release(url: str, raw) -> None:
    from psycopg.pq import TransactionStatus

    if raw.closed or raw.broken:
        return
    if raw.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(Exception):
            raw.rollback()
    with _pool_lock:
        idle = _pool.setdefault(url, [])
        if len(idle) < POOL_SIZE and _pool_pid == os.getpid():
            idle.append((raw, time.monotonic()))
            return
    with contextlib.suppress(Exception):
        raw.close()


def close_pool() -> None:
    """Close every idle connection (tests that drop a database, a clean exit)."""
    with _pool_lock:
        conns = [raw for idle in _pool.values() for raw, _ in idle]
        _pool.clear()
    for raw in conns:
        with contextlib.suppress(Exception):
            raw.close()
