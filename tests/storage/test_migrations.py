"""Migrations (writer/storage/migrations.py): applied once, in order, keeping every row;
and a database from before the `versions` table (migrations up to m010), upgraded:
every article keeps its text as its draft version, and a revision never replaces a
text that is not kept as a version."""
import pytest
import sqlite_utils

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.runs.revisions import RevisionJob
from writer.storage import migrations, pg, versions
from writer.storage.connection import table_columns
from writer.storage.migrations import MIGRATIONS, migrate
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

REQUIRED_COLUMNS = {
    "id", "created_at", "topic", "content_type", "style", "language", "target_words", "words",
    "content", "status", "provider", "model", "input_tokens", "output_tokens", "usage_source",
    "cost", "currency", "ttft_ms", "duration_ms", "tokens_per_s", "finish_reason", "error",
}


def test_migrations_on_empty_db_create_articles_with_required_columns(database):
    if not pg.is_url(database):
        database = database.parent / "sub" / "new.db"  # parent folder created on first run
    store = Store(database)
    assert REQUIRED_COLUMNS <= set(table_columns(store.conn, "articles"))
    applied = [r["name"] for r in store.rows("SELECT name FROM _migrations ORDER BY name")]
    assert applied == [fn.__name__ for fn in MIGRATIONS]
    if store.dialect == "sqlite":
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_migrate_is_idempotent_and_applies_only_new_ones(tmp_path):
    """SQLite: sqlite-utils' migrate (PostgreSQL's twin: tests/storage/test_pg_schema.py)."""
    db = sqlite_utils.Database(tmp_path / "old.db")
    assert migrate(db) == [fn.__name__ for fn in MIGRATIONS]
    db["articles"].insert({"created_at": "2026-01-01T00:00:00Z", "topic": "kept",
                           "status": "completed"})
    assert migrate(db) == []

    def m999_extra(db):
        db["articles"].add_column("extra", str)

    MIGRATIONS.append(m999_extra)
    try:
        assert migrate(db) == ["m999_extra"]
    finally:
        MIGRATIONS.remove(m999_extra)
    assert "extra" in db["articles"].columns_dict
    assert [r["topic"] for r in db["articles"].rows] == ["kept"]  # data survives


# -- m006 / m007: heartbeat column, soft delete, ids never reused ---------------------
def _fts_objects(conn) -> dict[str, str]:
    return {name: sql for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'articles' "
        "AND type IN ('index', 'trigger') AND sql IS NOT NULL")}


def test_m007_keeps_rows_ids_indexes_triggers_and_search(tmp_path, monkeypatch):
    """SQLite: upgrading a database from before m007."""
    from writer.storage.search import Filters, search

    path = tmp_path / "old.db"
    before_m007 = [fn for fn in MIGRATIONS if fn.__name__ < "m007"]
    db = sqlite_utils.Database(path)
    monkeypatch.setattr(migrations, "MIGRATIONS", before_m007)
    assert migrate(db)[-1] == "m006_heartbeat"
    for article_id, topic, content in [(1, "流式输出为什么重要", "流式输出让读者更快看到第一个字。"),
                                       (2, "Coffee machine launch", "Espresso in 30 seconds."),
                                       (5, "春季营销文案", "春天来了，咖啡机八折。")]:
        db["articles"].insert({"id": article_id, "created_at": f"2026-11-0{article_id}T00:00:00.000Z",
                               "topic": topic, "content": content, "status": "completed",
                               "input_tokens": 10 * article_id, "cost": 0.5, "currency": "CNY",
                               "retries": article_id})
    old_rows = [dict(r) for r in db.query("SELECT * FROM articles ORDER BY id")]
    old_objects = _fts_objects(db.conn)
    db.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)

    store = Store(path)  # applies m007
    assert "m007_soft_delete_and_stable_ids" in [r["name"] for r in store.db["_migrations"].rows]
    new_rows = [dict(r) for r in store.db.query("SELECT * FROM articles ORDER BY id")]
    added_later = {"deleted_at", "length_control", "length_outcome", "length_rounds", "outline",
                   "batch_id", "batch_row", "itl_mean_ms", "itl_p95_ms", "itl_cv", "max_gap_ms",
                   "brand", "checks", "current_version", "variant_group", "variant_no", "author",
                   "stop_requested_at", "stop_requested_by"}  # m017
    assert [{k: v for k, v in r.items() if k not in added_later} for r in new_rows] == old_rows
    assert all(r["deleted_at"] is None for r in new_rows)
    schema = store.db["articles"].schema
    assert "AUTOINCREMENT" in schema and "[status] TEXT NOT NULL DEFAULT 'streaming'" in schema
    objects = _fts_objects(store.conn)
    later = {"idx_articles_deleted_at", "idx_articles_batch", "idx_articles_batch_row_once",
             "articles_grams_ai", "articles_grams_ad", "articles_grams_au",  # m014
             "idx_articles_author", "idx_articles_usage_author"}  # m016
    assert {k: v for k, v in objects.items() if k not in later} == old_objects
    assert "AFTER UPDATE OF topic, content" in objects["articles_au"]  # m004's trigger
    assert "idx_articles_usage" in objects
    # Search finds the old rows, through the trigram index and the substring fallback.
    assert [r["id"] for r in search(store, Filters(query="流式输出")).rows] == [1]
    assert [r["id"] for r in search(store, Filters(query="espresso")).rows] == [2]
    assert [r["id"] for r in search(store, Filters(query="咖啡")).rows] == [5]
    # … and new ones, with ids after the highest ever used.
    new_id = store.create_article(Brief(topic="新的流式输出文章"), provider="p", model="m",
                                  max_tokens=10)
    assert new_id == 6
    assert [r["id"] for r in search(store, Filters(query="流式输出")).rows] == [6, 1]
    store.update(new_id, content="trigram check after the rebuild")
    assert [r["id"] for r in search(store, Filters(query="rebuild")).rows] == [6]
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.conn.execute("INSERT INTO articles_fts(articles_fts) VALUES ('integrity-check')")


