"""Variants: N versions of one brief, written at once (each a normal `Job` on the one
engine, side by side through the registry or one after the other in the CLI), then
gathered into one article whose versions they are; the user picks the one that is
current (`versions.choose`).

While they are written each variant is its own `articles` row tagged `variant_group`
(the first one's id) and `variant_no`. `gather()` then moves every other variant into
`versions` of the first article — its text, words, tokens and cost — adds their
tokens and cost to the first article's totals and removes their rows, in one
transaction, so Usage and budgets count every variant exactly once.
"""
from __future__ import annotations

import threading

from writer.brief import Brief
from writer.config import Settings
from writer.runs.job import Job
from writer.kinds import ACTIVE
from writer.providers.base import Provider
from writer.storage.store import Store, utc_now

MAX_VARIANTS = 3
DEFAULT_VARIANTS = {"marketing_copy": 3, "social_post": 3}  # else 1


def default_count(content_type: str) -> int:
    return DEFAULT_VARIANTS.get(content_type, 1)


def jobs_for(brief: Brief, settings: Settings, count: int, *, provider: Provider | None = None,
             length_control: bool = True) -> list[Job]:
    """`count` jobs for the same brief; their rows are tagged when they are queued."""
    if not 1 <= count <= MAX_VARIANTS:
        raise ValueError(f"variants must be 1 to {MAX_VARIANTS}, not {count}")
    jobs = [Job(brief, settings, provider=provider, length_control=length_control)
            for _ in range(count)]
    for job in jobs:
        job.version_kind = "variant" if count > 1 else "draft"
    return jobs


def tag(store: Store, article_ids: list[int]) -> None:
    """Mark rows as one group of variants (the first id names the group)."""
    for number, article_id in enumerate(article_ids, 1):
        store.update(article_id, variant_group=article_ids[0], variant_no=number)


_gather_lock = threading.Lock()


def gather(store: Store, group: int) -> int | None:
    """Make the group's variants versions of its first article, once all have ended.
    Returns the article's id, or None while some variant is still being written
    (or when there is no such group). Safe to call many times, from any thread."""
    with _gather_lock, store._write(f"gather the variants of #{group} in") as conn:
        cursor = conn.execute("SELECT * FROM articles WHERE variant_group = ? AND "
                              "deleted_at IS NULL ORDER BY variant_no", [group])
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r)) for r in cursor.fetchall()]
        if not rows or rows[0]["id"] != group or any(r["status"] in ACTIVE for r in rows):
            return None
        first, others = rows[0], rows[1:]
        shown = None  # a variant with text, if the first has none (it failed)
        input_tokens = first["input_tokens"] or 0
        output_tokens = first["output_tokens"] or 0
        cost, currency = first["cost"], first["currency"]
        unpriced = bool(first["output_tokens"]) and first["cost"] is None
        (number,) = conn.execute("SELECT coalesce(max(number), 0) FROM versions "
                                 "WHERE article_id = ?", [group]).fetchone()
        now = utc_now()
        for row in others:
            input_tokens += row["input_tokens"] or 0
            output_tokens += row["output_tokens"] or 0
            if row["cost"] is None and (row["output_tokens"] or row["input_tokens"]):
                unpriced = True
            elif row["cost"] is not None:
                if currency and row["currency"] and currency != row["currency"]:
                    unpriced = True
                cost = (cost or 0.0) + row["cost"]
                currency = currency or row["currency"]
            if (row["content"] or "").strip():
                number += 1
                if shown is None and not (first["content"] or "").strip():
                    shown = (number, row)
                conn.execute(
                    "INSERT INTO versions (article_id, number, kind, status, content, words, "
                    "input_tokens, output_tokens, cost, currency, provider, model, error, "
                    "error_kind, created_at, updated_at) "
                    "VALUES (?, ?, 'variant', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [group, number, row["status"], row["content"], row["words"],
                     row["input_tokens"], row["output_tokens"], row["cost"], row["currency"],
                     row["provider"], row["model"], row["error"], row["error_kind"],
                     row["created_at"], now])
            conn.execute("DELETE FROM versions WHERE article_id = ?", [row["id"]])
            conn.execute("DELETE FROM articles WHERE id = ?", [row["id"]])
        conn.execute("UPDATE articles SET input_tokens = ?, output_tokens = ?, cost = ?, "
                     "currency = ?, variant_group = NULL, updated_at = ? WHERE id = ?",
                     [input_tokens, output_tokens, None if unpriced else
                      (round(cost, 8) if cost is not None else None), currency, now, group])
        if shown is not None:  # the first variant wrote nothing: show one that did
            number, row = shown
            conn.execute("UPDATE articles SET content = ?, words = ?, status = ?, error = ?, "
                         "error_kind = ?, current_version = ?, checks = ? WHERE id = ?",
                         [row["content"], row["words"], row["status"], row["error"],
                          row["error_kind"], number, row["checks"], group])
    return group
