"""Every text an article has had: its draft, the variants written with it, each
revision (table `versions`, m011).

The `articles` row keeps the current text (`content`, `current_version`) and the sum
of every version's tokens and cost (writer/storage/ledger.py), so Usage and budgets
count them all; a version keeps its own text, instruction, words, tokens and cost.
Any version can be made current again (`choose`).

Two rules hold whatever the caller: a text is never replaced unless it is kept as a
version (`keep_current`, in the transaction that replaces it), and nothing writes
text to a deleted article or its versions.

Every version records its `author` (m016), who made it: an admin's revision of a
writer's article is the admin's version of the writer's article. Adding a version to
an article (`open_version`) and choosing one (`choose`) is for its author or an admin
(store.require_author: AccessDenied).
"""
from __future__ import annotations

import json
import sqlite3

from writer import logs
from writer.access import Actor
from writer.brands import BrandKit, check
from writer.errors import UserError
from writer.kinds import ACTIVE, Status
from writer.storage import ledger
from writer.storage.ledger import Charge, add_costs  # noqa: F401  (callers use versions.*)
from writer.storage.store import Store, author_name, require_author, utc_now

KINDS = ("draft", "variant", "revision")
VERSION_TEXT = ("content", "words", "instruction")  # never written on a deleted article


class VersionError(UserError, ValueError):
    """No such article or version; the message says which."""

    key = "user_errors.version"


def listing(store: Store, article_id: int) -> list[dict]:
    """The article's versions, oldest first."""
    return store.rows("SELECT * FROM versions WHERE article_id = ? ORDER BY number", [article_id])


def get(store: Store, article_id: int, number: int) -> dict | None:
    found = store.rows("SELECT * FROM versions WHERE article_id = ? AND number = ?",
                       [article_id, number])
    return found[0] if found else None


def next_number(store: Store, article_id: int) -> int:
    with store.read() as conn:
        return _next_number(conn, article_id)


def _next_number(conn: sqlite3.Connection, article_id: int) -> int:
    (top,) = conn.execute("SELECT coalesce(max(number), 0) FROM versions WHERE article_id = ?",
                          [article_id]).fetchone()
    return top + 1


def _require_owner(conn: sqlite3.Connection, actor: Actor, article_id: int, action: str) -> None:
    """Refuse (AccessDenied) unless `actor` wrote the article or is an admin."""
    found = conn.execute("SELECT author FROM articles WHERE id = ?", [article_id]).fetchone()
    require_author(actor, found[0] if found else None, action)


def _live(conn: sqlite3.Connection, article_id: int) -> bool | None:
    """True: the article exists; False: it was deleted; None: there is no such row."""
    found = conn.execute("SELECT deleted_at FROM articles WHERE id = ?", [article_id]).fetchone()
    return None if found is None else found[0] is None


