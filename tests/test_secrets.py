"""Secrets never leave the process: keys and URL credentials are redacted before
anything is stored, printed, logged or shown; the database and the log are private
files (docs/reliability.md, "Secrets and files")."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import Reply
from writer import logs

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-secret-0123456789abcdef"
PLAIN_KEY = "relay-live-7f3a9c2e11d4"  # a configured key that is not shaped like one
PASSWORD = "hunter2-pass-9981"
TOKEN = "tok-abc-5566778899"
SECRETS = (KEY, "sk-test-secret", PLAIN_KEY, PASSWORD, TOKEN)
ECHO = (f"upstream refused: Authorization: Bearer {KEY}; api-key: {PLAIN_KEY}; "
        f"x-relay-auth: {PLAIN_KEY}")


@pytest.fixture(autouse=True)
def _no_file_handler_left():
    logs.close()
    yield
    logs.close()


def with_credentials(url: str, *, query: bool = False) -> str:
    url = url.replace("http://", f"http://relayuser:{PASSWORD}@")
    return url + f"?token={TOKEN}" if query else url


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} in {where}: {text!r}"


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "writer", *args], cwd=ROOT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def table(env, name: str) -> list[dict]:
    conn = sqlite3.connect(env["WRITER_DB"])
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"select * from {name}")]
    finally:
        conn.close()


def log_text(env) -> str:
    path = Path(env["WRITER_DB"]).parent / "writer.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


@pytest.fixture
def relay_env(env, fake):
    """A relay that echoes the request's credentials, at a base URL that carries some."""
    env = {**env, "OPENAI_API_KEY": KEY, "RELAY_API_KEY": PLAIN_KEY,
           "OPENAI_BASE_URL": with_credentials(fake.base_url), "WRITER_MAX_RETRIES": "0"}
    return env


# ---- redact --------------------------------------------------------------------------

def test_redact_removes_url_credentials_headers_and_secret_parameters():
    assert logs.redact(f"https://bob:{PASSWORD}@relay.example/v1") == \
        "https://[redacted]@relay.example/v1"
    assert logs.redact(f"at https://{TOKEN}@relay.example/v1 now") == \
        "at https://[redacted]@relay.example/v1 now"
    assert logs.redact(f"https://relay.example/v1?token={TOKEN}&model=x") == \
        "https://relay.example/v1?token=[redacted]&model=x"
    for name in ("api_key", "key", "access_token", "apiKey", "sig", "password"):
        assert logs.redact(f"https://h/v1?a=1&{name}={TOKEN}") == f"https://h/v1?a=1&{name}=[redacted]"
    assert logs.redact(f"Authorization: Basic {TOKEN}") == "Authorization: Basic [redacted]"
    assert logs.redact(f"authorization={PLAIN_KEY}") == "authorization=[redacted]"
    assert logs.redact(f"{{'Proxy-Authorization': '{PLAIN_KEY}'}}") == \
        "{'Proxy-Authorization': '[redacted]'}"
    assert logs.redact(f"api-key: {PLAIN_KEY}") == "api-key: [redacted]"
    assert logs.redact(f"x-api-key={PLAIN_KEY}") == "x-api-key=[redacted]"
    assert logs.redact(f"OPENAI_API_KEY={PLAIN_KEY}") == "OPENAI_API_KEY=[redacted]"
    # What is not a credential stays readable.
    for text in ("https://relay.example/v1", "https://h/v1?model=gpt-4o&max_tokens=5",
                 "max_tokens: 5 · 12 tokens", "mailto:someone@example.com", "user@example.com"):
        assert logs.redact(text) == text


def test_redact_data_redacts_every_string_of_a_report():
    report = {"base_url": f"http://u:{PASSWORD}@h/v1", "errors": [f"Bearer {KEY}"],
              "n": 3, "nested": {"why": f"?token={TOKEN}"}, "none": None}
    clean = logs.redact_data(report)
    assert_clean(json.dumps(clean), "the report")
    assert clean["n"] == 3 and clean["none"] is None and clean["base_url"] == "http://[redacted]@h/v1"
    assert report["errors"] == [f"Bearer {KEY}"]  # the original is left as it was


def test_configured_secrets_are_known_once_settings_are_read(monkeypatch):
    from writer.config import load_settings

    monkeypatch.setenv("RELAY_API_KEY", PLAIN_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"https://bob:{PASSWORD}@relay.example/v1?token={TOKEN}")
    load_settings()
    assert logs.redact(f"key {PLAIN_KEY}, pass {PASSWORD}, token {TOKEN}") == \
        "key [redacted], pass [redacted], token [redacted]"


