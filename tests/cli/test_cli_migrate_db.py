"""`python -m writer migrate-db --from sqlite:///… --to postgresql://…`: a team's SQLite
database (made through the storage API: articles in Chinese and English with versions, a
deleted one, a failed request, one being written, a batch, a brand kit, prices, budgets,
accounts and a session) copied by the real command into the session's throwaway
PostgreSQL, then read there through `Store`: the same rows, search, new ids after the
copied ones, and the refusals (a non-empty target, a missing file), never a password."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from writer.access import Actor, hash_password
from writer.brands import BrandKit
from writer.brief import Brief
from writer.cli.migrate_db import sqlite_path
from writer.cli.output import CliError
from writer.io.sheet import Row
from writer.storage import accounts, batches, brands, checks, pg, versions
from writer.storage.search import Filters, search
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Actor("li.na", "admin")
PASSWORD = "s3cret-pass-phrase"
URL_PASSWORD = "url-pw-7f3a9c"  # trust auth ignores it; it must never be printed
TABLES = ("articles", "versions", "batches", "batch_rows", "provider_checks", "brands",
          "prices", "budgets", "person_budgets", "users", "sessions")
KEYS = {"batch_rows": "batch_id, row_no", "prices": "provider, model", "budgets": "currency",
        "person_budgets": "author, currency", "users": "name", "sessions": "token_hash"}


def with_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{URL_PASSWORD}@{parts.hostname}:"
                                            f"{parts.port}"))


@pytest.fixture
def target(pg_url):
    yield with_password(pg_url)
    pg.close_pool()  # before the database is dropped


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith(("WRITER_", "OPENAI_"))]:
        monkeypatch.delenv(name)
    return {"WRITER_DB": str(tmp_path / "unused" / "writer.db"), "WRITER_NO_DOTENV": "1",
            "WRITER_USER": "li.na", "WRITER_UI_LANGUAGE": "en", "PYTHONPATH": str(ROOT)}


def migrate(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "writer", "migrate-db", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def article(store: Store, topic: str, text: str, *, language: str = "zh", author: str = "wang",
            cost: float = 0.0123, batch: tuple[int, int] | None = None) -> int:
    article_id = store.create_article(Brief(topic=topic, language=language, target_words=100),
                                      provider="openai", model="gpt-4o-mini", max_tokens=500,
                                      author=author, batch=batch)
    versions.open_version(store, article_id, kind="draft", status="completed", content=text,
                          words=len(text), actor=ADMIN)
    store.update(article_id, status="completed", content=text, words=len(text), input_tokens=120,
                 output_tokens=len(text), cost=cost, currency="USD", current_version=1)
    return article_id


def make_source(path: Path) -> dict:
    """A team's database with a row in every table; the ids the test looks at."""
    store = Store(path)
    accounts.add_user(store, "li.na", "admin", hash_password(PASSWORD))
    accounts.add_user(store, "Wang", "writer", hash_password(PASSWORD))
    accounts.open_session(store, accounts.authenticate(store, "wang", PASSWORD), 8)
    ids = {"zh": article(store, "咖啡机的清洁方法", "每周用柠檬酸清洗咖啡机一次，水垢就不会堆积。")}
    versions.open_version(store, ids["zh"], kind="revision", status="completed",
                          content="每周清洗咖啡机。", words=8, actor=ADMIN, instruction="更短")
    ids["en"] = article(store, "Choosing a coffee grinder", "Burr grinders give an even grind.",
                        language="en", author="li.na", cost=0.5)
    ids["deleted"] = article(store, "旧的草稿", "不该再被搜到的正文。")
    assert store.delete(ids["deleted"], actor=ADMIN)
    ids["failed"] = store.create_article(Brief(topic="失败的请求"), provider="openai",
                                         model="gpt-4o-mini", max_tokens=500, author="wang")
    store.update(ids["failed"], status="failed", error="401 invalid key", error_kind="auth")
    ids["writing"] = store.create_article(Brief(topic="正在写的文章"), provider="openai",
                                          model="gpt-4o-mini", max_tokens=500, author="wang")
    store.save_draft(ids["writing"], "写到一半", 4)
    ids["batch"] = batches.create(
        store, file_name="briefs.csv", settings={"concurrency": 2}, columns=["topic"],
        rows=[Row(1, {"topic": "磨豆机"}, Brief(topic="磨豆机")),
              Row(2, {"topic": ""}, None, error="empty_topic")], author="wang")
    ids["batch_article"] = article(store, "磨豆机", "磨豆机的选择。", batch=(ids["batch"], 1))
    brands.save(store, BrandKit(name="MiniBrew", voice="亲切", banned_words=("最便宜",)), actor=ADMIN)
    store.set_price(provider="*", model="house-model", input_per_1m=1.5, output_per_1m=6,
                    currency="CNY", actor=ADMIN)
    store.set_budget("USD", 100, hard_cap=True, actor=ADMIN)
    store.set_person_budget("wang", "USD", 12.5, actor=ADMIN)
    checks.save(store, {"provider": "openai", "model": "gpt-4o-mini", "status": "ok"},
                author="li.na")
    gone = checks.save(store, {"provider": "openai", "model": "gpt-4o"}, author="li.na")
    assert checks.delete(store, gone, actor=ADMIN)  # its id is never given again
    ids["deleted_check"] = gone
    store.close()
    return ids


