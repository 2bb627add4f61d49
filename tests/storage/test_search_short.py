"""1- and 2-character CJK terms through `articles_grams` (m014): the same results as a
substring scan (no false hits, none missed), kept in step with every write, combined
with long terms and filters, rebuilt by `reindex` (and `python -m writer reindex`).

The behaviour runs on both databases (`store`: the `database` fixture; on PostgreSQL the
index is `articles.grams`, writer/storage/search_pg.py); what reads SQLite's own SQL
(`grams_sql`, the trace of the chosen index, the Python twin of the triggers) takes
`sqlite_store`. tests/storage/test_search_pg.py has PostgreSQL's own."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from writer.access import Actor
from writer.storage import pg
from writer.storage.grams import TOKEN_RANGES, article_tokens, grams_sql, tokens
from writer.storage.search import Filters, is_indexed_short, reindex, search
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ROOT = Path(__file__).resolve().parents[2]

# Tricky texts: the pair adjacent only across a line break, punctuation, a space, Latin
# or a digit; the pair across topic and content; kana, hangul, an Ext-B character.
CORPUS = [
    ("量子计算", "量子计算机的发展。"),
    ("跨行", "今天的量\n子力学课"),
    ("标点", "能量，子弹飞。"),
    ("空格", "能量 子 鑫"),
    ("拉丁", "量a子 and 量1子 quantum"),
    ("主题量", "子在正文开头"),
    ("鑫鑫", "鑫"),
    ("かな", "カタカナとひらがな、한국어 텍스트"),
    ("Ext-B 𠀀", "𠀀𠀁 罕见字"),
    ("English only", "Quantum computing, no Chinese at all."),
    ("", ""),
    ("全角", "ＡＢ量子ｃ，量子。"),
]
TERMS = ["量子", "量", "子", "鑫", "鑫鑫", "量\n", "子力", "子弹", "能量", "量子计", "カタ", "한국",
         "𠀀𠀁", "𠀁", "罕见", "a子", "子a", "ab", "，子", "子在", "题量", "量子 计算", "量 鑫",
         "ＡＢ", "见字 罕", "的"]


def insert(store, row: dict) -> int:
    """An article row as given (either database); its id."""
    names = list(row)
    with store.transaction() as conn:
        return conn.execute(f"INSERT INTO articles ({', '.join(names)}) VALUES "
                            f"({', '.join('?' for _ in names)}) RETURNING id",
                            [row[name] for name in names]).fetchone()[0]


def filled(target) -> Store:
    store = Store(target)
    for i, (topic, content) in enumerate(CORPUS):
        insert(store, {"created_at": f"2026-01-{i + 1:02d}T00:00:00.000Z", "topic": topic,
                       "content": content, "status": "completed",
                       "content_type": "blog" if i % 2 else "news", "words": 1})
    return store


@pytest.fixture
def store(database):
    store = filled(database)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path):
    """SQLite only: for what reads SQLite's own SQL and FTS5 tables."""
    store = filled(tmp_path / "w.db")
    yield store
    store.close()


def in_index(store, token: str, article: int | None = None) -> int:
    """Articles (or only `article`) whose index entry holds `token`: `articles_grams`
    on SQLite, the `grams` column on PostgreSQL."""
    if store.dialect == "sqlite":
        sql, params = "SELECT count(*) FROM articles_grams WHERE articles_grams MATCH ?", [f'"{token}"']
        column = "rowid"
    else:
        sql, params = "SELECT count(*) FROM articles WHERE grams @> ARRAY[?]", [token]
        column = "id"
    if article is not None:
        sql, params = f"{sql} AND {column} = ?", [*params, article]
    return store.conn.execute(sql, params).fetchone()[0]


def forget_the_index(store) -> None:
    """What a restore or an SQL import leaves: every text index empty."""
    if store.dialect == "sqlite":
        for table in ("articles_fts", "articles_grams"):
            store.conn.execute(f"INSERT INTO {table} ({table}) VALUES ('delete-all')")
        return
    store.conn.execute("ALTER TABLE articles DISABLE TRIGGER articles_grams")
    store.conn.execute("UPDATE articles SET grams = '{}'")
    store.conn.execute("ALTER TABLE articles ENABLE TRIGGER articles_grams")


def scanned(store, query, content_type=None):
    """What a substring scan returns: the truth the index must equal."""
    terms = Filters(query=query).terms()
    rows = store.conn.execute("SELECT id, topic, content, content_type FROM articles "
                              "WHERE deleted_at IS NULL ORDER BY id DESC").fetchall()
    return [i for i, topic, content, kind in rows
            if all(t in (topic or "") or t in (content or "") for t in terms)
            and (content_type is None or kind == content_type)]


def found(store, query, **filters):
    return [r["id"] for r in search(store, Filters(query=query, **filters), limit=100).rows]


