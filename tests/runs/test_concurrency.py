"""Many writers on one SQLite file: real processes, real threads, real files.

Nothing may fail: no "database is locked", no duplicate migration, no traceback.
Also the heartbeat: a `streaming` row whose writer stopped beating (killed, or simply
never beating) is recovered as stopped / interrupted whatever its worker_pid, and a
row that keeps beating is left alone. Every wait is a condition with a deadline.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from writer.access import Actor
from writer.brief import Brief
from writer.runs import registry
from writer.storage import liveness
from writer.storage.store import MIGRATIONS, Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 20

# Starts `count` writer processes and releases them together. It imports everything
# once, then forks: each child is a real process with its own connection, waiting on a
# pipe that the parent closes as the starting gun (so they start within microseconds,
# and 20 interpreters need not each import sqlite-utils on 2 cores). Each child opens
# the Store (migrating a fresh file) and writes one article with drafts and a final
# update, like a job does. Prints "<n> <exit status> <article id>" lines and the wall
# time from the gun to the last exit.
WRITERS_SCRIPT = r"""
import os, sys, time, traceback
from writer.brief import Brief
from writer.storage.store import Store

def write(path, n):
    store = Store(path)
    article_id = store.create_article(Brief(topic=f"writer {n} 并发写入"), provider="p",
                                      model="m", max_tokens=100)
    text = ""
    for part in range(5):
        text += f"Part {part} of article {n}. "
        store.save_draft(article_id, text, len(text.split()))
    store.update(article_id, status="completed", content=text, words=len(text.split()),
                 input_tokens=10, output_tokens=20, cost=0.001, currency="USD")
    store.close()
    return article_id

path, count = sys.argv[1], int(sys.argv[2])
gun_r, gun_w = os.pipe()
results_r, results_w = os.pipe()
children = {}
for n in range(count):
    pid = os.fork()
    if pid == 0:
        os.close(gun_w)
        os.read(gun_r, 1)  # blocks until the parent closes its end
        try:
            article_id = write(path, n)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os.write(results_w, f"{n} {article_id}\n".encode())
        os._exit(0)
    children[pid] = n
os.close(gun_r)
os.close(results_w)
started = time.monotonic()
os.close(gun_w)  # the starting gun
ids = dict(line.split() for line in os.fdopen(results_r).read().splitlines())
for _ in range(count):
    pid, status = os.wait()
    n = children[pid]
    print(n, os.waitstatus_to_exitcode(status), ids.get(str(n), "-"))
