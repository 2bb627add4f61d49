"""Usage and cost reports, budgets and burn-down, read from `articles`.

Every article counts, finished or not: a stopped or failed one was billed too, and so
does a deleted one (its row stays with its tokens and cost, only the text goes), so
deleting articles is never a way round a budget.
Costs are summed per currency and never across currencies; an article without a
price (cost NULL) is counted as unpriced, never as 0. The queries read only the
covering index `idx_articles_usage`, never the article bodies.
"""
from __future__ import annotations

import calendar
import csv
import datetime as dt
import io

from .costs import PriceTable, price_table
from .store import Store

GROUPS = {"day": "substr(created_at, 1, 10)", "model": "model", "provider": "provider",
          "type": "content_type"}
BUDGET_WARN = 0.8


def _period(since: str | None, until: str | None) -> tuple[str, list]:
    clauses, params = [], []
    if since:
        clauses.append("created_at >= ?")
        params.append(since)
    if until:
        clauses.append("created_at < date(?, '+1 day')")
        params.append(until)
    return " AND ".join(clauses) or "1", params


def by_group(store: Store, by: str = "day", since: str | None = None,
             until: str | None = None) -> list[dict]:
    """One row per (group, currency): articles, tokens, cost, estimated and unpriced counts."""
    if by not in GROUPS:
        raise ValueError(f"unknown grouping {by!r}; use one of: {', '.join(GROUPS)}")
    where, params = _period(since, until)
    return list(store.db.query(
        f"""SELECT {GROUPS[by]} AS "group", currency, count(*) AS articles,
               coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               round(sum(cost), 6) AS cost,
               sum(usage_source = 'estimated') AS estimated_articles,
               sum(cost IS NULL) AS unpriced_articles
            FROM articles WHERE {where}
            GROUP BY 1, 2 ORDER BY 1, 2""", params))


def totals(store: Store, since: str | None = None, until: str | None = None) -> dict:
    """{"articles", "input_tokens", "output_tokens", "unpriced", "estimated",
    "cost": {currency: amount}} for the period."""
    rows = by_group(store, "type", since, until)
    cost: dict[str, float] = {}
    for row in rows:
        if row["currency"] and row["cost"] is not None:
            cost[row["currency"]] = round(cost.get(row["currency"], 0.0) + row["cost"], 6)
    return {
        "articles": sum(r["articles"] for r in rows),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
        "unpriced": sum(r["unpriced_articles"] for r in rows),
        "estimated": sum(r["estimated_articles"] for r in rows),
        "cost": cost,
    }


def articles(store: Store, since: str | None = None, until: str | None = None, *,
             unpriced_only: bool = False, limit: int = 500) -> list[dict]:
    """Cost per article, newest first; `deleted` is 1 for an article deleted from
    History (its spend still counts)."""
    where, params = _period(since, until)
    if unpriced_only:
        where += " AND cost IS NULL"
    return list(store.db.query(
        f"""SELECT id, created_at, topic, provider, model, content_type, status, input_tokens,
               output_tokens, usage_source, cost, currency, price_input_per_1m, price_output_per_1m,
               deleted_at IS NOT NULL AS deleted
            FROM articles WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?""",
        [*params, limit]))  # created_at order comes from its index: no sort of the period


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# -- budgets -----------------------------------------------------------------------
def month_bounds(day: dt.date) -> tuple[str, str]:
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1).isoformat(), day.replace(day=last).isoformat()


def month_spend(store: Store, day: dt.date | None = None) -> dict[str, float]:
    day = day or dt.datetime.now(dt.timezone.utc).date()
    return totals(store, *month_bounds(day))["cost"]


def budget_status(store: Store, currency: str | None, day: dt.date | None = None) -> dict | None:
    """Spend against the monthly budget in `currency`, or None when there is none.
    `level` is "ok", "warn" (≥ 80 %) or "over" (≥ 100 %)."""
    budget = store.budgets().get(currency or "")
    if not budget:
        return None
    spent = month_spend(store, day).get(currency, 0.0)
    ratio = spent / budget
    level = "over" if ratio >= 1 else "warn" if ratio >= BUDGET_WARN else "ok"
    return {"currency": currency, "budget": budget, "spent": spent, "ratio": ratio, "level": level}


def budget_status_for(store: Store, settings, provider) -> dict | None:
    """Budget status in the currency the provider's model is priced in."""
    price = price_table(settings.prices_file, store.price_edits()).lookup(provider.model,
                                                                          provider.name)
    if price is None or price.currency == "local":
        return None
    return budget_status(store, price.currency)


def burn_down(store: Store, currency: str, day: dt.date | None = None) -> list[dict]:
    """Per day of the month: cumulative spend, the budget left, and an even-pace line."""
    day = day or dt.datetime.now(dt.timezone.utc).date()
    first, last = month_bounds(day)
    budget = store.budgets().get(currency)
    per_day = {r["group"]: r["cost"] or 0.0 for r in by_group(store, "day", first, last)
               if r["currency"] == currency}
    days = calendar.monthrange(day.year, day.month)[1]
    rows, spent = [], 0.0
    for n in range(1, days + 1):
        date = day.replace(day=n).isoformat()
        spent += per_day.get(date, 0.0)
        future = n > day.day
        rows.append({"day": date, "spent": None if future else round(spent, 6),
                     "remaining": None if future or not budget else round(budget - spent, 6),
                     "even_pace": round(budget * n / days, 6) if budget else None})
    return rows


# -- what the period would cost at today's prices (never written back) -------------
def recalculate(store: Store, table: PriceTable, since: str | None = None,
                until: str | None = None, limit: int = 5000) -> list[dict]:
    rows = []
    for row in articles(store, since, until, limit=limit):
        price = table.lookup(row["model"], row["provider"])
        today = price.cost(row["input_tokens"], row["output_tokens"]) if price else None
        rows.append({"id": row["id"], "model": row["model"], "charged": row["cost"],
                     "charged_currency": row["currency"], "today": today,
                     "today_currency": price.currency if price else None})
    return rows
