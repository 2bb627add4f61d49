"""Search on PostgreSQL: its indexes (BASELINE, created by the PostgreSQL baseline,
writer/storage/pg_schema.py) and the queries that read them (`search`, `reindex`, called
by writer/storage/search.py's for a PostgreSQL store; the same rules as SQLite's, in
writer/storage/search_base.py what both share).

Two indexes serve every term: `pg_trgm` (GIN on topic and content) for terms of three
characters and more, and `articles.grams` (GIN) — every token character and every pair
of adjacent token characters of topic and content (token characters as on SQLite,
writer/storage/grams.py TOKEN_RANGES: CJK, ASCII letters and digits), lowercased — for
1–2 character terms and Chinese. `grams` is NULL while an article is being written
(queued / streaming), so a draft saved every two seconds computes nothing; search
checks those few rows directly, as on SQLite (a BitmapOr of `idx_articles_grams` and
`idx_articles_status`).

Why grams for Chinese and not pg_trgm alone: pg_trgm keeps only "word" characters, and
under LC_CTYPE=C no CJK character is one (no trigram: every row is a candidate); under
C.UTF-8 or a UTF-8 locale it would work, but the grams give one behaviour everywhere and
serve 1–2 character terms, which pg_trgm cannot. tests/storage/test_search_pg.py checks
that `writer_grams` equals the Python rule (writer/storage/grams.py `tokens`). A term
the grams serve is checked in the text in a form pg_trgm cannot serve (`_pg_match`:
strpos, or ILIKE on `coalesce(content, '')`), so that the grams alone drive its query
and no row's grams array is read again (docs/performance.md, PostgreSQL).
"""
from __future__ import annotations

import contextlib
import re
from typing import Callable

from writer.storage.grams import CJK_RANGES, GRAMS_TABLE, TOKEN_RANGES, WRITING
from writer.storage.search_base import (
    COLUMNS,
    COUNT_CAP,
    Filters,
    Page,
    filter_clauses,
    is_indexed_short,
    like_pattern,
    rowid_bounds,
)

# Not deleted (m007), spelled so that idx_articles_deleted_at cannot serve it (NULL on
# nearly every row: a bitmap of the whole table), with the same row estimate as
# `deleted_at IS NULL`.
PG_LIVE = "(a.deleted_at IS NULL) IS TRUE"
GRAMS_FUNCTION = "writer_grams"


def _token_class() -> str:
    """TOKEN_RANGES as a PostgreSQL regular-expression bracket expression."""
    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return "[" + "".join(f"{char(low)}-{char(high)}" for low, high in TOKEN_RANGES) + "]+"


def _writing() -> str:
    return ", ".join(f"'{s}'" for s in WRITING)


BASELINE = [
    "CREATE INDEX idx_articles_trgm ON articles USING gin (topic gin_trgm_ops, content gin_trgm_ops)",
    "CREATE INDEX idx_articles_grams ON articles USING gin (grams) WHERE grams IS NOT NULL",
    f"""CREATE FUNCTION {GRAMS_FUNCTION}(t text) RETURNS text[]
      LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
      SELECT coalesce(array_agg(DISTINCT substr(r.run, i, n)), '{{}}')
      FROM (SELECT lower(m[1]) AS run
            FROM regexp_matches(coalesce(t, ''), '({_token_class()})', 'g') AS m) AS r,
           generate_series(1, length(r.run)) AS i, (VALUES (1), (2)) AS k(n)
      WHERE i + n - 1 <= length(r.run)
    $$""",
    f"""CREATE FUNCTION articles_grams_fill() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.status IN ({_writing()}) THEN
        NEW.grams := NULL;
      ELSIF NEW.grams IS NULL OR NEW.topic IS DISTINCT FROM OLD.topic
            OR NEW.content IS DISTINCT FROM OLD.content THEN
        NEW.grams := {GRAMS_FUNCTION}(coalesce(NEW.topic, '') || ' ' || coalesce(NEW.content, ''));
      END IF;
      RETURN NEW;
    END $$""",
    "CREATE TRIGGER articles_grams BEFORE INSERT OR UPDATE OF topic, content, status, grams "
    "ON articles FOR EACH ROW EXECUTE FUNCTION articles_grams_fill()",
]


def _caseless(term: str) -> bool:
    """Whether case changes nothing in `term` (CJK, digits, punctuation): LIKE then
    equals ILIKE and costs less (ILIKE lowers the whole text first)."""
    return term.lower() == term == term.upper()


