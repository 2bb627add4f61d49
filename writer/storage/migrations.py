"""The schema's history: append-only migrations, applied in order by `migrate`.
On PostgreSQL the same migrations by name: writer/storage/pg_schema.py.

Never edit a migration that has shipped; add a new one (the next number). The schema
is documented in docs/schema.md. Migrations run inside one `BEGIN IMMEDIATE`
transaction, so a second process waits and then finds nothing to do.
"""
from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # sqlite-utils is imported only when a migration is pending
    import sqlite_utils

from writer.storage import grams, pg_schema
from writer.storage.connection import SQLITE, dialect, immediate, utc_now
from writer.storage.grams import CJK_RANGES, GRAMS_TABLE, article_grams_sql

MIGRATIONS_TABLE = "_migrations"
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = []


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


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
    # Set while a process writes a `streaming` row (writer/runs/registry.py); a row whose
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


@migration
def m012_draft_versions_for_older_articles(db: sqlite_utils.Database) -> None:
    # Articles written before m011 have no versions: a revision would replace their text
    # and keep no copy. Each one with text (not deleted, not being written) gets its text
    # as version 1, a draft with the article's tokens and cost, so the versions of every
    # article still add up to its totals; it becomes the current version.
    conn = db.conn
    ids = [i for (i,) in conn.execute(
        "SELECT a.id FROM articles a WHERE a.deleted_at IS NULL "
        "AND trim(coalesce(a.content, ''), ' ' || char(9, 10, 13)) != '' "
        "AND a.status NOT IN ('queued', 'streaming') "
        "AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.article_id = a.id) ORDER BY a.id")]
    now = utc_now()
    for article_id in ids:
        conn.execute(
            "INSERT INTO versions (article_id, number, kind, status, content, words, "
            "input_tokens, output_tokens, cost, currency, provider, model, error, error_kind, "
            "created_at, updated_at) "
            "SELECT id, 1, 'draft', status, content, words, input_tokens, output_tokens, cost, "
            "currency, provider, model, error, error_kind, created_at, ? FROM articles "
            "WHERE id = ?", [now, article_id])
        conn.execute("UPDATE articles SET current_version = 1 WHERE id = ?", [article_id])


@migration
def m013_budget_hard_cap(db: sqlite_utils.Database) -> None:
    # A monthly budget may be a hard cap (Settings): past it, nothing paid in its currency
    # is sent (writer/storage/usage.py `require_within_budget`). 0: only asks first.
    db.conn.execute("ALTER TABLE budgets ADD COLUMN hard_cap INTEGER NOT NULL DEFAULT 0")


# m014: 1- and 2-character CJK terms. The trigram index cannot serve them, so a second
# FTS5 index (`articles_grams`, contentless, detail=none) holds every CJK character of an
# article's topic and content as a token, and every pair of adjacent CJK characters as one
# more (writer/storage/grams.py, its token characters then: CJK_RANGES). Replaced by m015.


@migration
def m014_short_cjk_search(db: sqlite_utils.Database) -> None:
    conn = db.conn
    conn.execute(f"CREATE VIRTUAL TABLE [{GRAMS_TABLE}] USING fts5(grams, content='', "
                 "detail='none', columnsize=0, tokenize='unicode61 remove_diacritics 0')")
    conn.execute(f"""
        CREATE TRIGGER articles_grams_ai AFTER INSERT ON articles BEGIN
          INSERT INTO {GRAMS_TABLE} (rowid, grams) VALUES (new.id, {article_grams_sql('new', CJK_RANGES)});
        END""")
    conn.execute(f"""
        CREATE TRIGGER articles_grams_ad AFTER DELETE ON articles BEGIN
          INSERT INTO {GRAMS_TABLE} ({GRAMS_TABLE}, rowid, grams)
            VALUES ('delete', old.id, {article_grams_sql('old', CJK_RANGES)});
        END""")
    conn.execute(f"""
        CREATE TRIGGER articles_grams_au AFTER UPDATE OF topic, content ON articles BEGIN
          INSERT INTO {GRAMS_TABLE} ({GRAMS_TABLE}, rowid, grams)
            VALUES ('delete', old.id, {article_grams_sql('old', CJK_RANGES)});
          INSERT INTO {GRAMS_TABLE} (rowid, grams) VALUES (new.id, {article_grams_sql('new', CJK_RANGES)});
        END""")
    conn.execute(f"INSERT INTO {GRAMS_TABLE} (rowid, grams) "
                 f"SELECT a.id, {article_grams_sql('a', CJK_RANGES)} FROM articles a ORDER BY a.id")