def table(store: Store, name: str) -> list[dict]:
    rows = store.rows(f"SELECT * FROM [{name}] ORDER BY {KEYS.get(name, 'id')}")
    for row in rows:
        row.pop("grams", None)  # PostgreSQL's search tokens: filled there
    return rows


def test_a_team_database_is_copied_whole_and_checked(cli_env, tmp_path, target):
    source_file = tmp_path / "writer.db"
    ids = make_source(source_file)
    result = migrate(cli_env, tmp_path, "--from", "sqlite:///writer.db", "--to", target)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines()[:-1])
    assert set(lines) == set(TABLES)
    assert int(lines["articles"].replace(",", "")) == 6 and lines["users"].strip() == "2"
    assert result.stdout.splitlines()[-1].startswith("counts checked: 11 tables")
    assert "articles 6/6" in result.stderr.splitlines()
    assert "warning: articles being written (queued or streaming) in writer.db: 1, copied as " \
           "they were" in result.stderr

    source, copied = Store(source_file), Store(target)
    try:
        for name in TABLES:
            assert table(copied, name) == table(source, name), name
        assert table(copied, "articles")  # not two empty tables
        assert versions.listing(copied, ids["zh"]) == versions.listing(source, ids["zh"])
        assert [v["instruction"] for v in versions.listing(copied, ids["zh"])] == [None, "更短"]
        assert copied.get(ids["deleted"]) is None and copied.get(ids["failed"])["status"] == "failed"
        assert copied.get(ids["writing"])["content"] == "写到一半"
        assert accounts.authenticate(copied, "WANG", PASSWORD).name == "Wang"
        assert batches.get(copied, ids["batch"])["total_rows"] == 2
        assert brands.get(copied, "MiniBrew").banned_words == ("最便宜",)
        assert copied.person_budget("wang", "USD")["monthly_amount"] == 12.5
        assert copied.hard_caps() == {"USD"}

        # search finds copied articles, a two-character Chinese term included, not the deleted one
        assert [r["id"] for r in search(copied, Filters(query="咖啡")).rows] == [ids["zh"]]
        assert [r["id"] for r in search(copied, Filters(query="草稿")).rows] == []
        assert [r["id"] for r in search(copied, Filters(query="柠")).rows] == [ids["zh"]]
        assert [r["id"] for r in search(copied, Filters(query="grinder")).rows] == [ids["en"]]
        assert [r["id"] for r in search(copied, Filters(query="一半")).rows] == [ids["writing"]]
        # the tokens the copy computed are the trigger's function's, none while being written
        tokens = "writer_grams(coalesce(topic, '') || ' ' || coalesce(content, ''))"
        assert copied.rows(f"SELECT id FROM articles WHERE grams IS NULL OR NOT (grams @> {tokens} "
                           f"AND grams <@ {tokens})") == [{"id": ids["writing"]}]

        # new rows get ids after the copied ones (and after a deleted provider check's)
        new = article(copied, "新文章", "复制之后写的。")
        assert new > max(ids[k] for k in ("zh", "en", "deleted", "failed", "writing", "batch_article"))
        assert checks.save(copied, {"provider": "openai"}, author="li.na") > ids["deleted_check"]
        assert [r["id"] for r in search(copied, Filters(query="复制")).rows] == [new]
    finally:
        source.close()
        copied.close()

    again = migrate(cli_env, tmp_path, "--from", str(source_file), "--to", target)
    assert again.returncode == 2
    assert again.stderr.splitlines()[-1] == ("error: the target database is not empty (articles: "
                                             "7 rows); copy into a new, empty database")
    missing = migrate(cli_env, tmp_path, "--from", "sqlite:////nowhere/writer.db", "--to", target)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "error: /nowhere/writer.db does not exist (or is not a file); give the SQLite file of "
        "WRITER_DB"]
    for run in (result, again, missing):
        assert URL_PASSWORD not in run.stdout + run.stderr
        assert "Traceback" not in run.stderr
    assert "writer:***@" in result.stderr  # the target is named, without its password