def _pg_match(term: str, indexed: bool = True) -> tuple[str, list]:
    """`term` in the topic or the content (ILIKE's case folding; topic first: it is short).

    `indexed`: as (I)LIKE, which the pg_trgm index serves. Else (a term `articles.grams`
    serves) in a form pg_trgm cannot serve, so that the planner never ANDs its bitmap
    with the grams' one: a trigram bitmap is always rechecked, and the recheck would read
    each candidate's grams (a 4 KB array a Chinese article, ≈ 35 µs) besides its text.
    Then a caseless term is found by strpos — the same rows as LIKE '%term%', in 9 µs
    an article instead of 24 (LIKE steps through a UTF-8 text character by character)."""
    if not indexed and _caseless(term):
        return "(strpos(a.topic, ?) > 0 OR strpos(a.content, ?) > 0)", [term] * 2
    op = "LIKE" if _caseless(term) else "ILIKE"
    content = "a.content" if indexed else "coalesce(a.content, '')"  # NULL: no match either way
    return (f"(a.topic {op} ? ESCAPE '\\' OR {content} {op} ? ESCAPE '\\')", [like_pattern(term)] * 2)


def _pg_grams_terms(terms: list[str]) -> list[str]:
    """The terms `articles.grams` serves: with a CJK character, or of 1–2 characters,
    and with at least one token character."""
    return [t for t in terms if _has_token_chars(t)
            and (len(t) <= 2 or _has_token_chars(t, CJK_RANGES))]


_TOKEN_RUN = re.compile("[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                                      for low, high in TOKEN_RANGES) + "]+")


def _pg_term_grams(terms: list[str]) -> tuple[str, list[str]]:
    """SQL for the grams every match must hold (an ARRAY of parameters) and its values:
    per run of token characters its adjacent pairs (each holds its characters too), or
    the one character — fewer and rarer keys than `writer_grams(term)` gives, so the
    GIN lookup is cheaper and PostgreSQL's estimate of it sharper. Lowercased as the
    stored grams are (tests/storage/test_search_pg.py: the same rule)."""
    keys: list[str] = []
    for term in terms:
        for run in _TOKEN_RUN.findall(term.lower()):
            keys += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
    keys = list(dict.fromkeys(keys))
    return f"ARRAY[{', '.join('?' for _ in keys)}]::text[]", keys


def _pg_text_clauses(terms: list[str]) -> tuple[list[str], list]:
    """The terms as WHERE clauses on PostgreSQL (writer/storage/search_pg.py).

    A term with a CJK character or of 1–2 characters goes through `articles.grams`: all
    the term's grams must be there (one `@>` for all such terms), or the article is being
    written (grams NULL: the status index finds those few rows) and the term is in its
    text. The grams say a 1–2 token-character term exactly (`is_indexed_short`); any
    other term is checked in the text (`_pg_match`: by (I)LIKE, which the pg_trgm index
    serves for terms of 3+ characters — pg_trgm skips CJK under LC_CTYPE=C: hence the
    grams for those). The text checks come first: a row read in id order (`_pg_newest`'s
    walk) is dropped by its text (9–25 µs) before its grams are read (35 µs); the grams
    clause is exactly the BitmapOr of `idx_articles_grams` and `idx_articles_status`, so
    a bitmap read never evaluates it again on the row."""
    gram_terms = _pg_grams_terms(terms)
    exact = [t for t in gram_terms if is_indexed_short(t)]
    clauses, params = [], []
    for term in terms:
        if term not in exact:
            clause, values = _pg_match(term, indexed=term not in gram_terms)
            clauses.append(clause)
            params += values
    if gram_terms:
        writing = ", ".join("?" for _ in WRITING)
        array, keys = _pg_term_grams(gram_terms)
        clauses.append(f"(a.grams @> {array} OR a.status IN ({writing}))")
        params += [*keys, *WRITING]
        if exact:  # an article being written has no grams: its text says (status NOT NULL)
            checks = [_pg_match(t, indexed=False) for t in exact]
            clauses.append(f"(a.status NOT IN ({writing}) OR ({' AND '.join(c for c, _ in checks)}))")
            params += [*WRITING, *[v for _, values in checks for v in values]]
    return clauses, params


def _has_token_chars(term: str, ranges=TOKEN_RANGES) -> bool:
    return any(any(low <= ord(ch) <= high for low, high in ranges) for ch in term)


def _pg_column_clauses(filters: Filters, equalities: list[tuple[str, object]]) -> tuple[list[str], list]:
    """The filters as WHERE clauses on `articles a` (writer/storage/search.py
    `_column_clauses` on SQLite; the failed check read as JSON here too)."""
    clauses, params = filter_clauses(
        filters, equalities, "(a.checks::jsonb -> 'passed') IN ('false'::jsonb, '0'::jsonb)")
    return [PG_LIVE, *clauses], params


