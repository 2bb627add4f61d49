"""SQLite storage (sqlite-utils): append-only migrations and the `articles` table.

One `Store` per thread (Streamlit sessions are threads): open a new one where you
need it. Opening is cheap: it sets WAL, applies pending migrations (a read when there
are none) and recovers rows of dead writers (a read on the status index when there
are none). The schema is documented in docs/schema.md; never edit a migration that
has shipped, add a new one.

Many processes and threads write the same file at once (the CLI, every Streamlit
session, batch jobs). Every write transaction starts with `BEGIN IMMEDIATE`: it takes
the write lock first, waiting up to `BUSY_TIMEOUT_S` for it, instead of reading under
a deferred `BEGIN` and then failing at once with "database is locked" when it wants to
write. Migrations run inside one such transaction, so a second process waits and then
finds nothing to do. Whatever still goes wrong surfaces as a one-line `StorageError`,
never a raw sqlite3 exception.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import time
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator

import sqlite_utils

from writer.storage import heartbeat
from writer.kinds import Status

STATUSES: tuple[str, ...] = tuple(status.value for status in Status)
# A failed request: the provider refused or never answered, so no text was written
# (401, no quota, wrong URL, 503 after every retry). The row is kept (its tokens, if
# any, were billed) but it is not an article: pages show only the error, History
# labels it "failed request" and Usage counts these apart from articles.
FAILED_REQUEST_SQL = "(status = 'failed' AND coalesce(words, 0) = 0)"


def is_failed_request(row: dict) -> bool:
    return row.get("status") == Status.FAILED and not (row.get("words") or 0) \
        and not (row.get("content") or "").strip()
MIGRATIONS_TABLE = "_migrations"
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []
BUSY_TIMEOUT_S = 15.0  # how long a write waits for another writer's lock
# Columns `update` never writes on a deleted row: its text stays gone, its topic as it was.
TEXT_FIELDS = ("content", "words", "topic")


class StorageError(RuntimeError):
    """The database cannot be opened, read or written; the message is one line that
    says what to do."""


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def utc_now() -> str:
    return heartbeat.utc_iso()


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


@migration
def m006_heartbeat(db: sqlite_utils.Database) -> None:
    # Set while a process writes a `streaming` row (writer/storage/heartbeat.py); a row whose
    # heartbeat is older than 3 beats belongs to a dead process. Replaces worker_pid.
    db["articles"].add_column("heartbeat_at", str)


@migration
def m007_soft_delete_and_stable_ids(db: sqlite_utils.Database) -> None:
    # Deleting an article empties its text but keeps its spend (`deleted_at`), and ids
    # are never reused (AUTOINCREMENT), so a deleted article's id can never name
    # another one. SQLite cannot add AUTOINCREMENT to a table: rebuild it with every
    # column, keeping the ids, then recreate its indexes and the FTS triggers (m003,
    # m004) from their own SQL. `articles_fts` (external content, rowid = id) stays valid.
    conn = db.conn
    columns = conn.execute("PRAGMA table_info(articles)").fetchall()
    kept = [sql for (sql,) in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'articles' AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name")]
    definitions = []
    for _cid, name, type_, not_null, default, pk in columns:
        if pk:
            definitions.append(f"[{name}] INTEGER PRIMARY KEY AUTOINCREMENT")
            continue
        definitions.append(f"[{name}] {type_}" + (" NOT NULL" if not_null else "")
                           + (f" DEFAULT {default}" if default is not None else ""))
        if name == "updated_at":  # early in the row: filters read it without the body
            definitions.append("[deleted_at] TEXT")
    names = ", ".join(f"[{column[1]}]" for column in columns)
    conn.execute(f"CREATE TABLE [articles_m007] ({', '.join(definitions)})")
    conn.execute(f"INSERT INTO [articles_m007] ({names}) SELECT {names} FROM [articles] ORDER BY id")
    conn.execute("DROP TABLE [articles]")
    conn.execute("ALTER TABLE [articles_m007] RENAME TO [articles]")
    for sql in kept:
        conn.execute(sql)
    conn.execute("CREATE INDEX [idx_articles_deleted_at] ON [articles] ([deleted_at])")


@migration
def m008_length_control(db: sqlite_utils.Database) -> None:
    # Length control (writer/generation/length.py): whether it was on, where the article landed
    # against its target, how many requests wrote it, and a long article's plan.
    articles = db["articles"]
    articles.add_column("length_control", int)  # 1 on, 0 free-form, NULL before m008
    articles.add_column("length_outcome", str)  # on_target | short | long
    articles.add_column("length_rounds", int)  # writing requests: sections + top-ups
    articles.add_column("outline", str)  # long-form plan (Markdown), else NULL


@migration
def m009_batches(db: sqlite_utils.Database) -> None:
    # Batch writing (writer/runs/batch.py): a spreadsheet of briefs, one article per row.
    # AUTOINCREMENT: a batch id named in a note or a command never names another batch.
    db.execute("""
        CREATE TABLE [batches] (
          [id] INTEGER PRIMARY KEY AUTOINCREMENT,
          [created_at] TEXT NOT NULL,
          [updated_at] TEXT,
          [file_name] TEXT,
          [status] TEXT NOT NULL,     -- running | paused | done
          [settings] TEXT,            -- JSON: provider, model, concurrency, length_control, defaults
          [columns] TEXT,             -- JSON: the input's column names, in order
          [total_rows] INTEGER,       -- rows in the file, invalid ones included
          [valid_rows] INTEGER,
          [completed_rows] INTEGER,
          [failed_rows] INTEGER,
          [note] TEXT,                -- why it paused (stopped, interrupted, provider_refused)
          [heartbeat_at] TEXT,        -- while a runner works on it; stale = interrupted
          [worker_pid] INTEGER
        )""")
    db.execute("CREATE INDEX [idx_batches_status] ON [batches] ([status])")
    db["batch_rows"].create({
        "batch_id": int,
        "row_no": int,  # 1 = the first data row of the file
        "input": str,  # JSON: the row's cells by column name, as read
        "brief": str,  # JSON: the validated brief, NULL when invalid
        "error": str,  # why the row is invalid (JSON: code, detail), else NULL
    }, pk=("batch_id", "row_no"), foreign_keys=[("batch_id", "batches", "id")])
    articles = db["articles"]
    articles.add_column("batch_id", int)
    articles.add_column("batch_row", int)
    db.execute("CREATE INDEX [idx_articles_batch] ON [articles] ([batch_id], [batch_row])")
    # A row's article is found by (batch_id, batch_row). One live article per batch row,
    # whatever happens (two runners, a resume racing a retry): a row is never written twice.
    db.execute("CREATE UNIQUE INDEX [idx_articles_batch_row_once] ON [articles] "
               "([batch_id], [batch_row]) WHERE batch_id IS NOT NULL AND deleted_at IS NULL")


@migration
def m010_stream_metrics_and_provider_checks(db: sqlite_utils.Database) -> None:
    # Inter-token timing of every article (writer/generation/engine.py Metrics): NULL when nothing
    # was streamed (a non-streamed answer has no inter-token figures).
    articles = db["articles"]
    articles.add_column("itl_mean_ms", float)  # mean interval between text chunks
    articles.add_column("itl_p95_ms", float)
    articles.add_column("itl_cv", float)  # standard deviation / mean of the intervals
    articles.add_column("max_gap_ms", float)  # the longest interval
    # Provider checks (writer/runs/check.py): one row per run, the whole report as JSON plus
    # the headline figures as columns for charts over time.
    db.execute("""
        CREATE TABLE [provider_checks] (
          [id] INTEGER PRIMARY KEY AUTOINCREMENT,
          [created_at] TEXT NOT NULL,
          [provider] TEXT NOT NULL,
          [model] TEXT,
          [base_url] TEXT,
          [status] TEXT NOT NULL,     -- completed | cancelled | failed
          [settings] TEXT,            -- JSON: runs, prompt_set, concurrency levels
          [report] TEXT,              -- JSON: the whole report (python -m writer check --json)
          [connect_ms] REAL,
          [ttft_p50_ms] REAL,
          [ttft_p95_ms] REAL,
          [itl_mean_ms] REAL,
          [itl_p95_ms] REAL,
          [itl_cv] REAL,
          [interruption_rate] REAL,
          [tokens_per_s] REAL,
          [input_tokens] INTEGER,
          [output_tokens] INTEGER,
          [cost] REAL,
          [currency] TEXT
        )""")
    db.execute("CREATE INDEX [idx_provider_checks_provider] ON [provider_checks] "
               "([provider], [created_at])")


@migration
def m011_brands_versions(db: sqlite_utils.Database) -> None:
    # Brand kits (writer/brands.py): the voice, rules, banned words and required terms
    # a team writes with; edited on the Brands page, shared as TOML.
    db.execute("""
        CREATE TABLE [brands] (
          [id] INTEGER PRIMARY KEY AUTOINCREMENT,
          [name] TEXT NOT NULL UNIQUE,
          [created_at] TEXT NOT NULL,
          [updated_at] TEXT,
          [kit] TEXT NOT NULL          -- JSON: voice, audience, do, dont, banned_words,
                                       -- required_terms, facts, samples
        )""")
    # Every text an article has had (writer/storage/versions.py): its first draft, the variants
    # written with it, each revision. The articles row keeps the current text and the
    # sum of every version's tokens and cost (so Usage and budgets count them all).
    db.execute("""
        CREATE TABLE [versions] (
          [id] INTEGER PRIMARY KEY AUTOINCREMENT,
          [article_id] INTEGER NOT NULL REFERENCES [articles]([id]),
          [number] INTEGER NOT NULL,   -- 1, 2, … per article
          [kind] TEXT NOT NULL,        -- draft | variant | revision
          [instruction] TEXT,          -- a revision's instruction
          [section] INTEGER,           -- a revision of one section (1-based), else NULL
          [status] TEXT NOT NULL,      -- as articles.status
          [content] TEXT NOT NULL,
          [words] INTEGER,
          [input_tokens] INTEGER,
          [output_tokens] INTEGER,
          [cost] REAL,
          [currency] TEXT,
          [provider] TEXT,
          [model] TEXT,
          [error] TEXT,                -- why a revision failed or stopped
          [error_kind] TEXT,
          [created_at] TEXT NOT NULL,
          [updated_at] TEXT,
          UNIQUE ([article_id], [number])
        )""")
    articles = db["articles"]
    articles.add_column("brand", str)  # the brand kit's name when it was written
    articles.add_column("checks", str)  # JSON: banned_found, required_missing, keywords_missing
    articles.add_column("current_version", int)  # versions.number of `content`
    articles.add_column("variant_group", int)  # variants written together: the first's id
    articles.add_column("variant_no", int)


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied.

    Safe across processes: when something is pending it takes the write lock
    (`BEGIN IMMEDIATE`) first, then reads `_migrations` and applies what is still
    pending in that one transaction; a process that waited finds nothing to do."""
    if not _pending(db.conn):
        return []
    conn = db.conn
    applied = []
    with _immediate(conn):
        conn.execute(f"CREATE TABLE IF NOT EXISTS [{MIGRATIONS_TABLE}] "
                     "([name] TEXT PRIMARY KEY, [applied_at] TEXT)")
        for fn in _pending(conn):
            fn(db)  # sqlite-utils nests its own transactions as savepoints in this one
            conn.execute(f"INSERT INTO [{MIGRATIONS_TABLE}] (name, applied_at) VALUES (?, ?)",
                         [fn.__name__, utc_now()])
            applied.append(fn.__name__)
    return applied


