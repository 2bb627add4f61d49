"""The SQLite connection every storage module works through: how it is opened (WAL,
busy timeout, secure delete, private files), how a write transaction is taken, and how a
failure is told (one-line `StorageError`).

Many processes and threads write the same file at once (the CLI, every Streamlit
session, batch jobs). Every write transaction starts with `BEGIN IMMEDIATE`: it takes
the write lock first, waiting up to `BUSY_TIMEOUT_S` for it, instead of reading under
a deferred `BEGIN` and then failing at once with "database is locked" when it wants to
write. Every connection has `secure_delete` on: text that is overwritten or deleted is
zeroed in the file, so a deleted article leaves nothing behind (docs/schema.md).
"""
from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from writer import logs
from writer.errors import UserError
from writer.storage import liveness

BUSY_TIMEOUT_S = 15.0  # how long a write waits for another writer's lock


class StorageError(UserError, RuntimeError):
    """The database cannot be opened, read or written; the message is one line that
    says what to do."""

    key = "user_errors.storage"
    exit_code = 1  # the environment failed, not the person's input

    def __init__(self, message: str = "", **values):
        values.setdefault("detail", message)
        super().__init__(message, **values)


def utc_now() -> str:
    return liveness.utc_iso()


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection with explicit transactions, the busy timeout, secure delete and
    (for a file) WAL. Raises sqlite3/OS errors; `Store` turns them into StorageError."""
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
    """A write transaction that holds the write lock from its first statement."""
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
    """A one-line, actionable StorageError for a sqlite3 or OS error on `path`."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
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
