"""Usage and cost reports, budgets and burn-down, read from `articles`.

Every row's tokens and cost count, finished or not: a stopped or failed article was
billed too, and so was a deleted one (its row stays with its tokens and cost, only
the text goes), so deleting articles is never a way round a budget. A request the
provider refused with no text (`store.FAILED_REQUEST_SQL`) is not an article: it is
counted apart (`failed_requests`), its tokens and cost (if any) still count.
Costs are summed per currency and never across currencies; an article without a
price (cost NULL) is counted as unpriced, never as 0 (one still queued or being
written has no cost yet: not unpriced).

Periods are local dates in a time zone `tz` (the reader's on the pages; UTC, the
default, for the CLI): `since`..`until` inclusive become UTC bounds [start, end)
(`timezones.utc_range`), and grouping by day groups by the local date, exact across
daylight-saving changes (SQLite: a Python function on the connection; PostgreSQL: the
stamp `AT TIME ZONE` the zone's name). The SQL is otherwise the same on both databases
(sums of CASE, round of NUMERIC) and rows are put in order here, so both give the same
rows in the same order.

Every report can be limited to one person (`author=`: a writer's own Usage, a
person's budget), read from the covering index `idx_articles_usage_author` (m016) as
the team's is from `idx_articles_usage`, and grouped by author (`by="author"`). A
person may have a monthly budget of their own (`person_budgets`, Store.person_budgets)
over the team's: `budget_status(author=…)`, and `require_within_budget` refuses an
actor whose own budget is a hard cap that is reached.
"""
from __future__ import annotations

import bisect
import calendar
import csv
import datetime as dt
import io
from typing import Callable, Mapping

from writer.errors import UserError
from writer.io import timezones
from writer.io.sheet import safe_cell
from writer.kinds import ACTIVE
from writer.storage.connection import SQLITE
from writer.storage.prices import PriceTable, price_table
from writer.storage.store import FAILED_REQUEST_SQL, Store, author_name

GROUPS = {"day": "substr(created_at, 1, 10)", "model": "model", "provider": "provider",
          "type": "content_type", "author": "author"}
BUDGET_WARN = 0.8
UTC = timezones.UTC
LOCAL_DAY_FUNCTION = "writer_local_day"  # registered on the store's connection (by_group)
# A row still queued or being written has no cost yet: not "unpriced".
ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE)
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu", "Universal",
              "Etc/Universal"}


def _is_utc(tz: dt.tzinfo | None) -> bool:
    return tz is None or tz is dt.timezone.utc or getattr(tz, "key", None) in _UTC_NAMES


def _period(since, until, tz: dt.tzinfo | None = None, store: Store | None = None,
            author: str | None = None) -> tuple[str, list]:
    """The WHERE clause for local dates `since`..`until` (inclusive) in `tz`, of
    `author`'s articles only when given (its spelling in `users`: store.author_name)."""
    start, end = timezones.utc_range(since, until, tz or UTC)
    clauses, params = [], []
    if author:
        clauses.append("author = ?")
        with store.read() as conn:
            params.append(author_name(conn, author.strip()))
    if start:
        clauses.append("created_at >= ?")
        params.append(start)
    if end:
        clauses.append("created_at < ?")
        params.append(end)
    return " AND ".join(clauses) or "1 = 1", params


def _local_day(tz: dt.tzinfo, since, until) -> Callable[[str | None], str | None]:
    """timezones.local_day_function(tz), made cheap for a period: the UTC instants of
    the period's local midnights (exact across daylight-saving changes) are computed
    once, and a stored stamp finds its day among them by bisection."""
    convert = timezones.local_day_function(tz)
    if not (since and until):
        return convert
    first, last = (d if isinstance(d, dt.date) else dt.date.fromisoformat(d[:10])
                   for d in (since, until))
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    if not days:  # an empty period: nothing to find
        return convert
    starts = [timezones.utc_instant(day, tz) for day in days]
    starts.append(timezones.utc_instant(last + dt.timedelta(days=1), tz))
    names = [day.isoformat() for day in days]
    width = len(starts[0])  # "2026-11-26T15:08:35.123Z": same format, so text order is time order

    def local_day(stamp):
        if (stamp and len(stamp) == width and stamp.endswith("Z")
                and starts[0] <= stamp < starts[-1]):
            return names[bisect.bisect_right(starts, stamp) - 1]
        return convert(stamp)
    return local_day


