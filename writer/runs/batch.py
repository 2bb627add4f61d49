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
heartbeat stopped) shows as paused. A batch is its author's (m016): running, stopping,
resuming it or adding rows to its run is for its author or an admin (AccessDenied), and
its rows' articles are the batch author's. Pure Python, no Streamlit.
"""
from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from writer import logs
from writer.access import Actor
from writer.brief import Brief, stored_keywords
from writer.config import Settings
from writer.errors import UserError
from writer.io.export import slugify, to_markdown
from writer.io.i18n import article_unit
from writer.io.sheet import RESULT_COLUMNS, Row, Table, to_csv, to_xlsx, to_zip
from writer.kinds import BatchStatus, ErrorKind, RowState, Status
from writer.providers.backoff import SharedBackoff
from writer.providers.base import Provider
from writer.runs.batch_estimate import Estimate, estimate  # noqa: F401  (batch.estimate)
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


class BatchError(UserError, ValueError):
    """The batch cannot start or resume; the message is one line that says why."""

    key = "user_errors.batch"


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
        store = Store(settings.db_path)
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
        current = shared(self.settings.db_path).begin("batch", self.batch_id, self, self.done,
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
        """Mark the batch running by this process; refuse when another live process
        runs it (its heartbeat is fresh)."""
        store = Store(self.settings.db_path)
        try:
            outcome, pid = stored.claim(store, self.batch_id)
        finally:
            store.close()
        if outcome == "missing":
            raise BatchError(f"there is no batch #{self.batch_id}")
        if outcome == "running":
            raise BatchError(f"batch #{self.batch_id} is running in another process "
                             f"(pid {pid}); stop it there first")

    def _plan(self, store: Store) -> list[int]:
        """Rows this run writes, in order: not started, stopped, truncated, failed —
        never a completed one. Rows still being written by this process's registry are
        followed, not written again."""
        todo = []
        for row in rows(store, self.batch_id, numbers=self.only):
            state, number = row["state"], row["row_no"]
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
                continue  # another process's row: its heartbeat decides
            if not needs_writing(row, self.length_control):
                continue
            todo.append(number)
        return todo

    def _run(self) -> None:
        store = Store(self.settings.db_path)
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
                    free = min(self.concurrency, self.backoff.limit) - len(self.in_flight)
                    start = self.todo[:max(0, free)]
                    del self.todo[:len(start)]
                for number in start:
                    self._submit(store, number)
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
                left = [r for r in rows(store, self.batch_id)
                        if r["state"] != Status.FAILED and needs_writing(r, self.length_control)]
                final = BatchStatus.PAUSED if left or self.stopping else BatchStatus.DONE
                stored.save_counts(store, self.batch_id, status=final,
                             note=None if final == BatchStatus.DONE else self.note or "stopped",
                             heartbeat_at=None)
            except StorageError as exc:
                self.error = self.error or str(exc)
            finally:
                store.close()
                self.done.set()
                atexit.unregister(self._at_exit)

    def _submit(self, store: Store, number: int) -> None:
        (row,) = rows(store, self.batch_id, numbers=[number])
        if row["state"] == Status.COMPLETED or row["invalid"]:
            return  # written meanwhile (another run's retry): never twice
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
            return
        except JobError as exc:  # the server is shutting down, or the row was deleted
            with self._lock:
                self.stopping, self.note = True, self.note or "interrupted"
            logs.logger.warning("batch #%s row %s not started: %s", self.batch_id, number, exc)
            return
        except StorageError as exc:  # e.g. the row got an article meanwhile (unique index)
            logs.logger.warning("batch #%s row %s not started: %s", self.batch_id, number, exc)
            return
        self._follow(number, handle)

    def _follow(self, number: int, handle: Handle) -> None:
        with self._lock:
            self.in_flight[number] = handle
        handle.when_done(lambda h, n=number: self._ended(n, h))

    def _ended(self, number: int, handle: Handle) -> None:
        finished = handle.finished
        with self._lock:
            self.in_flight.pop(number, None)
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
        try:
            stored.save_counts(store, self.batch_id, heartbeat_at=utc_now())
        except StorageError as exc:
            logs.logger.warning("batch #%s heartbeat not saved: %s", self.batch_id, exc)

    def _at_exit(self) -> None:  # the process exits: pause, saving the rows in flight
        self._pause(15, "interrupted")


def current(settings: Settings, batch_id: int) -> BatchRun | None:
    """This process's run of the batch, while it runs (or just ended), from the
    registry of live runs."""
    return shared(settings.db_path).run("batch", batch_id)


# -- results ------------------------------------------------------------------------

def words_by_unit(batch_rows: list[dict], live: dict | None = None) -> dict[str, int]:
    """Words written, totalled by the unit each row counts in ({"字": 5200, "words": 800}):
    a Chinese row's characters are never added to an English row's words. `live`: the
    handles of rows in flight by row number (their live count, not the last draft's)."""
    totals: dict[str, int] = {}
    for row in batch_rows:
        handle = (live or {}).get(row["row_no"])
        count = handle.words if handle is not None else row.get("words") or 0
        if count and row.get("brief"):
            counted = article_unit(row["brief"].get("language"))
            totals[counted] = totals.get(counted, 0) + count
    return totals


def results(store: Store, batch_id: int, labels: dict | None = None) -> tuple[list[str], list]:
    """The input's columns, then the results (RESULT_COLUMNS, renamed by `labels`). A
    row's `unit` is `labels["unit.<language>"]`, else its article's own (字 / words)."""
    batch = get(store, batch_id)
    if batch is None:
        raise BatchError(f"there is no batch #{batch_id}")
    columns = batch["columns"]
    labels = labels or {}
    header = [*columns, *(labels.get(name, name) for name in RESULT_COLUMNS)]
    table = []
    for row in rows(store, batch_id, content=True):
        error = row["error"]
        if row["invalid"]:
            code, detail = row["invalid"]["code"], row["invalid"]["detail"]
            error = f"{code}: {detail}" if detail else code
        state = labels.get(f"state.{row['state']}", row["state"])
        language = (row["brief"] or {}).get("language")
        counted = labels.get(f"unit.{language}", article_unit(language)) if row["brief"] else ""
        values = {"row": row["row_no"], "article_id": row["article_id"], "status": state,
                  "words": row["words"], "target_words": row["target_words"],
                  "unit": counted, "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
                  "cost": row["cost"], "currency": row["currency"], "error": error,
                  "article": row.get("content") or ""}
        table.append([row["input"].get(c, "") for c in columns]
                     + [values[name] for name in RESULT_COLUMNS])
    return header, table


EXPORTS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument."
           "spreadsheetml.sheet", "zip": "application/zip"}


def export(store: Store, batch_id: int, fmt: str, labels: dict | None = None) -> tuple[bytes, str, str]:
    """(data, mime type, file name): the results as CSV (UTF-8 with BOM), Excel, or a
    zip with one Markdown file per written row."""
    if fmt not in EXPORTS:
        raise BatchError(f"unknown results format {fmt!r}; use csv, xlsx or zip")
    batch = get(store, batch_id)
    if batch is None:
        raise BatchError(f"there is no batch #{batch_id}")
    stem = f"batch-{batch_id}-{slugify(Path(batch['file_name'] or 'batch').stem, 30)}"
    if fmt == "zip":
        files = []
        for row in rows(store, batch_id, content=True):
            if row.get("content"):
                article = store.get(row["article_id"]) or {}
                name = f"{row['row_no']:04d}-{slugify(row['topic'] or '', 40)}.md"
                files.append((name, to_markdown(article) if article else row["content"]))
        return to_zip(files), EXPORTS[fmt], f"{stem}.zip"
    header, table = results(store, batch_id, labels)
    data = to_csv(header, table) if fmt == "csv" else to_xlsx(header, table)
    return data, EXPORTS[fmt], f"{stem}.{fmt}"

