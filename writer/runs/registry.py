"""The registry of live runs: what this process is running on a database, in one place.

`shared(db_path)` is the process's registry for a database; every page of every session,
the sidebar, History, the batch, the provider check and the CLI ask the same one. It owns

- **rows being written** (`track`, `untrack`, `job`, `tracked`): every run whose
  `articles` row exists (an article, a variant, a revision, a batch row), in a worker or
  in the foreground of the CLI. Each row beats: one daemon thread per process stamps the
  rows every `liveness.heartbeat_s()` seconds (the SQL is writer/storage/liveness.py), so
  a dead writer is noticed by any process; a row found deleted (another tab, another
  process) calls its `on_deleted` once, and the job stops itself. A delete from this
  process finds the job here first (`job(article_id)`) and stops it before deleting.
- **worker jobs** (`submit`, `cancel`, `get`, `active`, `position`, `shutdown`): each
  runs on a thread of its own and records what it produces in a `Feed` (feed.py) that
  any number of viewers follow. Jobs are bounded per provider across every process on
  the database (`Provider.max_streams`; the queue and the slots: streams.py): the others
  wait in submission order, each with its row saved `queued` and a position in line. A
  queued job that is stopped ends at once as `stopped`, through the same `Job.run()`
  path as any other Stop, without a request to the provider.
- **other runs** (`begin`, `run`, `runs`: keyed.py): a batch run (per batch), the
  provider check (one per database): one live run per key.
Rows another process writes (listed; a Stop is a request it polls for): remote.py.

Ended jobs and runs stay readable for `KEEP_FINISHED_S` (a page attaches after the end
and reads how it finished), then they are pruned. Every job has an author (`Handle.author`,
whose article it is: the sidebar lists a writer's own); stopping one (`cancel`) is for
its author or an admin (writer/access.py, AccessDenied). Pure Python, no Streamlit.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Callable, Iterator

from writer import logs
from writer.access import ADMIN, Actor
from writer.errors import UserError
from writer.generation.events import Delta, Finished
from writer.kinds import Status
from writer.runs import remote
from writer.runs.feed import Feed, Update
from writer.runs.keyed import KEEP_FINISHED_MAX, KEEP_FINISHED_S, KeyedRuns
from writer.runs.pacing import Pacer
from writer.runs.streams import Lanes
from writer.storage import liveness, pg
from writer.storage.store import require_author

SHUTDOWN_WAIT_S = 10.0

log = logging.getLogger("writer")


class JobError(UserError, ValueError):
    """The job cannot start (or is not accepted); the message is one line that says why."""

    key = "user_errors.job"


def acting(settings, actor: Actor | None) -> Actor:
    """Who runs a job, a batch or a check: `actor`; with none given, the machine's one
    user (WRITER_USER, an admin) — only with no sign-in (WRITER_AUTH=none): with
    accounts or OIDC a run that does not say who acts is a bug, refused loudly."""
    if actor is not None:
        return actor
    if getattr(settings, "auth", "none") != "none":
        raise ValueError("a run needs its actor when people sign in (WRITER_AUTH="
                         f"{settings.auth}); pass actor=")
    return Actor(getattr(settings, "user", None) or "local", ADMIN)


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


_callbacks_lock = threading.Lock()


@dataclass(eq=False)
class Handle:
    """One worker job in the registry, as viewers and the sidebar see it."""

    job: object  # a runs.job.Job (or a RevisionJob)
    feed: Feed
    submitted_at: float
    state: State = State.QUEUED
    started_at: float | None = None
    ended_at: float | None = None
    finished: Finished | None = None
    error: str | None = None  # one line: the job could not run or not be saved
    done: threading.Event = field(default_factory=threading.Event)
    counted: bool = False  # holds one of its provider's slots
    thread: threading.Thread | None = None
    on_done: list = field(default_factory=list)  # called (with the handle) once it ended

    def when_done(self, callback: Callable[["Handle"], None]) -> None:
        """Call `callback(handle)` once the job has ended and its row is saved (at once
        if it already has)."""
        with _callbacks_lock:
            if not self.done.is_set():
                self.on_done.append(callback)
                return
        callback(self)

    @property
    def article_id(self) -> int:
        return self.job.article_id

    @property
    def provider_name(self) -> str:
        return self.job.provider.name

    @property
    def author(self) -> str | None:
        """Whose article it writes (runs.job.Job.author)."""
        return getattr(self.job, "author", None)

    @property
    def words(self) -> int:
        return self.job.words

    @property
    def target_words(self) -> int:
        return self.job.brief.target_words

    @property
    def topic(self) -> str:
        return self.job.brief.topic

    @property
    def status(self) -> Status:
        """Its row's status while it runs (`queued` or `streaming`)."""
        return Status.QUEUED if self.state == State.QUEUED else Status.STREAMING

    @property
    def stopping(self) -> bool:
        return self.job.cancel_requested and self.state != State.DONE

    def follow(self, *, pacer: Pacer | None = None, tick_s: float = 0.5,
               first_tick_s: float | None = None,
               clock: Callable[[], float] = time.monotonic) -> Iterator[Update]:
        """The job as a viewer sees it (`Feed.follow`); leaving early detaches."""
        return self.feed.follow(pacer=pacer, tick_s=tick_s, first_tick_s=first_tick_s,
                                clock=clock)


