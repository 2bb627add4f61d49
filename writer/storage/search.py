"""Finding saved articles: filters, full-text search that works for Chinese, snippets.

Terms of 3+ characters go through the FTS5 trigram index (`articles_fts`, kept in
sync by triggers), which matches any substring, Chinese included. Terms of 1–2 CJK
characters (most Chinese words), ASCII letters or digits ("AI", "5G") go through
`articles_grams` (writer/storage/grams.py): every such character and every pair of
adjacent ones as a token, so such a term is in the text exactly when its token is in
the index; articles being written are left out of it and checked directly. Only other
1–2 character terms ("5%", "é") fall back to a plain substring scan, newest first,
which stops as soon as a page is full. Several terms must all match. Deleted articles
(`deleted_at` set, m007) are never listed or counted; their topic is still in the
full-text indexes, so every query filters them out. `reindex` rebuilds both indexes from the articles.

On PostgreSQL (`store.dialect`) the same filters and terms give the same rows, pages
and snippets from its own indexes and queries (writer/storage/search_pg.py; what both
share — Filters, Page, the terms' rules — is writer/storage/search_base.py): a term with
a CJK character or of 1–2 characters must have its grams in `articles.grams` (GIN) and
is checked in the text (strpos / ILIKE) unless its grams say it exactly; any other term
is an (I)LIKE that the `pg_trgm` GIN index serves; articles being written (`grams` NULL)
are found through the status index and checked directly. The matches are read newest
first in widening ranges of ids (`_pg_newest`): PostgreSQL cannot estimate a LIKE on
long texts and a GIN bitmap has no order. Counts follow SQLite's rule where they cost
no extra text reads; a common long term's page says "N+" there (search_pg.py `search`).

A query is refused (SearchError) past MAX_QUERY_CHARS characters or MAX_QUERY_TERMS
terms: each term is one more clause of the SQL (or of the FTS5 expression), and SQLite
refuses an expression tree deeper than 1,000 ("Expression tree is too large").
Snippets are safe to place inside Markdown as well as HTML (`writer.io.markup.plain`).

`Filters.author` lists one person's articles (a writer's own History, the author
filter): an exact match on `articles.author` as stored — the account's spelling in
`users` (`store.author_name`), which the filter's name is turned into too, so "Alice"
"""
from __future__ import annotations

import re
from typing import Callable

from writer.io.markup import plain
from writer.storage import grams, search_pg
from writer.storage.connection import SQLITE
from writer.storage.grams import GRAMS_TABLE, WRITING
from writer.storage.search_base import (  # noqa: F401 (also this module's public names)
    COLUMNS,
    COUNT_CAP,
    LIST_COLUMNS,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    Filters,
    Page,
    SearchError,
    filter_clauses,
    is_indexed_short,
    like_pattern,
    query_terms,
    rowid_bounds,
)
from writer.storage.store import Store, author_name

LIVE = "a.deleted_at IS NULL"  # not deleted (m007)


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


INDEXED_FILTERS = ("author", "content_type", "status", "model", "provider", "language",
                   "batch_id")  # each has an index on (column, id): articles' indexes (m001…)


def _equalities(filters: Filters, store: Store) -> list[tuple[str, object]]:
    """(column, value) of each equality filter that is set; the author as stored."""
    pairs = [(name, getattr(filters, name)) for name in (*INDEXED_FILTERS, "brand")]
    pairs = [(name, value) for name, value in pairs if value]
    if filters.author:  # first: the planner walks idx_articles_author (author, id)
        with store.read() as conn:
            pairs[0] = ("author", author_name(conn, filters.author.strip()))
    return pairs


def _text_clause(term: str) -> tuple[str, list]:
    """`term` in the topic or the content, as a substring (ASCII case folded)."""
    return "(a.topic LIKE ? ESCAPE '\\' OR a.content LIKE ? ESCAPE '\\')", [like_pattern(term)] * 2


