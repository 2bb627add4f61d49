"""A provider's stream limit across processes on one database (issue 24: "per-provider
stream limits hold across servers"), on SQLite and PostgreSQL.

The SQL (writer/storage/slots.py): a queued row starts only while the live streams of
its provider — every process's, revisions included, stale and deleted ones not — are
fewer than the limit. Then real processes with WRITER_MAX_STREAMS=1 against one
loopback provider: a second server (a subprocess with its own registry) and this one,
and a `python -m writer write` CLI and a queued job here. The provider never sees two
streams at once, and every article completes."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from fake_openai import Reply
from test_workers import wait_for
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Finished
from writer.kinds import Status
from writer.runs.job import Job
from writer.runs.registry import State
from writer.storage import liveness, slots, versions
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Actor("boss", "admin")
LONG = "".join(f"Word{i} " for i in range(60))  # 60 chunks of one word: a stream that lasts




def status(database, article_id: int) -> str:
    store = Store(database)
    try:
        return store.get(article_id)["status"]
    finally:
        store.close()


def new_row(store: Store, provider: str, state: Status) -> int:
    return store.create_article(Brief(topic=f"{provider} {state}", language="en"),
                                provider=provider, model="m", max_tokens=100, status=state)


def test_a_queued_row_starts_only_while_its_provider_has_a_free_slot(database):
    store = Store(database)
    try:
        queued = new_row(store, "p", Status.QUEUED)
        streaming = new_row(store, "p", Status.STREAMING)
        new_row(store, "q", Status.STREAMING)  # another provider's stream: not counted
        assert not slots.try_start(database, queued, "p", 1)
        assert store.get(queued)["status"] == "queued"  # refused: nothing changed
        assert slots.try_start(database, queued, "p", 2)
        assert store.get(queued)["status"] == "streaming"

        waiting = new_row(store, "p", Status.QUEUED)
        assert not slots.try_start(database, waiting, "p", 2)
        # a writer that died (stale heartbeat) holds no slot
        with store.transaction() as conn:
            conn.execute("UPDATE articles SET heartbeat_at = '2020-01-01T00:00:00.000Z' "
                         "WHERE id = ?", [streaming])
        assert slots.try_start(database, waiting, "p", 2)
        # a deleted row holds none either
        late = new_row(store, "p", Status.QUEUED)
        assert not slots.try_start(database, late, "p", 2)
        with store.transaction() as conn:
            conn.execute("UPDATE articles SET deleted_at = '2026-01-01T00:00:00.000Z' "
                         "WHERE id = ?", [waiting])
        assert slots.try_start(database, late, "p", 2)

        # a revision being written counts against its provider, and starts the same way
        done = new_row(store, "r", Status.COMPLETED)
        number = versions.open_version(store, done, kind="revision", status=Status.STREAMING,
                                       provider="r", model="m", actor=ADMIN)
        other = new_row(store, "r", Status.QUEUED)
        assert not slots.try_start(database, other, "r", 1)
        conn = liveness.connect_short(database)  # the connection try_start counts on
        try:
            assert slots.live_streams(conn, "r") == 1
            assert slots.live_streams(conn, "r", article_id=done, version=number) == 0
        finally:
            conn.close()
        second = versions.open_version(store, done, kind="revision", status=Status.QUEUED,
                                       provider="r", model="m", actor=ADMIN)
        assert not slots.try_start(database, done, "r", 1, version=second)
        assert slots.try_start(database, done, "r", 2, version=second)
        assert store.get(done)["status"] == "completed"  # the article row is not touched
    finally:
        store.close()


SERVER_B = r"""
import sys
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.runs.job import Job
from writer.runs.registry import shared

settings = load_settings()
registry = shared(settings.database)
handles = [registry.submit(Job(Brief(topic=f"server B {n}", language="en", target_words=60),
                               settings, length_control=False)) for n in range(2)]
print("submitted", flush=True)
for handle in handles:
    handle.done.wait(120)
    print(handle.article_id, handle.state, handle.finished.status if handle.finished else None,
          flush=True)
