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
(the secret values it was given or `load_settings()` remembered, and anything shaped
like a key), bearer tokens, Authorization headers and URL credentials from the message and
from the formatted traceback. Child loggers (`logging.getLogger("writer.jobs")`) go through
the same handler and filter. `redact` is the app's one redaction: provider failures,
`UserError` messages, saved errors and check reports, the pages and the CLI use it too.

The log file (and the database: writer/storage/connection.py) is private: `private_folder`
creates a missing folder 0700, `private_file` a missing file 0600 and takes the group's and
others' access away from an existing one (docs/reliability.md, "Secrets and files").

The file is opened on the first record, not by `configure()`, so a run that logs
nothing leaves no file behind. If it cannot be written (read-only folder, disk full)
the record is dropped silently: logging never crashes the app or prints to stderr.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

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

# Credentials in a URL: "scheme://user:password@host" (or "scheme://token@host").
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://)[^/\s?#@\"'<>]+@", re.IGNORECASE)
# Query parameters that carry credentials: ?token=…, &api_key=…, ?key=…, ?sig=…
_SECRET_PARAMETER = re.compile(
    r"([?&;](?:[a-z0-9_.\-]*[_.\-])?(?:token|key|api_?key|secret|passw(?:or)?d|pwd|auth|sig|"
    r"signature|credentials?)=)[^&#\s\"'<>]+", re.IGNORECASE)  # max_tokens=… is no secret
_PATTERNS = [
    (_URL_USERINFO, r"\1" + REDACTED + "@"),
    (_SECRET_PARAMETER, r"\1" + REDACTED),
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE), r"\1 " + REDACTED),
    # Authorization: Basic …, "proxy-authorization": "…", authorization=… (a header echoed back)
    (re.compile(r"""(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|token|digest)\s+)?)"""
                r"""(?!\[redacted\]|(?:basic|bearer|token|digest)\s)[^\s"',;}]+""", re.IGNORECASE),
     r"\1" + REDACTED),
    # api_key='…', "api-key": "…", x-api-key: …, OPENAI_API_KEY=…, client_secret=…, password: …
    (re.compile(r"""((?:api[_-]?key|(?:access|refresh|auth|id|api|session)[_-]?token|secret|passw(?:or)?d)"""
                r"""["']?\s*[:=]\s*["']?)(?!\[redacted\])[^\s"',;}&]+""", re.IGNORECASE),
     r"\1" + REDACTED),
]
MIN_SECRET_CHARS = 6  # a shorter configured value is too likely to be an ordinary word

_lock = threading.Lock()
_handler: _FileHandler | None = None
_secrets: tuple[str, ...] = ()  # secret values to redact, longest first (remember_secrets())


def redact(text: str) -> str:
    """`text` without credentials: the secret values of the settings (`remember_secrets`),
    `sk-…` keys, bearer tokens, Authorization and api-key headers, and a URL's user
    and password (`https://[redacted]@host`) and secret query parameters (`?token=[redacted]`).
    The one redaction of the app: errors, check reports, logs and pages go through it."""
    if not text:
        return text
    # Patterns first: a known key that is a prefix of a longer one in the text must not
    # leave the rest of that one behind ("[redacted]-0123…" is no longer a key's shape).
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for value in _secrets:
        text = text.replace(value, REDACTED)
    return text


def redact_data(value):
    """A copy of `value` (a report: dicts, lists, strings, numbers) with every string,
    keys included, passed through `redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v) for v in value)
    return value


def url_secrets(url: str | None) -> list[str]:
    """The credentials a URL carries (its password or user token, the values of its
    secret query parameters), to redact wherever they appear on their own."""
    if not url:
        return []
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        found += [password or user, unquote(password or user)]
    found += [v for k, v in parse_qsl(parts.query) if _SECRET_PARAMETER.match(f"?{k}={v}")]
    return [s for s in found if len(s) >= MIN_SECRET_CHARS]


def remember_secrets(values: Iterable[str]) -> None:
    """Add configured secret values (`Settings.secret_values()`, a base URL's
    `url_secrets`) to what `redact` replaces, for the rest of the process."""
    global _secrets
    with _lock:
        _secrets = tuple(sorted({*_secrets, *(s.strip() for s in values
                                              if s and len(s.strip()) >= MIN_SECRET_CHARS)},
                                key=len, reverse=True))  # longest first: no partial leftovers


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


# -- private files ----------------------------------------------------------------------
# The database and the log hold every article, brief and error: only their owner may read
# them. A folder the app creates is 0700, a file 0600; an existing file that others may
# read or write loses those bits (its owner's own bits are kept); an existing folder is
# left as it is (it may be a shared one, such as the working directory).
PRIVATE_FOLDER, PRIVATE_FILE = 0o700, 0o600


def private_folder(folder: str | os.PathLike) -> None:
    """Create `folder` when missing, 0700 (its missing parents get the default mode)."""
    folder = Path(folder)
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=PRIVATE_FOLDER)
    except FileExistsError:  # another process made it meanwhile (or it is a file: the
        return              # caller's own open says so)
    with contextlib.suppress(OSError):
        os.chmod(folder, PRIVATE_FOLDER)  # whatever the umask left


def private_file(path: str | os.PathLike, *, create: bool = True) -> None:
    """Create `path` empty with mode 0600 when missing (and `create`), else take away
    the group's and others' access to it. Never raises: the caller's own open reports a
    file it cannot use, and a file owned by someone else keeps its mode."""
    if create:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
            return
        except FileExistsError:
            pass
        except OSError:
            return
    with contextlib.suppress(OSError):
        found = os.stat(path)
        mode = stat.S_IMODE(found.st_mode)
        if stat.S_ISREG(found.st_mode) and mode & 0o077:  # never a folder named by mistake
            os.chmod(path, mode & 0o700)


class _FileHandler(RotatingFileHandler):
    """Opens lazily (creating the folder, 0700, and the file, 0600) and never prints its
    own errors to stderr."""

    def __init__(self, path: Path):
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT,
                         encoding="utf-8", delay=True)
        self.failed = False

    def _open(self):
        private_folder(Path(self.baseFilename).parent)
        private_file(self.baseFilename)
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
    global _handler
    path = Path(os.path.abspath(Path(db_path).expanduser().parent / LOG_NAME))
    remember_secrets(secrets)
    with _lock:
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


def redact_url(url: str) -> str:
    """A database URL without its password (`user:***@host:port`): messages, pages, logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
