"""The connection every storage module works through: how it is opened (SQLite: WAL,
busy timeout, secure delete, private files; PostgreSQL: writer/storage/pg.py), how a
write transaction is taken, and how a failure is told (one-line `StorageError`).

`connect(target)` takes a SQLite path or a `postgresql://` URL (WRITER_DATABASE_URL);
both connections take `execute(sql, [params])` with `?` placeholders and have a
`dialect` ("sqlite" / "postgresql", `dialect(conn)`). `DB_ERRORS` is what either raises.

Many processes and threads write the same file at once (the CLI, every Streamlit
session, batch jobs). Every write transaction starts with `BEGIN IMMEDIATE`: it takes
the write lock first, waiting up to `BUSY_TIMEOUT_S` for it, instead of reading under
a deferred `BEGIN` and then failing at once with "database is locked" when it wants to
write. Every connection has `secure_delete` on: text that is overwritten or deleted is
zeroed in the file, so a deleted article leaves nothing behind (docs/schema.md).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import random
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from writer import logs
from writer.errors import UserError
from writer.storage.pg import PgConnection, PgError, is_url, redact_url

BUSY_TIMEOUT_S = 15.0  # how long a write waits for another writer's lock


class StorageError(UserError, RuntimeError):
    """The database cannot be opened, read or written; the message is one line that
    says what to do."""

    key = "user_errors.storage"
    exit_code = 1  # the environment failed, not the person's input

    def __init__(self, message: str = "", **values):
        values.setdefault("detail", message)
        super().__init__(message, **values)


DB_ERRORS = (sqlite3.Error, PgError)  # what a connection of either kind raises
SQLITE = "sqlite"


def dialect(conn) -> str:
    """"sqlite" or "postgresql": the database `conn` speaks to."""
    return getattr(conn, "dialect", SQLITE)


def table_columns(conn, table: str) -> list[str]:
    if dialect(conn) != SQLITE:
        return conn.columns(table)
    return [row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")]


def utc_iso(when: dt.datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and a Z, like every timestamp in the database."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return utc_iso()


def connect(path: str | Path):
    """A connection with explicit transactions: for a `postgresql://` URL a pooled
    PgConnection (writer/storage/pg.py); for SQLite the busy timeout, secure delete and
    (for a file) WAL. Raises DB_ERRORS/OS errors; `Store` turns them into StorageError."""
    if is_url(path):
        return PgConnection(path)
    memory = str(path) == ":memory:"
    if not memory:
        # Private (writer/logs.py): a new folder 0700, a new file 0600 before SQLite opens
        # it (its -wal and -shm files take the database file's mode), an older file that
        # others could read narrowed to its owner.
        logs.private_folder(Path(path).parent)
        logs.private_file(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S,
                           isolation_level=None)  # transactions are explicit
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA secure_delete = ON")
        if not memory:
            enable_wal(conn)
            for suffix in ("-wal", "-shm"):  # left by an older version with a wider mode
                logs.private_file(f"{path}{suffix}", create=False)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that holds the write lock from its first statement (on
    PostgreSQL an advisory lock, the same one writer at a time: writer/storage/pg.py)."""
    if dialect(conn) != SQLITE:
        with conn.write():
            yield conn
        return
    if conn.in_transaction:  # already inside one: become part of it
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def enable_wal(conn: sqlite3.Connection) -> None:
    """WAL mode, retried with a short backoff: switching needs a moment of exclusive
    access and fails at once (busy timeout or not) while another process holds a lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay * random.uniform(1.0, 2.0))
            delay = min(delay * 2, 0.1)


def storage_error(path: str | Path, exc: BaseException, action: str = "write") -> StorageError:
    """A one-line, actionable StorageError for a database or OS error on `path` (a
    SQLite file, or a PostgreSQL URL: told without its password)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if is_url(str(path)):
        return _pg_error(redact_url(str(path)), reason, action)
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    lowered = reason.lower()
    if "locked" in lowered or "busy" in lowered:
        return StorageError(f"the database {path} is locked by another program; try again")
    if "not a database" in lowered or "malformed" in lowered:
        return StorageError(f"{path} is not a usable SQLite database ({reason}); point WRITER_DB "
                            "at another file or restore it from a backup")
    if "readonly" in lowered or "read-only" in lowered:
        return StorageError(f"cannot {action} {path}: {reason}; make the file and its folder "
                            "writable, or set WRITER_DB to another file")
    if "unable to open" in lowered or isinstance(exc, PermissionError):
        return StorageError(f"cannot {action} {path}: {reason}; check that its folder exists and "
                            "is writable, or set WRITER_DB to another file")
    return StorageError(f"cannot {action} {path}: {reason}")


def _pg_error(where: str, reason: str, action: str) -> StorageError:
    # The server's own words, without libpq's "connection to server at … failed: FATAL:"
    reason = reason.rsplit("FATAL:", 1)[-1].strip() or reason
    lowered = reason.lower()
    if "lock timeout" in lowered:  # another server's write held the lock (pg.LOCK_TIMEOUT_S)
        return StorageError(f"the database {where} is locked by another program; try again")
    # refusals of a server that answered first: "does not exist" is not "cannot reach"
    if "authentication" in lowered or "no password" in lowered or "pg_hba.conf" in lowered \
            or lowered.startswith('role "') and "does not exist" in lowered:
        return StorageError(f"PostgreSQL refused the sign-in at {where}: {reason}; check the user "
                            "and password in WRITER_DATABASE_URL")
    if lowered.startswith('database "') and "does not exist" in lowered:
        return StorageError(f"{reason} at {where}; create it (createdb) or fix WRITER_DATABASE_URL")
    if any(text in lowered for text in ("connection refused", "could not connect", "timeout",
                                         "no route", "name or service", "connection failed",
                                         "server closed", "terminating connection")):
        return StorageError(f"cannot reach the PostgreSQL server at {where}: {reason}; check that "
                            "it runs and that WRITER_DATABASE_URL names its host and port")
    if "permission denied" in lowered:
        return StorageError(f"cannot {action} {where}: {reason}; grant the user of "
                            "WRITER_DATABASE_URL rights on the database")
    return StorageError(f"cannot {action} {where}: {reason}")
