"""`python -m writer batch` against a relay answering every request 429 `Retry-After: 0`:
the batch ends, paused, with one error line that says why and what to do."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_throttle import Relay

ROOT = Path(__file__).resolve().parents[2]


def test_batch_against_a_relay_saying_retry_now_forever_pauses_and_says_why(env, fake, tmp_path):
    relay = Relay(fake)
    path = tmp_path / "relay.csv"
    path.write_text("topic,length,language\nkettles,100,English\nteapots,100,English\n")
    result = subprocess.run(
        [sys.executable, "-m", "writer", "batch", str(path), "--yes", "--quiet", "--concurrency", "1"],
        cwd=ROOT, env={**os.environ, **env, "WRITER_THROTTLE_MAX_RETRIES": "1"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "rate limited" in errors[0] and "gave up after 1 retry" in errors[0]
    assert "--resume 1" in errors[0]
    assert relay.count == 2  # the first row's request and its one retry; no other row
    conn = sqlite3.connect(env["WRITER_DB"])
    try:
        status, note = conn.execute("SELECT status, note FROM batches").fetchone()
    finally:
        conn.close()
    assert status == "paused" and note.startswith("rate_limited [rate_limit]: ")