def _pg_zone(tz: dt.tzinfo) -> str | None:
    """What PostgreSQL's AT TIME ZONE takes for `tz`: its IANA name, or a fixed offset
    as ISO-8601 ('+05:30', sign as written: an ISO offset, not POSIX); None when it is
    neither (an exotic tzinfo: grouped in Python)."""
    key = getattr(tz, "key", None)
    if key:
        return key
    offset = tz.utcoffset(None)
    if offset is None:
        return None
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"INTERVAL '{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}'"


def _group_sql(store: Store, by: str, tz: dt.tzinfo | None, since, until) -> str:
    if by != "day" or _is_utc(tz):
        return GROUPS[by]
    if store.dialect != SQLITE:
        zone = _pg_zone(tz)
        if zone is None:
            raise ValueError(f"cannot group by the local day of {tz!r} on PostgreSQL")
        literal = zone if zone.startswith("INTERVAL") else "'" + zone.replace("'", "''") + "'"
        # created_at is ISO-8601 UTC text ("…Z"): read as an instant, shown in the zone.
        return f"to_char(CAST(created_at AS timestamptz) AT TIME ZONE {literal}, 'YYYY-MM-DD')"
    store.conn.create_function(LOCAL_DAY_FUNCTION, 1, _local_day(tz, since, until),
                                  deterministic=True)
    return f"{LOCAL_DAY_FUNCTION}(created_at)"


ESTIMATED = "CASE WHEN usage_source = 'estimated' THEN 1 ELSE 0 END"
UNPRICED = f"CASE WHEN cost IS NULL AND status NOT IN ({ACTIVE_SQL}) THEN 1 ELSE 0 END"


def _group_order(row: dict) -> tuple:
    """ORDER BY group, currency as SQLite gives it (NULL first, then code-point order),
    whatever PostgreSQL's NULL order and collation."""
    return tuple((value is not None, value if value is not None else "")
                 for value in (row["group"], row["currency"]))


def by_group(store: Store, by: str = "day", since: str | dt.date | None = None,
             until: str | dt.date | None = None, tz: dt.tzinfo | None = None, *,
             author: str | None = None) -> list[dict]:
    """One row per (group, currency): articles, failed requests, tokens, cost, and the
    estimated and unpriced articles; `author`'s only when given. `since`/`until` are
    local dates in `tz` (UTC by default), and so is the day of "day"."""
    if by not in GROUPS:
        raise ValueError(f"unknown grouping {by!r}; use one of: {', '.join(GROUPS)}")
    where, params = _period(since, until, tz, store, author)
    group = _group_sql(store, by, tz, since, until)
    # Two queries: the sums read only a covering index (`idx_articles_usage`, or with an
    # author or by author `idx_articles_usage_author`); the
    # failed requests need `words`, so only rows with status 'failed' are looked up.
    rows = store.rows(
        f"""SELECT {group} AS "group", currency, count(*) AS articles,
               0 AS failed_requests,
               coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               round(CAST(sum(cost) AS NUMERIC), 6) AS cost,
               coalesce(sum({ESTIMATED}), 0) AS estimated_articles,
               sum({UNPRICED}) AS unpriced_articles
            FROM articles WHERE {where}
            GROUP BY 1, 2""", params)
    rows.sort(key=_group_order)
    failed = {(r["group"], r["currency"]): r for r in store.rows(
        f"""SELECT {group} AS "group", currency, count(*) AS requests,
               coalesce(sum({ESTIMATED}), 0) AS estimated,
               sum({UNPRICED}) AS unpriced
            FROM articles WHERE {where} AND {FAILED_REQUEST_SQL}
            GROUP BY 1, 2""", params)}
    for row in rows:
        if row["cost"] is not None:  # SQLite's round() gives a float, whole amounts too
            row["cost"] = float(row["cost"])
        found = failed.get((row["group"], row["currency"]))
        if found:
            row["articles"] -= found["requests"]
            row["failed_requests"] = found["requests"]
            row["estimated_articles"] -= found["estimated"]
            row["unpriced_articles"] -= found["unpriced"]
    return rows


def totals(store: Store, since: str | dt.date | None = None, until: str | dt.date | None = None,
           tz: dt.tzinfo | None = None, *, author: str | None = None) -> dict:
    """{"articles", "failed_requests", "input_tokens", "output_tokens", "unpriced",
    "estimated", "cost": {currency: amount}} for the period (`author`'s only)."""
    rows = by_group(store, "type", since, until, tz, author=author)
    cost: dict[str, float] = {}
    for row in rows:
        if row["currency"] and row["cost"] is not None:
            cost[row["currency"]] = round(cost.get(row["currency"], 0.0) + row["cost"], 6)
    return {
        "articles": sum(r["articles"] for r in rows),
        "failed_requests": sum(r["failed_requests"] for r in rows),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "output_tokens": sum(r["output_tokens"] for r in rows),
        "unpriced": sum(r["unpriced_articles"] for r in rows),
        "estimated": sum(r["estimated_articles"] for r in rows),
        "cost": cost,
    }


