"""Every text an article has had: its draft, the variants written with it, each
revision (table `versions`, m011).

The `articles` row keeps the current text (`content`, `current_version`) and the sum
of every version's tokens and cost, so Usage and budgets count them all; a version
keeps its own text, instruction, words, tokens and cost. Any version can be made
current again (`choose`).
"""
from __future__ import annotations

import json

from writer.brands import BrandKit, check
from writer.generation.counting import count_words
from writer.kinds import Status
from writer.storage.store import Store, utc_now

KINDS = ("draft", "variant", "revision")


class VersionError(ValueError):
    """No such article or version; the message says which."""


def add_costs(a: float | None, a_currency: str | None, b: float | None,
              b_currency: str | None) -> tuple[float | None, str | None]:
    """Two costs summed; unpriced (None) if either is, or if their currencies differ."""
    if a is None and a_currency is None:  # nothing yet
        return b, b_currency
    if a is None or b is None or (a_currency and b_currency and a_currency != b_currency):
        return None, a_currency or b_currency
    return round(a + b, 8), a_currency or b_currency


def listing(store: Store, article_id: int) -> list[dict]:
    """The article's versions, oldest first."""
    with store._read():
        return list(store.db.query("SELECT * FROM versions WHERE article_id = ? ORDER BY number",
                                   [article_id]))


def get(store: Store, article_id: int, number: int) -> dict | None:
    return next((v for v in listing(store, article_id) if v["number"] == number), None)


def next_number(store: Store, article_id: int) -> int:
    with store._read() as conn:
        (top,) = conn.execute("SELECT coalesce(max(number), 0) FROM versions WHERE article_id = ?",
                              [article_id]).fetchone()
    return top + 1


def open_version(store: Store, article_id: int, *, kind: str, status: Status,
                 instruction: str | None = None, section: int | None = None,
                 provider: str | None = None, model: str | None = None,
                 content: str = "") -> int:
    """A new version row (being written, or already written); its number."""
    if kind not in KINDS:
        raise VersionError(f"unknown version kind {kind!r}; use one of: {', '.join(KINDS)}")
    now = utc_now()
    with store._write(f"add a version to article #{article_id} in") as conn:
        if conn.execute("SELECT 1 FROM articles WHERE id = ? AND deleted_at IS NULL",
                        [article_id]).fetchone() is None:
            raise VersionError(f"there is no article #{article_id}")
        (number,) = conn.execute("SELECT coalesce(max(number), 0) + 1 FROM versions "
                                 "WHERE article_id = ?", [article_id]).fetchone()
        conn.execute(
            "INSERT INTO versions (article_id, number, kind, instruction, section, status, "
            "content, words, provider, model, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [article_id, number, kind, instruction, section, Status(status).value, content,
             count_words(content), provider, model, now, now])
    return number


def update_version(store: Store, article_id: int, number: int, **fields) -> None:
    fields["updated_at"] = utc_now()
    names = ", ".join(f"{k} = ?" for k in fields)
    with store._write(f"save version {number} of article #{article_id} in") as conn:
        conn.execute(f"UPDATE versions SET {names} WHERE article_id = ? AND number = ?",
                     [*fields.values(), article_id, number])


def record_run(store: Store, article_id: int, number: int | None, *, kind: str, status: Status,
               content: str, words: int, input_tokens: int, output_tokens: int,
               cost: float | None, currency: str | None, provider: str, model: str) -> int:
    """After a draft (or a Continue of version `number`) was saved in the article row:
    the version gets the same text and adds this run's tokens and cost. A missing
    version (an article from before m011, or a first run) is created."""
    existing = get(store, article_id, number) if number else None
    if existing is None:
        number = open_version(store, article_id, kind=kind, status=status, provider=provider,
                              model=model)
        existing = {"input_tokens": None, "output_tokens": None, "cost": None, "currency": None}
    total, total_currency = add_costs(existing["cost"], existing["currency"], cost, currency)
    if existing["input_tokens"] is not None and existing["cost"] is None \
            and existing["currency"] is None and cost is not None:
        total = None  # an earlier run of this version was unpriced
    update_version(store, article_id, number, status=Status(status).value, content=content,
                   words=words, input_tokens=(existing["input_tokens"] or 0) + input_tokens,
                   output_tokens=(existing["output_tokens"] or 0) + output_tokens,
                   cost=total, currency=total_currency, provider=provider, model=model)
    return number


def checks_for(content: str, kit: BrandKit | None, keywords) -> str:
    """The `articles.checks` JSON for a text."""
    return json.dumps(check(content, kit, tuple(keywords or ())).as_dict(), ensure_ascii=False)


def choose(store: Store, article_id: int, number: int, kit: BrandKit | None = None) -> dict:
    """Make version `number` the article's current text (its checks run again)."""
    article = store.get(article_id)
    if article is None:
        raise VersionError(f"there is no article #{article_id}")
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