def _pending(conn: sqlite3.Connection) -> list[Callable]:
    try:
        done = {name for (name,) in conn.execute(f"SELECT name FROM [{MIGRATIONS_TABLE}]")}
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        done = set()
    return [fn for fn in MIGRATIONS if fn.__name__ not in done]


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that holds the write lock from its first statement."""
    if conn.in_transaction:  # already inside one: become part of it
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _enable_wal(conn: sqlite3.Connection) -> None:
    """WAL mode, retried with a short backoff: switching needs a moment of exclusive
    access and fails at once (busy timeout or not) while another process holds a lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay * random.uniform(1.0, 2.0))
            delay = min(delay * 2, 0.1)


def storage_error(path: str | Path, exc: BaseException, action: str = "write") -> StorageError:
    """A one-line, actionable StorageError for a sqlite3 or OS error on `path`."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    lowered = reason.lower()
    if "locked" in lowered or "busy" in lowered:
        return StorageError(f"the database {path} is locked by another program; try again")
    if "not a database" in lowered or "malformed" in lowered:
        return StorageError(f"{path} is not a usable SQLite database ({reason}); point WRITER_DB "
                            "at another file or restore it from a backup")
    if "readonly" in lowered or "read-only" in lowered:
        return StorageError(f"cannot {action} {path}: {reason}; make the file and its folder "
                            "writable, or set WRITER_DB to another file")
    if "unable to open" in lowered or isinstance(exc, PermissionError):
        return StorageError(f"cannot {action} {path}: {reason}; check that its folder exists and "
                            "is writable, or set WRITER_DB to another file")
    return StorageError(f"cannot {action} {path}: {reason}")


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        memory = str(path) == ":memory:"
        try:
            if not memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                        isolation_level=None)  # transactions are explicit
        except (OSError, sqlite3.Error) as exc:
            raise storage_error(self.path, exc, "open") from exc
        try:
            self.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self.db = sqlite_utils.Database(self.conn)
            if not memory:
                _enable_wal(self.conn)
            migrate(self.db)
            self._columns = {row[1] for row in self.conn.execute("PRAGMA table_info(articles)")}
        except (OSError, sqlite3.Error) as exc:
            self.conn.close()
            raise storage_error(self.path, exc, "open") from exc
        except BaseException:
            self.conn.close()
            raise
        self.articles = self.db["articles"]
        try:
            self.recover_interrupted()  # every open, so a long-running server notices too
        except StorageError as exc:  # reading still works; the next open tries again
            heartbeat.log.warning("could not recover interrupted articles: %s", exc)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _write(self, action: str = "write") -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction; sqlite3 errors become StorageError."""
        try:
            with _immediate(self.conn) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, action) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self.conn
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc, "read") from exc

    # -- writes ---------------------------------------------------------------
    def recover_interrupted(self) -> list[int]:
        """Rows left `streaming` by a process that no longer beats (kill -9, power
        loss, a closed laptop) become `stopped` with error "interrupted"; their last
        draft is kept. Stale = `heartbeat_at` (or, for rows from before m006,
        `updated_at`) older than `heartbeat.stale_after_s()`. Runs on every open: a
        read on the status index, a write only when something is stale."""
        stale = ("status IN ('queued', 'streaming') AND "
                 "coalesce(heartbeat_at, updated_at, created_at) < ?")
        stale_versions = "status IN ('queued', 'streaming') AND updated_at < ?"
        cutoff = heartbeat.stale_cutoff()
        with self._read() as conn:
            if conn.execute(f"SELECT 1 FROM articles WHERE {stale} UNION ALL SELECT 1 FROM "
                            f"versions WHERE {stale_versions} LIMIT 1",
                            [cutoff, cutoff]).fetchone() is None:
                return []
        with self._write("recover interrupted articles in") as conn:
            # a revision whose process died (its article's heartbeat stamps it while alive)
            conn.execute(f"UPDATE versions SET status = 'stopped', error = 'interrupted', "
                         f"error_kind = 'interrupted' WHERE {stale_versions}", [cutoff])
            ids = [i for (i,) in conn.execute(f"SELECT id FROM articles WHERE {stale}", [cutoff])]
            if ids:
                conn.execute(
                    f"UPDATE articles SET status = 'stopped', error = 'interrupted', "
                    f"error_kind = 'interrupted', updated_at = ? "
                    f"WHERE id IN ({', '.join('?' * len(ids))})", [utc_now(), *ids])
        return ids

    def create_article(self, brief, *, provider: str, model: str, max_tokens: int | None,
                       status: Status = Status.STREAMING,
                       batch: tuple[int, int] | None = None) -> int:
        now = utc_now()
        row = {
            "created_at": now,
            "updated_at": now,
            "heartbeat_at": now,
            "topic": brief.topic,
            "content_type": brief.content_type,
            "style": brief.style,
            "language": brief.language,
            "target_words": brief.target_words,
            "audience": brief.audience,
            "keywords": json.dumps(list(brief.keywords), ensure_ascii=False),
            "words": 0,
            "content": "",
            "status": Status(status).value,
            "provider": provider,
            "model": model,
            "max_tokens": max_tokens,
            "worker_pid": os.getpid(),  # informational only; liveness is heartbeat_at
        }
        brand = getattr(brief, "brand", None)
        if brand is not None:  # the kit's name as it was (writer/brands.py)
            row["brand"] = brand.name
        if batch is not None:  # (batch id, row number): writer/runs/batch.py
            row["batch_id"], row["batch_row"] = batch
        with self._write("save a new article in") as conn:
            cursor = conn.execute(
                f"INSERT INTO articles ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()))
            return cursor.lastrowid

    def reopen(self, article_id: int, *, provider: str, model: str,
               status: Status = Status.STREAMING) -> bool:
        """Mark an article `streaming` (or `queued`) again (Continue). False (and nothing
        changed) when it does not exist or was deleted."""
        now = utc_now()
        with self._write(f"reopen article #{article_id} in") as conn:
            return conn.execute(
                "UPDATE articles SET status = ?, error = NULL, error_kind = NULL, "
                "provider = ?, model = ?, worker_pid = ?, heartbeat_at = ?, updated_at = ? "
                "WHERE id = ? AND deleted_at IS NULL",
                [Status(status).value, provider, model, os.getpid(), now, now,
                 article_id]).rowcount > 0

    def start(self, article_id: int) -> bool:
        """A queued article starts: `streaming`. False when it was deleted meanwhile."""
        now = utc_now()
        with self._write(f"start article #{article_id} in") as conn:
            return conn.execute(
                "UPDATE articles SET status = 'streaming', heartbeat_at = ?, updated_at = ? "
                "WHERE id = ? AND deleted_at IS NULL", [now, now, article_id]).rowcount > 0

    def save_draft(self, article_id: int, content: str, words: int) -> None:
        """The text so far; also a heartbeat. A no-op on a deleted or missing row."""
        now = utc_now()
        with self._write(f"save the draft of article #{article_id} in") as conn:
            conn.execute(
                "UPDATE articles SET content = ?, words = ?, updated_at = ?, heartbeat_at = ? "
                "WHERE id = ? AND deleted_at IS NULL",
                [content, words, now, now, article_id])

    def update(self, article_id: int, **fields) -> bool:
        """Set columns of an article; False when there is no such row (never raises for
        that: a job finishing after a delete must not crash). On a deleted row the
        tokens, cost and status are saved but `content`, `words` and `topic` are
        ignored: a delete is never undone by a late save."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        unknown = sorted(set(fields) - self._columns)
        if unknown:
            raise ValueError(f"unknown article column(s): {', '.join(unknown)}")
        with self._write(f"save article #{article_id} in") as conn:
            found = conn.execute("SELECT deleted_at FROM articles WHERE id = ?",
                                 [article_id]).fetchone()
            if found is None:
                return False
            if found[0] is not None:
                fields = {k: v for k, v in fields.items() if k not in TEXT_FIELDS}
            fields = {**fields, "updated_at": utc_now()}
            values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict, tuple))
                      else v.value if isinstance(v, Enum) else v for v in fields.values()]
            conn.execute(f"UPDATE articles SET {', '.join(f'[{k}] = ?' for k in fields)} "
                         "WHERE id = ?", [*values, article_id])
            return True

    def delete(self, article_id: int) -> bool:
        """Soft delete: the text goes (content '', words 0) and the article leaves
        History and search, but its row stays with its topic, tokens and cost, so Usage
        and budgets still count what it cost. False when missing or already deleted."""
        now = utc_now()
        with self._write(f"delete article #{article_id} in") as conn:
            return conn.execute(
                "UPDATE articles SET deleted_at = ?, content = '', words = 0, updated_at = ? "
                "WHERE id = ? AND deleted_at IS NULL", [now, now, article_id]).rowcount > 0

    # -- prices and budgets (edited on the Settings page) ---------------------
    def price_edits(self) -> list[dict]:
        with self._read():
            return list(self.db.query("SELECT * FROM prices ORDER BY model, provider"))

    def set_price(self, *, provider: str, model: str, input_per_1m: float, output_per_1m: float,
                  currency: str) -> None:
        if not model.strip() or not currency.strip() or input_per_1m < 0 or output_per_1m < 0:
            raise ValueError("a price needs a model, a currency and prices of 0 or more")
        with self._write("save a price in") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO prices (provider, model, input_per_1m, output_per_1m, "
                "currency, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [provider.strip() or "*", model.strip().lower(), float(input_per_1m),
                 float(output_per_1m), currency.strip(), utc_now()])

    def delete_price(self, *, provider: str, model: str) -> None:
        with self._write("delete a price in") as conn:
            conn.execute("DELETE FROM prices WHERE provider = ? AND model = ?", [provider, model])

    def budgets(self) -> dict[str, float]:
        with self._read():
            return {r["currency"]: r["monthly_amount"]
                    for r in self.db.query("SELECT * FROM budgets")}

    def set_budget(self, currency: str, monthly_amount: float | None) -> None:
        with self._write("save a budget in") as conn:
            if not monthly_amount:
                conn.execute("DELETE FROM budgets WHERE currency = ?", [currency])
            else:
                conn.execute("INSERT OR REPLACE INTO budgets (currency, monthly_amount, updated_at) "
                             "VALUES (?, ?, ?)", [currency, monthly_amount, utc_now()])

    # -- reads ----------------------------------------------------------------
    def get(self, article_id: int, *, include_deleted: bool = False) -> dict | None:
        """The article, or None when there is none (or it was deleted, unless
        `include_deleted`)."""
        live = "" if include_deleted else " AND deleted_at IS NULL"
        with self._read():
            rows = list(self.db.query(f"SELECT * FROM articles WHERE id = ?{live}", [article_id]))
        return _decode(rows[0]) if rows else None

    def recent(self, limit: int = 50, offset: int = 0) -> list[dict]:
        sql = ("SELECT id, created_at, topic, content_type, language, status, words, target_words, "
               "provider, model, input_tokens, output_tokens, usage_source, cost, currency "
               "FROM articles WHERE deleted_at IS NULL ORDER BY id DESC LIMIT ? OFFSET ?")
        with self._read():
            return list(self.db.query(sql, [limit, offset]))

    def count(self) -> int:
        """Articles not deleted."""
        with self._read() as conn:
            return conn.execute("SELECT count(*) FROM articles WHERE deleted_at IS NULL").fetchone()[0]


def _decode(row: dict) -> dict:
    try:
        row["keywords"] = json.loads(row.get("keywords") or "[]")
    except ValueError:
        row["keywords"] = []
    if isinstance(row.get("checks"), str):  # brand and keyword checks (writer/brands.py)
        try:
            row["checks"] = json.loads(row["checks"])
        except ValueError:
            row["checks"] = None
    return row
