"""The ledger: how a request's tokens and cost are added to what an article (and the
version it wrote) has cost. One rule for every kind of request — a draft, a Continue,
a variant, a revision, title suggestions — applied atomically in SQL
(`SET x = x + ?`), inside the transaction that saves the version it pays for, so two
requests that end at the same time never lose each other's charge.

Costs in different currencies, or a request without a price, make the total
unpriced (NULL): a sum is never made of things that do not add up. A charge of no
tokens and no price changes nothing; the first charge of an empty row sets it.
"""
from __future__ import annotations

import sqlite3
from typing import NamedTuple


class Charge(NamedTuple):
    """What one request cost. `cost` None: unpriced; `usage_source` "reported" or
    "estimated" (estimated once, estimated for good)."""

    input_tokens: int
    output_tokens: int
    cost: float | None
    currency: str | None
    usage_source: str | None = None


FREE = Charge(0, 0, None, None)

_EMPTY = "(cost IS NULL AND coalesce(input_tokens, 0) + coalesce(output_tokens, 0) = 0)"
_NOTHING = "(:cost IS NULL AND :input_tokens + :output_tokens = 0)"
_COST = f"""CASE
  WHEN {_NOTHING} THEN cost
  WHEN {_EMPTY} THEN :cost
  WHEN cost IS NULL OR :cost IS NULL THEN NULL
  WHEN currency IS NOT NULL AND :currency IS NOT NULL AND currency != :currency THEN NULL
  ELSE round(CAST(cost + :cost AS NUMERIC), 8) END"""
_CURRENCY = f"""CASE
  WHEN {_EMPTY} AND NOT {_NOTHING} THEN coalesce(:currency, currency)
  ELSE coalesce(currency, :currency) END"""
_TOKENS = ("input_tokens = coalesce(input_tokens, 0) + :input_tokens, "
           "output_tokens = coalesce(output_tokens, 0) + :output_tokens")
_SOURCE = """CASE
  WHEN usage_source = 'estimated' OR :usage_source = 'estimated' THEN 'estimated'
  ELSE coalesce(:usage_source, usage_source) END"""


def _values(input_tokens, output_tokens, cost, currency, usage_source=None) -> dict:
    return {"input_tokens": int(input_tokens or 0), "output_tokens": int(output_tokens or 0),
            "cost": None if cost is None else float(cost), "currency": currency,
            "usage_source": usage_source}


def charge(conn: sqlite3.Connection, article_id: int, *, input_tokens: int, output_tokens: int,
           cost: float | None, currency: str | None, usage_source: str | None = None) -> bool:
    """Add one request's tokens and cost to the article's totals (deleted or not: what
    was spent stays spent). Call it inside the transaction of what it pays for.
    False when there is no such article."""
    values = {**_values(input_tokens, output_tokens, cost, currency, usage_source),
              "id": article_id}
    return conn.execute(
        f"UPDATE articles SET {_TOKENS}, cost = {_COST}, currency = {_CURRENCY}, "
        f"usage_source = {_SOURCE} WHERE id = :id", values).rowcount > 0


def charge_version(conn: sqlite3.Connection, article_id: int, number: int, *, input_tokens: int,
                   output_tokens: int, cost: float | None, currency: str | None,
                   usage_source: str | None = None) -> bool:
    """The same, on one version of the article (what that version's runs cost)."""
    values = {**_values(input_tokens, output_tokens, cost, currency), "id": article_id,
              "number": number}
    return conn.execute(
        f"UPDATE versions SET {_TOKENS}, cost = {_COST}, currency = {_CURRENCY} "
        "WHERE article_id = :id AND number = :number", values).rowcount > 0


def totals(conn: sqlite3.Connection, article_id: int) -> dict | None:
    """The article's totals: input_tokens, output_tokens, cost, currency, usage_source."""
    found = conn.execute("SELECT input_tokens, output_tokens, cost, currency, usage_source "
                         "FROM articles WHERE id = ?", [article_id]).fetchone()
    if found is None:
        return None
    return dict(zip(("input_tokens", "output_tokens", "cost", "currency", "usage_source"), found))


def add_costs(a: float | None, a_currency: str | None, b: float | None,
              b_currency: str | None) -> tuple[float | None, str | None]:
    """Two costs summed; unpriced (None) if either is, or if their currencies differ."""
    if a is None and a_currency is None:  # nothing yet
        return b, b_currency
    if a is None or b is None or (a_currency and b_currency and a_currency != b_currency):
        return None, a_currency or b_currency
    return round(a + b, 8), a_currency or b_currency
