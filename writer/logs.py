"""Logging without secrets: unexpected exceptions go to `writer.log` next to the database.

    from writer import logs
    logs.configure(settings.db_path, settings.secret_values())  # per process or run; idempotent
    try: ...
    except Exception as exc:
        print("error: " + logs.log_exception("while doing X", exc))

`logger` is the "writer" logger. It has a `NullHandler` from import on and does not
propagate to the root logger, so nothing is ever printed to stderr (a library calling
`logging.basicConfig` cannot turn our tracebacks into terminal output). `configure()`
adds one rotating file handler (about 1 MB × 3 backups) whose filter redacts API keys
(the secret values it was given, from `Settings.secret_values()`, and anything shaped
like a key) and bearer tokens from the message and from the formatted traceback. Child loggers
(`logging.getLogger("writer.jobs")`) go through the same handler and filter.

The file is opened on the first record, not by `configure()`, so a run that logs
nothing leaves no file behind. If it cannot be written (read-only folder, disk full)
the record is dropped silently: logging never crashes the app or prints to stderr.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Iterable

LOG_NAME = "writer.log"
MAX_BYTES = 1_000_000
BACKUP_COUNT = 3
REDACTED = "[redacted]"
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"

logger = logging.getLogger("writer")
logger.addHandler(logging.NullHandler())
logger.propagate = False  # never reach the root logger's (stderr) handlers
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)

_PATTERNS = [
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE), r"\1 " + REDACTED),
    # api_key='…', "api-key": "…", apikey=…
    (re.compile(r"""(\bapi[_-]?key["']?\s*[:=]\s*["']?)[^\s"',;}]+""", re.IGNORECASE),
     r"\1" + REDACTED),
]

_lock = threading.Lock()
_handler: _FileHandler | None = None
_secrets: tuple[str, ...] = ()  # secret values to redact, longest first (configure())


def redact(text: str) -> str:
    """`text` with the configured secret values, `sk-…` keys and bearer tokens replaced."""
    if not text:
        return text
    for value in _secrets:
        text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Redacts the message, the traceback and the stack of every record it sees.

    The record is rewritten in place (message formatted with its args, traceback
    pre-formatted into `exc_text`), so no later handler can see the raw values."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
                record.exc_info = None  # the formatter uses exc_text; no raw frames left
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:  # a broken record must not stop logging, nor leak
            record.msg, record.args, record.exc_info, record.exc_text = (
                "(log record could not be redacted; dropped)", None, None, None)
        return True


class _FileHandler(RotatingFileHandler):
    """Opens lazily (creating the folder) and never prints its own errors to stderr."""

    def __init__(self, path: Path):
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT,
                         encoding="utf-8", delay=True)
        self.failed = False

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        self.failed = False  # handleError sets it again if this record is lost
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging API)
        self.failed = True  # silently: the folder may be read-only or the disk full


def configure(db_path: str | os.PathLike, secrets: Iterable[str] = ()) -> Path:
    """Log to `writer.log` in the folder of `db_path` (WRITER_DB); returns that path.
    `secrets` (e.g. `Settings.secret_values()`) are redacted from every record.

    Idempotent: the same path keeps its one handler; another path replaces it."""
    global _handler, _secrets
    path = Path(os.path.abspath(Path(db_path).expanduser().parent / LOG_NAME))
    with _lock:
        # longest first: no partial leftovers
        _secrets = tuple(sorted({s.strip() for s in secrets if s and s.strip()},
                                key=len, reverse=True))
        if _handler is not None and Path(_handler.baseFilename) == path:
            return path
        _remove_handler()
        try:
            handler = _FileHandler(path)
        except Exception:  # e.g. an unusable path: fall back to no file, silently
            return path
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactSecrets())
        logger.addHandler(handler)
        _handler = handler
    return path


def log_path() -> Path | None:
    """The configured log file, or None before `configure()`."""
    handler = _handler
    return Path(handler.baseFilename) if handler is not None else None


def close() -> None:
    """Remove and close the file handler (tests; a process that changes WRITER_DB)."""
    with _lock:
        _remove_handler()


def _remove_handler() -> None:
    global _handler
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler.close()
        _handler = None


def log_exception(message: str, exc: BaseException) -> str:
    """Log `message` and `exc`'s traceback at ERROR (redacted); return a one-line,
    key-free text for the user: "unexpected ValueError; details in /data/writer.log"."""
    logger.error(message, exc_info=(type(exc), exc, exc.__traceback__))
    summary = f"unexpected {type(exc).__name__}"
    handler = _handler
    if handler is not None and not handler.failed and Path(handler.baseFilename).is_file():
        return f"{summary}; details in {handler.baseFilename}"
    return summary
