"""The storage: the `Store`, which opens the database — SQLite at WRITER_DB (through
sqlite-utils for migrations), or PostgreSQL at WRITER_DATABASE_URL (psycopg 3,
writer/storage/pg.py) — and reads and writes articles; the other storage modules
(versions, ledger, search, usage, brands, batches, checks) work through its public API.

One `Store` per thread (Streamlit sessions are threads): open a new one where you
need it. Opening is cheap: it opens the connection (writer/storage/connection.py: WAL,
busy timeout, secure delete), applies pending migrations (writer/storage/migrations.py;
a read when there are none) and recovers rows of dead writers (a read on the status
index when there are none). The schema is documented in docs/schema.md.

Every write is one `transaction()` (`BEGIN IMMEDIATE`); whatever goes wrong surfaces
as a one-line `StorageError`, never a raw sqlite3 exception. Only the storage package
runs SQL: other packages call the methods here and in the modules beside it.

Who may change what is checked here, where the change is made (writer/access.py), so a
forged request is refused whatever a page showed: prices and budgets (the team's and
a person's) only by an admin; deleting an article only by its author or an admin.
Every row a person makes records its `author` (m016): the account's name, spelled as
in `users` when there is such an account (`author_name`), so an author filter is an
exact match on the `idx_articles_author` index.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
from enum import Enum
from pathlib import Path
from typing import Iterator

from writer import logs
from writer.access import AccessDenied, Actor, require_admin, require_owner
from writer.kinds import Status
from writer.storage import ledger, liveness, pg
from writer.storage.connection import (
    BUSY_TIMEOUT_S,
    DB_ERRORS,
    SQLITE,
    StorageError,
    connect,
    dialect,
    immediate,
    storage_error,
    table_columns,
    utc_now,
)
from writer.storage.migrations import (
    LEGACY_AUTHOR,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    migrate,
    migration,
    pending,
)

__all__ = ["BUSY_TIMEOUT_S", "FAILED_REQUEST_SQL", "LEGACY_AUTHOR", "MIGRATIONS",
           "MIGRATIONS_TABLE", "STATUSES", "StorageError", "Store", "author_name",
           "is_failed_request", "migrate", "migration", "storage_error", "utc_now"]

STATUSES: tuple[str, ...] = tuple(status.value for status in Status)
# A failed request: the provider refused or never answered, so no text was written
# (401, no quota, wrong URL, 503 after every retry). The row is kept (its tokens, if
# any, were billed) but it is not an article: pages show only the error, History
# labels it "failed request" and Usage counts these apart from articles.
FAILED_REQUEST_SQL = "(status = 'failed' AND coalesce(words, 0) = 0)"
# Columns `update` never writes on a deleted row: its text stays gone, its topic as it was.
TEXT_FIELDS = ("content", "words", "topic", "outline", "checks")


def is_failed_request(row: dict) -> bool:
    return row.get("status") == Status.FAILED and not (row.get("words") or 0) \
        and not (row.get("content") or "").strip()


def require_author(actor: Actor | None, author: str | None, action: str) -> None:
    """Refuse `action` on a row made by `author` unless it is `actor`'s own or `actor` is
    an admin (writer/access.py `require_owner`). A row from before sign-in
    (LEGACY_AUTHOR) or with no author is an admin's to change, whatever the actor's name."""
    if author in (None, LEGACY_AUTHOR) and not (actor is not None and actor.is_admin):
        raise AccessDenied(f"only an admin may {action} (it was made before sign-in)",
                           action=action)
    require_owner(actor, author, action)


def author_name(conn, name: str | None) -> str | None:
    """`name` spelled as its account in `users` (names compare without case there), so
    "Alice" and "alice" are one author; as given when there is no such account."""
    if not name:
        return None
    found = conn.execute("SELECT name FROM users WHERE name = ?", [name]).fetchone()
    return found[0] if found else name


class Store:
    def __init__(self, path: str | Path):
        """`path`: a SQLite file, or a `postgresql://` URL (Settings.database)."""
        self.path = path if pg.is_url(path) else Path(path)
        try:
            self.conn = connect(path)
        except (OSError, *DB_ERRORS) as exc:
            raise storage_error(self.path, exc, "open") from exc
        self.dialect = dialect(self.conn)
        try:
            if pending(self.conn):  # sqlite-utils is loaded only to migrate
                migrate(self.db if self.dialect == SQLITE else self.conn)
            self._columns = set(table_columns(self.conn, "articles"))
        except (OSError, *DB_ERRORS) as exc:
            self.conn.close()
            raise storage_error(self.path, exc, "open") from exc
        except BaseException:
            self.conn.close()
            raise
        try:
            self.recover_interrupted()  # every open, so a long-running server notices too
        except StorageError as exc:  # reading still works; the next open tries again
            liveness.log.warning("could not recover interrupted articles: %s", exc)

    def close(self) -> None:
        self.conn.close()

    @functools.cached_property
    def db(self):
        """The connection as a sqlite_utils Database (SQLite only: migrations, tests,
        scripts). Loaded on first use: sqlite-utils imports pandas when it is installed, a
        quarter of a second that a read-only command does not pay."""
        if self.dialect != SQLITE:
            raise TypeError("sqlite-utils works on SQLite only; this store is PostgreSQL")
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @property
    def articles(self):
        """The `articles` table as a sqlite_utils Table (tests and scripts)."""
        return self.db["articles"]

    # -- the public API of the other storage modules ---------------------------
    @contextlib.contextmanager
    def transaction(self, action: str = "write") -> Iterator[sqlite3.Connection]:
        """One write transaction (SQLite `BEGIN IMMEDIATE`; PostgreSQL `BEGIN` and the
        advisory write lock; inside one already open: part of it); database errors
        become a StorageError saying it could not `action` the database."""
        try:
            with immediate(self.conn) as conn:
                yield conn
        except DB_ERRORS as exc:
            raise storage_error(self.path, exc, action) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads; database errors become a StorageError."""
        try:
            yield self.conn
        except DB_ERRORS as exc:
            raise storage_error(self.path, exc, "read") from exc

    def rows(self, sql: str, params=()) -> list[dict]:
        """The rows of a query, as dicts."""
        with self.read() as conn:
            cursor = conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor]

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file and empty it (nothing of an old page is
        left in `-wal`). False when another connection kept it from finishing. PostgreSQL
        has nothing to do here: True."""
        if self.dialect != SQLITE:
            return True
        try:
            busy, _log, _done = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            liveness.log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
            return False
        return not busy

    # -- writes ---------------------------------------------------------------
    def recover_interrupted(self) -> list[int]:
        """Rows left `streaming` by a process that no longer beats (kill -9, power
        loss, a closed laptop) become `stopped` with error "interrupted"; their last
        draft is kept. Stale = `heartbeat_at` (or, for rows from before m006,
        `updated_at`) older than `liveness.stale_after_s()`. Runs on every open: a
        read on the status index, a write only when something is stale."""
        stale = ("status IN ('queued', 'streaming') AND "
                 "coalesce(heartbeat_at, updated_at, created_at) < ?")
        stale_versions = "status IN ('queued', 'streaming') AND updated_at < ?"
        cutoff = liveness.stale_cutoff()
        with self.read() as conn:
            if conn.execute(f"SELECT 1 FROM articles WHERE {stale} UNION ALL SELECT 1 FROM "
                            f"versions WHERE {stale_versions} LIMIT 1",
                            [cutoff, cutoff]).fetchone() is None:
                return []
        with self.transaction("recover interrupted articles in") as conn:
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
                       batch: tuple[int, int] | None = None, author: str | None = None) -> int:
        """A new article's row; its id. `author`: who writes it (writer/runs/job.py
        passes the actor's name; a row without one can be changed only by an admin)."""
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
        with self.transaction("save a new article in") as conn:
            row["author"] = author_name(conn, author)
            return conn.execute(
                f"INSERT INTO articles ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                "RETURNING id", list(row.values())).fetchone()[0]

    def reopen(self, article_id: int, *, provider: str, model: str,
               status: Status = Status.STREAMING) -> bool:
        """Mark an article `streaming` (or `queued`) again (Continue). False (and nothing
        changed) when it does not exist or was deleted. A Stop requested for its earlier
        run is cleared: a request on the row is for the run it finds (liveness.py)."""
        now = utc_now()
        with self.transaction(f"reopen article #{article_id} in") as conn:
            return conn.execute(
                "UPDATE articles SET status = ?, error = NULL, error_kind = NULL, "
                "stop_requested_at = NULL, stop_requested_by = NULL, "
                "provider = ?, model = ?, worker_pid = ?, heartbeat_at = ?, updated_at = ? "
                "WHERE id = ? AND deleted_at IS NULL",
                [Status(status).value, provider, model, os.getpid(), now, now,
                 article_id]).rowcount > 0

    def start(self, article_id: int) -> bool:
        """A queued article starts: `streaming`. False when it was deleted meanwhile."""
        now = utc_now()
        with self.transaction(f"start article #{article_id} in") as conn:
            return conn.execute(
                "UPDATE articles SET status = 'streaming', heartbeat_at = ?, updated_at = ? "
                "WHERE id = ? AND deleted_at IS NULL", [now, now, article_id]).rowcount > 0

    def save_draft(self, article_id: int, content: str, words: int) -> None:
        """The text so far; also a heartbeat. A no-op on a deleted or missing row."""
        now = utc_now()
        with self.transaction(f"save the draft of article #{article_id} in") as conn:
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
        with self.transaction(f"save article #{article_id} in") as conn:
            found = conn.execute("SELECT deleted_at FROM articles WHERE id = ?",
                                 [article_id]).fetchone()
            if found is None:
                return False
            if found[0] is not None:
                fields = {k: v for k, v in fields.items() if k not in TEXT_FIELDS}
            fields = {**fields, "updated_at": utc_now()}
            if isinstance(fields.get("error"), str):  # a provider's text may echo a key
                fields["error"] = logs.redact(fields["error"])
            values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict, tuple))
                      else v.value if isinstance(v, Enum) else v for v in fields.values()]
            conn.execute(f"UPDATE articles SET {', '.join(f'[{k}] = ?' for k in fields)} "
                         "WHERE id = ?", [*values, article_id])
            return True

    def charge(self, article_id: int, charge: ledger.Charge) -> bool:
        """Add a request's tokens and cost to the article's totals, atomically (a
        request that made no version, e.g. title suggestions). False when missing."""
        with self.transaction(f"save the cost of article #{article_id} in") as conn:
            return ledger.charge(conn, article_id, **charge._asdict())

    def author_of(self, article_id: int) -> str | None:
        """Who wrote the article (deleted or not); None when there is no such row."""
        found = self.rows("SELECT author FROM articles WHERE id = ?", [article_id])
        return found[0]["author"] if found else None

    def delete(self, article_id: int, *, actor: Actor) -> bool:
        """Soft delete: the text goes and the article leaves History and search, but
        its row stays with its topic, tokens and cost (and its versions with theirs),
        so Usage and budgets still count what it cost. None of its text is left in the
        database files: every version's text is blanked, the search index is merged
        (its old segments, which held the text, are freed and zeroed: secure_delete),
        and the WAL is emptied. False when missing or already deleted. Only its author
        or an admin may (AccessDenied)."""
        now = utc_now()
        with self.transaction(f"delete article #{article_id} in") as conn:
            found = conn.execute("SELECT author FROM articles WHERE id = ? AND deleted_at IS NULL",
                                 [article_id]).fetchone()
            if found is None:
                return False
            require_author(actor, found[0], f"delete article #{article_id}")
            if conn.execute(
                    "UPDATE articles SET deleted_at = ?, content = '', words = 0, outline = NULL, "
                    "checks = NULL, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
                    [now, now, article_id]).rowcount == 0:
                return False
            conn.execute("UPDATE versions SET content = '', words = 0, instruction = NULL, "
                         "updated_at = ? WHERE article_id = ?", [now, article_id])
            if self.dialect == SQLITE:  # PostgreSQL: VACUUM reclaims (docs/deploy.md)
                conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('optimize')")
                conn.execute("INSERT INTO articles_grams (articles_grams) VALUES ('optimize')")
        self.checkpoint()
        return True

    # -- prices and budgets (edited on the Settings page) ---------------------
    def price_edits(self) -> list[dict]:
        with self.read():
            return self.rows("SELECT * FROM prices ORDER BY model, provider")

    def set_price(self, *, provider: str, model: str, input_per_1m: float, output_per_1m: float,
                  currency: str, actor: Actor) -> None:
        require_admin(actor, "change a price")
        if not model.strip() or not currency.strip() or input_per_1m < 0 or output_per_1m < 0:
            raise ValueError("a price needs a model, a currency and prices of 0 or more")
        with self.transaction("save a price in") as conn:
            conn.execute(
                "INSERT INTO prices (provider, model, input_per_1m, output_per_1m, currency, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (provider, model) DO UPDATE "
                "SET input_per_1m = excluded.input_per_1m, output_per_1m = excluded.output_per_1m, "
                "currency = excluded.currency, updated_at = excluded.updated_at",
                [provider.strip() or "*", model.strip().lower(), float(input_per_1m),
                 float(output_per_1m), currency.strip(), utc_now()])

    def delete_price(self, *, provider: str, model: str, actor: Actor) -> None:
        require_admin(actor, "delete a price")
        with self.transaction("delete a price in") as conn:
            conn.execute("DELETE FROM prices WHERE provider = ? AND model = ?", [provider, model])

    def budgets(self) -> dict[str, float]:
        with self.read():
            return {r["currency"]: r["monthly_amount"]
                    for r in self.rows("SELECT * FROM budgets")}

    def hard_caps(self) -> set[str]:
        """The currencies whose monthly budget is a hard cap (m013): past it, nothing
        paid in that currency is sent (writer/storage/usage.py `require_within_budget`)."""
        with self.read():
            return {r["currency"] for r in self.rows(
                "SELECT currency FROM budgets WHERE hard_cap != 0")}

    def set_budget(self, currency: str, monthly_amount: float | None,
                   hard_cap: bool = False, *, actor: Actor) -> None:
        """Save (or, with no amount, remove) the monthly budget in `currency`; `hard_cap`:
        refuse to send past it instead of asking first. Admins only (AccessDenied)."""
        require_admin(actor, "change a budget")
        with self.transaction("save a budget in") as conn:
            if not monthly_amount:
                conn.execute("DELETE FROM budgets WHERE currency = ?", [currency])
            else:
                conn.execute("INSERT INTO budgets (currency, monthly_amount, hard_cap, updated_at) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT (currency) DO UPDATE SET "
                             "monthly_amount = excluded.monthly_amount, hard_cap = "
                             "excluded.hard_cap, updated_at = excluded.updated_at",
                             [currency, monthly_amount, int(bool(hard_cap)), utc_now()])

    # -- a person's monthly budget (m016), over the team's -------------------
    def person_budgets(self, author: str | None = None) -> list[dict]:
        """Every person's budgets (author, currency, monthly_amount, hard_cap), or only
        `author`'s (names compare without case), by author and currency."""
        where, params = ("WHERE author = ?", [author]) if author else ("", [])
        rows = self.rows(f"SELECT author, currency, monthly_amount, hard_cap, updated_at FROM "
                         f"person_budgets {where} ORDER BY lower(author), currency", params)
        for row in rows:
            row["hard_cap"] = bool(row["hard_cap"])
        return rows

    def person_budget(self, author: str | None, currency: str | None) -> dict | None:
        """`author`'s monthly budget in `currency`, or None when there is none."""
        if not author or not currency:
            return None
        found = [r for r in self.person_budgets(author) if r["currency"] == currency]
        return found[0] if found else None

    def set_person_budget(self, author: str, currency: str, monthly_amount: float | None,
                          hard_cap: bool = False, *, actor: Actor) -> None:
        """Save (or, with no amount, remove) `author`'s monthly budget in `currency`;
        `hard_cap`: refuse their requests past it. Admins only (AccessDenied)."""
        require_admin(actor, "change a budget")
        author, currency = (author or "").strip(), (currency or "").strip()
        if not author or not currency or (monthly_amount or 0) < 0:
            raise ValueError("a person's budget needs a name, a currency and an amount of 0 or more")
        with self.transaction("save a budget in") as conn:
            if not monthly_amount:
                conn.execute("DELETE FROM person_budgets WHERE author = ? AND currency = ?",
                             [author, currency])
            else:
                conn.execute("INSERT INTO person_budgets (author, currency, monthly_amount, "
                             "hard_cap, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (author, "
                             "currency) DO UPDATE SET monthly_amount = excluded.monthly_amount, "
                             "hard_cap = excluded.hard_cap, updated_at = excluded.updated_at",
                             [author_name(conn, author), currency, float(monthly_amount),
                              int(bool(hard_cap)), utc_now()])

    # -- reads ----------------------------------------------------------------
    def get(self, article_id: int, *, include_deleted: bool = False) -> dict | None:
        """The article, or None when there is none (or it was deleted, unless
        `include_deleted`)."""
        live = "" if include_deleted else " AND deleted_at IS NULL"
        with self.read():
            rows = self.rows(f"SELECT * FROM articles WHERE id = ?{live}", [article_id])
        return _decode(rows[0]) if rows else None

    def recent(self, limit: int = 50, offset: int = 0) -> list[dict]:
        sql = ("SELECT id, created_at, topic, content_type, language, status, words, target_words, "
               "provider, model, input_tokens, output_tokens, usage_source, cost, currency, author "
               "FROM articles WHERE deleted_at IS NULL ORDER BY id DESC LIMIT ? OFFSET ?")
        with self.read():
            return self.rows(sql, [limit, offset])

    def count(self) -> int:
        """Articles not deleted."""
        with self.read() as conn:
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