def test_classify_shows_the_address_without_credentials():
    import httpx2
    import openai

    from writer.providers.failures import classify

    logs.remember_secrets([PLAIN_KEY])  # as load_settings() does with RELAY_API_KEY
    url = f"https://bob:{PASSWORD}@relay.example/v1?token={TOKEN}"
    request = httpx2.Request("POST", "https://relay.example/v1/chat/completions")
    response = httpx2.Response(400, request=request, json={"error": {"message": ECHO}})
    exc = openai.BadRequestError(ECHO, response=response, body={"message": ECHO})
    failure = classify(exc, url, "m")
    assert_clean(failure.message, "the failure")
    assert failure.message.startswith("https://[redacted]@relay.example/v1?token=[redacted] refused")
    assert "Bearer [redacted]" in failure.message
    connect = classify(openai.APIConnectionError(request=request), url, "m")
    assert_clean(connect.message, "the failure") and "relay.example" in connect.message


def test_storage_redacts_errors_and_check_reports_it_is_given(tmp_path):
    """Whatever a caller hands the database (an error, a version's error, a check's
    report and base URL) is saved redacted: the last line of defence."""
    from writer.access import Actor
    from writer.brief import Brief
    from writer.kinds import Status
    from writer.storage import checks, versions
    from writer.storage.store import Store

    store = Store(tmp_path / "writer.db")
    try:
        article = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
        store.update(article, status=Status.FAILED, error=f"relay said Authorization: Bearer {KEY}")
        number = versions.open_version(store, article, kind="draft", status=Status.STREAMING,
                                       actor=Actor("boss", "admin"))
        versions.update_version(store, article, number, error=f"at http://u:{PASSWORD}@h/v1")
        url = f"http://u:{PASSWORD}@h/v1?token={TOKEN}"
        checks.save(store, {"provider": "h", "base_url": url, "runs": 1, "prompt_set": "short",
                            "errors": [f"ttft run 1: {url} refused: Bearer {KEY}"]})
        saved = checks.history(store)[0]
    finally:
        store.close()
    assert_clean(table_of(tmp_path, "articles"), "articles")
    assert_clean(table_of(tmp_path, "versions"), "versions")
    assert_clean(table_of(tmp_path, "provider_checks"), "provider_checks")
    assert saved["base_url"] == "http://[redacted]@h/v1?token=[redacted]"
    assert saved["report"]["errors"][0].endswith("refused: Bearer [redacted]")


def table_of(folder: Path, name: str) -> str:
    return json.dumps(table({"WRITER_DB": str(folder / "writer.db")}, name), default=str)


