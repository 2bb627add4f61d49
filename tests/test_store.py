import sqlite3

import sqlite_utils

from writer import store as store_mod
from writer.brief import Brief
from writer.store import MIGRATIONS, Store, migrate

REQUIRED_COLUMNS = {
    "id", "created_at", "topic", "content_type", "style", "language", "target_words", "words",
    "content", "status", "provider", "model", "input_tokens", "output_tokens", "usage_source",
    "cost", "currency", "ttft_ms", "duration_ms", "tokens_per_s", "finish_reason", "error",
}


def test_migrations_on_empty_db_create_articles_with_required_columns(tmp_path):
    store = Store(tmp_path / "sub" / "new.db")  # parent folder created on first run
    assert REQUIRED_COLUMNS <= set(store.articles.columns_dict)
    applied = [r["name"] for r in store.db["_migrations"].rows]
    assert applied == [fn.__name__ for fn in MIGRATIONS]
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrate_is_idempotent_and_applies_only_new_ones(tmp_path):
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


def test_article_lifecycle(tmp_path):
    store = Store(tmp_path / "w.db")
    brief = Brief(topic="测试", keywords="a, b", target_words=300)
    article_id = store.create_article(brief, provider="p", model="m", max_tokens=1000)
    row = store.get(article_id)
    assert row["status"] == "streaming" and row["keywords"] == ["a", "b"]
    assert row["created_at"].endswith("Z") and "T" in row["created_at"]
    store.save_draft(article_id, "部分", 2)
    assert store.get(article_id)["content"] == "部分"
    store.update(article_id, status="completed", content="全文", words=2, cost=None)
    row = store.get(article_id)
    assert row["status"] == "completed" and row["cost"] is None
    assert [r["id"] for r in store.recent()] == [article_id]
    assert store.count() == 1


def test_rejects_unknown_status(tmp_path):
    store = Store(tmp_path / "w.db")
    article_id = store.create_article(Brief(topic="x"), provider="p", model="m", max_tokens=10)
    try:
        store.update(article_id, status="done")
    except ValueError as exc:
        assert "unknown status" in str(exc)
    else:
        raise AssertionError("status 'done' was accepted")


def test_never_stores_the_api_key(env, fake, tmp_path):
    from writer.config import load_settings
    from writer.jobs import Job

    settings = load_settings()
    job = Job(Brief(topic="secret check"), settings)
    list(job.run())
    raw = (tmp_path / "writer.db").read_bytes()
    for suffix in ("-wal", "-shm"):
        path = tmp_path / f"writer.db{suffix}"
        if path.exists():
            raw += path.read_bytes()
    assert b"sk-test-secret" not in raw
    assert sqlite3.connect(tmp_path / "writer.db").execute(
        "select count(*) from articles").fetchone()[0] == 1
    assert store_mod.STATUSES == ("streaming", "completed", "stopped", "failed", "truncated")