print("wall", time.monotonic() - started)
"""


def wait_for(condition, timeout: float, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def child_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def run_writers(db: Path, count: int = WRITERS) -> tuple[list[tuple[int, int, str]], str, float]:
    """[(writer, exit code, article id)], the writers' stderr, and the wall time."""
    done = subprocess.run([sys.executable, "-c", WRITERS_SCRIPT, str(db), str(count)], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    results = [(int(n), int(code), article_id) for n, code, article_id in lines[:-1]]
    assert len(results) == count and lines[-1][0] == "wall", done.stdout
    return results, done.stderr, float(lines[-1][1])


def articles(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM articles ORDER BY id")]
    finally:
        conn.close()


def migration_names(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    finally:
        conn.close()


def report(capsys, label: str, writers: int, rows: int, errors: int, wall: float) -> None:
    with capsys.disabled():
        print(f"\n[concurrency] {label}: writers {writers}, rows {rows}, errors {errors}, "
              f"wall {wall:.2f} s")


def failures(results, stderr: str) -> int:
    failed = sum(1 for _n, code, _id in results if code != 0)
    return max(failed, 1 if ("locked" in stderr or "Traceback" in stderr) else 0)


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-db", "migrated-db"])
def test_twenty_writer_processes_at_once_never_fail(tmp_path, capsys, fresh):
    db = tmp_path / "writer.db"
    if not fresh:
        Store(db).close()
    results, stderr, wall = run_writers(db)
    rows = articles(db)
    errors = failures(results, stderr)
    report(capsys, f"processes, {'fresh' if fresh else 'migrated'} db", WRITERS, len(rows),
           errors, wall)
    assert errors == 0 and stderr == "", stderr[-3000:]
    assert len(rows) == WRITERS and {r["status"] for r in rows} == {"completed"}
    assert sorted(int(article_id) for _n, _code, article_id in results) == [r["id"] for r in rows]
    assert all(r["content"].startswith("Part 0") and r["cost"] == 0.001 for r in rows)
    assert migration_names(db) == sorted(fn.__name__ for fn in MIGRATIONS)  # each once


def test_twenty_threads_with_their_own_store_never_fail(tmp_path, capsys):
    db = tmp_path / "writer.db"
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            store = Store(db)
            article_id = store.create_article(Brief(topic=f"thread {n}"), provider="p",
                                              model="m", max_tokens=100)
            text = ""
            for part in range(5):
                text += f"Part {part} of thread {n}. "
                store.save_draft(article_id, text, len(text.split()))
            store.update(article_id, status="completed", content=text, words=5,
                         input_tokens=10, output_tokens=20, cost=0.001, currency="USD")
            store.close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    wall = time.monotonic() - started
    rows = articles(db)
    report(capsys, "threads, fresh db", WRITERS, len(rows), len(errors), wall)
    assert errors == []
    assert len(rows) == WRITERS and {r["status"] for r in rows} == {"completed"}


@pytest.mark.slow
def test_twenty_cli_writers_at_once_all_complete(env, fake, capsys):
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "writer", "write", "--topic", f"cli {n}",
                               "--language", "en", "--length", "100", "--quiet",
                               "--no-length-control"],  # one request each: about storage
                              cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(WRITERS)]
    try:
        results = [(p, *p.communicate(timeout=90)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    wall = time.monotonic() - started
    rows = articles(Path(env["WRITER_DB"]))
    bad = [(p.returncode, err) for p, _out, err in results
           if p.returncode != 0 or "Traceback" in err or "locked" in err]
    report(capsys, "`python -m writer write` processes", WRITERS, len(rows), len(bad), wall)
    assert bad == []
    assert len(rows) == WRITERS and {r["status"] for r in rows} == {"completed"}
    assert sorted(r["topic"] for r in rows) == sorted(f"cli {n}" for n in range(WRITERS))
    assert len(fake.requests) == WRITERS


def test_two_processes_migrating_one_fresh_file_both_succeed(tmp_path):
    db = tmp_path / "writer.db"
    results, stderr, _wall = run_writers(db, count=2)
    assert failures(results, stderr) == 0, stderr
    assert migration_names(db) == sorted(fn.__name__ for fn in MIGRATIONS)
    assert len(articles(db)) == 2


# -- heartbeat -------------------------------------------------------------------------
@pytest.fixture
def fast_beat(monkeypatch):
    """Beats every 0.3 s here and in child processes; stale after 0.9 s."""
    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.3)
    monkeypatch.setenv("WRITER_HEARTBEAT_S", "0.3")
    return 0.3


def _status(db: Path, article_id: int) -> dict:
    store = Store(db)  # every open recovers stale rows
    try:
        return store.get(article_id, include_deleted=True)
    finally:
        store.close()


def test_a_row_that_stops_beating_is_interrupted_even_if_its_pid_is_alive(tmp_path, fast_beat):
    db = tmp_path / "writer.db"
    store = Store(db)
    mine = store.create_article(Brief(topic="my pid"), provider="p", model="m", max_tokens=10)
    pid1 = store.create_article(Brief(topic="pid 1"), provider="p", model="m", max_tokens=10)
    store.update(pid1, worker_pid=1)
    store.save_draft(mine, "Half an article", 3)
    assert store.get(mine)["worker_pid"] == os.getpid()
    row = wait_for(lambda: (r := _status(db, mine))["status"] == "stopped" and r, 10)
    assert row and row["error"] == "interrupted" and row["error_kind"] == "interrupted"
    assert row["content"] == "Half an article"  # the last draft is kept
    assert _status(db, pid1)["status"] == "stopped"


def test_a_beating_row_is_never_recovered(tmp_path, fast_beat):
    db = tmp_path / "writer.db"
    store = Store(db)
    alive = store.create_article(Brief(topic="alive"), provider="p", model="m", max_tokens=10)
    silent = store.create_article(Brief(topic="silent"), provider="p", model="m", max_tokens=10)
    created = store.get(alive)["heartbeat_at"]
    registry.shared(db).track(alive)
    try:
        seen = set()

        def long_past_the_stale_window():
            row = _status(db, alive)
            assert row["status"] == "streaming", row  # checked on every open meanwhile
            seen.add(row["heartbeat_at"])
            return len(seen) >= 7 and _status(db, silent)["status"] == "stopped"

        # 7 beats ≈ 2 stale windows, with a recovery attempt on every open: never recovered.
        assert wait_for(long_past_the_stale_window, 15, interval=0.05)
        assert min(seen) >= created
    finally:
        registry.shared(db).untrack(alive)
    assert alive not in registry.tracked().get(str(db.resolve()), [])


HOLDER_SCRIPT = r"""
import sys
from writer.brief import Brief
from writer.runs import registry
from writer.storage.store import Store
store = Store(sys.argv[1])
article_id = store.create_article(Brief(topic="killed writer"), provider="p", model="m",
                                  max_tokens=10)
store.save_draft(article_id, "Text before the kill", 4)
registry.shared(sys.argv[1]).track(article_id)
print(article_id, flush=True)
sys.stdin.read()  # beat until killed
"""


def test_a_killed_process_row_is_recovered(tmp_path, fast_beat):
    db = tmp_path / "writer.db"
    Store(db).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(db)], cwd=ROOT,
                            env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        article_id = int(proc.stdout.readline())
        first = _status(db, article_id)["heartbeat_at"]
        beats = set()

        def beaten_past_the_stale_window():
            row = _status(db, article_id)
            assert row["status"] == "streaming", (row, proc.stderr.read() if proc.poll() else "")
            beats.add(row["heartbeat_at"])
            return len(beats) >= 5 and min(beats) >= first

        assert wait_for(beaten_past_the_stale_window, 15, interval=0.05)  # alive: beating, not recovered
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    row = wait_for(lambda: (r := _status(db, article_id))["status"] == "stopped" and r, 10)
    assert row and row["error_kind"] == "interrupted" and row["content"] == "Text before the kill"


def test_on_deleted_is_called_once_and_a_failing_beat_does_not_stop_the_thread(
        tmp_path, fast_beat):
    db = tmp_path / "writer.db"
    store = Store(db)
    article_id = store.create_article(Brief(topic="to delete"), provider="p", model="m",
                                      max_tokens=10)
    missing = tmp_path / "no-such-folder" / "gone.db"
    calls = []
    deleted = threading.Event()

    def on_deleted():
        calls.append(time.monotonic())
        deleted.set()

    registry.shared(missing).track(1)  # every beat on it fails: logged, never fatal
    registry.shared(db).track(article_id, on_deleted)
    try:
        before = store.get(article_id)["heartbeat_at"]
        assert wait_for(lambda: store.get(article_id)["heartbeat_at"] > before, 5)
        assert not calls
        assert store.delete(article_id, actor=ADMIN)
        assert deleted.wait(5)
        after = store.get(article_id, include_deleted=True)["heartbeat_at"]
        # Two more beats after the call: still exactly one call.
        assert wait_for(lambda: store.get(article_id, include_deleted=True)["heartbeat_at"] > after, 5)
        after = store.get(article_id, include_deleted=True)["heartbeat_at"]
        assert wait_for(lambda: store.get(article_id, include_deleted=True)["heartbeat_at"] > after, 5)
        assert len(calls) == 1
    finally:
        registry.shared(db).untrack(article_id)
        registry.shared(missing).untrack(1)
    assert not missing.parent.exists()  # a beat never creates a database