# ---- end to end: CLI -----------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 500])
def test_cli_write_never_shows_stores_or_logs_a_secret(relay_env, fake, status):
    fake.default = Reply(status=status, error_message=ECHO)
    result = cli("write", "--topic", "t", "--no-length-control", env=relay_env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "http://[redacted]@127.0.0.1" in result.stderr  # the address, without them
    assert_clean(result.stdout + result.stderr, "the CLI's output")
    (row,) = table(relay_env, "articles")
    assert row["status"] == "failed" and row["error"]
    assert_clean(row["error"], "articles.error")
    for version in table(relay_env, "versions"):
        assert_clean(str(version["error"]), "versions.error")
    assert_clean(log_text(relay_env), "writer.log")
    assert fake.requests  # the relay was asked (and answered with what it was sent)


def test_cli_write_with_a_token_in_the_base_url(relay_env, fake):
    fake.default = Reply(status=400, error_message=f"bad request for {TOKEN}")
    env = {**relay_env, "OPENAI_BASE_URL": with_credentials(fake.base_url, query=True)}
    result = cli("write", "--topic", "t", "--no-length-control", env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "token=[redacted]" in result.stderr
    assert_clean(result.stdout + result.stderr, "the CLI's output")
    (row,) = table(env, "articles")
    assert row["error"] and "token=[redacted]" in row["error"]
    assert_clean(row["error"], "articles.error")
    assert_clean(log_text(env), "writer.log")


def test_cli_check_json_never_shows_or_stores_a_secret(relay_env, fake):
    fake.default = Reply(status=400, error_message=ECHO)
    result = cli("check", "--yes", "--json", "--runs", "1", "--concurrency", "2", env=relay_env)
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] and report["base_url"].startswith("http://[redacted]@127.0.0.1")
    assert_clean(result.stdout + result.stderr, "check --json")
    (row,) = table(relay_env, "provider_checks")
    assert_clean(json.dumps(row, default=str), "provider_checks")
    text = cli("check", "--yes", "--runs", "1", "--concurrency", "2", env=relay_env)
    assert "note:" in text.stdout
    assert_clean(text.stdout + text.stderr, "check's table")
    assert_clean(log_text(relay_env), "writer.log")


# ---- pages ---------------------------------------------------------------------------

def test_providers_page_and_about_show_no_credentials(env, fake, monkeypatch):
    from streamlit.testing.v1 import AppTest

    fake.default = Reply(status=400, error_message=ECHO)
    for name, value in {"OPENAI_API_KEY": KEY, "RELAY_API_KEY": PLAIN_KEY,
                        "OPENAI_BASE_URL": with_credentials(fake.base_url, query=True),
                        "WRITER_MODEL": "gpt-4o-mini", "WRITER_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.switch_page("views/providers.py").run()
    assert not at.exception, at.exception
    name = next(b.key for b in at.button if (b.key or "").startswith("test-")
                and b.key != "test-local")
    at.button(key=name).click().run()
    assert not at.exception, at.exception
    shown = page_text(at)
    assert "[redacted]@127.0.0.1" in shown
    assert_clean(shown, "the Providers page")
    at.switch_page("views/settings.py").run()
    assert not at.exception, at.exception
    about = page_text(at)
    assert "http://[redacted]@127.0.0.1" in about and "token=[redacted]" in about
    assert_clean(about, "the Settings page")


def test_a_refusal_never_quotes_a_credential():
    from writer.providers.base import ProviderChoiceError

    exc = ProviderChoiceError(f"the model list at https://u:{PASSWORD}@h/v1?key={TOKEN}/models "
                              f"could not be read (Bearer {KEY})", detail=f"Bearer {KEY}")
    assert_clean(str(exc), "the message") and assert_clean(exc.values["detail"], "its values")
    assert "https://[redacted]@h/v1?key=[redacted]" in str(exc)


def page_text(at) -> str:
    parts = []
    for kind in ("markdown", "error", "warning", "info", "success", "caption", "code", "text",
                 "exception", "json"):
        for element in getattr(at, kind, []):
            parts.append(str(getattr(element, "value", "")))
    return "\n".join(parts)


# ---- files ---------------------------------------------------------------------------

def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_folder_are_private(tmp_path):
    from writer.storage.store import Store

    folder = tmp_path / "data"
    store = Store(folder / "writer.db")
    try:
        store.create_article  # noqa: B018 (the store is open and migrated)
        with store.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        assert mode(folder) == 0o700
        for name in ("writer.db", "writer.db-wal", "writer.db-shm"):
            assert (folder / name).exists(), name
            assert mode(folder / name) == 0o600, (name, oct(mode(folder / name)))
    finally:
        store.close()


def test_an_existing_database_is_narrowed_never_widened(tmp_path):
    from writer.storage.store import Store

    tmp_path.chmod(0o755)
    wide, narrow = tmp_path / "wide.db", tmp_path / "narrow.db"
    for path, start in ((wide, 0o664), (narrow, 0o700)):
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").fetchone()
        path.chmod(start)
    Store(wide).close()
    assert mode(wide) == 0o600  # the group and others lose their access
    Store(narrow).close()
    assert mode(narrow) == 0o700  # the owner's own bits are left as they were
    assert mode(tmp_path) == 0o755  # a folder the app did not create keeps its mode


def test_the_log_file_is_private(tmp_path):
    path = logs.configure(tmp_path / "logs" / "writer.db")
    logs.logger.error("a line")
    assert path.is_file() and mode(path) == 0o600
    assert mode(path.parent) == 0o700
    logs.close()
    path.chmod(0o644)  # an older, wider file is narrowed when it is opened again
    logs.configure(tmp_path / "logs" / "writer.db")
    logs.logger.error("another line")
    assert mode(path) == 0o600


def test_a_token_in_the_base_url_goes_with_every_request(env, fake):
    """A relay that takes its token in the query (`…/v1?token=…`): the request goes to
    `…/v1/chat/completions?token=…` (the SDK alone put the path after the query)."""
    fake.queue(Reply(text="正文。"))
    env = {**env, "OPENAI_BASE_URL": fake.base_url + f"?token={TOKEN}"}
    result = cli("write", "--topic", "t", "--no-length-control", env=env)
    assert result.returncode == 0, result.stderr
    (request,) = fake.requests
    assert request["_path"] == f"/v1/chat/completions?token={TOKEN}"
    assert_clean(result.stdout + result.stderr, "the CLI's output")