def articles(store: Store, since: str | dt.date | None = None,
             until: str | dt.date | None = None, *, unpriced_only: bool = False,
             limit: int = 500, tz: dt.tzinfo | None = None,
             author: str | None = None) -> list[dict]:
    """Cost per article, newest first (`author`'s only when given); `deleted` is 1 for
    an article deleted from History (its spend still counts), `failed_request` 1 for a
    request refused with no text (not an article; `unpriced_only` leaves those out, as
    the counts do)."""
    where, params = _period(since, until, tz, store, author)
    if unpriced_only:
        where += f" AND cost IS NULL AND status NOT IN ({ACTIVE_SQL}) AND NOT {FAILED_REQUEST_SQL}"
    return store.rows(
        f"""SELECT id, created_at, topic, provider, model, content_type, status, input_tokens,
               output_tokens, usage_source, cost, currency, price_input_per_1m, price_output_per_1m,
               CASE WHEN deleted_at IS NOT NULL THEN 1 ELSE 0 END AS deleted,
               CASE WHEN {FAILED_REQUEST_SQL} THEN 1 ELSE 0 END AS failed_request, author
            FROM articles WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ?""",
        [*params, limit])  # created_at order comes from its index: no sort of the period


def labelled(rows: list[dict], headers: Mapping[str, str] | None = None,
             values: Mapping[str, Mapping] | None = None) -> list[dict]:
    """`rows` for people: only the fields in `headers` ({field: heading}, in its
    order), each renamed to its heading, and a code replaced by its label where
    `values` ({field: {code: label}}) has one. No `headers`: every field, as named."""
    values = values or {}
    out = []
    for row in rows:
        fields = headers or {name: name for name in row}
        out.append({heading: values.get(name, {}).get(row[name], row[name])
                    for name, heading in fields.items()})
    return out


def to_csv(rows: list[dict], headers: Mapping[str, str] | None = None,
           values: Mapping[str, Mapping] | None = None, *, bom: bool = False) -> str:
    """CSV text of `rows`: code names by default (scripts, the CLI), or with `headers`
    and `values` the localised headings and labels (see `labelled`). `bom` starts it
    with a UTF-8 byte-order mark, which Excel needs to read Chinese as UTF-8. Every cell
    is `sheet.safe_cell`: a text a spreadsheet would run as a formula gets a leading quote."""
    table = labelled(rows, headers, values)
    if not table:
        fields = list((headers or {}).values())
        if not fields:
            return ""
    else:
        fields = list(table[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(name) for name in fields])
    for row in table:
        writer.writerow([safe_cell(row[name]) for name in fields])
    return ("\ufeff" if bom else "") + out.getvalue()


# -- budgets -----------------------------------------------------------------------
def month_bounds(day: dt.date) -> tuple[str, str]:
    last = calendar.monthrange(day.year, day.month)[1]
    return day.replace(day=1).isoformat(), day.replace(day=last).isoformat()


def month_spend(store: Store, day: dt.date | None = None, tz: dt.tzinfo | None = None, *,
                author: str | None = None) -> dict[str, float]:
    """Spend per currency in the month of `day` (today in `tz`), a month of local dates
    (`author`'s only when given)."""
    day = day or timezones.today(tz or UTC)
    return totals(store, *month_bounds(day), tz=tz, author=author)["cost"]


def _budget(store: Store, currency: str | None, author: str | None) -> tuple[float, bool]:
    """(monthly amount, hard cap) of the team's budget, or of `author`'s own."""
    if author:
        found = store.person_budget(author, currency)
        return (found["monthly_amount"], found["hard_cap"]) if found else (0.0, False)
    return store.budgets().get(currency or "") or 0.0, currency in store.hard_caps()