@contextlib.contextmanager
def _planner(conn, *off: str):
    """Run a read with planner methods turned off (SET LOCAL: this transaction only).
    `search` knows what PostgreSQL cannot estimate — how many articles a text term
    matches — and picks the plan itself, as it does on SQLite."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    off = (*off, "jit")  # a plan costed past an "off" method would be compiled: 50+ ms
    try:
        for name in off:
            conn.execute(f"SET LOCAL {name} = off")
        yield conn
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")
    else:
        for name in off:
            conn.execute(f"SET LOCAL {name} = on")


PG_SPAN = 256  # ids in the first range a text query reads, newest first; then 8× as many
PG_GROWTH = 8
PG_INDEX = ("enable_indexscan", "enable_seqscan")  # bitmaps of the indexes (GIN, columns, id)
PG_WALK = ("enable_bitmapscan", "enable_seqscan")  # newest first by id, row by row
PG_WALK_RATIO = 2  # a candidate read through the index costs ~2 walked rows (random reads)


def _pg_newest(store, where: str, params: list, need: int, filters: Filters,
               ranged: bool = True) -> tuple[list[int], bool]:
    """The newest `need` matches, range of ids by range of ids, each range read through
    the bitmaps of the indexes ANDed with the id range: only the candidates inside the
    range have their text read (the LIKE / ILIKE recheck). The first range (PG_SPAN
    ids) is read row by row newest first: a common term's page is there. Each next range
    is sized by the rate of matches so far (×1.5), at most PG_GROWTH times the last, so
    a rare term costs an index lookup per range and a common one reads few more texts
    than its page needs. A date range is an id range too (ids rise with created_at, as
    on SQLite): the ranges start at its end and stop at its start. (ids newest first,
    whether every match was found.)

    Not `ranged` (trigram terms only): PostgreSQL underestimates a trigram's matches, so
    it does not AND the id range into the bitmap and each range would recheck every
    candidate of the table. After the first range the walk goes on when the rate of
    matches seen says it is cheaper (a walked row costs about half a candidate read
    through the index: PG_WALK_RATIO), else one pass through the index reads the rest."""
    bounds, bound_params = rowid_bounds(filters, "id")
    top, bottom = store.conn.execute(
        "SELECT coalesce(max(id), 0), coalesce(min(id), 1) - 1 FROM articles"
        + (f" WHERE {' AND '.join(bounds)}" if bounds else ""), bound_params).fetchone()
    # Up to COUNT_CAP + 1 from a range: its candidates are all read anyway (a bitmap has
    # no order), so the count comes free when the ranges reach the bottom.
    cap = max(need, COUNT_CAP + 1)
    found, high, span = [], top, PG_SPAN
    while high > bottom and len(found) < need:
        if not ranged and high < top:  # after the first range: walk on, or one index pass
            rate = len(found) / (top - high)
            if rate and (need - len(found)) / rate < PG_WALK_RATIO * rate * (high - bottom):
                with _planner(store.conn, *PG_WALK) as conn:
                    found += [i for (i,) in conn.execute(
                        f"SELECT a.id FROM articles a WHERE {where} AND a.id > ? AND a.id <= ? "
                        "ORDER BY a.id DESC LIMIT ?", [*params, bottom, high, need - len(found)])]
                return found, len(found) < need  # short of the page: every match
            span = high - bottom
        low = max(bottom, high - span)
        # The first range row by row, newest first (a common term's page is there, and
        # the GIN bitmap of a common gram or trigram costs more than a few hundred rows);
        # the wider ones through the indexes.
        with _planner(store.conn, *(PG_WALK if high == top else PG_INDEX)) as conn:
            found += [i for (i,) in conn.execute(
                f"SELECT a.id FROM articles a WHERE {where} AND a.id > ? AND a.id <= ? "
                "ORDER BY a.id DESC LIMIT ?", [*params, low, high, cap - len(found)])]
        rate = len(found) / (top - low)
        wanted = (need - len(found)) / rate * 1.5 if rate else float("inf")
        high, span = low, int(max(PG_SPAN, min(wanted, (high - low) * PG_GROWTH)))
    return found, high <= bottom and len(found) < cap  # a full last range may hold more


def search(store, filters: Filters, terms: list[str], equalities: list[tuple[str, object]],
           limit: int, offset: int) -> Page:
    """writer/storage/search.py `search` on a PostgreSQL store (`equalities`: the equality
    filters that are set, the author as stored: its `_equalities`). Without text, one
    query (the planner's plan). With text, `_pg_newest`: PostgreSQL's estimate of a LIKE
    on long texts is blind, every checked row costs its whole text (15–150 µs), and a
    GIN bitmap has no order — so the ids are read newest first in widening ranges, each
    range's candidates from the indexes.

    Counts follow the SQLite rule (exact when the same kinds of term and filter give
    one there) and are given when known without reading more texts: every match found
    (the ranges covered every id) or 1–2 character terms only (the grams say them
    exactly: counted on `idx_articles_grams`, no text read); otherwise "N+" (SQLite
    counts a long term's matches in its FTS index; PostgreSQL would read each text)."""
    long_terms = [t for t in terms if len(t) >= 3]
    gram_terms = [t for t in terms if is_indexed_short(t)]
    like_terms = [t for t in terms if len(t) < 3 and not is_indexed_short(t)]
    clauses, params = _pg_column_clauses(filters, equalities)
    filtered = len(clauses) > 1
    text, text_params = _pg_text_clauses(list(dict.fromkeys(terms)))
    where = " AND ".join([*clauses, *text])
    all_params = [*params, *text_params]
    if long_terms or gram_terms:
        cheap_count = not filtered and not like_terms and not (long_terms and gram_terms)
    else:
        cheap_count = not like_terms
    count_sql = f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {where} LIMIT ?) AS m"
    if not text:
        rows = store.rows(f"SELECT {COLUMNS} FROM articles a WHERE {where} ORDER BY a.id DESC "
                          "LIMIT ? OFFSET ?", [*all_params, limit + 1, offset])
        has_more = len(rows) > limit
        rows = rows[:limit]
        total = offset + len(rows) if not has_more else store.conn.execute(
            count_sql, [*all_params, COUNT_CAP + 1]).fetchone()[0]
        return Page(rows, total, False, has_more, offset)

    ids, known = _pg_newest(store, where, all_params, offset + limit + 1, filters,
                            ranged=bool(_pg_grams_terms(terms)))
    page_ids = ids[offset:offset + limit + 1]
    rows = store.rows(f"SELECT {COLUMNS} FROM articles a WHERE a.id IN "
                      f"({', '.join('?' for _ in page_ids)}) ORDER BY a.id DESC",
                      page_ids) if page_ids else []
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not has_more:
        total = offset + len(rows)
    elif cheap_count and known:
        total = min(len(ids), COUNT_CAP + 1)
    elif cheap_count and not long_terms:  # 1–2 character terms only: the grams say them exactly
        array, keys = _pg_term_grams(_pg_grams_terms(terms))
        with _planner(store.conn, *PG_INDEX) as conn:  # the index, no text read
            indexed = conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM articles a WHERE {PG_LIVE} AND a.grams @> "
                f"{array} LIMIT ?) AS m", [*keys, COUNT_CAP + 1]).fetchone()[0]
        running = store.conn.execute(f"{count_sql[:-len(' LIMIT ?) AS m')]} AND a.grams IS NULL "
                                     f"AND a.status IN ({', '.join('?' for _ in WRITING)}) LIMIT ?) AS m",
                                     [*all_params, *WRITING, COUNT_CAP + 1]).fetchone()[0]
        total = min(indexed + running, COUNT_CAP + 1)
    else:
        total = None
    return Page(rows, total, bool(like_terms), has_more, offset)


