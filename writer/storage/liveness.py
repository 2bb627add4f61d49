"""Whether a row's writer is alive: the SQL of a heartbeat, and when a row is stale.

A process that writes articles stamps their rows every `heartbeat_s()` seconds
(`beat_rows`, called by the registry of live runs, writer/runs/registry.py). A `queued`
or `streaming` row whose `heartbeat_at` is older than `stale_after_s()` (3 beats, 15 s
by default) belongs to a process that died: `Store` marks it stopped / interrupted, and
a batch left `running` is paused. PIDs are not used: they are reused (often PID 1 in a
container).

The beat's period is the setting WRITER_HEARTBEAT_S (`Settings.heartbeat_s`, from the
environment or `.env`, as last read in this process); tests may set `HEARTBEAT_S`.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from pathlib import Path

from writer.config import current_settings
from writer.storage import pg
from writer.storage.connection import immediate, utc_iso  # noqa: F401 (utc_iso: also here)

HEARTBEAT_S: float | None = None  # None: the setting; a number overrides it (tests)
STALE_BEATS = 3  # missed beats after which a `streaming` row counts as interrupted


def heartbeat_s() -> float:
    """Seconds between two beats of a running row in this process."""
    return HEARTBEAT_S if HEARTBEAT_S is not None else current_settings().heartbeat_s


def stale_after_s() -> float:
    """Seconds without a heartbeat after which a `streaming` row is interrupted."""
    return STALE_BEATS * heartbeat_s()


def stale_cutoff() -> str:
    """Rows whose last heartbeat is before this timestamp are stale."""
    return utc_iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=stale_after_s()))


def beat_rows(db_path: str | os.PathLike, ids: list[int]) -> list[int]:
    """One beat: in one short `BEGIN IMMEDIATE` transaction on its own connection, stamp
    `heartbeat_at = now` on those of `ids` still `queued` or `streaming` (and a revision
    being written for one of them), and return the ids that are deleted or missing.
    Raises on a database that cannot be written (the caller logs it and beats again)."""
    if not ids:
        return []
    conn = connect_short(db_path)
    try:
        marks = ", ".join("?" * len(ids))
        with immediate(conn):  # SQLite BEGIN IMMEDIATE, PostgreSQL the write lock
            now = utc_iso()
            conn.execute(f"UPDATE articles SET heartbeat_at = ? WHERE status IN "
                         f"('queued', 'streaming') AND id IN ({marks})", [now, *ids])
            # a revision being written for one of them (writer/runs/revisions.py) beats too
            conn.execute(f"UPDATE versions SET updated_at = ? WHERE status IN "
                         f"('queued', 'streaming') AND article_id IN ({marks})", [now, *ids])
            found = {r["id"]: r["deleted_at"] for r in conn.execute(
                f"SELECT id, deleted_at FROM articles WHERE id IN ({marks})", ids).fetchall()}
    finally:
        conn.close()
    return [i for i in ids if i not in found or found[i] is not None]


def connect_short(db_path: str | os.PathLike):
    """A short-lived connection for one small read or write (a beat, a stop request, a
    stream slot): SQLite with mode=rw (never creates an empty file for a path that does
    not exist; none of `connect`'s file-mode and WAL checks, 0.05 vs 0.7 ms), or a pooled
    PostgreSQL one. Rows read by column name on both."""
    if pg.is_url(db_path):
        return pg.PgConnection(db_path, dict_rows=True)
    timeout = max(1.0, heartbeat_s())
    conn = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=rw", uri=True,
                           timeout=timeout, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.row_factory = sqlite3.Row
    return conn


# -- running elsewhere: the rows another process writes, and a Stop for them (m017) ------
RUNNING_COLUMNS = ("id", "topic", "author", "words", "target_words", "provider", "status",
                   "language", "stop_requested_at")


def running_rows(db_path: str | os.PathLike, exclude: list[int] | tuple = (),
                 article_id: int | None = None) -> list[dict]:
    """The `queued` / `streaming` rows with a fresh heartbeat (their writer is alive), not
    deleted, oldest first, except `exclude` (what this process writes); only
    `article_id`'s when given. No database file yet, or one that cannot be read now
    (not migrated yet, locked by another program): none (the sidebar lists what it can;
    the page itself says what is wrong with the database)."""
    if not pg.is_url(db_path) and not Path(db_path).exists():
        return []
    where = ["status IN ('queued', 'streaming')", "deleted_at IS NULL", "heartbeat_at >= ?"]
    args: list = [stale_cutoff()]
    if exclude:
        where.append(f"id NOT IN ({', '.join('?' * len(exclude))})")
        args += [int(i) for i in exclude]
    if article_id is not None:
        where.append("id = ?")
        args.append(int(article_id))
    try:
        conn = connect_short(db_path)
        try:
            rows = conn.execute(f"SELECT {', '.join(RUNNING_COLUMNS)} FROM articles WHERE "
                                f"{' AND '.join(where)} ORDER BY id", args).fetchall()
        finally:
            conn.close()
    except (sqlite3.OperationalError, pg.PgError) as exc:  # not migrated yet, locked, down
        log.debug("running rows of %s not read: %s", db_path, exc)
        return []
    return [dict(r) for r in rows]


def request_stop(db_path: str | os.PathLike, article_id: int, by: str | None) -> bool:
    """Ask the process writing `article_id` to stop it: stamps `stop_requested_at` (and
    who asked) while the row is still `queued` / `streaming`. True if it was."""
    conn = connect_short(db_path)
    try:
        cur = conn.execute("UPDATE articles SET stop_requested_at = ?, stop_requested_by = ? "
                           "WHERE id = ? AND status IN ('queued', 'streaming')",
                           [utc_iso(), by, int(article_id)])
        return cur.rowcount == 1
    finally:
        conn.close()


def stop_requests(db_path: str | os.PathLike, ids: list[int]) -> list[int]:
    """Of `ids` (the rows this process writes), those with a Stop requested. A request
    is for the run it finds: Continue clears an earlier run's (`Store.reopen`), so no
    clock is compared — servers' clocks may differ (a request stamped by a server whose
    clock is behind would otherwise be ignored). One query over the primary key."""
    if not ids:
        return []
    ids = sorted(ids)
    conn = connect_short(db_path)
    try:
        found = conn.execute(
            f"SELECT id, stop_requested_at FROM articles WHERE id IN "
            f"({', '.join('?' * len(ids))}) AND stop_requested_at IS NOT NULL", ids).fetchall()
    finally:
        conn.close()
    return [r["id"] for r in found]


def row_status(db_path: str | os.PathLike, article_id: int) -> str | None:
    """A row's status (None: no such row)."""
    conn = connect_short(db_path)
    try:
        row = conn.execute("SELECT status FROM articles WHERE id = ?", [int(article_id)]).fetchone()
    finally:
        conn.close()
    return row["status"] if row is not None else None


log = logging.getLogger("writer")  # where a failed beat or recovery is reported
