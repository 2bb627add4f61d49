"""Batch writing: one article per spreadsheet row, on the same jobs and workers as a
single article.

A batch is saved before anything is sent: a `batches` row (file name, settings,
counts, status) and one `batch_rows` row per data row (its cells and checked brief).
Each row's article is an ordinary `articles` row tagged `batch_id` / `batch_row`; a
unique index allows one live article per batch row, so a row is never written twice.

A `BatchRun` (a thread) submits rows to the registry of live runs (writer/runs/registry.py) keeping
at most `concurrency` in flight, fewer while the provider answers 429 (a
`SharedBackoff` on every row's requests: the whole batch waits and narrows, no row
fails for it until it has waited out WRITER_THROTTLE_MAX_RETRIES 429s or
WRITER_THROTTLE_MAX_WAIT seconds; that row fails as rate limited and the batch pauses,
note `rate_limited [rate_limit]: …`). A row that fails is marked failed with its message;
a provider that refuses outright (bad key, no quota, unknown model, wrong URL) pauses
the batch instead of failing every row. Stop pauses it: rows in flight are saved as stopped.
Resume (a new run) skips completed rows, continues stopped and truncated ones in their
own article, and retries failed ones in theirs. A refresh or a server restart loses
nothing: every finished row is in the database, and a batch whose runner died (its
heartbeat stopped) shows as paused. Several servers may run one batch at once (Resume
on B while A runs): each writes only the rows it claimed (writer/storage/batches.py
`claim_rows`), none twice; a row whose runner died is taken over; a Stop from any of
them pauses every runner; both end when no row is left. A batch is its author's (m016): running, stopping,
resuming it or adding rows to its run is for its author or an admin (AccessDenied), and
its rows' articles are the batch author's. Pure Python, no Streamlit.
"""
from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from writer import logs
from writer.access import Actor
from writer.brief import Brief, stored_keywords
from writer.config import Settings
from writer.io.sheet import Row, Table
from writer.kinds import BatchStatus, ErrorKind, RowState, Status
from writer.providers.backoff import SharedBackoff
from writer.providers.base import Provider
from writer.runs.batch_estimate import Estimate, estimate  # noqa: F401  (batch.estimate)
from writer.runs.batch_results import (  # noqa: F401  (batch.export …)
    EXPORTS,
    BatchError,
    export,
    results,
    words_by_unit,
)
from writer.runs.job import Job, JobError
from writer.runs.registry import Handle, Registry, shared
from writer.storage import batches as stored
from writer.storage import liveness
from writer.storage.batches import counts, get, listing, recover, rows  # noqa: F401
from writer.storage.store import LEGACY_AUTHOR, StorageError, Store, require_author, utc_now
from writer.storage.usage import BudgetExceeded, require_within_budget

MAX_CONCURRENCY = 8
BEAT_S = 2.0
# The provider refused the request itself: every other row would fail the same way.
FATAL = {ErrorKind.AUTH, ErrorKind.QUOTA, ErrorKind.MODEL, ErrorKind.URL, ErrorKind.HTML,
         ErrorKind.CONNECT, ErrorKind.LOCAL}
# Rows a run (re)writes: never started, or ended before their target.
REDO = (Status.STOPPED, Status.TRUNCATED, Status.FAILED)


# -- storage (writer/storage/batches.py) ---------------------------------------------

def create(store: Store, *, file_name: str, table: Table, rows: list[Row], provider: Provider,
           concurrency: int, length_control: bool = True, defaults: dict | None = None,
           actor: Actor | None = None) -> int:
    """Save a new batch and its rows (status paused until a run starts), `actor`'s (a
    batch without an author is for admins only); returns its id."""
    if not any(row.ok for row in rows):
        raise BatchError("no row can be written: every row has an error")
    concurrency = clamp_concurrency(concurrency)
    settings = {"provider": provider.name, "model": provider.model, "concurrency": concurrency,
                "length_control": bool(length_control), "defaults": defaults or {},
                "fields": table.fields}  # field → the file's column (e.g. topic → 主题)
    return stored.create(store, file_name=file_name, settings=settings, columns=table.columns,
                         rows=rows, author=actor.name if actor else None)