# -- m012: articles from before the versions table ------------------------------------
OLD_TEXT = ("# 旧文章\n\n这是在版本功能出现之前写的文章，它的原文必须保留下来。\n\n"
            "## 第二部分\n\n更多内容在这里，一共两段。\n")
PRICE = (0.15, 0.60)


@pytest.fixture
def old_database(env, monkeypatch):
    """The schema as the code before m011 left it, with articles written the old way."""
    before_versions = [fn for fn in MIGRATIONS if int(fn.__name__[1:4]) <= 10]
    db = sqlite_utils.Database(env["WRITER_DB"])
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", before_versions)
        assert migrate(db)[-1] == "m010_stream_metrics_and_provider_checks"
    common = {"created_at": "2026-01-02T00:00:00.000Z", "updated_at": "2026-01-02T00:00:00.000Z",
              "content_type": "blog", "style": "professional", "language": "zh",
              "target_words": 80, "audience": "", "keywords": "[]", "provider": "openai",
              "model": "gpt-4o-mini", "usage_source": "reported", "currency": "USD"}
    db["articles"].insert({**common, "topic": "旧文章", "content": OLD_TEXT, "words": 40,
                           "status": "completed", "input_tokens": 120, "output_tokens": 80,
                           "cost": 0.000066})
    db["articles"].insert({**common, "topic": "删掉的", "content": "", "words": 0,
                           "status": "completed", "input_tokens": 10, "output_tokens": 5,
                           "cost": 0.00001, "deleted_at": "2026-01-03T00:00:00.000Z"})
    db["articles"].insert({**common, "topic": "失败的", "content": "", "words": 0,
                           "status": "failed", "input_tokens": 0, "output_tokens": 0,
                           "cost": 0.0, "error": "401"})
    db.close()
    return env["WRITER_DB"]


def test_an_old_article_gets_its_draft_version_with_its_totals(old_database):
    """SQLite: upgrading a database from before m011."""
    store = Store(old_database)  # upgrades
    (draft,) = versions.listing(store, 1)
    article = store.get(1)
    assert (draft["number"], draft["kind"], draft["status"]) == (1, "draft", "completed")
    assert draft["content"] == OLD_TEXT and article["current_version"] == 1
    assert (draft["input_tokens"], draft["output_tokens"], draft["cost"], draft["currency"]) == (
        120, 80, 0.000066, "USD")
    assert (draft["provider"], draft["model"], draft["words"]) == ("openai", "gpt-4o-mini", 40)
    assert versions.listing(store, 2) == [] and versions.listing(store, 3) == []  # no text
    assert store.get(3)["current_version"] is None


def test_revise_on_an_upgraded_database_keeps_the_original(old_database, env, fake):
    """SQLite: upgrading a database from before m011."""
    from test_cli import cli

    Store(old_database).close()  # the new code opens it: migrations run
    new_text = "# 旧文章\n\n更短的版本。"
    fake.queue(Reply(text=new_text, usage=(200, 20)))
    done = cli("revise", "1", "--preset", "shorter", "--no-length-control", env=env)
    assert done.returncode == 0, done.stderr
    assert "the earlier ones are kept" in done.stderr
    store = Store(env["WRITER_DB"])
    listed = versions.listing(store, 1)
    assert [v["content"] for v in listed] == [OLD_TEXT, new_text]  # what it said is true
    article = store.get(1)
    assert article["content"] == new_text and article["current_version"] == 2
    assert sum(v["input_tokens"] for v in listed) == article["input_tokens"] == 320
    assert sum(v["output_tokens"] for v in listed) == article["output_tokens"] == 100
    versions.choose(store, 1, 1, actor=ADMIN)
    assert store.get(1)["content"] == OLD_TEXT


def test_a_revision_keeps_a_text_that_has_no_version_first(backend_env, fake):
    """The root of it: whatever the reason a text has no version (a version save that
    failed, a row written by another tool), a revision keeps it before replacing it."""
    store = Store(backend_env["database"])
    article_id = store.create_article(Brief(topic="没有版本", target_words=60), provider="openai",
                                      model="gpt-4o-mini", max_tokens=500)
    store.update(article_id, status="completed", content=OLD_TEXT, words=40, input_tokens=50,
                 output_tokens=60, cost=0.0001, currency="USD", usage_source="reported")
    assert versions.listing(store, article_id) == []
    fake.queue(Reply(text="# 新\n\n新的。", usage=(200, 20)))
    job = RevisionJob(article_id, load_settings(), length_control=False, preset="shorter", actor=ADMIN)
    list(job.run())
    listed = versions.listing(store, article_id)
    assert [(v["kind"], v["content"]) for v in listed] == [("draft", OLD_TEXT),
                                                          ("revision", "# 新\n\n新的。")]
    assert store.get(article_id)["current_version"] == listed[1]["number"] == job.version_number
    assert sum(v["input_tokens"] or 0 for v in listed) == store.get(article_id)["input_tokens"]