"""


def test_two_servers_never_stream_more_than_the_limit_together(env, fake, database, registry,
                                                               monkeypatch, capsys):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.default = Reply(text=LONG, chunk_chars=6, chunk_delay=0.02)  # ~1.2 s a stream
    started = time.monotonic()
    server_b = subprocess.Popen([sys.executable, "-c", SERVER_B], cwd=ROOT,
                                env={**os.environ, "WRITER_MAX_STREAMS": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: fake.active or server_b.poll() is not None, 60, "server B's first stream")
        assert server_b.poll() is None, server_b.stderr.read()
        settings = load_settings()
        assert settings.max_streams == 1
        here = [registry.submit(Job(Brief(topic=f"server A {n}", language="en",
                                          target_words=60), settings, length_control=False))
                for n in range(2)]
        # server B streams: the first job here was refused its slot and waits in line
        assert [h.state for h in here] == [State.QUEUED, State.QUEUED]
        out, err = server_b.communicate(timeout=120)
        for handle in here:
            assert handle.done.wait(60)
    finally:
        if server_b.poll() is None:
            server_b.kill()
    wall = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[slots] two servers, WRITER_MAX_STREAMS=1, 4 articles: provider saw at most "
              f"{fake.max_active} stream(s) at once, wall {wall:.1f} s")
    assert server_b.returncode == 0 and "Traceback" not in err, err
    assert [line.split()[1:] for line in out.splitlines()[1:]] == [["done", "completed"]] * 2
    assert fake.max_active == 1
    assert len(fake.requests) == 4
    store = Store(database)
    try:
        rows = store.rows("SELECT topic, status, content FROM articles ORDER BY id")
    finally:
        store.close()
    assert sorted(r["topic"] for r in rows) == [f"server {s} {n}" for s in "AB" for n in (0, 1)]
    assert {r["status"] for r in rows} == {"completed"}
    assert {r["content"] for r in rows} == {LONG}


def test_a_cli_stream_holds_the_slot_and_a_queued_job_here_waits_for_it(
        env, fake, database, registry, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.queue(Reply(text=LONG, chunk_chars=6, chunk_delay=0.03))  # the CLI's: ~1.8 s
    fake.default = Reply(text="A short one here.")
    cli = subprocess.Popen([sys.executable, "-m", "writer", "write", "--topic", "from the CLI",
                            "--language", "en", "--length", "60", "--no-length-control",
                            "--quiet"], cwd=ROOT, env={**os.environ, "WRITER_MAX_STREAMS": "1"},
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (fake.chunks_sent and fake.chunks_sent[0]) or cli.poll() is not None,
                 60, "the CLI's stream")
        assert cli.poll() is None, cli.stderr.read()
        handle = registry.submit(Job(Brief(topic="queued here", language="en", target_words=60),
                                     load_settings(), length_control=False))
        assert handle.state == State.QUEUED and status(database, handle.article_id) == "queued"
        assert registry.position(handle) == 1
        out, err = cli.communicate(timeout=60)
        assert handle.done.wait(30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0 and "Traceback" not in err, err
    assert out.rstrip("\n") == LONG
    assert fake.max_active == 1 and len(fake.requests) == 2
    assert handle.finished.status == Status.COMPLETED
    assert status(database, handle.article_id) == "completed"


def test_a_foreground_job_waits_for_its_slot_then_streams(env, fake, database, monkeypatch):
    """`streams.wait_for_slot` (a job run in the foreground, as the CLI's `write` runs
    one): while another process streams through the provider at WRITER_MAX_STREAMS=1,
    the job's row stays queued; once that stream ends it takes the slot and writes. A
    job stopped while it waits gives up at once."""
    from writer.runs import streams

    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.default = Reply(text="Written once the slot was free.")
    store = Store(database)
    settings = load_settings()
    job = Job(Brief(topic="foreground", language="en", target_words=60), settings,
              length_control=False)
    elsewhere = new_row(store, job.provider.name, Status.STREAMING)  # another process's
    tries = []
    real = slots.try_start
    monkeypatch.setattr(slots, "try_start", lambda *a, **k: tries.append(1) or real(*a, **k))
    job.queue()
    said, result = [], []
    thread = threading.Thread(target=lambda: result.append(
        streams.wait_for_slot(job, poll_s=0.02, on_wait=lambda: said.append("waiting"))))
    thread.start()
    try:
        wait_for(lambda: len(tries) >= 3, 20, "a few refused tries")
        assert thread.is_alive() and said == ["waiting"]
        assert store.get(job.article_id)["status"] == "queued"
        store.update(elsewhere, status="completed")  # the other stream ended
        thread.join(20)
        assert result == [True] and store.get(job.article_id)["status"] == "streaming"
        finished = [e for e in job.run() if isinstance(e, Finished)]
        assert finished[0].status == Status.COMPLETED and fake.max_active == 1

        stopped = Job(Brief(topic="stopped while waiting", language="en", target_words=60),
                      settings, length_control=False)
        new_row(store, job.provider.name, Status.STREAMING)
        stopped.queue()
        stopped.cancel_requested = True
        assert streams.wait_for_slot(stopped, poll_s=0.02) is False
        assert [e.status for e in stopped.run() if isinstance(e, Finished)] == [Status.STOPPED]
    finally:
        thread.join(5)
        store.close()
def test_two_cli_writers_share_the_provider_one_stream_at_a_time(env, fake, database, capsys):
    """Two `python -m writer write` processes at WRITER_MAX_STREAMS=1: the second waits
    (saying so) until the first one's stream ends; the provider never sees two."""
    fake.queue(Reply(text=LONG, chunk_chars=6, chunk_delay=0.03))  # the first: ~1.8 s
    fake.default = Reply(text="The second one, after the first.")
    run_env = {**os.environ, "WRITER_MAX_STREAMS": "1"}

    def cli(topic: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "writer", "write", "--topic", topic,
                                 "--language", "en", "--length", "60", "--no-length-control",
                                 "--quiet"], cwd=ROOT, env=run_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = cli("first")
    procs = [first]
    try:
        wait_for(lambda: (fake.chunks_sent and fake.chunks_sent[0]) or first.poll() is not None,
                 60, "the first CLI's stream")
        second = cli("second")
        procs.append(second)
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("Traceback" in err for _out, err in outs)
    assert "waiting: 127.0.0.1 is writing 1 article(s) at once already" in outs[1][1]
    assert fake.max_active == 1 and len(fake.requests) == 2
    store = Store(database)
    try:
        rows = store.rows("SELECT topic, status FROM articles ORDER BY id")
    finally:
        store.close()
    assert rows == [{"topic": "first", "status": "completed"},
                    {"topic": "second", "status": "completed"}]