def needs_writing(row: dict, length_control: bool = True) -> bool:
    """A valid row that has no finished article: not started, or stopped, truncated or
    failed before its target (a deleted one only when asked for by number)."""
    state = row["state"]
    if state == RowState.PENDING:
        return True
    if state not in REDO:
        return False
    if state == Status.FAILED or not row.get("words") or not length_control:
        return True
    return row["words"] < row["target_words"]


def clamp_concurrency(value) -> int:
    try:
        return max(1, min(MAX_CONCURRENCY, int(value)))
    except (TypeError, ValueError):
        return 1


# -- running ----------------------------------------------------------------------

@dataclass
class Progress:
    total: int  # valid rows
    ended: int  # completed + failed (+ deleted) rows
    completed: int
    failed: int
    words: int
    cost: dict
    retries: int
    throttled: int  # 429s seen by this run
    in_flight: int
    limit: int  # rows allowed in flight now (fewer than asked while throttled)
    eta_s: float | None
    words_by_unit: dict = field(default_factory=dict)  # {"字": n, "words": m} (`words_by_unit`)


class BatchRun:
    """One run of a batch (Start, Resume or Retry) on a worker thread of its own, by
    `actor`: the batch's author or an admin (AccessDenied otherwise)."""

    def __init__(self, settings: Settings, batch_id: int, registry: Registry,
                 provider: Provider, *, actor: Actor, concurrency: int | None = None,
                 only: list[int] | None = None, length_control: bool | None = None,
                 on_row=None):
        self.settings = settings
        self.batch_id = batch_id
        self.registry = registry
        self.provider = provider
        self.only = list(only) if only else None  # just these rows (Retry)
        store = Store(settings.database)
        try:
            batch = get(store, batch_id)
        finally:
            store.close()
        if batch is None:
            raise BatchError(f"there is no batch #{batch_id}")
        require_author(actor, batch.get("author"), f"run batch #{batch_id}")
        self.actor = actor
        # its rows' articles are the batch author's (the actor's when it has none)
        owner = batch.get("author") if batch.get("author") not in (None, LEGACY_AUTHOR) \
            else actor.name
        self.row_actor = Actor(owner, actor.role)
        self.batch = batch
        saved = batch["settings"]
        self.concurrency = clamp_concurrency(concurrency or saved.get("concurrency") or 1)
        self.length_control = saved.get("length_control", True) if length_control is None \
            else length_control
        self.backoff = SharedBackoff(self.concurrency)
        self.on_row = on_row  # called (row number, handle) when a row ends
        self.in_flight: dict[int, Handle] = {}
        self.todo: list[int] = []
        # who claims rows (writer/storage/batches.py): unique per run, readable in the table
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.planned: dict[int, tuple] = {}  # row -> (article id, updated_at) when planned
        self.ended_rows: list[int] = []  # rows whose claim is to be given back
        self.since = utc_now()  # a Stop requested before this run is not for it
        self.started_at: float | None = None
        self.ended_this_run = 0
        self.stopping = False
        self.note: str | None = None  # why it paused
        self.error: str | None = None  # one line: the run itself failed
        self.done = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------
    def start(self) -> "BatchRun":
        """Run it on a thread, as the batch's one live run in the registry of live runs
        (a Retry while it runs adds its rows to the run under way). Refused past a budget
        that is a hard cap (each row's Job checks it again before it starts)."""
        require_within_budget(None, self.settings, self.provider, actor=self.row_actor)
        current = shared(self.settings.database).begin("batch", self.batch_id, self, self.done,
                                                       claim=self._claim)
        if current is not None:
            if self.only:
                current.add(self.only, actor=self.actor)
                return current
            raise BatchError(f"batch #{self.batch_id} is already running")
        self._thread = threading.Thread(target=self._run, name=f"writer-batch-{self.batch_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, wait_s: float = 10.0, note: str = "stopped", *, actor: Actor) -> bool:
        """Pause: no new rows; rows in flight stop and are saved. True once it ended.
        Only the batch's author or an admin may (AccessDenied)."""
        require_author(actor, self.batch.get("author"), f"stop batch #{self.batch_id}")
        if note == Status.STOPPED:  # every other server's runner pauses too
            request_stop(self.settings, self.batch_id, actor=actor)
        return self._pause(wait_s, note)

    def _pause(self, wait_s: float, note: str) -> bool:
        with self._lock:
            if not self.stopping:
                self.stopping, self.note = True, note
        self._wake.set()
        return self.done.wait(wait_s)

    def add(self, numbers: list[int], *, actor: Actor) -> None:
        """Retry these rows in this run too (the batch's author or an admin)."""
        require_author(actor, self.batch.get("author"), f"add rows to batch #{self.batch_id}")
        with self._lock:
            for number in numbers:
                if number not in self.todo and number not in self.in_flight:
                    self.todo.append(number)
                    self.planned.pop(number, None)  # written again, whatever it is now
        self._wake.set()

    def set_concurrency(self, value: int, *, actor: Actor) -> None:
        require_author(actor, self.batch.get("author"), f"change batch #{self.batch_id}")
        self.concurrency = clamp_concurrency(value)
        self.backoff.set_limit(self.concurrency)
        self._wake.set()

    # -- what viewers read -----------------------------------------------------
    def progress(self, batch_rows: list[dict]) -> Progress:
        found = counts(batch_rows)
        live = {n: h for n, h in list(self.in_flight.items())}
        words = found["words"]
        for row in batch_rows:  # rows in flight: live words, not the last draft
            handle = live.get(row["row_no"])
            if handle is not None:
                words += handle.words - (row.get("words") or 0)
        return Progress(found["valid"], found["ended"], found["completed"], found["failed"],
                        words, found["cost"], found["retries"], self.backoff.hits,
                        len(live), min(self.concurrency, self.backoff.limit), self.eta_s(),
                        words_by_unit(batch_rows, live))

    def eta_s(self) -> float | None:
        """Seconds left at this run's pace so far (None until a row has ended)."""
        if not self.started_at or not self.ended_this_run:
            return None
        left = len(self.todo) + len(self.in_flight)
        return (time.monotonic() - self.started_at) / self.ended_this_run * left

    # -- the worker ------------------------------------------------------------
    def _claim(self) -> None:
        """Mark the batch running by this process (joining a live run elsewhere: each
        process writes the rows it claims)."""
        store = Store(self.settings.database)
        try:
            outcome, pid = stored.claim(store, self.batch_id)
        finally:
            store.close()
        if outcome == "missing":
            raise BatchError(f"there is no batch #{self.batch_id}")
        if outcome == "joined":
            logs.logger.info("batch #%s: joined the run of process %s", self.batch_id, pid)

    def _plan(self, store: Store) -> list[int]:
        """Rows this run writes, in order: not started, stopped, truncated, failed —
        never a completed one. Rows still being written by this process's registry are
        followed, not written again; another process's are planned (claimed only once
        that runner gave them back or died: then, as they are then)."""
        todo = []
        for row in rows(store, self.batch_id, numbers=self.only):
            state, number = row["state"], row["row_no"]
            self.planned[number] = (row["article_id"], row["updated_at"])
            if state in (RowState.INVALID, Status.COMPLETED):
                continue
            if state == RowState.DELETED:  # written again only when asked by number (Retry)
                if self.only:
                    todo.append(number)
                continue
            if state in (Status.QUEUED, Status.STREAMING):
                handle = self.registry.get(row["article_id"])
                if handle is not None:
                    self._follow(number, handle)
                else:
                    todo.append(number)  # another process's row: its heartbeat decides
                continue
            if not needs_writing(row, self.length_control):
                continue
            todo.append(number)
        return todo

    def _next_rows(self, store: Store) -> list[int]:
        """Give back the claims of rows that ended, then claim what may start now: at
        most the free places, of the rows no other live runner holds."""
        with self._lock:
            ended, self.ended_rows = self.ended_rows, []
            free = min(self.concurrency, self.backoff.limit) - len(self.in_flight)
            wanted = list(self.todo) if free > 0 else []
        stored.release_rows(store, self.batch_id, self.runner, ended)
        if not wanted:
            return []
        claimed = stored.claim_rows(store, self.batch_id, self.runner, wanted, free)
        with self._lock:
            self.todo = [n for n in self.todo if n not in claimed]
        return claimed

    def _run(self) -> None:
        store = Store(self.settings.database)
        try:
            self.todo = self._plan(store)
            self.started_at = time.monotonic()
            atexit.register(self._at_exit)
            last_beat = 0.0
            beat_s = min(BEAT_S, liveness.heartbeat_s())  # fresher than recover() demands
            while True:
                with self._lock:
                    if self.stopping:
                        break
                for number in self._next_rows(store):
                    if not self._submit(store, number):
                        stored.release_rows(store, self.batch_id, self.runner, [number])
                with self._lock:
                    if not self.todo and not self.in_flight:
                        break
                self._wake.wait(min(1.0, beat_s))
                self._wake.clear()
                if time.monotonic() - last_beat >= beat_s:
                    last_beat = time.monotonic()
                    self._beat(store)
            if self.stopping:
                self._stop_in_flight()
        except BaseException as exc:
            self.error = str(exc) if isinstance(exc, (BatchError, StorageError, JobError)) \
                else logs.log_exception(f"batch #{self.batch_id} run", exc)
            self.note = self.note or f"error: {self.error}"
            self._stop_in_flight()
        finally:
            try:
                stored.release_rows(store, self.batch_id, self.runner)
                left = [r for r in rows(store, self.batch_id)
                        if r["state"] != Status.FAILED and needs_writing(r, self.length_control)]
                final = BatchStatus.PAUSED if left or self.stopping else BatchStatus.DONE
                if stored.others_running(store, self.batch_id, self.runner):
                    stored.save_counts(store, self.batch_id)  # the last runner says how it ended
                else:
                    stored.save_counts(store, self.batch_id, status=final, heartbeat_at=None,
                                       note=None if final == BatchStatus.DONE
                                       else self.note or "stopped")
            except StorageError as exc:
                self.error = self.error or str(exc)
            finally:
                store.close()
                self.done.set()
                atexit.unregister(self._at_exit)

    def _still_to_write(self, store: Store, number: int) -> dict | None:
        """The row, if this run is still to write it now that it holds its claim."""
        (row,) = rows(store, self.batch_id, numbers=[number])
        if row["state"] in (Status.QUEUED, Status.STREAMING):  # its writer may have died
            store.recover_interrupted()
            (row,) = rows(store, self.batch_id, numbers=[number])
        if row["state"] in (Status.COMPLETED, Status.QUEUED, Status.STREAMING) or row["invalid"]:
            return None  # written meanwhile (another run, a retry): never twice
        planned = self.planned.get(number)
        if planned is not None and planned != (row["article_id"], row["updated_at"]) \
                and row["error_kind"] != ErrorKind.INTERRUPTED:
            return None  # another runner wrote it since this run planned it
        return row

    def _submit(self, store: Store, number: int) -> bool:
        """Start writing a claimed row; False when it is not written after all."""
        row = self._still_to_write(store, number)
        if row is None:
            return False
        brief = Brief(**{**row["brief"], "keywords": stored_keywords(row["brief"]["keywords"])})
        try:
            if row["article_id"] is None:  # never started (or its article was deleted)
                job = Job(brief, self.settings, provider=self.provider,
                          length_control=self.length_control, batch=(self.batch_id, number),
                          backoff=self.backoff, actor=self.row_actor)
            else:  # stopped / truncated / failed: go on in the same article
                article = store.get(row["article_id"])
                job = Job(brief, self.settings, provider=self.provider,
                          length_control=self.length_control, article=article,
                          backoff=self.backoff, actor=self.row_actor)
            handle = self.registry.submit(job)
        except BudgetExceeded as exc:  # a hard cap reached while it ran: pause, saying so
            with self._lock:
                self.stopping, self.error = True, str(exc)
                self.note = f"error: {exc}"
            return False
        except JobError as exc:  # the server is shutting down, or the row was deleted
            with self._lock:
                self.stopping, self.note = True, self.note or "interrupted"
            logs.logger.warning("batch #%s row %s not started: %s", self.batch_id, number, exc)
            return False
        except StorageError as exc:  # e.g. the row got an article meanwhile (unique index)
            logs.logger.warning("batch #%s row %s not started: %s", self.batch_id, number, exc)
            return False
        self._follow(number, handle)
        return True

    def _follow(self, number: int, handle: Handle) -> None:
        with self._lock:
            self.in_flight[number] = handle
        handle.when_done(lambda h, n=number: self._ended(n, h))

    def _ended(self, number: int, handle: Handle) -> None:
        finished = handle.finished
        with self._lock:
            self.in_flight.pop(number, None)
            self.ended_rows.append(number)
            if finished is not None and finished.status in (Status.COMPLETED, Status.FAILED):
                self.ended_this_run += 1
            kind = finished.error_kind if finished is not None else None
            if finished is not None and finished.status == Status.FAILED and kind in FATAL \
                    and not self.stopping:
                # The provider refuses the request itself: pause rather than fail every row.
                self.stopping = True
                self.note = f"provider_refused [{kind}]: {finished.error}"
            elif finished is not None and finished.status == Status.FAILED and \
                    kind == ErrorKind.RATE_LIMIT and not self.stopping:
                # Still 429 after the row's throttle caps (engine, retry.py): every other
                # row would wait them out too; pause, saying why.
                self.stopping = True
                self.note = f"rate_limited [{kind}]: {finished.error}"
        if self.on_row is not None:
            try:
                self.on_row(number, handle)
            except Exception as exc:
                logs.log_exception(f"batch #{self.batch_id} row listener", exc)
        self._wake.set()

    def _stop_in_flight(self) -> None:
        with self._lock:
            handles = list(self.in_flight.values())
        for handle in handles:
            handle.job.cancel(wait_s=0)
        deadline = time.monotonic() + 15
        for handle in handles:
            handle.done.wait(max(0.0, deadline - time.monotonic()))

    def _beat(self, store: Store) -> None:
        """This runner and its claims are alive; a Stop asked on any server since this
        run started pauses it."""
        if self.stopping:
            return
        try:
            asked = stored.beat(store, self.batch_id, self.runner)
        except StorageError as exc:
            logs.logger.warning("batch #%s heartbeat not saved: %s", self.batch_id, exc)
            return
        if asked is not None and asked >= self.since:
            with self._lock:
                if not self.stopping:
                    self.stopping, self.note = True, "stopped"

    def _at_exit(self) -> None:  # the process exits: pause, saving the rows in flight
        self._pause(15, "interrupted")


def request_stop(settings: Settings, batch_id: int, *, actor: Actor) -> None:
    """Pause the batch wherever it runs (its author or an admin): every runner, on any
    server, stops at its next beat, its rows in flight saved as stopped."""
    store = Store(settings.database)
    try:
        found = get(store, batch_id)
        if found is None:
            raise BatchError(f"there is no batch #{batch_id}")
        require_author(actor, found.get("author"), f"stop batch #{batch_id}")
        stored.request_stop(store, batch_id)
    finally:
        store.close()


def current(settings: Settings, batch_id: int) -> BatchRun | None:
    """This process's run of the batch, while it runs (or just ended), from the
    registry of live runs."""
    return shared(settings.database).run("batch", batch_id)
