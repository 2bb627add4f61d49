"""The character/bigram index of 1- and 2-character search terms (`articles_grams`).

FTS5's trigram index cannot serve a term shorter than three characters, and most
Chinese words are two. `articles_grams` (FTS5, contentless, detail=none) holds, for an
article's topic and content, every *token character* and every pair of adjacent token
characters as one token: a term of 1–2 token characters is in the text exactly when
its token is in the index (no false hits, none missed). The unicode61 tokenizer folds
ASCII case, as LIKE does.

- m014 (`v1`): token characters were the CJK ranges only.
- m015 (`v2`): CJK plus ASCII letters and digits ("AI", "5G", "量子"), and only articles
  that are not being written (status neither queued nor streaming) are indexed: a draft
  saved every two seconds no longer recomputes the tokens of the whole text twice
  (old and new). Search checks the few running articles directly
  (writer/storage/search.py), so they are found all the same.

The tokens are computed in plain SQL (no function to register), so the triggers work on
any connection, the sqlite3 shell included. The fills (a migration, `reindex`) use
`tokens()`, a Python twin of the same rule (tests/storage/test_search_short.py checks
they agree), registered on the filling connection only: about 10× faster.
Frozen per migration: a change of ranges or tokens is a new migration (and a reindex).
"""
from __future__ import annotations

import re
import sqlite3

CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x3041, 0x3096), (0x30A1, 0x30FA),
              (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0x20000, 0x2FFFF))
ASCII_ALNUM = ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A))
TOKEN_RANGES = ASCII_ALNUM + CJK_RANGES  # m015
GRAMS_TABLE = "articles_grams"
WRITING = ("queued", "streaming")  # writer/kinds.py ACTIVE: not in the index (m015)
PY_FUNCTION = "writer_article_grams"  # the Python twin, on a filling connection only


def _in_ranges_sql(code: str, ranges) -> str:
    either = " OR ".join(f"{code} BETWEEN {low} AND {high}" for low, high in ranges)
    return f"({code} >= {min(low for low, _ in ranges)} AND ({either}))"


def _series(count: str) -> str:
    """0 .. count-1 as json_each(...).key (no recursive CTE: triggers cannot use one)."""
    return f"json_each('[' || substr(replace(hex(zeroblob({count})), '00', ',0'), 2) || ']')"


def grams_sql(text: str, width: int = 64, ranges=TOKEN_RANGES) -> str:
    """SQL for the tokens of `text` (an expression): each token character, followed by
    it and the next character when that one is a token character too; NULL when there
    are none. The text is cut into pieces of `width` (+1) characters first: substr()
    walks a string from its start, so cutting it keeps the work linear."""
    pieces = (f"SELECT substr({text}, o.key * {width} + 1, {width + 1}) AS s "
              f"FROM {_series(f'({width - 1} + length({text})) / {width}')} o LIMIT -1")
    pairs = (f"SELECT substr(k.s, i.key + 1, 2) AS p FROM ({pieces}) k, "
             f"{_series(f'min({width}, length(k.s))')} i LIMIT -1")
    return ("(SELECT group_concat(CASE WHEN " + _in_ranges_sql("u2", ranges)
            + " THEN substr(p, 1, 1) || ' ' || p ELSE substr(p, 1, 1) END, ' ') "
            f"FROM (SELECT p, unicode(p) AS u1, unicode(substr(p, 2)) AS u2 FROM ({pairs}) LIMIT -1) "
            f"WHERE {_in_ranges_sql('u1', ranges)})")


def article_grams_sql(row: str, ranges=TOKEN_RANGES) -> str:
    """The tokens of an article row (`new`, `old`, or a table alias): topic, then content."""
    return (f"coalesce({grams_sql(f'{row}.topic', ranges=ranges)}, '') || ' ' || "
            f"coalesce({grams_sql(f'{row}.content', ranges=ranges)}, '')")


_RUN = re.compile("[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                                 for low, high in TOKEN_RANGES) + "]+")


def tokens(text: str | None) -> str | None:
    """`grams_sql` in Python (the same string, token for token): per run of token
    characters, each character followed by it and the next one."""
    if not text:
        return None
    out: list[str] = []
    for match in _RUN.finditer(text):
        run = match.group()
        tokens_of_run: list[str] = [""] * (2 * len(run) - 1)
        tokens_of_run[0::2] = run
        tokens_of_run[1::2] = [run[i:i + 2] for i in range(len(run) - 1)]
        out += tokens_of_run
    return " ".join(out) or None


def article_tokens(topic: str | None, content: str | None) -> str:
    """`article_grams_sql` in Python."""
    return f"{tokens(topic) or ''} {tokens(content) or ''}"


def register(conn: sqlite3.Connection) -> str:
    """Put the Python twin on `conn`; returns the SQL that calls it for alias `a`."""
    conn.create_function(PY_FUNCTION, 2, article_tokens, deterministic=True)
    return f"{PY_FUNCTION}(a.topic, a.content)"


def indexed_sql(row: str) -> str:
    """Whether a row's text is in the index (m015): it is not being written."""
    return f"coalesce({row}.status, '') NOT IN ({', '.join(repr(s) for s in WRITING)})"


def create_v2(conn: sqlite3.Connection) -> None:
    """m015: the table and its triggers (token characters: TOKEN_RANGES), filled from the
    articles not being written."""
    conn.execute(f"CREATE VIRTUAL TABLE [{GRAMS_TABLE}] USING fts5(grams, content='', "
                 "detail='none', columnsize=0, tokenize='unicode61 remove_diacritics 0')")
    conn.execute(f"""
        CREATE TRIGGER articles_grams_ai AFTER INSERT ON articles WHEN {indexed_sql('new')} BEGIN
          INSERT INTO {GRAMS_TABLE} (rowid, grams) VALUES (new.id, {article_grams_sql('new')});
        END""")
    conn.execute(f"""
        CREATE TRIGGER articles_grams_ad AFTER DELETE ON articles WHEN {indexed_sql('old')} BEGIN
          INSERT INTO {GRAMS_TABLE} ({GRAMS_TABLE}, rowid, grams)
            VALUES ('delete', old.id, {article_grams_sql('old')});
        END""")
    # Fires only when the indexed text changes: a draft save (streaming → streaming)
    # or a status or token update of a finished article costs nothing here.
    conn.execute(f"""
        CREATE TRIGGER articles_grams_au AFTER UPDATE OF topic, content, status ON articles
        WHEN ({indexed_sql('old')} OR {indexed_sql('new')}) AND (
          old.topic IS NOT new.topic OR old.content IS NOT new.content
          OR ({indexed_sql('old')}) IS NOT ({indexed_sql('new')})) BEGIN
          INSERT INTO {GRAMS_TABLE} ({GRAMS_TABLE}, rowid, grams)
            SELECT 'delete', old.id, {article_grams_sql('old')} WHERE {indexed_sql('old')};
          INSERT INTO {GRAMS_TABLE} (rowid, grams)
            SELECT new.id, {article_grams_sql('new')} WHERE {indexed_sql('new')};
        END""")
    fill = register(conn)
    conn.execute(f"INSERT INTO {GRAMS_TABLE} (rowid, grams) SELECT a.id, {fill} FROM articles a "
                 f"WHERE {indexed_sql('a')} ORDER BY a.id")
