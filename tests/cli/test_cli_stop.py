"""Ctrl-C on the real CLI in every state of a request: connecting, waiting for the
response headers, waiting for the first token, a stalled stream, the non-streamed
fallback, waiting to retry.

Each case runs `python -m writer write` as a subprocess against the loopback fake
(or a port where connects hang), waits for the state with a real condition (the
fake's records, what the process has read off its sockets, a stderr line, a
SYN_SENT socket), sends SIGINT and checks: exit code 130, one "interrupted" line
and no traceback, the provider saw the disconnect within a second (where there was
a connection), and the row is `stopped`. Figures are printed.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_openai import Reply
from netfaults import ServedReply, connecting_to, drained, unanswered_port

ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 1.0
# No sentence repeats, so no continuation is mistaken for a repeated seam.
TEXT = "".join(f"Sentence {i} streams in. " for i in range(40))


def wait_for(condition, what: str, timeout: float = 20.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.proc.poll() is not None:
            pytest.fail(f"the CLI exited ({proc.proc.returncode}) while waiting for {what}:\n"
                        f"{proc.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}" +
                        (f"; stdout so far: {proc.stdout()!r}; stderr so far:\n{proc.stderr()}"
                         if proc else ""))
        time.sleep(0.01)


class Cli:
    """`python -m writer …` with its stdout (the article, no newline until the end: read
    as it comes) and stderr (lines) read on threads, and the moment it exits noted by a
    thread blocked in wait()."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen([sys.executable, "-m", "writer", *args], cwd=ROOT,
                                     env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._out: list[bytes] = []
        self.err: list[str] = []
        self.exited_at: float | None = None
        self._threads = [threading.Thread(target=self._read_out),
                         threading.Thread(target=self._read_err),
                         threading.Thread(target=self._wait)]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def _read_out(self) -> None:
        while data := os.read(self.proc.stdout.fileno(), 65536):
            self._out.append(data)

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line.decode("utf-8", "replace"))

    def _wait(self) -> None:
        self.proc.wait()
        self.exited_at = time.monotonic()

    def stdout(self) -> str:
        return b"".join(self._out).decode("utf-8", "replace")

    def stderr(self) -> str:
        return "".join(self.err)

    def finish(self, timeout: float = 15) -> int:
        """Wait for the exit and for both pipes to be read to the end."""
        for thread in self._threads:
            thread.join(timeout)
        assert self.exited_at is not None, f"the CLI did not exit:\n{self.stderr()}"
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def stored_rows(env) -> list[dict]:
    conn = sqlite3.connect(env["WRITER_DB"])
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("select * from articles")]
    finally:
        conn.close()


STATES = ["connecting", "waiting for headers", "waiting for the first token", "stalled stream",
          "non-streamed fallback", "waiting to retry"]