def _column_clauses(filters: Filters, equalities: list[tuple[str, object]],
                    like_terms: list[str]) -> tuple[list[str], list]:
    """The filters as WHERE clauses on `articles a`: `equalities` (column = value, from
    `_equalities`), the date range, the failed check and each of `like_terms`."""
    clauses, params = filter_clauses(filters, equalities,
                                     "json_extract(a.checks, '$.passed') = 0")
    for term in like_terms:
        clause, values = _text_clause(term)
        clauses.append(clause)
        params += values
    return clauses, params


RARITY_CAP = 2000  # matches counted to tell which index of a mixed query is rarer
# A column filter matching at most this many articles is checked against the list of
# their ids, read once from its index (≈ 0.25 µs an id: 5 ms at the cap), instead of on
# each candidate's row: the filtered columns lie after `content`, so reading one walks
# the row's overflow pages (20 µs a candidate; a 3 % filter reads ~30 candidates a hit).
# Past the cap the filter keeps most candidates: the row check stops soon.
SELECTIVE_CAP = 20_000
USAGE_COLUMNS = {"status", "provider", "model", "content_type", "language"}  # idx_articles_usage


def _matches_up_to(store: Store, table: str, match: str, cap: int) -> int:
    """How many articles `match` finds in `table`, counted up to `cap` (a bounded walk
    of the index): which index should drive a mixed query."""
    return store.conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} "
                              "MATCH ? LIMIT ?)", [match, cap]).fetchone()[0]


def _grams_drive(store: Store, long_match: str, gram_match: str) -> bool:
    """Whether the grams index has fewer matches (both counted up to RARITY_CAP; a tie
    keeps the trigram index). The grams are counted first (a tenth of a millisecond:
    no positions); the trigram index (a phrase costs ~10 µs a match) only one past them."""
    grams_count = _matches_up_to(store, GRAMS_TABLE, gram_match, RARITY_CAP)
    return grams_count < RARITY_CAP and _matches_up_to(
        store, "articles_fts", long_match, grams_count + 1) > grams_count


def _selective(store: Store, equalities: list[tuple[str, object]]) -> tuple[list, list]:
    """Split the equality filters into (selective, the rest): a selective one matches at
    most SELECTIVE_CAP articles, counted through its index (a millisecond at most)."""
    selective, rest = [], []
    for name, value in equalities:
        count = (store.conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM articles WHERE {name} = ? "
                                    "LIMIT ?)", [value, SELECTIVE_CAP + 1]).fetchone()[0]
                 if name in INDEXED_FILTERS else SELECTIVE_CAP + 1)
        (selective if count <= SELECTIVE_CAP else rest).append((name, value))
    return selective, rest