def reindex(store, progress: Callable[[str, int, int], None] | None, *, batch: int) -> int:
    """writer/storage/search.py `reindex` on a PostgreSQL store: the trigram index rebuilt
    by REINDEX CONCURRENTLY (writers never wait), then `articles.grams` recomputed
    in write transactions of `batch` articles (setting it NULL makes its trigger fill
    it again; articles being written stay NULL), then ANALYZE for the planner.
    `progress` is called as on SQLite: ("idx_articles_trgm", total, total) once, then
    ("articles_grams", done, total) after each batch."""
    total = store.conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    # Outside a transaction: CONCURRENTLY cannot run in one (the connection autocommits).
    store.conn.execute("REINDEX INDEX CONCURRENTLY idx_articles_trgm")
    if progress:
        progress("idx_articles_trgm", total, total)
    last = store.conn.execute("SELECT coalesce(max(id), 0) FROM articles").fetchone()[0]
    done, after = 0, 0
    while after < last:
        with store.transaction("rebuild the search index of") as conn:
            ids = [i for (i,) in conn.execute(
                "UPDATE articles SET grams = NULL WHERE id IN (SELECT id FROM articles WHERE "
                "id > ? AND id <= ? ORDER BY id LIMIT ?) RETURNING id", [after, last, batch])]
        if not ids:
            break
        done, after = done + len(ids), max(ids)
        if progress:
            progress(GRAMS_TABLE, done, total)
    store.conn.execute("ANALYZE articles")
    return total