def _insert(conn: sqlite3.Connection, article_id: int, number: int, **fields) -> None:
    now = utc_now()
    row = {"article_id": article_id, "number": number, "created_at": now, "updated_at": now,
           **fields}
    row["author"] = author_name(conn, row.get("author"))
    if isinstance(row.get("error"), str):
        row["error"] = logs.redact(row["error"])
    conn.execute(f"INSERT INTO versions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))


def _set(conn: sqlite3.Connection, article_id: int, number: int, fields: dict) -> None:
    fields = {**fields, "updated_at": utc_now()}
    if isinstance(fields.get("error"), str):
        fields["error"] = logs.redact(fields["error"])
    conn.execute(f"UPDATE versions SET {', '.join(f'[{k}] = ?' for k in fields)} "
                 "WHERE article_id = ? AND number = ?",
                 [*(v.value if isinstance(v, Status) else v for v in fields.values()),
                  article_id, number])


def keep_current(conn: sqlite3.Connection, article_id: int) -> int | None:
    """Make sure the article's current text is kept as a version before it is replaced
    (an article from before m011, a version save that failed, a row written by another
    tool): the version that holds it, created if none does, is current. Its number,
    or None when the article has no text (or is deleted). Call it in the transaction
    that replaces the text."""
    found = conn.execute(
        "SELECT content, words, status, provider, model, current_version, input_tokens, "
        "output_tokens, cost, currency, created_at, author FROM articles "
        "WHERE id = ? AND deleted_at IS NULL", [article_id]).fetchone()
    if found is None or not (found[0] or "").strip():
        return None
    content, words, status, provider, model, current, *spent, created_at, author = found
    same = conn.execute("SELECT number FROM versions WHERE article_id = ? AND content = ? "
                        "ORDER BY number = ? DESC, number DESC LIMIT 1",
                        [article_id, content, current]).fetchone()
    if same is not None:
        number = same[0]
    else:  # it gets what the article cost beyond its versions
        kept = conn.execute("SELECT count(*), coalesce(sum(input_tokens), 0), "
                            "coalesce(sum(output_tokens), 0), sum(cost), count(cost), "
                            "count(DISTINCT currency) FROM versions WHERE article_id = ?",
                            [article_id]).fetchone()
        count, kept_in, kept_out, kept_cost, priced, currencies = kept
        input_tokens, output_tokens, cost, currency = spent
        if count and cost is not None and priced == count and currencies <= 1:
            cost = round(max(0.0, cost - (kept_cost or 0.0)), 8)
        elif count:
            cost = None
        number = _next_number(conn, article_id)
        _insert(conn, article_id, number, kind="draft", status=status, content=content,
                words=words, provider=provider, model=model,
                input_tokens=max(0, (input_tokens or 0) - kept_in),
                output_tokens=max(0, (output_tokens or 0) - kept_out), cost=cost,
                currency=currency, created_at=created_at, author=author)
    if number != current:
        conn.execute("UPDATE articles SET current_version = ? WHERE id = ?", [number, article_id])
    return number


def open_version(store: Store, article_id: int, *, kind: str, status: Status, actor: Actor,
                 instruction: str | None = None, section: int | None = None,
                 provider: str | None = None, model: str | None = None,
                 content: str = "", words: int = 0) -> int:
    """A new version row (being written, or already written) made by `actor`, who must
    be the article's author or an admin (AccessDenied); its number. A revision keeps
    the text it will replace as a version first."""
    if kind not in KINDS:
        raise VersionError(f"unknown version kind {kind!r}; use one of: {', '.join(KINDS)}")
    with store.transaction(f"add a version to article #{article_id} in") as conn:
        if not _live(conn, article_id):
            raise VersionError(f"there is no article #{article_id}")
        _require_owner(conn, actor, article_id, f"revise article #{article_id}")
        if kind == "revision":
            keep_current(conn, article_id)
        number = _next_number(conn, article_id)
        _insert(conn, article_id, number, kind=kind, instruction=instruction, section=section,
                status=Status(status).value, content=content, words=words, provider=provider,
                model=model, author=actor.name)
    return number


def update_version(store: Store, article_id: int, number: int, **fields) -> None:
    """Set columns of a version; its text is not written once the article is deleted."""
    with store.transaction(f"save version {number} of article #{article_id} in") as conn:
        if not _live(conn, article_id):
            fields = {k: v for k, v in fields.items() if k not in VERSION_TEXT}
        if fields:
            _set(conn, article_id, number, fields)


def save_run(store: Store, article_id: int, number: int | None, *, kind: str, status: Status,
             text: str | None, words: int, provider: str, model: str, charge: Charge,
             fields: dict, author: str | None = None) -> dict | None:
    """The final save of a run that wrote the article's text (a draft, a variant, a
    Continue), in one transaction: the article's `fields` (`Store.update`: no text on
    a deleted article), its text as version `number` (created when missing, made by
    `author`; none when `text` is None) and the run's charge on both. The article's totals after it
    (`current_version` among them), or None when the row is gone."""
    with store.transaction(f"save article #{article_id} in") as conn:
        live = _live(conn, article_id)
        if live is None:
            return None
        if text is not None and live:
            if number is None or conn.execute(
                    "SELECT 1 FROM versions WHERE article_id = ? AND number = ?",
                    [article_id, number]).fetchone() is None:
                number = _next_number(conn, article_id)
                _insert(conn, article_id, number, kind=kind, status=Status(status).value,
                        content="", words=0, provider=provider, model=model, author=author)
            _set(conn, article_id, number, {"status": Status(status).value, "content": text,
                                            "words": words, "provider": provider,
                                            "model": model})
            fields = {**fields, "current_version": number}
        if number is not None:
            ledger.charge_version(conn, article_id, number, **charge._asdict())
        store.update(article_id, **fields)
        ledger.charge(conn, article_id, **charge._asdict())
        totals = ledger.totals(conn, article_id)
        totals["current_version"] = conn.execute(
            "SELECT current_version FROM articles WHERE id = ?", [article_id]).fetchone()[0]
    return totals


def save_revision(store: Store, article_id: int, number: int, *, status: Status, text: str,
                  words: int, charge: Charge, version: dict, current: dict | None) -> None:
    """The final save of a revision, in one transaction: its version (`version`
    columns plus its text), its charge on the version and the article, and — when
    `current` is given — the article's new text (`current` columns), after keeping
    the text it replaces as a version. No text is written on a deleted article."""
    with store.transaction(f"save version {number} of article #{article_id} in") as conn:
        live = _live(conn, article_id)
        if live is None:
            return
        fields = {**version, "status": Status(status).value}
        if live:
            fields.update(content=text, words=words)
        _set(conn, article_id, number, fields)
        ledger.charge_version(conn, article_id, number, **charge._asdict())
        if current is not None and live:
            keep_current(conn, article_id)
            store.update(article_id, **current, current_version=number)
        ledger.charge(conn, article_id, **charge._asdict())


def gather_variants(store: Store, group: int) -> int | None:
    """Make the group's variants versions of its first article, once all have ended:
    every other variant's text becomes a version of the first, its tokens and cost
    are charged to the first (the ledger) and its row is removed, in one transaction,
    so Usage counts every variant once. The article's id, or None while some variant
    is still being written (or when there is no such group)."""
    with store.transaction(f"gather the variants of #{group} in") as conn:
        cursor = conn.execute("SELECT * FROM articles WHERE variant_group = ? AND "
                              "deleted_at IS NULL ORDER BY variant_no", [group])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r)) for r in cursor.fetchall()]
        if not rows or rows[0]["id"] != group or any(r["status"] in ACTIVE for r in rows):
            return None
        first, others = rows[0], rows[1:]
        shown = None  # a variant with text, if the first has none (it failed)
        number = _next_number(conn, group) - 1
        for row in others:
            spent = Charge(row["input_tokens"] or 0, row["output_tokens"] or 0, row["cost"],
                           row["currency"], row["usage_source"])
            if (row["content"] or "").strip():
                number += 1
                if shown is None and not (first["content"] or "").strip():
                    shown = (number, row)
                _insert(conn, group, number, kind="variant", status=row["status"],
                        content=row["content"], words=row["words"],
                        input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                        cost=row["cost"], currency=row["currency"], provider=row["provider"],
                        model=row["model"], error=row["error"], error_kind=row["error_kind"],
                        created_at=row["created_at"], author=row.get("author"))
            conn.execute("DELETE FROM versions WHERE article_id = ?", [row["id"]])
            conn.execute("DELETE FROM articles WHERE id = ?", [row["id"]])
            ledger.charge(conn, group, **spent._asdict())
        conn.execute("UPDATE articles SET variant_group = NULL, updated_at = ? WHERE id = ?",
                     [utc_now(), group])
        if shown is not None:  # the first variant wrote nothing: show one that did
            number, row = shown
            conn.execute("UPDATE articles SET content = ?, words = ?, status = ?, error = ?, "
                         "error_kind = ?, current_version = ?, checks = ? WHERE id = ?",
                         [row["content"], row["words"], row["status"], row["error"],
                          row["error_kind"], number, row["checks"], group])
    return group


def checks_for(content: str, kit: BrandKit | None, keywords) -> str:
    """The `articles.checks` JSON for a text."""
    return json.dumps(check(content, kit, tuple(keywords or ())).as_dict(), ensure_ascii=False)


def choose(store: Store, article_id: int, number: int, kit: BrandKit | None = None, *,
           actor: Actor) -> dict:
    """Make version `number` the article's current text (its checks run again); only
    its author or an admin may (AccessDenied)."""
    with store.transaction(f"choose version {number} of article #{article_id} in"):
        article = store.get(article_id)
        if article is None:
            raise VersionError(f"there is no article #{article_id}")
        require_author(actor, article.get("author"), f"change article #{article_id}")
        version = get(store, article_id, number)
        if version is None:
            numbers = [v["number"] for v in listing(store, article_id)]
            raise VersionError(f"article #{article_id} has no version {number}; it has "
                               f"{', '.join(map(str, numbers)) or 'none'}")
        if not version["content"].strip():
            raise VersionError(f"version {number} of article #{article_id} has no text")
        store.update(article_id, content=version["content"], words=version["words"],
                     current_version=number,
                     checks=checks_for(version["content"], kit, article.get("keywords")))
    return version