@migration
def m015_short_latin_search_and_no_drafts_in_grams(db: sqlite_utils.Database) -> None:
    # 1- and 2-character Latin and digit terms ("AI", "5G") through `articles_grams` too,
    # and no tokens computed for a draft being written (writer/storage/grams.py).
    conn = db.conn
    for trigger in ("articles_grams_ai", "articles_grams_ad", "articles_grams_au"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute(f"DROP TABLE IF EXISTS [{GRAMS_TABLE}]")
    grams.create_v2(conn)


# m016: a team on one server (issue 23). Every row a person makes records who made it
# (`author`: the account's name, or the CLI's WRITER_USER); rows made before this get
# LEGACY_AUTHOR, which no account can be named (writer/access.py NAME_PATTERN).
LEGACY_AUTHOR = "(before sign-in)"


@migration
def m016_people_and_authors(db: sqlite_utils.Database) -> None:
    conn = db.conn
    for table in ("articles", "versions", "batches", "provider_checks", "brands"):
        conn.execute(f"ALTER TABLE [{table}] ADD COLUMN [author] TEXT")
        conn.execute(f"UPDATE [{table}] SET author = ?", [LEGACY_AUTHOR])
    # History's "own" scope and the author filter walk this index newest first.
    conn.execute("CREATE INDEX [idx_articles_author] ON [articles] ([author], [id])")
    conn.execute("CREATE INDEX [idx_batches_author] ON [batches] ([author], [id])")
    # Usage of one person (a writer's own page, a person's budget) and `usage --by author`
    # read only this covering index, as the team's read idx_articles_usage (m003).
    conn.execute("CREATE INDEX [idx_articles_usage_author] ON [articles] ([author], "
                 "[created_at], [status], [provider], [model], [content_type], [language], "
                 "[usage_source], [currency], [input_tokens], [output_tokens], [cost])")
    # Accounts (WRITER_AUTH=accounts; an OIDC person may have a row for its role).
    conn.execute("""
        CREATE TABLE [users] (
          [name] TEXT PRIMARY KEY COLLATE NOCASE,
          [role] TEXT NOT NULL,             -- admin | writer
          [password_hash] TEXT,             -- scrypt$… (writer/access.py); NULL: no password
          [created_at] TEXT NOT NULL,
          [updated_at] TEXT,
          [failed_attempts] INTEGER NOT NULL DEFAULT 0,  -- wrong passwords in a row
          [locked_until] TEXT               -- no sign-in before this (UTC ISO) after failures
        )""")
    # Signed-in browsers: the SHA-256 of the cookie's random token, never the token.
    conn.execute("""
        CREATE TABLE [sessions] (
          [token_hash] TEXT PRIMARY KEY,
          [user_name] TEXT NOT NULL COLLATE NOCASE,
          [created_at] TEXT NOT NULL,
          [expires_at] TEXT NOT NULL,
          [last_seen_at] TEXT
        )""")
    conn.execute("CREATE INDEX [idx_sessions_user] ON [sessions] ([user_name])")
    # A monthly budget for one person (over the team's `budgets`), per currency.
    conn.execute("""
        CREATE TABLE [person_budgets] (
          [author] TEXT NOT NULL COLLATE NOCASE,
          [currency] TEXT NOT NULL,
          [monthly_amount] REAL NOT NULL,
          [hard_cap] INTEGER NOT NULL DEFAULT 0,
          [updated_at] TEXT,
          PRIMARY KEY ([author], [currency])
        )""")


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in order; returns the names applied.

    Safe across processes: when something is pending it takes the write lock
    (`BEGIN IMMEDIATE`) first, then reads `_migrations` and applies what is still
    pending in that one transaction; a process that waited finds nothing to do."""
    if dialect(db) != SQLITE:  # PostgreSQL: `db` is its connection
        return pg_schema.migrate(db, utc_now())
    if not pending(db.conn):
        return []
    conn = db.conn
    applied = []
    with immediate(conn):
        conn.execute(f"CREATE TABLE IF NOT EXISTS [{MIGRATIONS_TABLE}] "
                     "([name] TEXT PRIMARY KEY, [applied_at] TEXT)")
        for fn in pending(conn):
            fn(db)  # sqlite-utils nests its own transactions as savepoints in this one
            conn.execute(f"INSERT INTO [{MIGRATIONS_TABLE}] (name, applied_at) VALUES (?, ?)",
                         [fn.__name__, utc_now()])
            applied.append(fn.__name__)
    return applied


def pending(conn: sqlite3.Connection) -> list[Callable] | list[str]:
    if dialect(conn) != SQLITE:
        return pg_schema.pending(conn)
    try:
        done = {name for (name,) in conn.execute(f"SELECT name FROM [{MIGRATIONS_TABLE}]")}
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        done = set()
    return [fn for fn in MIGRATIONS if fn.__name__ not in done]


@migration
def m017_stop_requests(db: sqlite_utils.Database) -> None:
    """A Stop from another process (issue 24): the writing process polls its rows for a
    request newer than when it started them (writer/storage/liveness.py)."""
    conn = db.conn
    conn.execute("ALTER TABLE [articles] ADD COLUMN [stop_requested_at] TEXT")
    conn.execute("ALTER TABLE [articles] ADD COLUMN [stop_requested_by] TEXT")


@migration
def m018_batch_row_claims(db: sqlite_utils.Database) -> None:
    """Several servers on one batch (issue 24): a row is claimed by one runner at a time
    (`claimed_by`; `claimed_at` is beaten while it writes, a stale claim is free again)
    and a Stop from any server reaches every runner (`batches.stop_requested_at`):
    writer/storage/batches.py."""
    conn = db.conn
    conn.execute("ALTER TABLE [batch_rows] ADD COLUMN [claimed_by] TEXT")
    conn.execute("ALTER TABLE [batch_rows] ADD COLUMN [claimed_at] TEXT")
    conn.execute("ALTER TABLE [batches] ADD COLUMN [stop_requested_at] TEXT")
    # the revisions being written, counted against their provider's stream limit
    conn.execute("CREATE INDEX [idx_versions_live] ON [versions] ([status], [provider]) "
                 "WHERE status IN ('queued', 'streaming')")
