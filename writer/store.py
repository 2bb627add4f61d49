"""SQLite storage (sqlite-utils): append-only migrations and the `articles` table.

One `Store` per thread (Streamlit sessions are threads): open a new one where you
need it; opening is cheap and migrations run once per database file per process.
The schema is documented in docs/schema.md; never edit a migration that has
shipped, add a new one.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Callable

import sqlite_utils

STATUSES = ("streaming", "completed", "stopped", "failed", "truncated")
MIGRATIONS_TABLE = "_migrations"
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@migration
def m001_articles(db: sqlite_utils.Database) -> None:
    db["articles"].create(
        {
            "id": int,
            "created_at": str,  # UTC ISO-8601
            "updated_at": str,
            "topic": str,
            "content_type": str,
            "style": str,
            "language": str,
            "target_words": int,
            "audience": str,
            "keywords": str,  # JSON list
            "words": int,
            "content": str,
            "status": str,
            "provider": str,
            "model": str,
            "max_tokens": int,
            "input_tokens": int,
            "output_tokens": int,
            "usage_source": str,  # reported | estimated
            "cost": float,  # NULL = unpriced
            "currency": str,
            "price_input_per_1m": float,  # the prices this article was charged with
            "price_output_per_1m": float,
            "ttft_ms": float,
            "duration_ms": float,
            "tokens_per_s": float,
            "finish_reason": str,
            "error": str,
        },
        pk="id",
        not_null={"created_at", "topic", "status"},
        defaults={"words": 0, "content": "", "status": "streaming"},
    )
    db["articles"].create_index(["created_at"])
    db["articles"].create_index(["status"])


@migration
def m002_stream_resilience(db: sqlite_utils.Database) -> None:
    articles = db["articles"]
    articles.add_column("retries", int, not_null_default=0)  # retries before the first token
    articles.add_column("resumes", int, not_null_default=0)  # continuations after broken streams
    articles.add_column("fallback", int, not_null_default=0)  # 1 = finished without streaming
    articles.add_column("served_by", str)  # provider(s) that produced the text, "a→b"
    articles.add_column("worker_pid", int)  # process writing a `streaming` row


@migration
def m003_search_usage_prices_budgets(db: sqlite_utils.Database) -> None:
    articles = db["articles"]
    # Full-text search that works for Chinese: trigram tokens, kept in sync by triggers.
    articles.enable_fts(["topic", "content"], tokenize="trigram", create_triggers=True)
    # Filters, and a covering index so usage reports never read article bodies.
    for column in ("content_type", "language", "model", "provider"):
        articles.create_index([column])
    db.execute(
        "CREATE INDEX idx_articles_usage ON articles(created_at, status, provider, model, "
        "content_type, language, usage_source, currency, input_tokens, output_tokens, cost)")
    # Prices edited on the Settings page, over the shipped defaults. provider '*' = any.
    db["prices"].create({"provider": str, "model": str, "input_per_1m": float,
                         "output_per_1m": float, "currency": str, "updated_at": str},
                        pk=("provider", "model"))
    db["budgets"].create({"currency": str, "monthly_amount": float, "updated_at": str},
                         pk="currency")


@migration
def m004_reindex_only_on_text_changes(db: sqlite_utils.Database) -> None:
    # sqlite-utils' update trigger fires on every update; status and token updates
    # need not re-index the article text.
    db.execute("DROP TRIGGER IF EXISTS articles_au")
    db.execute("""
        CREATE TRIGGER articles_au AFTER UPDATE OF topic, content ON articles BEGIN
          INSERT INTO articles_fts (articles_fts, rowid, topic, content)
            VALUES ('delete', old.id, old.topic, old.content);
          INSERT INTO articles_fts (rowid, topic, content) VALUES (new.id, new.topic, new.content);
        END""")


@migration
def m005_error_kind(db: sqlite_utils.Database) -> None:
    # What went wrong as a stable code (auth, connect, quota, length, interrupted, …),
    # so the UI can explain it in the reader's language; `error` keeps the detail.
    db["articles"].add_column("error_kind", str)


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied."""
    if MIGRATIONS_TABLE not in db.table_names():
        db[MIGRATIONS_TABLE].create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db[MIGRATIONS_TABLE].rows}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with db.conn:
            fn(db)
            db[MIGRATIONS_TABLE].insert({"name": fn.__name__, "applied_at": utc_now()})
        applied.append(fn.__name__)
    return applied


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite_utils.Database(self.path)
        self.db.conn.execute("PRAGMA busy_timeout = 5000")
        key = str(self.path.resolve())
        if key not in _migrated:
            with _migrate_lock:
                self.db.enable_wal()
                migrate(self.db)
                self.recover_interrupted()
                _migrated.add(key)
        self.articles = self.db["articles"]

    def close(self) -> None:
        self.db.close()

    # -- writes ---------------------------------------------------------------
    def recover_interrupted(self) -> list[int]:
        """Rows left `streaming` by a process that no longer runs (kill -9, power
        loss) become `stopped` with error "interrupted"; their last draft is kept.
        Runs when a process first opens the database."""
        stale = [row["id"] for row in self.db.query(
            "SELECT id, worker_pid FROM articles WHERE status = 'streaming'")
            if not _process_alive(row["worker_pid"])]
        if stale:
            with self.db.conn:
                self.db.execute(
                    f"UPDATE articles SET status = 'stopped', error = 'interrupted', "
                    f"error_kind = 'interrupted', updated_at = ? "
                    f"WHERE id IN ({', '.join('?' * len(stale))})", [utc_now(), *stale])
        return stale

    def create_article(self, brief, *, provider: str, model: str, max_tokens: int | None) -> int:
        now = utc_now()
        row = {
            "created_at": now,
            "updated_at": now,
            "topic": brief.topic,
            "content_type": brief.content_type,
            "style": brief.style,
            "language": brief.language,
            "target_words": brief.target_words,
            "audience": brief.audience,
            "keywords": json.dumps(list(brief.keywords), ensure_ascii=False),
            "words": 0,
            "content": "",
            "status": "streaming",
            "provider": provider,
            "model": model,
            "max_tokens": max_tokens,
            "worker_pid": os.getpid(),
        }
        with self.db.conn:
            return self.articles.insert(row).last_pk

    def reopen(self, article_id: int, *, provider: str, model: str) -> None:
        """Mark an article `streaming` again (Continue)."""
        self.update(article_id, status="streaming", error=None, error_kind=None,
                    provider=provider, model=model, worker_pid=os.getpid())

    def save_draft(self, article_id: int, content: str, words: int) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE articles SET content = ?, words = ?, updated_at = ? WHERE id = ?",
                [content, words, utc_now(), article_id],
            )

    def update(self, article_id: int, **fields) -> None:
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        fields["updated_at"] = utc_now()
        with self.db.conn:
            self.articles.update(article_id, fields)

    def delete(self, article_id: int) -> bool:
        with self.db.conn:
            return self.db.execute("DELETE FROM articles WHERE id = ?", [article_id]).rowcount > 0

    # -- prices and budgets (edited on the Settings page) ---------------------
    def price_edits(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM prices ORDER BY model, provider"))

    def set_price(self, *, provider: str, model: str, input_per_1m: float, output_per_1m: float,
                  currency: str) -> None:
        if not model.strip() or not currency.strip() or input_per_1m < 0 or output_per_1m < 0:
            raise ValueError("a price needs a model, a currency and prices of 0 or more")
        with self.db.conn:
            self.db["prices"].upsert({"provider": provider.strip() or "*", "model": model.strip().lower(),
                                      "input_per_1m": float(input_per_1m),
                                      "output_per_1m": float(output_per_1m),
                                      "currency": currency.strip(), "updated_at": utc_now()},
                                     pk=("provider", "model"))

    def delete_price(self, *, provider: str, model: str) -> None:
        with self.db.conn:
            self.db.execute("DELETE FROM prices WHERE provider = ? AND model = ?", [provider, model])

    def budgets(self) -> dict[str, float]:
        return {r["currency"]: r["monthly_amount"] for r in self.db.query("SELECT * FROM budgets")}

    def set_budget(self, currency: str, monthly_amount: float | None) -> None:
        with self.db.conn:
            if not monthly_amount:
                self.db.execute("DELETE FROM budgets WHERE currency = ?", [currency])
            else:
                self.db["budgets"].upsert({"currency": currency, "monthly_amount": monthly_amount,
                                           "updated_at": utc_now()}, pk="currency")

    # -- reads ----------------------------------------------------------------
    def get(self, article_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM articles WHERE id = ?", [article_id]))
        return _decode(rows[0]) if rows else None

    def recent(self, limit: int = 50, offset: int = 0) -> list[dict]:
        sql = ("SELECT id, created_at, topic, content_type, language, status, words, target_words, "
               "provider, model, input_tokens, output_tokens, usage_source, cost, currency "
               "FROM articles ORDER BY id DESC LIMIT ? OFFSET ?")
        return list(self.db.query(sql, [limit, offset]))

    def count(self) -> int:
        return self.articles.count


def _process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _decode(row: dict) -> dict:
    try:
        row["keywords"] = json.loads(row.get("keywords") or "[]")
    except ValueError:
        row["keywords"] = []
    return row