def budget_status(store: Store, currency: str | None, day: dt.date | None = None,
                  tz: dt.tzinfo | None = None, *, author: str | None = None) -> dict | None:
    """Spend against the team's monthly budget in `currency` — or, with `author`, that
    person's spend against their own budget — or None when there is none. `level` is
    "ok", "warn" (≥ 80 %) or "over" (≥ 100 %). The month is the one of `day` (default:
    today in `tz`, UTC by default), in `tz`."""
    budget, hard_cap = _budget(store, currency, author)
    if not budget:
        return None
    spent = month_spend(store, day, tz, author=author).get(currency, 0.0)
    ratio = spent / budget
    level = "over" if ratio >= 1 else "warn" if ratio >= BUDGET_WARN else "ok"
    return {"currency": currency, "budget": budget, "spent": spent, "ratio": ratio, "level": level,
            "hard_cap": hard_cap, "author": author}


def budget_status_for(store: Store, settings, provider, tz: dt.tzinfo | None = None, *,
                      author: str | None = None) -> dict | None:
    """Budget status in the currency the provider's model is priced in (this month in
    `tz`): the team's, or `author`'s own."""
    price = price_table(settings.prices_file, store.price_edits()).lookup(provider.model,
                                                                          provider.name)
    if price is None or price.currency == "local":
        return None
    return budget_status(store, price.currency, tz=tz, author=author)


class BudgetExceeded(UserError):
    """This month's spend has reached a budget set as a hard cap: nothing paid in its
    currency is sent until the month ends, the budget is raised or the cap lifted."""

    key = "user_errors.budget_exceeded"


def require_within_budget(store: Store | None, settings, provider,
                          tz: dt.tzinfo | None = None, *, actor=None) -> None:
    """The one check every run makes before its first request (an article, a variant, a
    batch and each of its rows, a provider check): refuse (BudgetExceeded, exit 2) when
    the provider's currency has a hard-capped budget that this month's spend has reached:
    the team's, or the `actor`'s own (person_budgets) when they have one. Without a hard
    cap nothing is refused here (the pages ask first, as before). The month is the one
    of today in `tz` (default: WRITER_TIMEZONE, else UTC). No `store`: the settings'
    database is opened for the check."""
    if store is None:
        store = Store(settings.database)
        try:
            return require_within_budget(store, settings, provider, tz, actor=actor)
        finally:
            store.close()
    author = getattr(actor, "name", None)
    mine = any(r["hard_cap"] for r in store.person_budgets(author)) if author else False
    if not store.hard_caps() and not mine:
        return
    tz = tz or timezones.choose(getattr(settings, "timezone", None))
    for whose in (None, author) if mine else (None,):
        status = budget_status_for(store, settings, provider, tz=tz, author=whose)
        if status is None or not status["hard_cap"] or status["spent"] < status["budget"]:
            continue
        spent, budget, currency = (f"{status['spent']:.2f}", f"{status['budget']:.2f}",
                                   status["currency"])
        if whose is None:
            raise BudgetExceeded(f"this month's {currency} budget is a hard cap and it is "
                                 f"reached: {spent} spent of {budget} {currency}; raise the "
                                 "budget or lift the cap in Settings", spent=spent,
                                 budget=budget, currency=currency)
        raise BudgetExceeded(f"{whose}'s own {currency} budget this month is a hard cap and it "
                             f"is reached: {spent} spent of {budget} {currency}; an admin can "
                             "raise it or lift the cap in Settings",
                             key="user_errors.person_budget_exceeded", name=whose, spent=spent,
                             budget=budget, currency=currency)


def burn_down(store: Store, currency: str, day: dt.date | None = None,
              tz: dt.tzinfo | None = None, *, author: str | None = None) -> list[dict]:
    """Per day of the month: cumulative spend, the budget left, and an even-pace line
    (the team's, or `author`'s spend against their own budget). Days are local days in
    `tz` (UTC by default); `day` defaults to today there."""
    day = day or timezones.today(tz or UTC)
    first, last = month_bounds(day)
    budget = _budget(store, currency, author)[0] or None
    per_day = {r["group"]: r["cost"] or 0.0
               for r in by_group(store, "day", first, last, tz, author=author)
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
def recalculate(store: Store, table: PriceTable, since: str | dt.date | None = None,
                until: str | dt.date | None = None, limit: int = 5000,
                tz: dt.tzinfo | None = None, *, author: str | None = None) -> list[dict]:
    rows = []
    for row in articles(store, since, until, limit=limit, tz=tz, author=author):
        price = table.lookup(row["model"], row["provider"])
        today = price.cost(row["input_tokens"], row["output_tokens"]) if price else None
        rows.append({"id": row["id"], "model": row["model"], "charged": row["cost"],
                     "charged_currency": row["currency"], "today": today,
                     "today_currency": price.currency if price else None})
    return rows
