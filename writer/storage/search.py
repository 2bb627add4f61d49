"""Finding saved articles: filters, full-text search that works for Chinese, snippets.

Terms of 3+ characters go through the FTS5 trigram index (`articles_fts`, kept in
sync by triggers), which matches any substring, Chinese included. Terms of 1–2 CJK
characters (most Chinese words) go through `articles_grams` (m014): every CJK
character and every pair of adjacent ones as a token, so such a term is in the text
exactly when its token is in the index. Only other 1–2 character terms ("ab", "5%")
fall back to a plain substring scan, newest first, which stops as soon as a page is
full. Several terms must all match. Deleted articles (`deleted_at` set, m007) are
never listed or counted; their topic is still in the full-text indexes, so every
query filters them out. `reindex` rebuilds both indexes from the articles.

A query is refused (SearchError) past MAX_QUERY_CHARS characters or MAX_QUERY_TERMS
terms: each term is one more clause of the SQL (or of the FTS5 expression), and SQLite
refuses an expression tree deeper than 1,000 ("Expression tree is too large").
Snippets are safe to place inside Markdown as well as HTML (`writer.io.markup.plain`).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

from writer.errors import UserError
from writer.io import timezones
from writer.io.markup import plain
from writer.storage.migrations import CJK_RANGES, GRAMS_TABLE, article_grams_sql
from writer.storage.store import Store

LIST_COLUMNS = ("id, created_at, topic, content_type, language, status, words, target_words, "
                "provider, model, input_tokens, output_tokens, usage_source, cost, currency")
LIVE = "a.deleted_at IS NULL"  # not deleted (m007)
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


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def is_indexed_short(term: str) -> bool:
    """Whether a 1–2 character term is served by `articles_grams` (all CJK characters)."""
    return 0 < len(term) <= 2 and all(any(low <= ord(ch) <= high for low, high in CJK_RANGES)
                                      for ch in term)


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _column_clauses(filters: Filters) -> tuple[list[str], list]:
    clauses, params = [], []
    for name in ("content_type", "status", "model", "provider", "language", "batch_id",
                 "brand"):
        value = getattr(filters, name)
        if value:
            clauses.append(f"a.{name} = ?")
            params.append(value)
    if filters.check_failed:  # articles.checks: writer/brands.py CheckResult.as_dict()
        clauses.append("json_extract(a.checks, '$.passed') = 0")
    start, end = filters.bounds()
    if start:
        clauses.append("a.created_at >= ?")
        params.append(start)
    if end:
        clauses.append("a.created_at < ?")
        params.append(end)
    return clauses, params


def _fts_rowid_bounds(filters: Filters) -> tuple[list[str], list]:
    """Ids rise with created_at, so a date range is also an id range that FTS5 can
    use to skip matches outside it (the created_at clauses stay as the truth). The
    same UTC bounds as the created_at clauses: the reader's local days."""
    clauses, params = [], []
    start, end = filters.bounds()
    if start:
        clauses.append("f.rowid >= coalesce((SELECT id FROM articles WHERE created_at >= ? "
                       "ORDER BY created_at LIMIT 1), 0)")
        params.append(start)
    if end:
        clauses.append("f.rowid <= coalesce((SELECT id FROM articles WHERE created_at < ? "
                       "ORDER BY created_at DESC LIMIT 1), 0)")
        params.append(end)
    return clauses, params


RARITY_CAP = 2000  # matches counted to tell which index of a mixed query is rarer


def _matches_up_to(store: Store, table: str, match: str) -> int:
    """How many articles `match` finds in `table`, counted up to RARITY_CAP (a bounded
    walk of the index, a millisecond or two): which index should drive a mixed query."""
    return store.conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} "
                              "MATCH ? LIMIT ?)", [match, RARITY_CAP]).fetchone()[0]


