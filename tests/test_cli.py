"""`python -m writer` through a real subprocess, against the loopback provider."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import Reply

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "writer", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def rows(env):
    db = Path(env["WRITER_DB"])
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("select * from articles")]


def test_write_streams_to_stdout_and_saves_the_row(env, fake):
    article = "# Why streaming matters\n\nPeople see the first words at once.\n"
    fake.queue(Reply(text=article, chunk_chars=7, usage=(90, 15)))
    result = cli("write", "--topic", "why streaming matters", "--type", "blog", "--language", "en",
                 "--length", "150", "--style", "casual", "--keywords", "speed,trust", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == article.strip()
    assert "completed" in result.stderr and "tokens 90 in / 15 out (reported)" in result.stderr
    assert "Traceback" not in result.stderr
    (row,) = rows(env)
    assert row["status"] == "completed" and row["content"] == article
    assert row["language"] == "en" and row["style"] == "casual" and row["target_words"] == 150
    assert row["cost"] > 0 and row["currency"] == "USD"
    assert fake.requests[0]["model"] == "gpt-4o-mini"


def test_model_flag_overrides_setting(env, fake):
    fake.queue(Reply(text="ok"))
    result = cli("write", "--topic", "t", "--model", "deepseek-chat", env=env)
    assert result.returncode == 0, result.stderr
    assert fake.requests[0]["model"] == "deepseek-chat"
    assert rows(env)[0]["currency"] == "CNY"


@pytest.mark.parametrize("args, message", [
    (["--topic", ""], "topic is empty"),
    (["--topic", "x", "--length", "49"], "out of range"),
    (["--topic", "x", "--length", "20001"], "out of range"),
    (["--topic", "x", "--length", "many"], "invalid int value"),
    (["--topic", "x", "--type", "poem"], "unknown content type"),
    (["--topic", "x", "--language", "fr"], "unknown language"),
    ([], "required: --topic"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(env, fake, args, message):
    result = cli("write", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert rows(env) == [] and fake.requests == []


def test_provider_failure_exits_nonzero_with_actionable_line(env, fake):
    fake.queue(Reply(status=401))
    result = cli("write", "--topic", "x", env=env)
    assert result.returncode == 1
    assert "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr
    assert rows(env)[0]["status"] == "failed"


def test_truncated_exits_3(env, fake):
    fake.queue(Reply(text="cut off mid", finish_reason="length"))
    result = cli("write", "--topic", "x", env=env)
    assert result.returncode == 3
    assert rows(env)[0]["status"] == "truncated"
