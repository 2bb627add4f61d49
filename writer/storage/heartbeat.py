"""A heartbeat for the articles this process is writing, so a dead writer is noticed.

A job calls `register(db_path, article_id, on_deleted)` once its row exists (`queued` or
`streaming`) and `unregister(db_path, article_id)` once the final row is saved. One
daemon thread per process (started on the first `register`) wakes every `HEARTBEAT_S`
seconds and, per database file, in one short `BEGIN IMMEDIATE` transaction on its own
connection, sets `heartbeat_at = now` on every registered row still `queued` or
`streaming`. In the same transaction it reads which registered rows were deleted (or are
gone) and then calls their `on_deleted` once, outside the transaction; the job uses it
to stop itself.

A `queued` or `streaming` row whose `heartbeat_at` is older than `stale_after_s()` (3
beats, 15 s by default) belongs to a process that died: `Store` marks it stopped /
interrupted.
PIDs are not used: they are reused (often PID 1 in a container).

A failed beat (locked database, deleted file…) is logged to the "writer" logger and
the thread carries on. Pure Python, no streamlit.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def _seconds_from_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


HEARTBEAT_S = _seconds_from_env("WRITER_HEARTBEAT_S", 5.0)
STALE_BEATS = 3  # missed beats after which a `streaming` row counts as interrupted

log = logging.getLogger("writer")


def stale_after_s() -> float:
    """Seconds without a heartbeat after which a `streaming` row is interrupted."""
    return STALE_BEATS * HEARTBEAT_S


def utc_iso(when: dt.datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and a Z, like every timestamp in the database."""
    when = when or dt.datetime.now(dt.timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stale_cutoff() -> str:
    """Rows whose last heartbeat is before this timestamp are stale."""
    return utc_iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=stale_after_s()))


@dataclass
class _Entry:
    on_deleted: Callable[[], None] | None
    notified: bool = False


_lock = threading.Lock()
_rows: dict[str, dict[int, _Entry]] = {}  # resolved db path -> article id -> entry
_thread: threading.Thread | None = None
_wake = threading.Event()  # set by register(): re-read HEARTBEAT_S


def _forget_in_child() -> None:
    """A forked child writes none of its parent's rows and has no heartbeat thread."""
    global _lock, _thread, _wake
    _lock, _thread, _wake = threading.Lock(), None, threading.Event()
    _rows.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _key(db_path: str | os.PathLike) -> str:
    return str(Path(db_path).resolve())


def register(db_path: str | os.PathLike, article_id: int,
             on_deleted: Callable[[], None] | None = None) -> None:
    """Keep `article_id` in `db_path` beating until `unregister`; `on_deleted` is called
    once (from the heartbeat thread) when the article is found deleted."""
    global _thread
    with _lock:
        _rows.setdefault(_key(db_path), {})[int(article_id)] = _Entry(on_deleted)
        if _thread is None or not _thread.is_alive():  # first use, or a forked child
            _thread = threading.Thread(target=_run, name="writer-heartbeat", daemon=True)
            _thread.start()
    _wake.set()


def unregister(db_path: str | os.PathLike, article_id: int) -> None:
    """Stop beating for `article_id` (no error if it was not registered)."""
    key = _key(db_path)
    with _lock:
        rows = _rows.get(key)
        if rows is not None:
            rows.pop(int(article_id), None)
            if not rows:
                del _rows[key]


def registered() -> dict[str, list[int]]:
    """What this process is beating for: {resolved db path: [article ids]}."""
    with _lock:
        return {key: sorted(rows) for key, rows in _rows.items()}


def beat() -> None:
    """One beat for every registered row, now, in the calling thread. The heartbeat
    thread calls this every `HEARTBEAT_S`; it never raises."""
    with _lock:
        snapshot = {key: dict(rows) for key, rows in _rows.items()}
    for key, rows in snapshot.items():
        try:
            gone = _beat_database(key, sorted(rows))
        except Exception:  # noqa: BLE001 - a failed beat must never kill the thread
            log.warning("heartbeat: could not update %s", key, exc_info=True)
            continue
        for article_id in gone:
            entry = rows[article_id]
            with _lock:
                current = _rows.get(key, {}).get(article_id)
                if current is not entry or entry.notified or entry.on_deleted is None:
                    continue
                entry.notified = True
            try:
                entry.on_deleted()
            except Exception:  # noqa: BLE001
                log.warning("heartbeat: on_deleted for article #%s failed", article_id,
                            exc_info=True)


def _beat_database(path: str, ids: list[int]) -> list[int]:
    """Stamp the rows still `streaming`; return the ids that are deleted or missing."""
    timeout = max(1.0, HEARTBEAT_S)
    # mode=rw: never create an empty database file for a path that does not exist.
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=rw", uri=True, timeout=timeout,
                           isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        marks = ", ".join("?" * len(ids))
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = utc_iso()
            conn.execute(f"UPDATE articles SET heartbeat_at = ? WHERE status IN "
                         f"('queued', 'streaming') AND id IN ({marks})", [now, *ids])
            # a revision being written for one of them (writer/runs/revisions.py) beats too
            conn.execute(f"UPDATE versions SET updated_at = ? WHERE status IN "
                         f"('queued', 'streaming') AND article_id IN ({marks})", [now, *ids])
            found = dict(conn.execute(
                f"SELECT id, deleted_at FROM articles WHERE id IN ({marks})", ids).fetchall())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return [i for i in ids if i not in found or found[i] is not None]


def _run() -> None:
    next_beat = time.monotonic() + HEARTBEAT_S
    while True:  # a daemon thread: it lives as long as the process
        _wake.wait(max(0.0, next_beat - time.monotonic()))
        _wake.clear()
        now = time.monotonic()
        if now >= next_beat:
            beat()
            next_beat = time.monotonic() + HEARTBEAT_S
        else:  # woken by register(): a shorter HEARTBEAT_S takes effect at once
            next_beat = min(next_beat, now + HEARTBEAT_S)
