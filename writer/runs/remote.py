"""Articles another process writes on the same database: listed, stopped, followed.

Several processes on one SQLite file (two app servers, the CLI's `write` and an app) act
as one app for running articles (issue 24):

- **listing** (`elsewhere`): the `queued` / `streaming` rows with a fresh heartbeat
  (writer/storage/liveness.py) that this process does not write;
- **Stop** (`stop_elsewhere`, called by `Registry.cancel` for an article not running
  here): the same access rule as a local Stop (its author or an admin), then a request
  stamped on the row (`articles.stop_requested_at`, m017); with `wait_s`, waits until the
  row has left `queued` / `streaming`;
- **honouring** (`poll`, on the `writer-stop-requests` thread): every `POLL_S` seconds,
  while this process writes rows, one query over their ids finds the requests, and
  stops those jobs locally — the same path as a local Stop (the partial text saved as
  `stopped`). A request for an earlier run of the row is cleared
  when the row is reopened (Continue: `Store.reopen`); no clocks are compared, so
  servers whose clocks differ still stop each other's rows.
- **waiting for a slot** (the same thread): a queued job refused a slot because other
  processes hold its provider's streams (writer/runs/streams.py) is tried again every
  `POLL_S` seconds (`watch(..., retry=)`).

Pure Python, no Streamlit.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from writer.access import Actor
from writer.kinds import Status
from writer.storage import liveness
from writer.storage.store import require_author

POLL_S = 0.5  # how often a process looks for Stop requests for the rows it writes
WAIT_STEP_S = 0.05  # how often a Stop that waits looks at the row

log = logging.getLogger("writer")


@dataclass(frozen=True)
class Elsewhere:
    """A row another process is writing, as the sidebar shows it (like a Handle)."""

    article_id: int
    topic: str
    author: str | None
    words: int
    target_words: int
    provider_name: str
    status: Status
    language: str | None
    stopping: bool  # a Stop was requested; its writer has not saved it yet

    @property
    def state(self) -> str:  # as a Handle's (registry.State): queued or running
        return "queued" if self.status == Status.QUEUED else "running"

    @classmethod
    def from_row(cls, row: dict) -> "Elsewhere":
        return cls(row["id"], row["topic"] or "", row["author"], row["words"] or 0,
                   row["target_words"] or 0, row["provider"] or "", Status(row["status"]),
                   row["language"], row["stop_requested_at"] is not None)


def elsewhere(registry, article_id: int | None = None) -> list[Elsewhere]:
    """The articles being written on `registry`'s database by other processes (their
    writer alive), oldest first; only `article_id` when given."""
    if registry.db_path is None:
        return []
    rows = liveness.running_rows(registry.db_path, exclude=registry.tracked(),
                                 article_id=article_id)
    return [Elsewhere.from_row(row) for row in rows]


def stop_elsewhere(registry, article_id: int, wait_s: float, *, actor: Actor) -> bool:
    """Ask the process writing `article_id` to stop it (AccessDenied unless `actor` may);
    True once its row has been saved (within `wait_s`). False when it runs nowhere."""
    found = elsewhere(registry, article_id)
    if not found:
        return False
    require_author(actor, found[0].author, f"stop article #{article_id}")
    if not liveness.request_stop(registry.db_path, article_id, actor.name):
        return True  # it ended meanwhile
    deadline = time.monotonic() + wait_s
    while True:
        if liveness.row_status(registry.db_path, article_id) not in (
                Status.QUEUED.value, Status.STREAMING.value):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(WAIT_STEP_S)


def poll(registry) -> list[int]:
    """Stop the jobs of this registry's rows that another process asked to stop; returns
    their ids. Never raises (a failed look is logged, the next one tries again)."""
    jobs = {i: job for i, job in registry.tracked_jobs().items()
            if job is not None and not getattr(job, "cancel_requested", False)}
    if not jobs or registry.db_path is None:
        return []
    try:
        ids = liveness.stop_requests(registry.db_path, list(jobs))
    except Exception:  # noqa: BLE001 - the watcher must never die
        log.warning("stop requests: could not read %s", registry.db_path, exc_info=True)
        return []
    for article_id in ids:
        log.info("article #%s: stopped at the request of another process", article_id)
        job = jobs[article_id]
        try:
            job.stopped_elsewhere = True  # the CLI says why it stopped
            job.cancel(wait_s=0)
        except Exception:  # noqa: BLE001
            log.warning("stop request for article #%s failed", article_id, exc_info=True)
    return ids


_thread: threading.Thread | None = None
_thread_lock = threading.Lock()
_wake = threading.Event()


def watch(registries: Callable[[], list], retry: Callable[[], None] | None = None) -> None:
    """Make sure the process's watcher runs (started on first use); wake it. `retry()`
    is called on every round: queued jobs waiting for another process's slot."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_watch_forever, args=(registries, retry),
                                       name="writer-stop-requests", daemon=True)
            _thread.start()
    _wake.set()


def wake() -> None:
    """Make the watcher look now (e.g. a queued job was refused a slot)."""
    _wake.set()


def _watch_forever(registries: Callable[[], list], retry: Callable[[], None] | None) -> None:
    while True:  # a daemon thread: it lives as long as the process
        busy = [r for r in registries() if r.tracked()]
        if not busy:  # nothing written here: sleep until a row is tracked
            _wake.clear()
            if not any(r.tracked() for r in registries()):
                _wake.wait()
            continue
        for registry in busy:
            poll(registry)
        if retry is not None:
            try:
                retry()
            except Exception:  # noqa: BLE001 - the watcher must never die
                log.warning("queued jobs: retry failed", exc_info=True)
        time.sleep(POLL_S)


def _forget_in_child() -> None:
    global _thread, _thread_lock, _wake
    _thread, _thread_lock, _wake = None, threading.Lock(), threading.Event()


os.register_at_fork(after_in_child=_forget_in_child)