@dataclass
class _Row:
    """A row being written in this process: it beats until untracked."""

    on_deleted: Callable[[], None] | None
    job: object | None
    notified: bool = False


class Registry(KeyedRuns):
    """The live runs of one database in this process; see the module doc. `shared()`
    gives the process's one registry per database (tests may build their own, for
    worker jobs only)."""

    def __init__(self, db_path: str | os.PathLike | None = None, *,
                 keep_finished_s: float = KEEP_FINISHED_S,
                 clock: Callable[[], float] = time.monotonic):
        self.db_path = _key(db_path) if db_path is not None else None
        self._lock = threading.RLock()
        self._rows: dict[int, _Row] = {}  # rows being written, by article id
        self._handles: dict[int, Handle] = {}  # worker jobs by article id, in submission order
        self._lanes = Lanes()  # waiting jobs and slots in use, per provider
        KeyedRuns.__init__(self)
        self._closed = False
        self._keep_finished_s = keep_finished_s
        self._clock = clock
        _every.add(self)
        atexit.register(self.shutdown)

    # -- rows being written: heartbeats and deletes --------------------------------------
    def track(self, article_id: int, on_deleted: Callable[[], None] | None = None,
              job: object | None = None) -> None:
        """Keep `article_id`'s row beating until `untrack`; `on_deleted` is called once
        (from the heartbeat thread) when the row is found deleted."""
        if self.db_path is None:
            raise ValueError("a registry without a database tracks no rows; use shared()")
        with self._lock:
            self._rows[int(article_id)] = _Row(on_deleted, job)
        _keep_beating()

    def untrack(self, article_id: int) -> None:
        """Stop beating for `article_id` (no error if it was not tracked)."""
        with self._lock:
            self._rows.pop(int(article_id), None)

    def tracked(self) -> list[int]:
        """The article ids whose rows this process is writing (and beating for)."""
        with self._lock:
            return sorted(self._rows)

    def tracked_jobs(self) -> dict[int, object | None]:  # {article id: its job, if any}
        with self._lock:
            return {i: row.job for i, row in self._rows.items()}

    def job(self, article_id: int | None):
        """The job writing `article_id` in this process (worker or foreground), if any."""
        with self._lock:
            row = self._rows.get(article_id) if article_id is not None else None
            return row.job if row is not None else None

    def beat(self) -> None:
        """One beat for every tracked row, now, in the calling thread; never raises."""
        with self._lock:
            rows = dict(self._rows)
        if not rows or self.db_path is None:
            return
        try:
            gone = liveness.beat_rows(self.db_path, sorted(rows))
        except Exception:  # noqa: BLE001 - a failed beat must never kill the thread
            log.warning("heartbeat: could not update %s", self.db_path, exc_info=True)
            return
        for article_id in gone:
            entry = rows[article_id]
            with self._lock:
                if self._rows.get(article_id) is not entry or entry.notified \
                        or entry.on_deleted is None:
                    continue
                entry.notified = True
            try:
                entry.on_deleted()
            except Exception:  # noqa: BLE001
                log.warning("heartbeat: on_deleted for article #%s failed", article_id,
                            exc_info=True)

    # -- worker jobs: submitting and stopping ---------------------------------------------
    def submit(self, job) -> Handle:
        """Queue a job and start it as soon as its provider has a free slot. Its row
        is saved (`queued`) before this returns, so `handle.article_id` is set."""
        if self._closed:
            raise JobError("the server is shutting down; try again in a moment",
                           key="user_errors.shutting_down")
        job.queue()
        handle = Handle(job, Feed(job.prefix), self._clock())
        job.on_cancel = lambda: self._promote(handle)
        with self._lock:
            self._handles[job.article_id] = handle
        self._lanes.enqueue(handle)
        self._lanes.pump(handle.provider_name, self._start)
        return handle

    def cancel(self, article_id: int, wait_s: float = 0.0, *, actor: Actor) -> bool:
        """Stop a queued or running job; True once its row is saved (within wait_s).
        Only its author or an admin may (AccessDenied). Another process's: remote.py."""
        handle = self.get(article_id)
        if handle is None and self.db_path is not None and self.job(article_id) is None:
            return remote.stop_elsewhere(self, article_id, wait_s, actor=actor)
        if handle is not None:
            require_author(actor, handle.author, f"stop article #{article_id}")
        if handle is None or handle.state == State.DONE:
            return handle is not None
        handle.job.cancel(wait_s=0)
        return handle.done.wait(wait_s) if wait_s else handle.done.is_set()

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> list[int]:
        """Stop every worker job and wait until each has saved its text (the server
        exits). Returns the ids of the jobs it stopped."""
        with self._lock:
            self._closed = True
            active = [h for h in self._handles.values() if h.state != State.DONE]
        for handle in active:
            handle.job.cancel(wait_s=0)
        deadline = time.monotonic() + wait_s
        for handle in active:
            if not handle.done.wait(max(0.0, deadline - time.monotonic())):
                logs.logger.error("article #%s was still running at shutdown", handle.article_id)
        return [h.article_id for h in active]

    # -- worker jobs: what viewers read ---------------------------------------------------
    def get(self, article_id: int | None) -> Handle | None:
        with self._lock:
            return self._handles.get(article_id) if article_id is not None else None

    def active(self) -> list[Handle]:
        """Queued and running jobs, oldest first."""
        with self._lock:
            return [h for h in self._handles.values() if h.state != State.DONE]

    def position(self, handle: Handle) -> int | None:
        """1 = next in line for its provider; None when not queued."""
        return self._lanes.position(handle)

    # -- worker jobs: the workers ---------------------------------------------------------
    def retry_waiting(self) -> None:
        """Start what waits for a slot another process held (the watcher thread calls
        it every remote.POLL_S); never raises."""
        for provider in self._lanes.waiting():
            try:
                self._lanes.pump(provider, self._start)
            except Exception:  # noqa: BLE001 - the next poll tries again
                log.warning("could not start queued %s jobs", provider, exc_info=True)

    def _promote(self, handle: Handle) -> None:
        """A queued job was stopped: run it now (it ends at once, saved as stopped)."""
        if handle.state == State.QUEUED and self._lanes.remove(handle):
            self._start(handle)

    def _start(self, handle: Handle) -> None:
        with self._lock:
            if handle.state != State.QUEUED:
                return
            handle.state = State.RUNNING
        handle.started_at = self._clock()
        handle.thread = threading.Thread(target=self._work, args=(handle,), daemon=True,
                                         name=f"writer-job-{handle.article_id}")
        handle.thread.start()

    def _work(self, handle: Handle) -> None:
        feed = handle.feed
        try:
            for event in handle.job.run():
                if isinstance(event, Delta):
                    feed.append(event.text)
                    continue
                if isinstance(event, Finished):
                    handle.finished = event
                feed.append(event)
        except UserError as exc:  # e.g. deleted before it started, the database refused it
            handle.error = str(exc)
        except BaseException as exc:  # a bug: the job saved what it had; say so in one line
            handle.error = logs.log_exception(f"article #{handle.article_id} worker", exc)
        finally:
            handle.ended_at = self._clock()
            self._lanes.release(handle)
            with self._lock:
                handle.state = State.DONE
                self._prune_handles()
            self._lanes.pump(handle.provider_name, self._start)
            feed.close()
            with _callbacks_lock:
                handle.done.set()
                callbacks, handle.on_done = handle.on_done, []
            for callback in callbacks:
                try:
                    callback(handle)
                except Exception as exc:  # a bug in a listener must not hide the others
                    logs.log_exception(f"article #{handle.article_id} done-callback", exc)

    def _prune_handles(self) -> None:
        now = self._clock()
        done = [h for h in self._handles.values() if h.state == State.DONE]
        for number, handle in enumerate(reversed(done)):
            if number >= KEEP_FINISHED_MAX or now - handle.ended_at > self._keep_finished_s:
                self._handles.pop(handle.article_id, None)


