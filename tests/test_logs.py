"""writer/logs.py: unexpected exceptions go to writer.log next to the database, key-free."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from writer import logs
from writer.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_file_handler_left():
    logs.close()
    yield
    logs.close()


def secrets() -> tuple[str, ...]:
    """The secret values of the environment, as the settings read them."""
    return load_settings().secret_values()


def file_handlers() -> list[logging.Handler]:
    return [h for h in logs.logger.handlers if isinstance(h, RotatingFileHandler)]


def fail_with(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_configure_is_idempotent_and_logs_next_to_the_database(tmp_path):
    db = tmp_path / "data" / "writer.db"
    assert logs.log_path() is None
    path = logs.configure(db)
    assert path == tmp_path / "data" / "writer.log" and path.is_absolute()
    assert logs.configure(str(db)) == path
    assert len(file_handlers()) == 1 and logs.log_path() == path
    handler = file_handlers()[0]
    assert handler.maxBytes == 1_000_000 and handler.backupCount == 3
    assert any(isinstance(f, logs.RedactSecrets) for f in handler.filters)
    assert not path.exists()  # opened on the first record only

    other = logs.configure(tmp_path / "other" / "writer.db")  # another database: replaced
    assert other == tmp_path / "other" / "writer.log"
    assert len(file_handlers()) == 1 and logs.log_path() == other


def test_exception_is_logged_with_keys_and_bearer_tokens_redacted(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "ds-live-7f3a9c2e11")
    monkeypatch.setenv("SHORT_KEY", "abc")  # under 8 characters: not a secret, left alone
    path = logs.configure(tmp_path / "writer.db", secrets())
    exc = fail_with(f"provider said: invalid key {KEY} (Authorization: Bearer x) "
                    f"deepseek ds-live-7f3a9c2e11, other sk-anotherkey12345 abc")
    line = logs.log_exception("writing article #7 failed", exc)

    assert line == f"unexpected ValueError; details in {path}"
    text = path.read_text(encoding="utf-8")
    assert "writing article #7 failed" in text and "Traceback (most recent call last)" in text
    assert "ValueError: provider said: invalid key [redacted]" in text
    assert "Bearer [redacted]" in text and "Bearer x" not in text
    for secret in (KEY, "sk-test-secret", "ds-live-7f3a9c2e11", "sk-anotherkey12345"):
        assert secret not in text
    assert "abc" in text
    assert "ERROR" in text and text[:4].isdigit()  # timestamped
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_the_traceback_is_redacted_too(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = logs.configure(tmp_path / "writer.db", secrets())

    def call_provider(api_key):
        raise RuntimeError("boom")

    try:
        call_provider(KEY)
    except RuntimeError as exc:
        error = exc
    # A traceback can show source lines and chained exceptions that hold the key.
    try:
        raise KeyError("headers") from fail_with(f"request to https://api/v1 with api_key={KEY}")
    except KeyError as exc:
        chained = exc
    logs.log_exception("first", error)
    logs.log_exception("second", chained)
    text = path.read_text(encoding="utf-8")
    assert KEY not in text and "api_key=[redacted]" in text
    assert "The above exception was the direct cause" in text


def test_child_loggers_and_args_are_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = logs.configure(tmp_path / "writer.db", secrets())
    logging.getLogger("writer.jobs").warning("retrying with key %s", KEY)
    assert "retrying with key [redacted]" in path.read_text(encoding="utf-8")


def test_redact():
    assert logs.redact('{"Authorization": "Bearer abc.def-123"}') == '{"Authorization": "Bearer [redacted]"}'
    assert logs.redact("key sk-proj-AbC_12345678 end") == "key [redacted] end"
    assert logs.redact("sk-short") == "sk-short"  # not a key shape
    assert logs.redact("") == ""


def test_without_configure_nothing_is_written_or_printed(capsys):
    line = logs.log_exception("no file", fail_with("x"))
    assert line == "unexpected ValueError"
    assert capsys.readouterr().err == ""


def test_an_unwritable_folder_falls_back_silently(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    path = logs.configure(blocker / "writer.db")  # the folder cannot be created
    assert path == blocker / "writer.log"
    line = logs.log_exception("lost", fail_with("x"))
    assert line == "unexpected ValueError"  # no file to point at
    assert capsys.readouterr().err == ""


def test_a_fresh_process_prints_nothing_to_stderr(tmp_path):
    """No handler configured and even with the root logger set up by someone else:
    the "writer" logger never writes a traceback to the terminal."""
    code = (
        "import logging; logging.basicConfig();"
        "from writer import logs;"
        "e = ValueError('boom');"
        "print(logs.log_exception('m', e))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ})
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.strip() == "unexpected ValueError"