def search(store: Store, filters: Filters = Filters(), *, limit: int = 50,  # noqa: B008 (frozen)
           offset: int = 0) -> Page:
    """One page of matches, newest first.

    A full-text index drives the query (with both kinds of terms, the one with fewer
    matches, counted up to RARITY_CAP; else the only one used): FTS5 walks its matches
    newest first and stops when the page is full (CROSS JOIN keeps the planner from
    scanning `articles` first). The other index's terms are checked on each candidate:
    short terms by LIKE on its text (what `articles_grams` holds, exactly; 0.5 ms → 5 µs
    a candidate: an FTS5 lookup by rowid sets up a whole query), long terms by rowid in
    `articles_fts` (case folding beyond ASCII: only FTS5 knows it). A selective column
    filter (`_selective`) is checked against its ids, read once from its index, before
    the candidate's row is read. Counts are exact when cheap (no text query, or one
    index's query without other filters); otherwise the page says "N+" when there is more."""
    terms = filters.terms()
    if store.dialect != SQLITE:
        return search_pg.search(store, filters, terms, _equalities(filters, store), limit, offset)
    long_terms = list(dict.fromkeys(t for t in terms if len(t) >= 3))
    gram_terms = list(dict.fromkeys(t for t in terms if is_indexed_short(t)))
    like_terms = [t for t in terms if len(t) < 3 and not is_indexed_short(t)]
    equalities = _equalities(filters, store)
    clauses, params = _column_clauses(filters, equalities, like_terms)
    columns = COLUMNS
    long_match = " AND ".join(_fts_phrase(t) for t in long_terms)
    gram_match = " AND ".join(_fts_phrase(t) for t in gram_terms)
    live_rows = _writing_matches(store, columns, [*long_terms, *gram_terms], clauses, params,
                                 offset + limit + 1) if gram_terms else []
    if long_terms or gram_terms:
        grams_drive = not long_terms or bool(gram_terms and _grams_drive(store, long_match, gram_match))
        table, match = (GRAMS_TABLE, gram_match) if grams_drive else ("articles_fts", long_match)
        cheap_count = not clauses and not (long_terms and gram_terms)
        selective, rest = _selective(store, equalities)
        row_clauses, row_params = _column_clauses(filters, rest, like_terms)
        checks, check_params = [], []  # on f.rowid: before the candidate's row is read
        for name, value in selective:
            checks.append(f"+f.rowid IN (SELECT id FROM articles WHERE {name} = ?)")
            check_params.append(value)
        if grams_drive and long_terms:  # last: a lookup costs more than a row's columns
            row_clauses.append("EXISTS (SELECT 1 FROM articles_fts x WHERE articles_fts MATCH ? "
                               "AND x.rowid = a.id)")
            row_params.append(long_match)
        elif gram_terms and not grams_drive:
            for term in gram_terms:
                clause, values = _text_clause(term)
                row_clauses.append(clause)
                row_params += values
        bounds, bound_params = rowid_bounds(filters)
        where = " AND ".join([f"{table} MATCH ?", *bounds, *checks, LIVE, *row_clauses])
        page_params = [match, *bound_params, *check_params, *row_params]
        sql = (f"SELECT {columns} FROM {table} f CROSS JOIN articles a ON a.id = f.rowid "
               f"WHERE {where} ORDER BY f.rowid DESC LIMIT ? OFFSET ?")
        if live_rows:  # articles being written are not in `articles_grams`: merged in
            rows = store.rows(sql, [*page_params, offset + limit + 1, 0])
            merged = {row["id"]: row for row in [*rows, *live_rows]}
            rows = [merged[i] for i in sorted(merged, reverse=True)][offset:offset + limit + 1]
        else:
            rows = store.rows(sql, [*page_params, limit + 1, offset])
        # Live (not deleted) through idx_articles_deleted_at: no row read per match.
        count_sql = (f"SELECT count(*) FROM (SELECT 1 FROM {table} f WHERE {table} MATCH ? "
                     "AND EXISTS (SELECT 1 FROM articles x INDEXED BY idx_articles_deleted_at "
                     "WHERE x.deleted_at IS NULL AND x.id = f.rowid) LIMIT ?)")
        count_params = [match]
    else:
        # A date range as an id range too: the walk newest first starts at its end
        # instead of reading every newer article (262 → 2 ms at 100,000 articles).
        bounds, bound_params = rowid_bounds(filters, "a.id")
        where = " AND ".join([LIVE, *bounds, *clauses])
        rows = store.rows(f"SELECT {columns} FROM articles a WHERE {where} "
                                   "ORDER BY a.id DESC LIMIT ? OFFSET ?",
                                   [*bound_params, *params, limit + 1, offset])
        cheap_count = not like_terms
        count_sql = f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {where} LIMIT ?)"
        count_params = [*bound_params, *params]
        if len(equalities) > 1 and {n for n, _ in equalities} <= USAGE_COLUMNS \
                and not filters.check_failed:
            # Two or more filters: no one index holds the matches, and reading rows to
            # check the others reads a whole row each (qwen + social_post + zh: 20 ms);
            # the covering usage index (created_at, status, provider, model, type,
            # language, …) holds them all: a scan of it is bounded (≤ 8 ms at 100,000).
            usage_where = " AND ".join([*clauses, "NOT EXISTS (SELECT 1 FROM articles x INDEXED BY "
                                        "idx_articles_deleted_at WHERE x.deleted_at IS NOT NULL "
                                        "AND x.id = a.id)"])
            count_sql = ("SELECT count(*) FROM (SELECT 1 FROM articles a INDEXED BY "
                         f"idx_articles_usage WHERE {usage_where} LIMIT ?)")
            count_params = params
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not has_more:
        total = offset + len(rows)
    elif cheap_count:
        total = store.conn.execute(count_sql, [*count_params, COUNT_CAP + 1]).fetchone()[0]
        if len(live_rows) == offset + limit + 1:  # more being written than fetched
            live_rows = _writing_matches(store, columns, [*long_terms, *gram_terms], clauses,
                                         params, COUNT_CAP + 1)
        total = min(total + len(live_rows), COUNT_CAP + 1)
    else:
        total = None
    return Page(rows, total, bool(like_terms), has_more, offset)