# -- the process's registries and their heartbeat thread ---------------------------------

_shared: dict[str, Registry] = {}
_every: "weakref.WeakSet[Registry]" = weakref.WeakSet()  # shared ones and tests' own
_shared_lock = threading.Lock()
_beat_thread: threading.Thread | None = None
_wake = threading.Event()  # set by track(): a shorter heartbeat takes effect at once


def _key(db_path: str | os.PathLike) -> str:  # a SQLite file's resolved path, or the URL
    return db_path if pg.is_url(db_path) else str(Path(db_path).resolve())


def shared(db_path: str | os.PathLike) -> Registry:
    """The process's registry for a database: every page of every session uses the
    same one (a module-level singleton, so clearing Streamlit's caches cannot orphan
    running jobs)."""
    key = _key(db_path)
    with _shared_lock:
        registry = _shared.get(key)
        if registry is None:
            registry = _shared[key] = Registry(key)
        return registry


def tracked() -> dict[str, list[int]]:
    """What this process is beating for: {resolved db path: [article ids]}."""
    return {r.db_path: ids for r in registries() if (ids := r.tracked())}


def beat() -> None:
    """One beat of every registry's rows, now, in the calling thread; never raises."""
    for registry in registries():
        registry.beat()


def _keep_beating() -> None:
    global _beat_thread
    with _shared_lock:
        if _beat_thread is None or not _beat_thread.is_alive():  # first use, a forked child
            _beat_thread = threading.Thread(target=_beat_forever, name="writer-heartbeat",
                                            daemon=True)
            _beat_thread.start()
    _wake.set()
    remote.watch(registries, retry=_retry_waiting)


def _retry_waiting() -> None:  # every registry's jobs waiting for another process's slot
    for registry in list(_every):
        registry.retry_waiting()


def registries() -> list[Registry]:  # the process's registries, one per database
    with _shared_lock:
        return list(_shared.values())


def _period_s() -> float:
    try:
        return liveness.heartbeat_s()
    except Exception:  # noqa: BLE001 - a broken setting is reported where it is read
        return 5.0


def _beat_forever() -> None:
    next_beat = time.monotonic() + _period_s()
    while True:  # a daemon thread: it lives as long as the process
        _wake.wait(max(0.0, next_beat - time.monotonic()))
        _wake.clear()
        now = time.monotonic()
        if now >= next_beat:
            beat()
            next_beat = time.monotonic() + _period_s()
        else:  # woken by track(): a shorter period takes effect at once
            next_beat = min(next_beat, now + _period_s())


def _forget_in_child() -> None:
    """A forked child writes none of its parent's rows and has no heartbeat thread."""
    global _shared_lock, _beat_thread, _wake
    _shared_lock, _beat_thread, _wake = threading.Lock(), None, threading.Event()
    _shared.clear()


os.register_at_fork(after_in_child=_forget_in_child)
