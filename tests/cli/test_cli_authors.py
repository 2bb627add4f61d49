"""The CLI acts as WRITER_USER: what it writes is theirs (`history --json` says so),
`history --author` and `usage --by author` read by person, and a WRITER_USER whose
account is a writer changes only their own rows (exit 2, one line)."""
from __future__ import annotations

import json

import pytest
import sqlite_utils

from fake_openai import Reply
from test_cli import cli
from writer.access import Actor
from writer.brands import BrandKit
from writer.brief import Brief
from writer.cli.main import main
from writer.config import load_settings
from writer.io.sheet import briefs, read_table
from writer.providers.choice import choose_provider
from writer.runs import batch
from writer.storage import accounts, brands, migrations, versions
from writer.storage.migrations import LEGACY_AUTHOR, MIGRATIONS, migrate
from writer.storage.store import Store


def article(env, author: str, topic: str, cost: float) -> int:
    store = Store(env["WRITER_DB"])
    try:
        article_id = store.create_article(Brief(topic=topic, target_words=100), provider="openai",
                                          model="gpt-4o-mini", max_tokens=500, author=author)
        store.update(article_id, status="completed", content=f"{topic}。", words=3, cost=cost,
                     currency="USD", input_tokens=10, output_tokens=20)
        versions.open_version(store, article_id, kind="draft", status="completed",
                              content=f"{topic}。", words=3, actor=Actor(author, "admin"))
        return article_id
    finally:
        store.close()


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_write_records_writer_user_as_the_author_and_history_json_says_so(env, fake,
                                                                          monkeypatch, capsys):
    fake.queue(Reply(text="# Kettles\n\nQuiet and quick.\n"))
    result = cli("write", "--topic", "kettles", "--language", "en", "--length", "100",
                 env={**env, "WRITER_USER": "alice"})
    assert result.returncode == 0, result.stderr
    store = Store(env["WRITER_DB"])
    (row,) = store.recent()
    assert row["author"] == "alice"
    assert [v["author"] for v in versions.listing(store, row["id"])] == ["alice"]
    monkeypatch.setenv("WRITER_USER", "alice")
    code, out, _ = run(capsys, "history", "--json")
    assert code == 0 and json.loads(out)["author"] == "alice"
    code, out, _ = run(capsys, "history")
    assert "alice" in out.splitlines()[0] and "kettles" in out
    assert run(capsys, "history", "--author", "bob", "--json")[1] == ""
    assert json.loads(run(capsys, "history", "--author", "alice", "--json")[1])["id"] == row["id"]


def test_usage_by_author_and_of_one_author(env, monkeypatch, capsys):
    monkeypatch.setenv("WRITER_USER", "root")  # no account: an admin
    article(env, "alice", "one", 0.25)
    article(env, "alice", "two", 0.5)
    article(env, "bob", "three", 2.0)
    code, out, _ = run(capsys, "usage", "--by", "author", "--json")
    found = {r["group"]: r for r in json.loads(out)}
    assert code == 0 and found["alice"]["cost"] == 0.75 and found["alice"]["articles"] == 2
    assert found["bob"]["cost"] == 2.0
    code, out, _ = run(capsys, "usage", "--by", "author", "--author", "bob", "--json")
    assert [r["group"] for r in json.loads(out)] == ["bob"]
    code, out, _ = run(capsys, "usage", "--by", "author")
    assert any(line.startswith("alice") and "0.7500" in line for line in out.splitlines())


def test_rows_from_before_sign_in_show_the_placeholder(env, monkeypatch, capsys):
    db = sqlite_utils.Database(env["WRITER_DB"])
    monkeypatch.setattr(migrations, "MIGRATIONS", [f for f in MIGRATIONS if f.__name__ < "m016"])
    migrate(db)
    db["articles"].insert({"created_at": "2026-01-01T00:00:00.000Z", "topic": "旧文章",
                           "content": "旧的正文。", "status": "completed", "words": 5,
                           "target_words": 100, "language": "zh", "cost": 0.5,
                           "currency": "USD"})
    db.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    code, out, _ = run(capsys, "history", "--json")
    assert code == 0 and json.loads(out)["author"] == LEGACY_AUTHOR == "(before sign-in)"
    assert "(before sign-in)" in run(capsys, "history")[1]
    code, out, _ = run(capsys, "usage", "--by", "author", "--json")
    assert [r["group"] for r in json.loads(out)] == [LEGACY_AUTHOR]