@pytest.mark.parametrize("state", STATES, ids=[s.replace(" ", "-") for s in STATES])
def test_ctrl_c_in_every_state_exits_130_and_saves_a_stopped_row(env, fake, state, capsys):
    fake_port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    has_connection = state not in ("connecting", "waiting to retry")
    replies = {
        "connecting": [],
        "waiting for headers": [Reply(text=TEXT, header_delay=30)],
        "waiting for the first token": [ServedReply(text=TEXT, first_delay=30)],
        "stalled stream": [Reply(text=TEXT, chunk_chars=7, stall_after=5, stall_seconds=30)],
        # Two streams break after 5 chunks each (the second is the continuation), so the
        # same process asks the third time without streaming; that answer never comes.
        "non-streamed fallback": [Reply(text=TEXT, chunk_chars=7, drop_after=5),
                                  Reply(text=TEXT[35:], chunk_chars=7, drop_after=5),
                                  Reply(text=TEXT[70:], first_delay=30)],
        "waiting to retry": [Reply(status=429, headers={"Retry-After": "30"}),
                             Reply(text="too late")],
    }[state]
    fake.queue(*replies)
    run_env = dict(env)
    if state == "waiting to retry":
        run_env["WRITER_RETRY_MAX_WAIT"] = "60"

    with contextlib.ExitStack() as stack:
        blackhole = None
        if state == "connecting":
            blackhole = stack.enter_context(unanswered_port())
            run_env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{blackhole[0]}/v1"
        cli = Cli(["write", "--topic", f"ctrl-c while {state}", "--language", "en",
                   "--length", "200"], run_env)
        stack.callback(cli.kill)

        # Wait for the state itself, never for a fixed time.
        if state == "connecting":
            wait_for(lambda: connecting_to(*blackhole), "a TCP connect in SYN_SENT", proc=cli)
        elif state == "waiting for headers":
            wait_for(lambda: len(fake.requests) == 1, "the request to reach the provider", proc=cli)
        elif state == "waiting for the first token":
            wait_for(lambda: replies[0].served_at is not None and drained(fake_port),
                     "the CLI to have read the headers and the role chunk", proc=cli)
        elif state == "stalled stream":
            wait_for(lambda: fake.chunks_sent and fake.chunks_sent[0] == 5 and drained(fake_port)
                     and cli.stdout() == TEXT[:35],
                     "the CLI to have printed the 5 chunks sent before the stall", proc=cli)
        elif state == "non-streamed fallback":
            wait_for(lambda: len(fake.requests) == 3 and cli.stdout() == TEXT[:70],
                     "the third request, after the text of the first two", proc=cli)
            assert fake.requests[2].get("stream") is not True, fake.requests[2]
        elif state == "waiting to retry":
            wait_for(lambda: "retrying" in cli.stderr(), "the retry notice on stderr", proc=cli)

        sent_at = time.monotonic()
        sent_epoch = time.time()
        cli.proc.send_signal(signal.SIGINT)
        abandoned_at = None
        if state == "connecting":  # the half-open connect must go, with the process or before
            while connecting_to(*blackhole) and time.monotonic() < sent_at + 5:
                time.sleep(0.002)
            abandoned_at = time.monotonic()
            assert not connecting_to(*blackhole), "the connect is still in SYN_SENT 5 s later"
        if has_connection:
            wait_for(lambda: fake.disconnects, "the provider to see the disconnect", 5)
        code = cli.finish()

    err = cli.stderr()
    exit_s = cli.exited_at - sent_at
    rows = stored_rows(run_env)
    assert len(rows) == 1, rows
    row = rows[0]
    # The job stamps the stopped row (updated_at, ms) as it writes it.
    written = dt.datetime.fromisoformat(row["updated_at"].replace("Z", "+00:00")).timestamp()
    written_s = written - sent_epoch
    if has_connection:
        closed_s = fake.disconnects[0] - sent_at
        shown = f"{closed_s * 1000:.1f} ms"
    elif state == "connecting":
        closed_s = abandoned_at - sent_at
        shown = f"n/a (no connection yet; the half-open connect was gone {closed_s * 1000:.1f} ms)"
    else:
        closed_s = 0.0
        shown = "n/a (no connection open while waiting)"
    with capsys.disabled():
        print(f"\n[cli] Ctrl-C ({state}): provider disconnect {shown}, exit after "
              f"{exit_s * 1000:.0f} ms (stopped row written at {written_s * 1000:.0f} ms)")

    assert code == 130, err
    assert "Traceback" not in err, err
    interrupted = [line for line in err.splitlines() if "interrupted" in line]
    assert len(interrupted) == 1, err
    assert interrupted[0].startswith("interrupted: partial article saved as #1"), err
    assert closed_s < LIMIT_S, f"the connection was closed {closed_s:.3f} s after SIGINT"
    assert row["status"] == "stopped" and row["error_kind"] != "interrupted", row
    out = cli.stdout()
    if state == "stalled stream":
        assert row["content"] == TEXT[:35] and out.startswith(TEXT[:35])
    elif state == "non-streamed fallback":
        assert row["content"] == TEXT[:70] and row["fallback"] == 1 and row["resumes"] == 2
    else:
        assert row["content"] == "" and out.strip() == ""
    if state == "waiting to retry":
        assert row["retries"] == 1 and len(fake.requests) == 1  # the retry was never sent
    if state == "connecting":
        assert fake.requests == []