def _writing_matches(store: Store, columns: str, terms: list[str], clauses: list[str],
                     params: list, limit: int) -> list[dict]:
    """Articles being written that match: `articles_grams` leaves them out until they
    end (writer/storage/grams.py), so a short term checks their few rows directly (the
    status index finds them). `clauses` are the filters, before any index's."""
    checks = [_text_clause(t)[0] for t in terms]
    where = " AND ".join([f"a.status IN ({', '.join('?' for _ in WRITING)})", LIVE, *clauses,
                          *checks])
    # INDEXED BY: else the planner may take idx_articles_deleted_at (NULL on nearly every
    # row) and read the whole table (1.1 s at 100,000 articles; 0.3 ms this way).
    return store.rows(f"SELECT {columns} FROM articles a INDEXED BY idx_articles_status "
                      f"WHERE {where} ORDER BY a.id DESC "
                      "LIMIT ?", [*WRITING, *params, *[like_pattern(t) for t in terms for _ in (0, 1)],
                                  limit])


REINDEX_BATCH = 500  # articles per write transaction: a writer waits at most one batch


def reindex(store: Store, progress: Callable[[str, int, int], None] | None = None,
            *, batch: int = REINDEX_BATCH) -> int:
    """Rebuild every search index (trigram `articles_fts`, `articles_grams`) from the
    articles: after a restore, an import made with SQL, or an index change. Safe while
    the app runs: each index is emptied, then refilled in short `BEGIN IMMEDIATE`
    transactions of `batch` articles, so writers wait at most one batch and readers
    never wait (searches may miss articles not yet reindexed until it ends); articles
    written meanwhile are indexed by the triggers. `progress(index, done, total)`
    after each batch. Returns the number of articles indexed. PostgreSQL: search_pg.py `reindex`."""
    if store.dialect != SQLITE:
        return search_pg.reindex(store, progress, batch=batch)
    total = store.conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    fills = {
        "articles_fts": "INSERT INTO articles_fts (rowid, topic, content) "
                        "SELECT id, topic, content FROM articles a WHERE 1",
        GRAMS_TABLE: f"INSERT INTO {GRAMS_TABLE} (rowid, grams) "
                     f"SELECT a.id, {grams.register(store.conn)} FROM articles a "
                     f"WHERE {grams.indexed_sql('a')}",
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
                conn.execute(f"{fill} AND a.id >= ? AND a.id <= ?", [ids[0], ids[-1]])
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
    if column not in {"content_type", "status", "model", "provider", "language", "author"}:
        raise ValueError(f"cannot list values of {column!r}")
    # Sorted here: code-point order on both databases, whatever PostgreSQL's collation.
    return sorted(r[0] for r in store.conn.execute(
        f"SELECT value FROM (SELECT DISTINCT {column} AS value FROM articles "
        f"WHERE {column} IS NOT NULL) AS v WHERE EXISTS (SELECT 1 FROM articles "
        f"WHERE {column} = value AND deleted_at IS NULL)"))


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