def search(store: Store, filters: Filters = Filters(), *, limit: int = 50, offset: int = 0) -> Page:
    """One page of matches, newest first.

    A full-text index drives the query (with both kinds of terms, the one with fewer
    matches, counted up to RARITY_CAP; else the only one used): FTS5 walks its matches
    newest first and stops when the page is full (CROSS JOIN keeps the planner from
    scanning `articles` first); the other index checks each candidate by rowid.
    Counts are exact when cheap (no text query, or one index's query without other
    filters); otherwise the page says "N+" when there is more."""
    terms = filters.terms()
    long_terms = list(dict.fromkeys(t for t in terms if len(t) >= 3))
    gram_terms = list(dict.fromkeys(t for t in terms if is_indexed_short(t)))
    like_terms = [t for t in terms if len(t) < 3 and not is_indexed_short(t)]
    clauses, params = _column_clauses(filters)
    for term in like_terms:
        clauses.append("(a.topic LIKE ? ESCAPE '\\' OR a.content LIKE ? ESCAPE '\\')")
        params += [_like(term), _like(term)]
    columns = ", ".join(f"a.{c.strip()}" for c in LIST_COLUMNS.split(","))
    indexes = []  # (table, match) of each index the query uses; the first drives
    if long_terms:
        indexes.append(("articles_fts", " AND ".join(_fts_phrase(t) for t in long_terms)))
    if gram_terms:
        indexes.append((GRAMS_TABLE, " AND ".join(_fts_phrase(t) for t in gram_terms)))
    if len(indexes) > 1:  # the rarer index drives; the other checks its few candidates
        indexes.sort(key=lambda index: _matches_up_to(store, *index))
    if indexes:
        (table, match), checks = indexes[0], indexes[1:]
        for other, other_match in checks:
            clauses.append(f"EXISTS (SELECT 1 FROM {other} x WHERE {other} MATCH ? AND x.rowid = a.id)")
            params.append(other_match)
        bounds, bound_params = _fts_rowid_bounds(filters)
        where = " AND ".join([f"{table} MATCH ?", *bounds, LIVE, *clauses])
        sql = (f"SELECT {columns} FROM {table} f CROSS JOIN articles a ON a.id = f.rowid "
               f"WHERE {where} ORDER BY f.rowid DESC LIMIT ? OFFSET ?")
        rows = store.rows(sql, [match, *bound_params, *params, limit + 1, offset])
        cheap_count = not clauses
        count_sql = (f"SELECT count(*) FROM (SELECT 1 FROM {table} f CROSS JOIN articles a "
                     f"ON a.id = f.rowid WHERE {table} MATCH ? AND {LIVE} LIMIT ?)")
        count_params = [match]
    else:
        where = " AND ".join([LIVE, *clauses])
        rows = store.rows(f"SELECT {columns} FROM articles a WHERE {where} "
                                   "ORDER BY a.id DESC LIMIT ? OFFSET ?",
                                   [*params, limit + 1, offset])
        cheap_count = not like_terms
        count_sql = f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {where} LIMIT ?)"
        count_params = params
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not has_more:
        total = offset + len(rows)
    elif cheap_count:
        total = store.conn.execute(count_sql, [*count_params, COUNT_CAP + 1]).fetchone()[0]
    else:
        total = None
    return Page(rows, total, bool(like_terms), has_more, offset)


REINDEX_BATCH = 500  # articles per write transaction: a writer waits at most one batch


def reindex(store: Store, progress: Callable[[str, int, int], None] | None = None,
            *, batch: int = REINDEX_BATCH) -> int:
    """Rebuild every search index (trigram `articles_fts`, `articles_grams`) from the
    articles: after a restore, an import made with SQL, or an index change. Safe while
    the app runs: each index is emptied, then refilled in short `BEGIN IMMEDIATE`
    transactions of `batch` articles, so writers wait at most one batch and readers
    never wait (searches may miss articles not yet reindexed until it ends); articles
    written meanwhile are indexed by the triggers. `progress(index, done, total)`
    after each batch. Returns the number of articles indexed."""
    total = store.conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    fills = {
        "articles_fts": "INSERT INTO articles_fts (rowid, topic, content) "
                        "SELECT id, topic, content FROM articles a",
        GRAMS_TABLE: f"INSERT INTO {GRAMS_TABLE} (rowid, grams) "
                     f"SELECT a.id, {article_grams_sql('a')} FROM articles a",
    }
    for table, fill in fills.items():
        with store.transaction("rebuild the search index of") as conn:
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('delete-all')")
            last = conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()[0]
        done, after = 0, 0
        while after < last:
            with store.transaction("rebuild the search index of") as conn:
                ids = [i for (i,) in conn.execute(
                    "SELECT id FROM articles WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                    [after, last, batch])]
                if not ids:
                    break
                conn.execute(f"{fill} WHERE a.id >= ? AND a.id <= ?", [ids[0], ids[-1]])
            done, after = done + len(ids), ids[-1]
            if progress:
                progress(table, done, total)
        with store.transaction("rebuild the search index of") as conn:
            conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', 500)")
    return total


def distinct(store: Store, column: str) -> list[str]:
    """Values for a filter box (indexed columns only), from articles not deleted.

    The distinct values come from the column's index; each is then kept if one live
    article has it (an index lookup that usually stops at the first row)."""
    if column not in {"content_type", "status", "model", "provider", "language"}:
        raise ValueError(f"cannot list values of {column!r}")
    return [r[0] for r in store.conn.execute(
        f"SELECT value FROM (SELECT DISTINCT {column} AS value FROM articles "
        f"WHERE {column} IS NOT NULL) WHERE EXISTS (SELECT 1 FROM articles "
        f"WHERE {column} = value AND deleted_at IS NULL) ORDER BY value")]


def snippet_html(text: str, terms: list[str], width: int = 60) -> str:
    """An excerpt around the first match with every match in <mark>, its text escaped
    for HTML and Markdown (a topic's `[x](http://…)` stays text, not a link)."""
    if not text:
        return ""
    lowered = text.lower()
    positions = [lowered.find(t.lower()) for t in terms if t]
    positions = [p for p in positions if p >= 0]
    start = max(0, min(positions) - width) if positions else 0
    end = min(len(text), start + 2 * width + max((len(t) for t in terms), default=0) + width)
    excerpt = text[start:end].replace("\n", " ")
    prefix, suffix = ("…" if start else ""), ("…" if end < len(text) else "")
    return prefix + highlight_html(excerpt, terms) + suffix


def highlight_html(text: str, terms: list[str]) -> str:
    """`text` escaped for HTML and Markdown, case-insensitive matches of `terms` in <mark>."""
    terms = sorted({t for t in terms if t}, key=len, reverse=True)
    if not terms:
        return plain(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(plain(text[last:match.start()]))
        out.append(f"<mark>{plain(match.group(0))}</mark>")
        last = match.end()
    out.append(plain(text[last:]))
    return "".join(out)

