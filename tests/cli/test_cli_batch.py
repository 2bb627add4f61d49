"""`python -m writer batch` through a real subprocess, against the loopback provider."""
from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from test_batch import Provider, sheet
from writer.io.sheet import RESULT_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "writer", "batch", *map(str, args)], cwd=ROOT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def query(env, sql: str, params=()) -> list[dict]:
    db = Path(env["WRITER_DB"])
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    except sqlite3.OperationalError:  # no such table: the database was never migrated
        return []
    finally:
        conn.close()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_batch_with_yes_writes_every_row_and_saves_the_results_file(env, fake, tmp_path):
    Provider(fake, throttle=False)
    # Only topics (and a column of the user's own): the flags fill in the rest.
    data = "topic,备注\n" + "".join(f"Topic {n:02d} about kettles,note {n}\n" for n in range(1, 6))
    path = write(tmp_path, "kettles.csv", data.encode())
    out = tmp_path / "results.csv"
    result = cli(path, "--yes", "--out", out, "--language", "en", "--length", "50",
                 "--concurrency", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the results went to the file
    assert "Traceback" not in result.stderr
    assert "batch #1: 5 completed, 0 failed of 5 rows" in result.stderr
    assert f"results saved to {out}" in result.stderr
    assert sum(line.startswith("row ") and " completed " in line
               for line in result.stderr.splitlines()) == 5  # one progress line per row
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    header, *lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert header == ["topic", "备注", *RESULT_COLUMNS]
    assert [line[1] for line in lines] == [f"note {n}" for n in range(1, 6)]
    assert {line[header.index("status")] for line in lines} == {"completed"}
    articles = query(env, "SELECT * FROM articles ORDER BY batch_row")
    assert [a["batch_row"] for a in articles] == [1, 2, 3, 4, 5]
    assert {(a["language"], a["target_words"], a["length_outcome"]) for a in articles} == \
        {("en", 50, "on_target")}
    (saved,) = query(env, "SELECT * FROM batches")
    assert saved["status"] == "done" and '"concurrency": 3' in saved["settings"]
    assert fake.max_active <= 3


def test_a_priced_provider_without_yes_and_no_terminal_exits_2(env, fake, tmp_path):
    path = write(tmp_path, "kettles.csv", sheet(3, ()))
    result = cli(path, env=env)
    assert result.returncode == 2
    (line,) = error_lines(result.stderr)
    assert "--yes" in line and "Traceback" not in result.stderr
    assert "about" in result.stderr and "USD" in result.stderr  # the estimate was shown
    assert result.stdout == ""
    assert fake.requests == [] and query(env, "SELECT * FROM batches") == []


def test_resume_skips_completed_rows_and_stdout_is_csv(env, fake, tmp_path):
    provider = Provider(fake, throttle=False)
    path = write(tmp_path, "kettles.csv", sheet(8, (2, 5)))
    first = cli(path, "--yes", env=env)
    assert first.returncode == 1, first.stderr  # some rows failed
    assert "2 rows failed" in first.stderr and "--resume 1" in first.stderr
    assert not first.stdout.startswith("\ufeff")  # no BOM in a pipe
    header, *lines = list(csv.reader(io.StringIO(first.stdout, newline="")))
    assert header == ["topic", "length", "language", "sku", *RESULT_COLUMNS]
    assert len(lines) == 8
    status = [line[header.index("status")] for line in lines]
    assert status == ["completed", "failed", "completed", "completed", "failed", "completed",
                      "completed", "completed"]
    ids_before = {a["batch_row"]: a["id"] for a in query(env, "SELECT * FROM articles")}

    provider.fail = False
    asked_before = dict(provider.by_row)
    out = tmp_path / "articles.zip"
    second = cli("--resume", "1", "--yes", "--out", out, env=env)
    assert second.returncode == 0, second.stderr
    assert "batch #1 (kettles.csv): 2 of 8 rows left to write" in second.stderr
    asked = {n: c - asked_before.get(n, 0) for n, c in provider.by_row.items()
             if c != asked_before.get(n, 0)}
    assert set(asked) == {2, 5}  # only the failed rows were sent again
    articles = query(env, "SELECT * FROM articles ORDER BY batch_row")
    assert [a["batch_row"] for a in articles] == list(range(1, 9))  # one article per row
    assert {a["batch_row"]: a["id"] for a in articles} == ids_before  # in their own articles
    assert {a["status"] for a in articles} == {"completed"}
    with zipfile.ZipFile(out) as archive:
        assert len(archive.namelist()) == 8

    third = cli("--resume", "1", "--yes", env=env)  # nothing left: the results again
    assert third.returncode == 0 and "nothing left to write" in third.stderr
    assert len(list(csv.reader(io.StringIO(third.stdout)))) == 9
    assert sum(provider.by_row.values()) == sum(asked_before.values()) + sum(asked.values())


def test_provider_refusing_pauses_and_exits_1(env, fake, tmp_path):
    Provider(fake, throttle=False, status=401)
    path = write(tmp_path, "kettles.csv", sheet(12, ()))
    result = cli(path, "--yes", "--quiet", "--concurrency", "2", env=env)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "provider refused" in line and "--resume 1" in line and "OPENAI_API_KEY" in line
    assert len(fake.requests) <= 2
    (saved,) = query(env, "SELECT * FROM batches")
    assert saved["status"] == "paused" and saved["note"].startswith("provider_refused")
    assert "Traceback" not in result.stderr


def test_ctrl_c_pauses_the_batch_and_exits_130(env, fake, tmp_path):
    provider = Provider(fake, throttle=False, fail=False, delay=0.05)
    path = write(tmp_path, "kettles.csv", sheet(20, ()))
    proc = subprocess.Popen([sys.executable, "-m", "writer", "batch", str(path), "--yes",
                             "--concurrency", "2"], cwd=ROOT, env={**os.environ, **env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while sum(provider.by_row.values()) < 3 or fake.active < 1:
            assert time.monotonic() < deadline and proc.poll() is None, "no rows were started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "paused; go on with: python -m writer batch --resume 1" in err
    assert "Traceback" not in err
    (saved,) = query(env, "SELECT * FROM batches")
    assert saved["status"] == "paused"
    states = [a["status"] for a in query(env, "SELECT * FROM articles")]
    assert "streaming" not in states and "queued" not in states
    assert "stopped" in states
    assert len(states) < 20  # most rows were never started
    assert out.startswith("topic,")  # the results so far


def test_concurrency_out_of_range_exits_2(env, fake, tmp_path):
    path = write(tmp_path, "kettles.csv", sheet(2, ()))
    result = cli(path, "--yes", "--concurrency", "9", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --concurrency 9: use 1 to 8"
    assert fake.requests == [] and query(env, "SELECT * FROM batches") == []


@pytest.mark.parametrize("name, data, message", [
    ("missing.csv", None, "cannot read"),
    ("no-topic.csv", b"title_x,length\nA,100\n", "has no topic column"),
    ("broken.xlsx", b"PK\x03\x04 broken", "not a readable .xlsx file"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(env, fake, tmp_path, name, data,
                                                         message):
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    result = cli(path, "--yes", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert fake.requests == [] and query(env, "SELECT * FROM batches") == []


def test_a_bad_out_file_name_is_refused_before_anything_is_sent(env, fake, tmp_path):
    Provider(fake, throttle=False)
    path = write(tmp_path, "kettles.csv", sheet(2, ()))
    result = cli(path, "--yes", "--out", tmp_path / "results.txt", env=env)
    assert result.returncode == 2 and "use a .csv, .xlsx or .zip" in result.stderr
    assert fake.requests == []


def test_a_killed_writer_loses_no_finished_row_and_resume_writes_each_row_once(
        env, fake, tmp_path, monkeypatch):
    """The process running a batch dies (kill -9: a server restart, a crash): every row
    that finished is in the database; once its heartbeat is stale the batch shows as
    paused / interrupted and `--resume` writes the rest, each row in one article."""
    env = {**env, "WRITER_HEARTBEAT_S": "0.2"}
    monkeypatch.setattr("writer.storage.liveness.HEARTBEAT_S", 0.2)  # this process reads it too
    provider = Provider(fake, throttle=False, fail=False, delay=0.03)
    path = write(tmp_path, "kettles.csv", sheet(12, ()))
    proc = subprocess.Popen([sys.executable, "-m", "writer", "batch", str(path), "--yes",
                             "--concurrency", "2", "--quiet"], cwd=ROOT,
                            env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(query(env, "SELECT id FROM articles WHERE status = 'completed'")) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "no row completed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    done_before = {a["batch_row"]: (a["id"], a["content"])
                   for a in query(env, "SELECT * FROM articles WHERE status = 'completed'")}
    assert len(done_before) >= 3
    sent_before = dict(provider.by_row)

    deadline = time.monotonic() + 10  # 3 missed beats of 0.2 s, then any reader recovers it
    from writer.runs.batch import get
    from writer.storage.store import Store

    while True:
        store = Store(env["WRITER_DB"])
        try:
            batch = get(store, 1)
        finally:
            store.close()
        if batch["status"] == "paused":
            break
        assert time.monotonic() < deadline, f"the dead batch still shows {batch['status']}"
        time.sleep(0.1)
    assert batch["note"] == "interrupted"

    second = cli("--resume", "1", "--yes", "--out", tmp_path / "out.csv", env=env)
    assert second.returncode == 0, second.stderr
    articles = query(env, "SELECT * FROM articles WHERE deleted_at IS NULL ORDER BY batch_row")
    assert [a["batch_row"] for a in articles] == list(range(1, 13))  # one article per row
    assert {a["status"] for a in articles} == {"completed"}
    for row, (article_id, content) in done_before.items():  # finished rows kept, not re-sent
        article = next(a for a in articles if a["batch_row"] == row)
        assert (article["id"], article["content"]) == (article_id, content)
        assert provider.by_row[row] == sent_before[row]
