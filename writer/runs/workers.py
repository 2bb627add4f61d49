"""Background jobs: an article outlives the page that started it.

A `Registry` (one per database per server process: `shared(db_path)`) runs
each `jobs.Job` on a worker thread of its own and records what the job produces in a
`Feed`. Any number of viewers attach to a feed (a browser tab, a second tab after a
reload, the sidebar): they get the text so far at once, then the rest as it arrives,
and detach by going away. Nothing a viewer does stops a job; only `cancel()` (Stop)
and `shutdown()` (the server exits: every running job is stopped and saved) do.

Jobs are bounded per provider (`Provider.max_streams`, from WRITER_MAX_STREAMS or the
providers file; the bundled local model runs one at a time): the others wait in
submission order, each with its row already saved as `queued` and a position in line.
A queued job that is stopped ends at once as `stopped`, through the same `Job.run()`
path as any other Stop, without a request to the provider.

The job, the engine and the store are the same objects the CLI runs in the
foreground; this module only decides *where* a job runs. Pure Python, no Streamlit.
"""
from __future__ import annotations

import atexit
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Iterator

from writer import logs
from writer.generation.engine import Delta, Finished, Notice
from writer.runs.job import Job, JobError
from writer.kinds import NoticeKind, Status
from writer.runs.pacing import Pacer
from writer.storage.store import StorageError

VIEWERS_PER_BASE_BUDGET = 4  # beyond this many viewers in the process, paints stretch
KEEP_FINISHED_S = 900.0  # a finished job stays attachable this long (then: its row)
KEEP_FINISHED_MAX = 200
SHUTDOWN_WAIT_S = 10.0


_callbacks_lock = threading.Lock()
_viewers = 0  # viewers following a job in this process (all registries)
_viewers_lock = threading.Lock()


def _count_viewer(delta: int) -> None:
    global _viewers
    with _viewers_lock:
        _viewers += delta