def test_a_copy_that_fails_leaves_the_target_empty(cli_env, tmp_path, target):
    source_file = tmp_path / "writer.db"
    make_source(source_file)
    store = Store(source_file)
    with store.transaction() as conn:  # SQLite keeps what PostgreSQL's BIGINT refuses
        conn.execute("UPDATE versions SET words = 'many' WHERE id = 2")
    store.close()
    failed = migrate(cli_env, tmp_path, "--from", str(source_file), "--to", target)
    assert failed.returncode == 1 and failed.stdout == ""
    (line,) = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert "copying versions" in line and URL_PASSWORD not in failed.stderr
    assert "Traceback" not in failed.stderr
    copied = Store(target)
    try:  # nothing of the copy stayed, the articles copied before versions included
        assert {name: copied.rows(f"SELECT count(*) AS n FROM [{name}]")[0]["n"]
                for name in TABLES} == dict.fromkeys(TABLES, 0)
    finally:
        copied.close()


@pytest.mark.parametrize("args, message", [
    (["--from", "x.db"], "the following arguments are required: --to"),
    (["--from", "x.db", "--to", "sqlite:///y.db"], "--to must be a postgresql:// URL"),
    (["--from", f"postgresql://u:{URL_PASSWORD}@h/db", "--to", "postgresql://h/db"],
     "is not a SQLite file"),
])
def test_bad_arguments_exit_2_with_one_line(cli_env, tmp_path, args, message):
    result = migrate(cli_env, tmp_path, *args)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line and URL_PASSWORD not in line


def test_from_takes_sqlite_urls_and_paths(tmp_path):
    assert sqlite_path("sqlite:///data/writer.db") == Path("data/writer.db")
    assert sqlite_path("sqlite:////var/lib/writer/writer.db") == Path("/var/lib/writer/writer.db")
    assert sqlite_path("/var/lib/writer/writer.db") == Path("/var/lib/writer/writer.db")
    assert sqlite_path("writer.db") == Path("writer.db")
    for bad in ("sqlite://host/writer.db", "", "mysql://h/db"):
        with pytest.raises(CliError):
            sqlite_path(bad)


def test_a_file_that_is_not_the_app_s_database_is_refused_untouched(cli_env, tmp_path, target):
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all, just text" * 100)
    before = other.read_bytes()
    result = migrate(cli_env, tmp_path, "--from", str(other), "--to", target)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {other} is not a usable SQLite database (file is not a database)"]
    assert other.read_bytes() == before
