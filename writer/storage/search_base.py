"""What search on SQLite (writer/storage/search.py) and on PostgreSQL (writer/storage/
search_pg.py) share: the filters, a page of results, the query's terms and their limits,
the columns a list shows and the SQL pieces both dialects spell alike.

It imports neither search module nor the store (writer/storage/store.py imports the
PostgreSQL schema, which lives in search_pg.py): so there is no import cycle.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from writer.errors import UserError
from writer.io import timezones
from writer.storage.grams import TOKEN_RANGES

LIST_COLUMNS = ("id, created_at, topic, content_type, language, status, words, target_words, "
                "provider, model, input_tokens, output_tokens, usage_source, cost, currency, "
                "author")
COLUMNS = ", ".join(f"a.{c.strip()}" for c in LIST_COLUMNS.split(","))  # of `articles a`
COUNT_CAP = 1000  # counts stop here ("1000+"): an exact count of a common term costs a scan
MAX_QUERY_CHARS = 200  # a search box's text
MAX_QUERY_TERMS = 20  # words or "quoted phrases" in one search


class SearchError(UserError, ValueError):
    """A search that cannot be run as it is (too long, too many terms)."""

    key = "user_errors.search_terms"


@dataclass(frozen=True)
class Filters:
    query: str = ""
    content_type: str | None = None
    status: str | None = None
    model: str | None = None
    provider: str | None = None
    language: str | None = None
    since: dt.date | str | None = None  # a local date (in `tz`), inclusive
    until: dt.date | str | None = None  # a local date (in `tz`), inclusive
    batch_id: int | None = None  # the articles of one batch (writer/runs/batch.py)
    brand: str | None = None  # written with this brand kit (articles.brand, m011)
    check_failed: bool = False  # only articles whose brand / keyword check failed (m011)
    author: str | None = None  # only this person's articles (articles.author, m016)
    tz: dt.tzinfo = timezones.UTC  # the zone `since` and `until` are dates of (the reader's)

    def terms(self) -> list[str]:
        return query_terms(self.query)

    def bounds(self) -> tuple[str | None, str | None]:
        """`since`..`until` as stored UTC timestamps [start, end): a local day in
        Asia/Shanghai starts at 16:00Z the day before."""
        return timezones.utc_range(self.since, self.until, self.tz)

    @property
    def narrowed(self) -> bool:
        """Whether any filter or a query is set (the zone alone narrows nothing)."""
        return self != Filters(tz=self.tz)


@dataclass(frozen=True)
class Page:
    rows: list[dict]
    total: int | None  # capped at COUNT_CAP + 1; None when counting would cost a scan
    uses_fallback: bool  # a 1–2 character term was searched by substring scan
    has_more: bool = False  # there are matches after this page
    offset: int = 0

    @property
    def total_label(self) -> str:
        if self.total is None:
            return f"{self.offset + len(self.rows)}+"
        return f"{COUNT_CAP}+" if self.total > COUNT_CAP else str(self.total)


def query_terms(query: str) -> list[str]:
    """Whitespace-separated terms; "quoted phrases" stay whole. SearchError past
    MAX_QUERY_CHARS characters or MAX_QUERY_TERMS terms."""
    query = query or ""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"the search is {len(query)} characters long; use at most "
                          f"{MAX_QUERY_CHARS}", key="user_errors.search_length",
                          limit=MAX_QUERY_CHARS)
    found = re.findall(r'"([^"]+)"|(\S+)', query)
    terms = [(phrase or word).strip() for phrase, word in found]
    terms = [t for t in terms if t]
    if len(terms) > MAX_QUERY_TERMS:
        raise SearchError(f"the search has {len(terms)} terms; use at most {MAX_QUERY_TERMS}",
                          limit=MAX_QUERY_TERMS)
    return terms


def is_indexed_short(term: str) -> bool:
    """Whether a 1–2 character term is served by `articles_grams` (all its characters
    CJK or ASCII letters and digits: writer/storage/grams.py)."""
    return 0 < len(term) <= 2 and all(any(low <= ord(ch) <= high for low, high in TOKEN_RANGES)
                                      for ch in term)


def like_pattern(term: str) -> str:
    """`%term%` for LIKE … ESCAPE '\\': the term's own `%`, `_` and `\\` taken literally."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def rowid_bounds(filters: Filters, column: str = "f.rowid") -> tuple[list[str], list]:
    """Ids rise with created_at, so a date range is also an id range that an index
    (FTS5's rowids, `articles`' primary key) can use to skip matches outside it (the
    created_at clauses stay as the truth). The same UTC bounds as the created_at
    clauses: the reader's local days."""
    clauses, params = [], []
    start, end = filters.bounds()
    if start:
        clauses.append(f"{column} >= coalesce((SELECT id FROM articles WHERE created_at >= ? "
                       "ORDER BY created_at LIMIT 1), 0)")
        params.append(start)
    if end:
        clauses.append(f"{column} <= coalesce((SELECT id FROM articles WHERE created_at < ? "
                       "ORDER BY created_at DESC LIMIT 1), 0)")
        params.append(end)
    return clauses, params


def filter_clauses(filters: Filters, equalities: list[tuple[str, object]],
                   failed_check_sql: str) -> tuple[list[str], list]:
    """The filters as WHERE clauses on `articles a`: `equalities` (column = value), the
    failed check (`failed_check_sql`: each database reads the `checks` JSON its own way)
    and the date range."""
    clauses, params = [], []
    for name, value in equalities:
        clauses.append(f"a.{name} = ?")
        params.append(value)
    if filters.check_failed:  # articles.checks: writer/brands.py CheckResult.as_dict()
        clauses.append(failed_check_sql)
    start, end = filters.bounds()
    if start:
        clauses.append("a.created_at >= ?")
        params.append(start)
    if end:
        clauses.append("a.created_at < ?")
        params.append(end)
    return clauses, params
