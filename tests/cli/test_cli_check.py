"""`python -m writer check` through a real subprocess, against the loopback provider
scripted with known timing (tests/runs/test_check.py tests the check itself)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import Reply
from test_check import GRADE_WORDS, Script, wait_for, words
from test_cli_batch import query

ROOT = Path(__file__).resolve().parents[2]

def cli(*args, env, timeout=60):
    """`python -m writer check …`, stdin not a tty (no confirmation can be typed)."""
    return subprocess.run([sys.executable, "-m", "writer", "check", *args], cwd=ROOT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def saved_checks(env) -> list[dict]:
    return query(env, "select * from provider_checks")


def test_cli_check_json(env, fake):
    script = Script(fake, long=Reply(chunks=words(11), chunk_delays=[0.01, 0.02]))
    result = cli("--yes", "--json", "--runs", "2", "--concurrency", "5", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    for key in ("connect_ms", "ttft_ms", "itl_mean_ms", "itl_p95_ms", "itl_cv", "interruptions",
                "interruption_rate", "tokens_per_s", "concurrency", "grades", "price"):
        assert key in report, key
    assert set(report["ttft_ms"]) >= {"p50", "p95", "max"}
    assert all(isinstance(report["ttft_ms"][k], (int, float)) for k in ("p50", "p95", "max"))
    assert all(isinstance(report[k], (int, float)) for k in (
        "connect_ms", "itl_mean_ms", "itl_p95_ms", "itl_cv", "interruption_rate", "tokens_per_s"))
    assert report["interruptions"] == 0
    level = report["concurrency"]["5"]
    assert level["success_rate"] == 1.0 and isinstance(level["ttft_p95_ms"], (int, float))
    assert set(report["grades"]) == {"connect_ms", "ttft_ms", "interruption_rate", "itl_cv",
                                     "concurrency_5"}
    assert set(report["grades"].values()) <= GRADE_WORDS
    assert report["price"] == {"input_per_1m": 0.15, "output_per_1m": 0.6, "currency": "USD"}
    assert report["status"] == "completed" and report["model"] == "gpt-4o-mini"
    assert script.kinds() == ["ttft"] * 2 + ["long"] + ["concurrency"] * 5
    assert all(r["_headers"]["authorization"] == "Bearer sk-test-secret" for r in fake.requests)
    (row,) = saved_checks(env)  # saved with a timestamp, the same report
    assert row["status"] == "completed" and json.loads(row["report"]) == report
    assert f"saved as check #{row['id']}" in result.stderr


def test_cli_check_text_lists_grades_and_price(env, fake):
    Script(fake, long=Reply(chunks=words(11), chunk_delays=[0.01, 0.02]))
    result = cli("--yes", "--runs", "1", "--concurrency", "3", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "price: 0.15 / 0.6 USD per 1M input / output tokens" in out
    (row,) = saved_checks(env)
    grades = json.loads(row["report"])["grades"]
    assert set(grades) == {"connect_ms", "ttft_ms", "interruption_rate", "itl_cv", "concurrency_3"}
    lines = out.splitlines()
    for label, key in [("connection set-up", "connect_ms"), ("time to first text", "ttft_ms"),
                       ("inter-token CV", "itl_cv"), ("interruptions", "interruption_rate"),
                       ("3 streams at once", "concurrency_3")]:
        (line,) = [line for line in lines if line.startswith(label)]
        assert f" {grades[key]} " in line, line
    assert "pass / excellent" in out and "< 0.5 / < 0.3" in out
    assert "100 % ok" in out
    assert not result.stdout.startswith("{")


def test_cli_check_refuses_a_paid_provider_without_yes_when_not_a_tty(env, fake):
    result = cli("--runs", "1", "--concurrency", "0", env=env)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and "--yes" in error
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert fake.requests == [] and saved_checks(env) == []  # nothing sent, nothing saved


@pytest.mark.parametrize("args, message", [
    (["--concurrency", "500"], "1 to 200 streams"),
    (["--runs", "0", "--concurrency", "ten"], "whole numbers"),
])
def test_cli_check_bad_plan_exits_2_with_one_line(env, fake, args, message):
    result = cli("--yes", *args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert fake.requests == [] and saved_checks(env) == []


def test_cli_check_ctrl_c_cancels_and_saves(env, fake):
    script = Script(fake, ttft=Reply(first_delay=20))
    proc = subprocess.Popen([sys.executable, "-m", "writer", "check", "--yes", "--json",
                             "--runs", "3", "--concurrency", "5"], cwd=ROOT,
                            env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: script.active("ttft") or proc.poll() is not None,
                 "the first TTFT request", timeout=30)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "cancelled" in err
    assert json.loads(out)["status"] == "cancelled"
    (row,) = saved_checks(env)
    assert row["status"] == "cancelled"
    assert len(fake.requests) == 1  # no TTFT run, long answer or stream after the Ctrl-C
    wait_for(lambda: fake.disconnects, "the provider to see the request closed", timeout=5)
