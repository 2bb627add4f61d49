"""Fixtures the run tests share: a registry of live runs of their own, and the store."""
from __future__ import annotations

import pytest

from writer.runs.registry import Registry
from writer.storage.store import Store


@pytest.fixture
def registry():
    """A registry of live runs of this test's own; every run in it is stopped at the end."""
    reg = Registry()
    yield reg
    reg.shutdown(wait_s=10)


@pytest.fixture
def store(env):
    s = Store(env["WRITER_DB"])
    yield s
    s.close()


@pytest.fixture
def database(backend):
    """The run tests' name for `backend` (tests/conftest.py): a SQLite file or a fresh
    PostgreSQL database, with `env` pointed at it."""
    return backend