def test_short_cjk_terms_use_the_index_and_equal_a_substring_scan(store):
    for term in TERMS:
        assert found(store, term) == scanned(store, term), term
        assert found(store, term, content_type="blog") == scanned(store, term, "blog"), term
    assert not search(store, Filters(query="量子")).uses_fallback
    assert not search(store, Filters(query="鑫")).uses_fallback
    assert not search(store, Filters(query="ab")).uses_fallback  # ASCII letters too (m015)
    assert search(store, Filters(query="ＡＢ")).uses_fallback  # full-width: the scan
    assert is_indexed_short("量子") and is_indexed_short("𠀀") and is_indexed_short("量a")
    assert is_indexed_short("5G") and not is_indexed_short("5%") and not is_indexed_short("é")


def test_the_index_holds_the_tokens_of_a_scan_on_random_texts(sqlite_store):
    """The SQL that makes the tokens equals a plain reading of the rule, on random text."""
    def cjk(ch):
        return any(low <= ord(ch) <= high for low, high in TOKEN_RANGES)

    def reference(text):
        out = []
        for i, ch in enumerate(text):
            if cjk(ch):
                out.append(ch)
                if i + 1 < len(text) and cjk(text[i + 1]):
                    out.append(ch + text[i + 1])
        return " ".join(out) or None

    rng = random.Random(7)
    alphabet = "量子计算鑫的 \n，。aZ9ーカ한𠀀\u9fff\u4e00\u3040\u30fb😀"
    for n in [0, 1, 2, 63, 64, 65, 127, 128, 129, 300]:
        text = "".join(rng.choice(alphabet) for _ in range(n))
        assert sqlite_store.conn.execute(f"SELECT {grams_sql('?1')}", [text]).fetchone()[0] \
            == reference(text)
        assert tokens(text) == reference(text)  # the Python twin the fills use


def test_the_index_follows_inserts_updates_and_deletes(store):
    article = insert(store, {"created_at": "2026-02-01T00:00:00.000Z", "topic": "新",
                             "content": "鹦鹉", "status": "completed"})
    assert article in found(store, "鹦鹉")
    store.conn.execute("UPDATE articles SET content = '螺号' WHERE id = ?", [article])
    assert article not in found(store, "鹦鹉") and article in found(store, "螺号")
    store.conn.execute("UPDATE articles SET topic = '潜艇' WHERE id = ?", [article])
    assert found(store, "潜艇") == [article] and found(store, "新") == []
    assert store.delete(article, actor=ADMIN)
    assert found(store, "螺号") == []
    assert in_index(store, "螺号") == 0 and in_index(store, "潜艇") == 1
    store.conn.execute("DELETE FROM articles WHERE id = ?", [article])
    assert in_index(store, "潜艇") == 0


def test_mixed_queries_use_both_indexes_and_filters(store):
    for query in ["量子 计算机", "计算机 量子", "量 发展", "鑫 量子计算", "子 quantum", "a子 量子"]:
        assert found(store, query) == scanned(store, query), query
        assert found(store, query, content_type="news") == scanned(store, query, "news"), query
    page = search(store, Filters(query="量子 计算机"))
    assert page.rows[0]["id"] == 1 and not page.uses_fallback


def test_the_rarer_index_drives_a_mixed_query(sqlite_store):
    """A rare short term with a common long one: the grams index walks its few matches
    and the trigram index checks them, not the other way round (170 ms → 11 ms at 30,000
    articles in scripts/bench_history.py). SQLite's choice (PostgreSQL's planner chooses)."""
    store = sqlite_store
    for n in range(5):  # "量子计算" becomes common; "鑫" stays in two articles
        insert(store, {"created_at": f"2026-02-{n + 1:02d}T00:00:00.000Z",
                       "topic": f"量子计算 {n}", "content": "量子计算的应用。",
                       "status": "completed", "content_type": "blog", "words": 1})
    statements = []
    store.conn.set_trace_callback(statements.append)
    try:
        for query, driver in [("鑫 量子计算", "articles_grams"), ("量 quantum", "articles_fts")]:
            statements.clear()
            assert found(store, query) == scanned(store, query), query
            (page_sql,) = [s for s in statements if "ORDER BY f.rowid DESC" in s]
            assert f"FROM {driver} f CROSS JOIN articles a" in page_sql, query
    finally:
        store.conn.set_trace_callback(None)


def test_reindex_rebuilds_both_indexes(store):
    progress = []
    forget_the_index(store)
    assert found(store, "量子") == [] and found(store, "量子计算") == []
    assert reindex(store, lambda *p: progress.append(p), batch=5) == len(CORPUS)
    assert progress[-1] == ("articles_grams", len(CORPUS), len(CORPUS))
    for term in TERMS:
        assert found(store, term) == scanned(store, term), term
    assert reindex(store) == len(CORPUS)  # twice: the same, no duplicates
    assert found(store, "量子") == scanned(store, "量子")


