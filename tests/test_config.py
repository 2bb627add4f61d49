"""writer/config.py: settings from the environment and `.env`, read once into one object."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from writer import config
from writer.brief import Brief
from writer.config import SettingsError, load_settings
from writer.errors import UserError
from writer.storage import liveness
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dotenv(tmp_path, monkeypatch):
    """A `.env` file the settings may read; whatever it puts in the environment and the
    process's current settings are put back after the test."""
    monkeypatch.setattr(config, "_current", None)
    monkeypatch.setattr(config, "_dotenv_read", set())
    monkeypatch.delenv("WRITER_NO_DOTENV", raising=False)
    path = tmp_path / ".env"

    def write(text: str) -> Path:
        for line in text.splitlines():
            name = line.split("=", 1)[0].strip()
            monkeypatch.setenv(name, "")  # recorded as it was: restored after the test
            monkeypatch.delenv(name)
        path.write_text(text)
        return path

    return write


def test_heartbeat_in_a_dotenv_file_takes_effect(dotenv):
    path = dotenv("WRITER_HEARTBEAT_S=0.2\n")
    settings = load_settings(path)
    assert settings.heartbeat_s == 0.2
    assert liveness.heartbeat_s() == 0.2 and liveness.stale_after_s() == pytest.approx(0.6)


def test_a_process_beats_at_the_period_its_dotenv_file_sets(tmp_path, monkeypatch):
    """A writer started in a folder whose `.env` sets WRITER_HEARTBEAT_S beats at that
    period (it used to read the variable at import, before `.env` was loaded)."""
    db = tmp_path / "writer.db"
    store = Store(db)
    article_id = store.create_article(Brief(topic="beats"), provider="p", model="m",
                                      max_tokens=10)
    (tmp_path / ".env").write_text("WRITER_HEARTBEAT_S=0.2\n")
    script = ("import sys\n"
              "from writer.runs import registry\n"
              "from writer.config import load_settings\n"
              "load_settings()\n"
              f"registry.shared({str(db)!r}).track({article_id})\n"
              "print('beating', flush=True)\n"
              "sys.stdin.read()\n")
    env = {name: value for name, value in __import__("os").environ.items()
           if not name.startswith(("WRITER_", "OPENAI_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "beating"
        seen = set()
        deadline = time.monotonic() + 4  # 5 s beats (the default) would show one at most
        while len(seen) < 4 and time.monotonic() < deadline:
            seen.add(store.get(article_id)["heartbeat_at"])
            time.sleep(0.05)
        assert len(seen) >= 4, f"beats seen: {sorted(seen)}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        store.close()


def test_the_real_environment_wins_over_dotenv(dotenv, monkeypatch):
    path = dotenv("WRITER_HEARTBEAT_S=0.2\nWRITER_LOCAL_MODEL_PATH=/models/other.gguf\n")
    monkeypatch.setenv("WRITER_HEARTBEAT_S", "2")
    settings = load_settings(path)
    assert settings.heartbeat_s == 2.0
    assert settings.local_model_path == Path("/models/other.gguf")


def test_an_unusable_heartbeat_is_a_settings_error(env, monkeypatch):
    monkeypatch.setenv("WRITER_HEARTBEAT_S", "often")
    with pytest.raises(SettingsError, match="WRITER_HEARTBEAT_S") as info:
        load_settings()
    assert isinstance(info.value, UserError) and info.value.key == "user_errors.settings"


def test_the_environment_snapshot_serves_key_variables_and_never_shows(env, monkeypatch):
    monkeypatch.setenv("BACKUP_KEY", "sk-backup-0123456789")
    settings = load_settings()
    assert settings.env("BACKUP_KEY") == "sk-backup-0123456789" and settings.env("NOPE") == ""
    monkeypatch.setenv("BACKUP_KEY", "changed")  # read once: the object does not change
    assert settings.env("BACKUP_KEY") == "sk-backup-0123456789"
    assert "sk-backup" not in repr(settings) and "sk-test-secret" not in repr(settings)
    assert {"sk-backup-0123456789", "sk-test-secret"} <= set(settings.secret_values())


def test_nothing_else_in_writer_reads_the_environment():
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "writer").rglob("*.py")
                 if path.name != "config.py" and ("os.environ" in path.read_text(encoding="utf-8")
                                                  or "getenv(" in path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_every_setting_is_documented_in_env_example():
    import re

    read = set(re.findall(r'"((?:WRITER|OPENAI)_[A-Z_]+)"', (ROOT / "writer" / "config.py")
                          .read_text(encoding="utf-8")))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^((?:WRITER|OPENAI)_[A-Z_]+)=", example, re.M))
    documented |= set(re.findall(r"\b(WRITER_NO_DOTENV)=1 in the environment", example))
    assert read - documented == set()


def test_people_settings_default_to_no_sign_in_and_the_os_login(env, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "li.na")
    settings = load_settings()
    assert (settings.auth, settings.user, settings.history_scope, settings.session_hours,
            settings.oidc_default_role) == ("none", "li.na", "own", 12.0, "writer")
    monkeypatch.setattr(getpass, "getuser", lambda: "Li Na")  # cannot be an account's name
    assert load_settings().user == "local"

    def no_login():
        raise OSError("no login name")

    monkeypatch.setattr(getpass, "getuser", no_login)
    assert load_settings().user == "local"


def test_people_settings_are_read_and_checked(env, monkeypatch):
    for name, value in {"WRITER_AUTH": "Accounts", "WRITER_USER": "boss@corp.com",
                        "WRITER_HISTORY_SCOPE": "team", "WRITER_SESSION_HOURS": "0.5",
                        "WRITER_OIDC_DEFAULT_ROLE": "none"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.auth, settings.user, settings.history_scope, settings.session_hours,
            settings.oidc_default_role) == ("accounts", "boss@corp.com", "team", 0.5, "none")
    monkeypatch.setenv("WRITER_AUTH", "oidc")
    assert load_settings().auth == "oidc"
    for name, value in [("WRITER_AUTH", "ldap"), ("WRITER_AUTH", "basic"),
                        ("WRITER_USER", "li na"), ("WRITER_USER", "(before sign-in)"),
                        ("WRITER_HISTORY_SCOPE", "all"), ("WRITER_SESSION_HOURS", "0"),
                        ("WRITER_SESSION_HOURS", "-1"), ("WRITER_SESSION_HOURS", "nan"),
                        ("WRITER_SESSION_HOURS", "1e9"), ("WRITER_OIDC_DEFAULT_ROLE", "admin")]:
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(SettingsError, match=name) as info:
                load_settings()
            assert info.value.exit_code == 2 and info.value.key == "user_errors.settings"