@pytest.fixture
def bob_writes(env, monkeypatch):
    """alice's article and kit; WRITER_USER=bob, whose account is a writer's."""
    alices = article(env, "alice", "alice 的文章", 0.1)
    bobs = article(env, "bob", "bob 的文章", 0.2)
    store = Store(env["WRITER_DB"])
    accounts.add_user(store, "bob", "writer", None)
    brands.save(store, BrandKit(name="MiniBrew", banned_words=("最",)), actor=Actor("alice"))
    store.close()
    monkeypatch.setenv("WRITER_USER", "bob")
    return alices, bobs


def test_a_writer_account_changes_only_its_own_articles(env, bob_writes, monkeypatch, capsys):
    alices, bobs = bob_writes
    monkeypatch.setenv("WRITER_HISTORY_SCOPE", "team")  # bob reads alice's, changes only his
    code, _, err = run(capsys, "delete", str(alices), "--yes")
    assert code == 2 and err.strip() == (f"error: only its author or an admin may delete "
                                         f"article #{alices}")
    code, _, err = run(capsys, "choose", str(alices), "1")
    assert code == 2 and "only its author or an admin" in err and len(err.splitlines()) == 1
    assert Store(env["WRITER_DB"]).get(alices) is not None
    assert run(capsys, "delete", str(bobs), "--yes")[0] == 0
    store = Store(env["WRITER_DB"])
    table = read_table("topic\nTopic 1\n".encode(), "one.csv")
    batch_id = batch.create(store, file_name="one.csv", table=table, rows=briefs(table),
                            provider=choose_provider(load_settings()), concurrency=1,
                            actor=Actor("alice"))
    code, _, err = run(capsys, "batch", "--resume", str(batch_id), "--yes")
    assert code == 2 and err.strip() == f"error: only its author or an admin may resume batch #{batch_id}"
    assert batch.get(store, batch_id)["status"] == "paused"


def test_a_writer_account_reads_only_its_own_unless_the_team_s(env, bob_writes, monkeypatch,
                                                               capsys):
    alices, bobs = bob_writes
    code, out, _ = run(capsys, "history", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [bobs]
    code, _, err = run(capsys, "history", "--author", "alice")
    assert code == 2 and "only their own" in err
    code, out, err = run(capsys, "show", str(alices))
    assert code == 2 and out == "" and err.strip() == f"error: there is no article #{alices} of bob's"
    assert run(capsys, "versions", str(alices))[0] == 2
    assert "bob 的文章" in run(capsys, "show", str(bobs))[1]
    code, out, _ = run(capsys, "usage", "--by", "author", "--json")
    assert [r["group"] for r in json.loads(out)] == ["bob"]
    monkeypatch.setenv("WRITER_HISTORY_SCOPE", "team")
    code, out, _ = run(capsys, "history", "--author", "alice", "--json")
    assert code == 0 and json.loads(out)["id"] == alices
    assert run(capsys, "show", str(alices))[0] == 0  # the team's History: readable


def test_a_writer_account_cannot_replace_another_s_brand_kit(env, bob_writes, tmp_path, capsys):
    kit = tmp_path / "kit.toml"
    kit.write_text('name = "MiniBrew"\nbanned_words = ["便宜"]\n', encoding="utf-8")
    code, _, err = run(capsys, "brand", "import", str(kit), "--replace")
    assert code == 2 and "only its author or an admin" in err
    assert brands.get(Store(env["WRITER_DB"]), "MiniBrew").banned_words == ("最",)