def test_the_reindex_command(store, database, tmp_path):
    forget_the_index(store)
    assert found(store, "鑫") == []
    where = {"WRITER_DATABASE_URL": database} if pg.is_url(database) else {"WRITER_DB": str(database)}
    env = {**os.environ, **where, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "writer", "reindex"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "articles_grams" in result.stderr and f"{len(CORPUS)}/{len(CORPUS)}" in result.stderr
    assert found(store, "鑫") == scanned(store, "鑫") and found(store, "量子计算") == [1]


def ci_scanned(store, query):
    """A case-insensitive substring scan (ASCII folds, as LIKE and the index do)."""
    terms = [t.lower() for t in Filters(query=query).terms()]
    rows = store.conn.execute("SELECT id, topic, content FROM articles WHERE deleted_at IS NULL "
                              "ORDER BY id DESC").fetchall()
    return [i for i, topic, content in rows
            if all(t in (topic or "").lower() or t in (content or "").lower() for t in terms)]


def test_short_latin_and_digit_terms_use_the_index(store):
    """m015: "AI", "5G", "x" are served by the index, equal to a substring scan that
    ignores ASCII case (as LIKE did), inside Chinese text too ("AI营销")."""
    for i, (topic, content) in enumerate([("AI营销", "用AI写5G手机文案"), ("said", "mail again"),
                                           ("5G", "Gx 量子"), ("ai", "")]):
        insert(store, {"created_at": f"2026-03-{i + 1:02d}T00:00:00.000Z", "topic": topic,
                       "content": content, "status": "completed", "words": 1})
    for term in ["AI", "ai", "5G", "5g", "G", "x", "Gx", "I营", "qu", "AI 量子", "ai 营销", "z"]:
        assert found(store, term) == ci_scanned(store, term), term
        assert not search(store, Filters(query=term)).uses_fallback, term


def test_articles_being_written_are_found_but_not_indexed(store):
    """A draft saved every two seconds computes no tokens (m015); search still finds the
    article while it is written, and from the index once it ends."""
    article = insert(store, {"created_at": "2026-04-01T00:00:00.000Z", "topic": "草稿",
                             "content": "", "status": "streaming", "words": 0})

    def indexed(token):
        return in_index(store, token, article)

    for text in ["鹦鹉", "鹦鹉学舌，AI"]:
        store.save_draft(article, text, len(text))
        assert article in found(store, "鹦鹉")
        assert (article in found(store, "AI")) == ("AI" in text)
        assert found(store, "鹦鹉") == scanned(store, "鹦鹉")
        assert indexed("鹦鹉") == 0 and indexed("草稿") == 0
    assert found(store, "学舌 鹦鹉学舌") == [article]  # with a long term too
    store.conn.execute("UPDATE articles SET status = 'completed' WHERE id = ?", [article])
    assert indexed("鹦鹉") == 1 and indexed("ai") == 1
    assert found(store, "鹦鹉") == [article] == found(store, "AI")
    store.conn.execute("UPDATE articles SET status = 'streaming', content = '潜艇' WHERE id = ?",
                       [article])  # continued: out of the index again, still found
    assert indexed("鹦鹉") == 0 and found(store, "鹦鹉") == [] and found(store, "潜艇") == [article]
    store.conn.execute("UPDATE articles SET status = 'stopped' WHERE id = ?", [article])
    assert indexed("潜艇") == 1 and found(store, "潜艇") == [article]


def test_pages_merge_written_and_indexed_articles_in_order(store):
    ids = []
    for n in range(7):
        ids.append(insert(store, {
            "created_at": f"2026-05-{n + 1:02d}T00:00:00.000Z", "topic": f"量子 {n}",
            "content": "", "status": "streaming" if n % 3 == 1 else "completed", "words": 1}))
    expected = scanned(store, "量子")
    pages = [search(store, Filters(query="量子"), limit=3, offset=o) for o in range(0, 12, 3)]
    assert [r["id"] for p in pages for r in p.rows] == expected
    assert pages[0].total == len(expected) and pages[0].has_more


def test_the_python_fill_equals_the_triggers(sqlite_store):
    """The migration and reindex fill with `article_tokens`; the triggers with SQL."""
    from writer.storage.grams import article_grams_sql
    store = sqlite_store
    rows = store.conn.execute("SELECT topic, content FROM articles").fetchall()
    for topic, content in rows + [(None, "量子AI"), ("题", None), (None, None)]:
        sql = store.conn.execute(f"SELECT {article_grams_sql('t')} FROM (SELECT ? AS topic, "
                                 "? AS content) t", [topic, content]).fetchone()[0]
        assert sql == article_tokens(topic, content)
