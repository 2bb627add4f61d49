"""The CLI on PostgreSQL (WRITER_DATABASE_URL): every command a team uses, through real
subprocesses against the loopback provider and the session's throwaway server, reads
and writes the same rows it would on SQLite."""
from __future__ import annotations

import json

import pytest

from fake_openai import Reply
from test_cli import cli
from writer.storage import pg
from writer.storage.store import Store


def _lines(text: str) -> list[dict]:
    """JSON lines (one object per line), as `history --json` prints them."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def pg_env(env, pg_url, monkeypatch):
    monkeypatch.setenv("WRITER_DATABASE_URL", pg_url)
    yield {**env, "WRITER_DATABASE_URL": pg_url}
    pg.close_pool()


def test_write_history_show_usage_on_postgresql(pg_env, fake, tmp_path):
    fake.queue(Reply(text="# 量子计算\n\n量子计算让计算机更快。AI 和 5G 也在变。\n", usage=(50, 20)))
    zh = cli("write", "--topic", "量子计算入门", "--language", "zh", "--length", "100", env=pg_env)
    assert zh.returncode == 0, zh.stderr
    fake.queue(Reply(text="# Streaming\n\nPeople see words at once.\n", usage=(40, 10)))
    en = cli("write", "--topic", "why streaming matters", "--language", "en", env=pg_env)
    assert en.returncode == 0, en.stderr
    assert "Traceback" not in zh.stderr + en.stderr

    store = Store(pg_env["WRITER_DATABASE_URL"])
    try:
        rows = store.rows("SELECT id, topic, status, input_tokens, output_tokens, cost, currency, "
                          "words FROM articles ORDER BY id")
    finally:
        store.close()
    assert [r["topic"] for r in rows] == ["量子计算入门", "why streaming matters"]
    assert all(r["status"] == "completed" and r["cost"] > 0 and r["currency"] == "USD"
               for r in rows)
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == (50, 20)
    assert rows[0]["words"] > 10  # counted in 字

    listed = cli("history", "--json", env=pg_env)
    assert listed.returncode == 0, listed.stderr
    assert [a["topic"] for a in _lines(listed.stdout)] == ["why streaming matters", "量子计算入门"]
    for term, expected in (("量子", ["量子计算入门"]), ("5G", ["量子计算入门"]),
                           ("streaming", ["why streaming matters"]), ("子", ["量子计算入门"])):
        found = cli("history", "--search", term, "--json", env=pg_env)
        assert found.returncode == 0, found.stderr
        assert [a["topic"] for a in _lines(found.stdout)] == expected, term

    shown = cli("show", str(rows[0]["id"]), env=pg_env)
    assert shown.returncode == 0 and "量子计算让计算机更快" in shown.stdout

    usage = cli("usage", "--by", "model", "--json", env=pg_env)
    assert usage.returncode == 0, usage.stderr
    (group,) = json.loads(usage.stdout)
    assert group["articles"] == 2 and group["input_tokens"] == 90 and group["output_tokens"] == 30

    deleted = cli("delete", str(rows[1]["id"]), "--yes", env=pg_env)
    assert deleted.returncode == 0, deleted.stderr
    after = cli("history", "--json", env=pg_env)
    assert [a["topic"] for a in _lines(after.stdout)] == ["量子计算入门"]


def test_revise_versions_choose_on_postgresql(pg_env, fake):
    fake.queue(Reply(text="First text of the article.\n", usage=(10, 5)))
    assert cli("write", "--topic", "versions", "--language", "en", env=pg_env).returncode == 0
    fake.queue(Reply(text="A shorter text.\n", usage=(12, 4)))
    revised = cli("revise", "1", "--preset", "shorter", "--no-length-control", env=pg_env)
    assert revised.returncode == 0, revised.stderr
    listed = cli("versions", "1", "--json", env=pg_env)
    assert listed.returncode == 0, listed.stderr
    versions = _lines(listed.stdout)
    assert [v["number"] for v in versions] == [1, 2]
    chosen = cli("choose", "1", "1", env=pg_env)
    assert chosen.returncode == 0, chosen.stderr
    store = Store(pg_env["WRITER_DATABASE_URL"])
    try:
        article = store.get(1)
    finally:
        store.close()
    assert article["content"] == "First text of the article.\n" and article["current_version"] == 1
    assert (article["input_tokens"], article["output_tokens"]) == (22, 9)  # both runs paid


def test_users_and_brands_on_postgresql(pg_env, tmp_path):
    added = cli("user", "add", "Alice", "--role", "writer", "--no-password", env=pg_env)
    assert added.returncode == 0, added.stderr
    again = cli("user", "add", "alice", "--role", "admin", "--no-password", env=pg_env)
    assert again.returncode == 2  # names compare without case (citext), as on SQLite
    listed = cli("user", "list", "--json", env=pg_env)
    assert [(u["name"], u["role"]) for u in _lines(listed.stdout)] == [("Alice", "writer")]

    kit = tmp_path / "kits.toml"
    kit.write_text('name = "晨光咖啡"\nvoice = "温暖"\n', encoding="utf-8")
    imported = cli("brand", "import", str(kit), env=pg_env)
    assert imported.returncode == 0, imported.stderr
    kits = cli("brand", "list", env=pg_env)
    assert "晨光咖啡" in kits.stdout


def test_an_unreachable_database_is_one_line_without_the_password(env, tmp_path):
    from pg_server import free_port  # noqa: PLC0415

    url = f"postgresql://writer:s3cret-pw@127.0.0.1:{free_port()}/writer"
    result = cli("history", env={**env, "WRITER_DATABASE_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr + result.stdout
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "WRITER_DATABASE_URL" in line
