"""A Stop from another process (issue 24): `python -m writer write` streams against the
loopback fake, held mid-stream; this test process — another process on the same
database, a SQLite file or a PostgreSQL database (`backend`, tests/runs/test_remote.py)
— lists the row and stops it through its own registry (`shared(db).cancel`). The CLI
polls for the request and stops the job as a local Stop does: the provider sees the
disconnect and the row is `stopped` with the partial text. A writer who is not its
author is refused, and nothing is written. Figures are printed."""
from __future__ import annotations

import contextlib
import time

import pytest

from fake_openai import Reply
from netfaults import drained
from test_cli_stop import TEXT, Cli, wait_for
from test_remote import sql
from writer.access import WRITER, AccessDenied, Actor
from writer.runs.registry import shared
from writer.runs.remote import elsewhere
from writer.storage import pg


def stop_columns(db: str) -> tuple:
    return sql(db, "SELECT stop_requested_at, stop_requested_by FROM articles WHERE id = 1")[0]


def kind(db: str) -> str:
    return "PostgreSQL" if pg.is_url(db) else "SQLite"


def stored_rows(db: str) -> list[dict]:
    from writer.storage.store import Store

    store = Store(db)
    try:
        return store.rows("SELECT * FROM articles ORDER BY id")
    finally:
        store.close()


def test_stop_from_another_process_stops_the_cli_and_saves_the_partial_text(env, backend, fake,
                                                                            capsys):
    fake_port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    fake.queue(Reply(text=TEXT, chunk_chars=7, stall_after=5, stall_seconds=30))
    run_env = {**env, "WRITER_USER": "alice"}
    with contextlib.ExitStack() as stack:
        cli = Cli(["write", "--topic", "stopped from elsewhere", "--language", "en",
                   "--length", "200"], run_env)
        stack.callback(cli.kill)
        wait_for(lambda: fake.chunks_sent and fake.chunks_sent[0] == 5 and drained(fake_port)
                 and cli.stdout() == TEXT[:35],
                 "the CLI to have printed the 5 chunks sent before the stall", proc=cli)
        db = backend
        registry = shared(db)

        running = elsewhere(registry)
        assert [(r.article_id, r.topic, r.author, r.provider_name) for r in running] == \
            [(1, "stopped from elsewhere", "alice", "127.0.0.1")], running
        assert running[0].status == "streaming" and running[0].target_words == 200

        with pytest.raises(AccessDenied):  # a writer may not stop someone else's article
            registry.cancel(1, wait_s=5, actor=Actor("bob", WRITER))
        assert stop_columns(db) == (None, None)
        assert not fake.disconnects and cli.proc.poll() is None

        asked_at = time.monotonic()
        stopped = registry.cancel(1, wait_s=30, actor=Actor("alice", WRITER))
        saved_s = time.monotonic() - asked_at
        assert stopped
        wait_for(lambda: fake.disconnects, "the provider to see the disconnect", 10)
        closed_s = fake.disconnects[0] - asked_at
        code = cli.finish()
    with capsys.disabled():
        print(f"\n[remote stop, {kind(backend)}] provider disconnect {closed_s * 1000:.0f} ms, "
              f"stopped row saved {saved_s * 1000:.0f} ms after the request (poll every 0.5 s)")
    err = cli.stderr()
    assert "Traceback" not in err, err
    assert code == 130, err
    assert "stopped from another process: partial article saved as #1" in err, err
    rows = stored_rows(backend)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["status"] == "stopped" and row["error_kind"] != "interrupted", row
    assert row["content"] == TEXT[:35]
    assert row["stop_requested_by"] == "alice"
    assert saved_s < 2.0, f"the row was saved {saved_s:.2f} s after the Stop"  # issue 24
    assert elsewhere(shared(db)) == []


STOP_FROM_ELSEWHERE = """
import sys, time
from writer.access import Actor
from writer.runs.registry import shared
asked = time.monotonic()
stopped = shared(sys.argv[1]).cancel(int(sys.argv[2]), wait_s=30, actor=Actor(sys.argv[3], "writer"))
print(stopped, f"{(time.monotonic() - asked) * 1000:.0f}")
"""


def test_a_worker_job_here_is_stopped_by_a_request_from_another_process(env, backend, fake,
                                                                       capsys):
    import os
    import subprocess
    import sys

    from test_cli_stop import ROOT
    from writer.brief import Brief
    from writer.config import load_settings
    from writer.runs.job import Job
    from writer.storage.store import Store

    fake.queue(Reply(text=TEXT, chunk_chars=7, stall_after=5, stall_seconds=30))
    registry = shared(backend)
    job = Job(Brief(topic="a worker here", language="en", target_words=200), load_settings(),
              length_control=False)
    handle = registry.submit(job)
    try:
        wait_for(lambda: handle.feed.text == TEXT[:35], "the 5 chunks sent before the stall")
        done = subprocess.run([sys.executable, "-c", STOP_FROM_ELSEWHERE, backend,
                               str(handle.article_id), job.author], cwd=ROOT,
                              env={**os.environ, **env},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        stopped, took_ms = done.stdout.split()
        assert stopped == "True", done.stdout
        assert handle.done.wait(10)
    finally:
        registry.cancel(handle.article_id, wait_s=10, actor=Actor(job.author, WRITER))
    with capsys.disabled():
        print(f"\n[remote stop, {kind(backend)}] a worker job stopped from another process: its "
              f"row saved {took_ms} ms after the request")
    assert fake.disconnects
    store = Store(backend)
    try:
        row = store.get(handle.article_id)
    finally:
        store.close()
    assert row["status"] == "stopped" and row["content"] == TEXT[:35], row
