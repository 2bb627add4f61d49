"""20 writers at once on one database (issue 24, "Concurrency"), on PostgreSQL and on
SQLite: 20 `python -m writer write` processes, and 20 worker jobs across two registries
of live runs (two "servers"). Every article is saved completed with its text, tokens
and cost and one version; no stderr has a traceback; the database holds exactly the 20
rows. With a stream limit, the two servers together never exceed it. The loopback
provider answers at once: the figures measure the writers and the database."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_openai import Reply
from writer.brief import Brief
from writer.config import load_settings
from writer.kinds import Status
from writer.runs.job import Job
from writer.runs.registry import Registry
from writer.storage import pg
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 20
TEXT = "Twenty writers share one database without a lost row."




def check_saved(database, topics: list[str]) -> list[dict]:
    """Exactly these articles, each completed with its text, tokens, cost and one
    version that is its current one."""
    store = Store(database)
    try:
        rows = store.rows("SELECT * FROM articles ORDER BY id")
        versions = store.rows("SELECT article_id, number, status, content FROM versions")
    finally:
        store.close()
    assert sorted(r["topic"] for r in rows) == sorted(topics)
    for row in rows:
        assert row["status"] == "completed" and row["content"] == TEXT, row
        assert (row["input_tokens"], row["output_tokens"]) == (11, 22), row
        assert row["cost"] > 0 and row["currency"] == "USD", row
        assert row["deleted_at"] is None and row["current_version"] == 1, row
    assert sorted((v["article_id"], v["number"]) for v in versions) == \
        sorted((r["id"], 1) for r in rows)
    assert {(v["status"], v["content"]) for v in versions} == {("completed", TEXT)}
    return rows


@pytest.mark.slow
def test_twenty_cli_writers_at_once_are_all_saved(env, fake, database, capsys):
    fake.default = Reply(text=TEXT)
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "writer", "write", "--topic", f"cli {n}",
                               "--language", "en", "--length", "100", "--quiet",
                               "--no-length-control"],  # one request each: about storage
                              cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(WRITERS)]
    try:
        results = [(p, *p.communicate(timeout=180)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.monotonic() - started
    backend = "PostgreSQL" if pg.is_url(database) else "SQLite"
    with capsys.disabled():
        print(f"\n[concurrency] {backend}: {WRITERS} `python -m writer write` processes, "
              f"wall {wall:.1f} s (interpreter start-up included)")
    bad = [(p.returncode, err) for p, _out, err in results
           if p.returncode != 0 or "Traceback" in err or "locked" in err]
    assert bad == []
    assert all(out.rstrip("\n") == TEXT for _p, out, _err in results)
    check_saved(database, [f"cli {n}" for n in range(WRITERS)])
    assert len(fake.requests) == WRITERS


def run_two_servers(settings, per_server: int) -> tuple[list, float]:
    """Two registries (servers) each given `per_server` jobs at once, from a thread of
    their own; the handles once all ended, and the wall time."""
    servers = [Registry(settings.database), Registry(settings.database)]
    handles: list = []
    lock = threading.Lock()
    gun = threading.Event()
    errors: list[BaseException] = []

    def serve(number: int, registry: Registry) -> None:
        gun.wait()
        try:
            for n in range(per_server):
                job = Job(Brief(topic=f"server {number} job {n}", language="en",
                                target_words=100), settings, length_control=False)
                with lock:
                    handles.append(registry.submit(job))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=serve, args=(n, r)) for n, r in enumerate(servers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    gun.set()
    try:
        for thread in threads:
            thread.join(120)
        assert errors == []
        for handle in handles:
            assert handle.done.wait(120), f"article #{handle.article_id} did not end"
    finally:
        for registry in servers:
            registry.shutdown(wait_s=10)
    return handles, time.monotonic() - started


def test_twenty_jobs_across_two_servers_are_all_saved(env, fake, database, capsys):
    fake.default = Reply(text=TEXT)
    handles, wall = run_two_servers(load_settings(), WRITERS // 2)
    backend = "PostgreSQL" if pg.is_url(database) else "SQLite"
    with capsys.disabled():
        print(f"\n[concurrency] {backend}: {WRITERS} jobs across two registries, wall "
              f"{wall:.2f} s, at most {fake.max_active} streams at once")
    assert [h.error for h in handles if h.error] == []
    assert {h.finished.status for h in handles} == {Status.COMPLETED}
    check_saved(database, [f"server {s} job {n}" for s in (0, 1) for n in range(WRITERS // 2)])


def test_two_servers_share_a_stream_limit(env, fake, database, monkeypatch):
    """WRITER_MAX_STREAMS=3: each registry would let 3 of its own run; together on one
    database they never run more than 3."""
    monkeypatch.setenv("WRITER_MAX_STREAMS", "3")
    fake.default = Reply(text=TEXT, chunk_chars=4, chunk_delay=0.01)
    handles, _wall = run_two_servers(load_settings(), WRITERS // 2)
    assert {h.finished.status for h in handles} == {Status.COMPLETED}
    assert 1 <= fake.max_active <= 3
    check_saved(database, [f"server {s} job {n}" for s in (0, 1) for n in range(WRITERS // 2)])
