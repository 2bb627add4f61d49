"""The words the engine, the store, the pages and the locale files share.

Each is a `StrEnum`, so a value is stored in SQLite and compared as the plain string
it always was ("completed"), while code names it (`Status.COMPLETED`) and a typo is a
NameError instead of a silent mismatch. `tests/test_kinds.py` checks that every value
has its UI string in every locale (`statuses.*`, `errors.*`, `notices.*`).
"""
from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """`articles.status`."""

    QUEUED = "queued"  # waiting for a free slot of its provider (writer/runs/registry.py)
    STREAMING = "streaming"  # text is arriving (or the job is about to start)
    COMPLETED = "completed"
    STOPPED = "stopped"  # Stop, Ctrl-C, closed tab, or the writer died (error_kind interrupted)
    FAILED = "failed"
    TRUNCATED = "truncated"  # hit max_tokens


# Statuses of a row that a job is still writing (it has a heartbeat).
ACTIVE = (Status.QUEUED, Status.STREAMING)

# Statuses whose article can be continued (when it has text).
CONTINUABLE = (Status.STOPPED, Status.TRUNCATED, Status.FAILED)


class ErrorKind(StrEnum):
    """What went wrong, as a stable code (`articles.error_kind`, `Failure.kind`); the UI
    explains each in the reader's language (`errors.<kind>` in locales/*.toml)."""

    AUTH = "auth"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    HTML = "html"  # the base URL serves a web page
    URL = "url"  # the base URL answers 404 with a body that is not the API's
    MODEL = "model"
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    TOO_LONG = "too_long"
    BAD_REQUEST = "bad_request"
    STREAM = "stream"  # broke after text
    EMPTY = "empty"  # ended without any text
    LOCAL = "local"  # the bundled model cannot run
    OTHER = "other"  # unexpected: the detail is in the log file, not the row
    STORAGE = "storage"  # the database refused a write
    CONTENT_FILTER = "content_filter"
    LENGTH = "length"
    INTERRUPTED = "interrupted"  # the writing process died; found by its missing heartbeat


class NoticeKind(StrEnum):
    """`engine.Notice.kind`: something the reader should know while it streams."""

    WAITING = "waiting"  # queued behind another generation (the local model)
    RETRYING = "retrying"
    THROTTLED = "throttled"  # a batch waits: the provider answered 429 (writer/providers/backoff.py)
    RESUMING = "resuming"
    FALLBACK = "fallback"
    FAILOVER = "failover"
    SECTION = "section"  # long-form: section `attempt` of `max_attempts` starts
    LENGTHEN = "lengthen"  # the article is short: asking for the rest (round `attempt`)


class LengthOutcome(StrEnum):
    """`articles.length_outcome`: where the article landed against its target
    (0.8–1.2× is on target; writer/generation/length.py)."""

    ON_TARGET = "on_target"
    SHORT = "short"
    LONG = "long"


class BatchStatus(StrEnum):
    """`batches.status` (writer/runs/batch.py)."""

    RUNNING = "running"  # a runner works on it (a stale heartbeat: interrupted → paused)
    PAUSED = "paused"  # Stop, the server stopped, or the provider refused (`note` says)
    DONE = "done"  # every row ended (some may have failed: retry them alone)


class RowState(StrEnum):
    """A batch row as shown: its article's status, or one of these."""

    INVALID = "invalid"  # the row cannot be written (empty topic, bad length, …)
    PENDING = "pending"  # not started yet
    DELETED = "deleted"  # its article was deleted (Resume skips it; Retry writes it again)


class CheckStatus(StrEnum):
    """`provider_checks.status` (writer/runs/check.py)."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"  # no request of the check got an answer