def viewer_scale() -> float:
    """How much to stretch a viewer's paint budget: 1 up to 4 viewers in the process,
    then proportionally (20 viewers paint every 0.4 s instead of 0.08 s), so that
    many tabs on a small server and browser machine keep up instead of falling behind."""
    return max(1.0, _viewers / VIEWERS_PER_BASE_BUDGET)


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class Feed:
    """What a job has produced, in order: text pieces (str) and engine events.
    Append-only; a reader keeps a cursor (an index) and waits for more."""

    def __init__(self, prefix: str = ""):
        self._items: list = [prefix] if prefix else []
        self._cond = threading.Condition()
        self.closed = False

    def append(self, item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read(self, cursor: int) -> tuple[list, int, bool]:
        """The items after `cursor`, the new cursor, and whether the feed is closed."""
        with self._cond:
            return self._items[cursor:], len(self._items), self.closed

    def wait(self, cursor: int, timeout: float | None, *, close_only: bool = False) -> bool:
        """Wait for items after `cursor` (or, with `close_only`, for the end only);
        False on timeout."""
        with self._cond:
            if close_only:
                return self._cond.wait_for(lambda: self.closed, timeout)
            return self._cond.wait_for(lambda: self.closed or len(self._items) > cursor, timeout)

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(item for item in self._items if isinstance(item, str))


@dataclass
class Update:
    """What a viewer should paint now: the new text, the events in between, the notice
    in force (None: none, or text came after it) and, at the end, how it finished."""

    text: str = ""
    events: list = field(default_factory=list)
    notice: Notice | None = None
    finished: Finished | None = None
    done: bool = False


@dataclass(eq=False)
class Handle:
    """One job in the registry, as viewers and the sidebar see it."""

    job: Job
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
        """The job as a viewer sees it: first everything so far in one update, then
        new text coalesced on the pacer's budget (a paint is never held back longer
        than the budget, even when the stream stalls), notices as they come, and an
        empty update every `tick_s` while nothing happens (so a caller can refresh
        what it shows and notice that it should go away; the first one after
        `first_tick_s` if given). Ends after the update with `done=True`. Leaving
        the loop early detaches; the job goes on."""
        pacer = pacer or Pacer(clock=clock)
        _count_viewer(+1)
        try:
            yield from self._follow(pacer, tick_s, first_tick_s, clock)
        finally:
            _count_viewer(-1)

    def _follow(self, pacer: Pacer, tick_s: float, first_tick_s: float | None,
                clock: Callable[[], float]) -> Iterator[Update]:
        cursor, shown = 0, 0
        text: list[str] = []
        events: list = []
        notice: Notice | None = None
        finished: Finished | None = None
        last_yield = clock()
        tick = tick_s if first_tick_s is None else first_tick_s
        while True:
            items, cursor, closed = self.feed.read(cursor)
            notice_changed = False
            for item in items:
                if isinstance(item, str):
                    text.append(item)
                    if notice is not None:
                        notice, notice_changed = None, True
                    continue
                events.append(item)
                if isinstance(item, Notice) and item.kind != NoticeKind.SECTION:
                    notice, notice_changed = item, True
                elif isinstance(item, Finished):
                    finished = item
            pending = sum(map(len, text))
            pacer.scale = viewer_scale()
            if closed:
                yield Update("".join(text), events, None, finished, done=True)
                return
            wait = pacer.wait_s(shown + pending) if pending else tick
            if (pending and wait <= 0) or notice_changed or (events and not pending) or \
                    (not pending and clock() - last_yield >= tick):
                if pending:
                    pacer.due(shown + pending)  # records the paint
                yield Update("".join(text), events, notice)
                shown += pending
                text, events = [], []
                last_yield = clock()
                tick = tick_s
                continue
            # Text waiting for its paint: wake for the end only (new text can wait for
            # the budget). Nothing waiting: wake on anything, or on the tick.
            self.feed.wait(cursor, wait if pending else max(0.0, tick - (clock() - last_yield)),
                           close_only=bool(pending))


class Registry:
    """Runs jobs on worker threads, bounded per provider; see the module doc."""

    def __init__(self, *, keep_finished_s: float = KEEP_FINISHED_S,
                 clock: Callable[[], float] = time.monotonic):
        self._lock = threading.RLock()
        self._handles: dict[int, Handle] = {}  # by article id, in submission order
        self._queues: dict[str, deque[Handle]] = {}
        self._busy: dict[str, int] = {}  # slots in use per provider
        self._closed = False
        self._keep_finished_s = keep_finished_s
        self._clock = clock
        atexit.register(self.shutdown)

    # -- submitting and stopping ----------------------------------------------
    def submit(self, job: Job) -> Handle:
        """Queue a job and start it as soon as its provider has a free slot. Its row
        is saved (`queued`) before this returns, so `handle.article_id` is set."""
        if self._closed:
            raise JobError("the server is shutting down; try again in a moment")
        job.queue()
        handle = Handle(job, Feed(job.prefix), self._clock())
        job.on_cancel = lambda: self._promote(handle)
        with self._lock:
            self._handles[job.article_id] = handle
            self._queues.setdefault(handle.provider_name, deque()).append(handle)
            self._pump(handle.provider_name)
        return handle

    def cancel(self, article_id: int, wait_s: float = 0.0) -> bool:
        """Stop a queued or running job; True once its row is saved (within wait_s)."""
        handle = self.get(article_id)
        if handle is None or handle.state == State.DONE:
            return handle is not None
        handle.job.cancel(wait_s=0)
        return handle.done.wait(wait_s) if wait_s else handle.done.is_set()

    def shutdown(self, wait_s: float = SHUTDOWN_WAIT_S) -> list[int]:
        """Stop every job and wait until each has saved its text (the server exits).
        Returns the ids of the jobs it stopped."""
        with self._lock:
            self._closed = True
            active = [h for h in self._handles.values() if h.state != State.DONE]
        for handle in active:
            handle.job.cancel(wait_s=0)
        deadline = time.monotonic() + wait_s
        for handle in active:
            if not handle.done.wait(max(0.0, deadline - time.monotonic())):
                logs.logger.error("article #%s was still running at shutdown",
                                  handle.article_id)
        return [h.article_id for h in active]

    # -- what viewers read ------------------------------------------------------
    def get(self, article_id: int | None) -> Handle | None:
        with self._lock:
            return self._handles.get(article_id) if article_id is not None else None

    def active(self) -> list[Handle]:
        """Queued and running jobs, oldest first."""
        with self._lock:
            return [h for h in self._handles.values() if h.state != State.DONE]

    def position(self, handle: Handle) -> int | None:
        """1 = next in line for its provider; None when not queued."""
        with self._lock:
            queue = self._queues.get(handle.provider_name) or ()
            for number, queued in enumerate(queue, 1):
                if queued is handle:
                    return number
        return None

    # -- the workers ----------------------------------------------------------
    def _pump(self, provider: str) -> None:
        """Start queued jobs while the provider has free slots (lock held)."""
        queue = self._queues.get(provider)
        while queue:
            limit = max(1, queue[0].job.provider.max_streams)
            if self._busy.get(provider, 0) >= limit:
                return
            handle = queue.popleft()
            self._busy[provider] = self._busy.get(provider, 0) + 1
            handle.counted = True
            self._start(handle)

    def _promote(self, handle: Handle) -> None:
        """A queued job was stopped: run it now (it ends at once, saved as stopped)."""
        with self._lock:
            queue = self._queues.get(handle.provider_name)
            if handle.state != State.QUEUED or not queue or handle not in queue:
                return
            queue.remove(handle)
            self._start(handle)

    def _start(self, handle: Handle) -> None:
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
        except (JobError, StorageError) as exc:
            handle.error = str(exc)
        except BaseException as exc:  # a bug: the job saved what it had; say so in one line
            handle.error = logs.log_exception(f"article #{handle.article_id} worker", exc)
        finally:
            handle.ended_at = self._clock()
            with self._lock:
                handle.state = State.DONE
                if handle.counted:
                    handle.counted = False
                    self._busy[handle.provider_name] -= 1
                self._pump(handle.provider_name)
                self._prune()
            feed.close()
            with _callbacks_lock:
                handle.done.set()
                callbacks, handle.on_done = handle.on_done, []
            for callback in callbacks:
                try:
                    callback(handle)
                except Exception as exc:  # a bug in a listener must not hide the others
                    logs.log_exception(f"article #{handle.article_id} done-callback", exc)

    def _prune(self) -> None:
        now = self._clock()
        done = [h for h in self._handles.values() if h.state == State.DONE]
        for number, handle in enumerate(reversed(done)):
            if number >= KEEP_FINISHED_MAX or now - handle.ended_at > self._keep_finished_s:
                self._handles.pop(handle.article_id, None)


_shared: dict[str, Registry] = {}
_shared_lock = threading.Lock()


def shared(db_path) -> Registry:
    """The process's registry for a database: every page of every session uses the
    same one (a module-level singleton, so clearing Streamlit's caches cannot orphan
    running jobs)."""
    key = str(db_path)
    with _shared_lock:
        registry = _shared.get(key)
        if registry is None:
            registry = _shared[key] = Registry()
        return registry
