"""Shared fixtures: a loopback OpenAI-compatible provider and an isolated environment.

No test touches the network: every provider is `FakeOpenAI` on 127.0.0.1.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

sys.path.insert(0, str(Path(__file__).parent))
# Tests live beside the package they test (tests/storage, tests/runs, ...); a few share
# helpers across folders (test_pages.app, test_batch.sheet): every folder is importable.
sys.path[1:1] = sorted(str(p) for p in Path(__file__).parent.iterdir()
                       if p.is_dir() and p.name not in {"netguard", "__pycache__"})
os.environ["WRITER_NO_DOTENV"] = "1"  # a developer's .env must not leak into tests

from fake_openai import FakeOpenAI  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WRITER_VARS = [name for name in os.environ if name.startswith(("WRITER_", "OPENAI_"))]


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def env(fake, tmp_path, monkeypatch):
    """Environment pointing the app at the fake provider and a scratch database."""
    for name in WRITER_VARS:
        if name != "WRITER_NO_DOTENV":
            monkeypatch.delenv(name, raising=False)
    values = {
        "OPENAI_API_KEY": "sk-test-secret",
        "OPENAI_BASE_URL": fake.base_url,
        "WRITER_MODEL": "gpt-4o-mini",
        "WRITER_DB": str(tmp_path / "writer.db"),
        "WRITER_UI_LANGUAGE": "en",
        "WRITER_NO_DOTENV": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture(autouse=True)
def _fresh_stream_failure_counts():
    """Broken-stream counts are per process; each test starts from zero."""
    from writer.generation.metrics import reset_stream_failures

    reset_stream_failures()
    yield
    reset_stream_failures()


@pytest.fixture
def downloads(monkeypatch) -> list[tuple[str | None, bytes]]:
    """(file name, bytes) of every file a download button of the run offers."""
    found: list[tuple[str | None, bytes]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes):
            found.append((filename, path_or_data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    return found


@pytest.fixture(scope="session")
def pg_server():
    """One throwaway PostgreSQL (tests/pg_server.py) for the session, started at the first
    test that asks for it (a session without such a test starts none) and removed, data
    directory included, when the session ends, also after failures or Ctrl-C."""
    from pg_server import PgServer

    with PgServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server):
    """URL of a fresh, empty database on the session's PostgreSQL, dropped after the test."""
    url = pg_server.new_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, env, monkeypatch):
    """The database of this run of the test, as `Store`/`shared` take it: the `env`
    fixture's SQLite file, or a fresh PostgreSQL database (WRITER_DATABASE_URL set in
    `env` and in this process's environment, so a server or CLI it starts has it too).
    The storage suite's own `database` (tests/storage/conftest.py) needs no `env`."""
    if request.param == "sqlite":
        yield env["WRITER_DB"]
        return
    from writer.storage import pg

    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("WRITER_DATABASE_URL", url)
    env["WRITER_DATABASE_URL"] = url
    yield url
    pg.close_pool()  # before the database is dropped: no pooled connection outlives it
