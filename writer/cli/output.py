"""What every command shares: exit codes, the one refusal it raises (`CliError`), and
the small printers and file helpers (stderr lines, terminal-safe text, atomic writes).

Cheap to import (standard library and writer.errors only): the parser and the
error handler in writer/cli/main.py import it before knowing the command.
"""
from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from writer.errors import UserError

if TYPE_CHECKING:
    from writer.storage.store import Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TRUNCATED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(UserError):
    """A refusal of the command line itself; `exit_code` is what the command returns."""

    key = "user_errors.generic"

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = code

    @property
    def code(self) -> int:
        return self.exit_code


def say(message: str) -> None:
    """One message line on stderr (stdout carries only the command's output)."""
    print(message, file=sys.stderr, flush=True)


def one_line(text: str, limit: int = 60) -> str:
    """A topic fit for a terminal line: no control characters (no escape sequences),
    whitespace collapsed, shortened with an ellipsis."""
    text = "".join(ch for ch in str(text or "") if unicodedata.category(ch) not in ("Cc", "Cs"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def pad(text: str, width: int) -> str:
    """`text` left-aligned in `width` terminal columns (a CJK character such as 字 takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)
    return text + " " * max(0, width - columns)


def ask(question: str, refusal: str) -> str:
    """Ask on the terminal and return the answer line as typed ("" at end of input);
    without a terminal to ask on, refuse with `refusal` (exit 2)."""
    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise CliError(refusal)
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


def is_yes(answer: str) -> bool:
    return answer.strip().lower() in ("y", "yes")


def open_store() -> Store:
    from writer.config import load_settings
    from writer.storage.store import Store

    return Store(load_settings().database)


def get_article(store: Store, article_id: int) -> dict:
    """The saved article, or a one-line refusal (exit 2)."""
    row = store.get(article_id)
    if row is None:
        raise CliError(f"there is no article #{article_id}")
    return row


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (a temporary file renamed over it)."""
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise CliError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED) from None


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def elapsed(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
