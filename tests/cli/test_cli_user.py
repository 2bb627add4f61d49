"""`python -m writer user add | list | remove | passwd | role`: end to end in real processes
(a few) and in this process (the terminal prompts), on a real database file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from writer.cli.main import main
from writer.storage import accounts
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pass-phrase"


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A scratch database, no .env, the CLI acting as `root` (no account: an admin)."""
    for name in [n for n in os.environ if n.startswith(("WRITER_", "OPENAI_"))]:
        monkeypatch.delenv(name)
    values = {"WRITER_DB": str(tmp_path / "writer.db"), "WRITER_NO_DOTENV": "1",
              "WRITER_USER": "root", "WRITER_UI_LANGUAGE": "en"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(env: dict, *args: str, stdin: str | None = None, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "writer", "user", *args], cwd=ROOT,
                          env={**os.environ, **env, **extra}, input=stdin,
                          capture_output=True, text=True, timeout=120)


def _store(env: dict) -> Store:
    return Store(env["WRITER_DB"])


def test_add_list_passwd_remove_end_to_end(cli_env):
    added = run(cli_env, "add", "li.na", "--role", "admin", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added an admin account «li.na»" in added.stderr and added.stdout == ""
    assert run(cli_env, "add", "wang", "--role", "Writer", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0

    listed = run(cli_env, "list", "--json")
    assert listed.returncode == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["name"], r["role"], r["password"]) for r in rows] == [
        ("li.na", "admin", True), ("wang", "writer", True)]
    table = run(cli_env, "list")
    assert table.stdout.splitlines() == ["li.na  admin   ", "wang   writer  "]
    assert "2 accounts" in table.stderr

    store = _store(cli_env)
    assert accounts.authenticate(store, "wang", PASSWORD).role == "writer"  # no newline kept
    token = accounts.open_session(store, accounts.authenticate(store, "wang", PASSWORD), 1)
    changed = run(cli_env, "passwd", "wang", "--password-stdin", stdin="new password 2\r\n")
    assert changed.returncode == 0 and "signed out" in changed.stderr
    assert accounts.session_actor(store, token) is None
    assert accounts.authenticate(store, "wang", "new password 2").name == "wang"

    removed = run(cli_env, "remove", "wang")
    assert removed.returncode == 0 and "removed account «wang»" in removed.stderr
    assert [u["name"] for u in accounts.list_users(store)] == ["li.na"]
    for result in (added, changed, removed, listed, table):
        assert PASSWORD not in result.stdout + result.stderr
        assert "new password 2" not in result.stdout + result.stderr
    store.close()


def test_refusals_are_one_line_and_exit_2(cli_env):
    assert run(cli_env, "add", "li.na", "--role", "admin", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0
    cases = {
        "unknown role": (("add", "zhao", "--role", "owner", "--password-stdin"), "choice"),
        "last admin": (("remove", "li.na"), "last admin"),
        "last admin demoted": (("role", "li.na", "writer"), "last admin"),
        "short password": (("add", "zhao", "--role", "writer", "--password-stdin"), "too short"),
        "taken": (("add", "LI.NA", "--role", "writer", "--password-stdin"), "already"),
        "unknown": (("passwd", "nobody", "--password-stdin"), "no account 'nobody'"),
        "bad name": (("add", "a b", "--role", "writer", "--no-password"), "account name"),
        "both": (("add", "zhao", "--role", "writer", "--no-password", "--password-stdin"),
                 "not allowed with"),
    }
    for label, (args, expected) in cases.items():
        result = run(cli_env, *args, stdin="short\n")
        assert result.returncode == 2, (label, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], \
            (label, lines)
        assert "Traceback" not in result.stderr
    store = _store(cli_env)
    assert [(u["name"], u["role"]) for u in accounts.list_users(store)] == [("li.na", "admin")]
    store.close()


def test_without_a_terminal_or_password_stdin_it_says_to_use_the_flag(cli_env):
    result = run(cli_env, "add", "wang", "--role", "writer", stdin="")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no terminal to ask for the password on: pipe it "
                                     "in with --password-stdin")
    store = _store(cli_env)
    assert accounts.list_users(store) == []
    store.close()


def test_an_oidc_person_is_added_without_a_password(cli_env, capsys):
    assert main(["user", "add", "boss@corp.com", "--role", "admin", "--no-password"]) == 0
    assert "identity provider" in capsys.readouterr().err
    store = _store(cli_env)
    assert accounts.get_user(store, "boss@corp.com")["has_password"] is False
    store.close()


class _Terminal:
    def isatty(self):
        return True


def test_on_a_terminal_the_password_is_asked_twice(cli_env, monkeypatch, capsys):
    answers = iter([PASSWORD, PASSWORD, PASSWORD, "a different one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert main(["user", "add", "wang", "--role", "writer"]) == 0
    assert main(["user", "passwd", "wang"]) == 2
    err = capsys.readouterr().err
    assert "the two passwords differ" in err and PASSWORD not in err
    store = _store(cli_env)
    assert accounts.authenticate(store, "wang", PASSWORD).name == "wang"  # unchanged
    store.close()


def test_a_writer_at_the_shell_changes_only_their_own_password(cli_env, monkeypatch, capsys):
    store = _store(cli_env)
    from writer.access import hash_password
    accounts.add_user(store, "li.na", "admin", hash_password(PASSWORD))
    accounts.add_user(store, "wang", "writer", hash_password(PASSWORD))
    monkeypatch.setenv("WRITER_USER", "wang")
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("wang's new one\n"))
    assert main(["user", "add", "zhao", "--role", "admin", "--no-password"]) == 2
    assert main(["user", "passwd", "li.na", "--password-stdin"]) == 2
    assert main(["user", "passwd", "wang", "--password-stdin"]) == 0
    err = capsys.readouterr().err
    assert err.count("error: only an admin may") == 2
    assert accounts.authenticate(store, "wang", "wang's new one").name == "wang"
    assert accounts.authenticate(store, "li.na", PASSWORD).name == "li.na"
    assert [u["name"] for u in accounts.list_users(store)] == ["li.na", "wang"]
    store.close()
