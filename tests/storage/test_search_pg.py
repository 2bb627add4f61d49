"""Search on PostgreSQL only (writer/storage/search_pg.py): the grams function equals the
Python rule of writer/storage/grams.py, the trigger keeps `articles.grams` in step
(NULL while an article is being written), and the planner uses the indexes
(`idx_articles_grams`, `idx_articles_trgm`) for the SQL that `search` runs. What both
databases do alike is tested in test_search_short.py and test_search_usage.py."""
from __future__ import annotations

import random

import pytest

from writer.storage import pg, search_pg
from writer.storage.grams import tokens
from writer.storage.search import Filters, search
from writer.storage.store import Store

ALPHABET = ("量子计算鑫的 \n，。、aZ9zQ0ーカ한𠀀\u9fff\u4e00\u3040\u30fb😀ÉéÄßİK-_%'\"\\"
            "ＡＢｃ１" "AbCdEfGhXyZ")


@pytest.fixture
def store(pg_url):
    store = Store(pg_url)
    yield store
    store.close()
    pg.close_pool()


def python_grams(text: str) -> list[str]:
    """The rule of writer/storage/grams.py `tokens` (what SQLite indexes), lowercased
    and as a set: what `writer_grams` must return."""
    return sorted(set((tokens(text) or "").lower().split()))


def pg_grams(store, text) -> list[str]:
    return sorted(store.conn.execute("SELECT writer_grams(?)", [text]).fetchone()[0])


def test_the_grams_function_equals_the_python_rule_on_mixed_text(store):
    rng = random.Random(24)
    texts = ["", " ", "AI营销", "Quantum 量子计算机, 5G!", "a", "ab", "A.B", "ＡＢ量子ｃ", "𠀀𠀁 罕见字",
             "İstanbul K", "é漢字é", "量\n子", "MiXeD CaSe 中文Text123"]
    texts += ["".join(rng.choice(ALPHABET) for _ in range(n)) for n in (1, 2, 3, 17, 64, 65, 300)
              for _ in range(5)]
    for text in texts:
        assert pg_grams(store, text) == python_grams(text), repr(text)
    assert pg_grams(store, None) == []
    assert pg_grams(store, "AI营销") == sorted(["a", "ai", "i", "i营", "营", "营销", "销"])


def insert(store, **row) -> int:
    names = list(row)
    with store.transaction() as conn:
        return conn.execute(f"INSERT INTO articles ({', '.join(names)}) VALUES "
                            f"({', '.join('?' for _ in names)}) RETURNING id",
                            [row[name] for name in names]).fetchone()[0]


def stored_grams(store, article: int):
    value = store.conn.execute("SELECT grams FROM articles WHERE id = ?", [article]).fetchone()[0]
    return None if value is None else sorted(value)


def test_the_trigger_fills_grams_except_while_written(store):
    article = insert(store, created_at="2026-01-01T00:00:00.000Z", topic="AI营销", content="量子 Go",
                     status="completed")
    assert stored_grams(store, article) == python_grams("AI营销 量子 Go")
    store.conn.execute("UPDATE articles SET content = '鹦鹉' WHERE id = ?", [article])
    assert stored_grams(store, article) == python_grams("AI营销 鹦鹉")
    store.conn.execute("UPDATE articles SET status = 'streaming', content = '草稿' WHERE id = ?",
                       [article])
    assert stored_grams(store, article) is None  # a draft saved every 2 s computes nothing
    store.save_draft(article, "草稿二", 3)
    assert stored_grams(store, article) is None
    store.conn.execute("UPDATE articles SET status = 'stopped' WHERE id = ?", [article])
    assert stored_grams(store, article) == python_grams("AI营销 草稿二")
    queued = insert(store, created_at="2026-01-02T00:00:00.000Z", topic="排队", status="queued")
    assert stored_grams(store, queued) is None
    assert [r["id"] for r in search(store, Filters(query="排队")).rows] == [queued]


def test_every_form_of_text_check_finds_what_ilike_finds(store):
    """The text checks of search_pg.py `_pg_match` — (I)LIKE for a term the trigram index
    serves; strpos for a caseless term the grams serve (CJK), `coalesce(content, '')
    ILIKE` for a cased one — find exactly ILIKE's rows, whatever the case of the term and
    of the text (topic or content), non-ASCII letters, LIKE's own characters, a NULL
    content and an article being written (no grams: its text is checked) included."""
    texts = [("Customer stories", "nothing here"), ("plain", "Our CUSTOMER Experience team"),
             ("plain", "a customer experience, lowercase"), ("CUSTOMER", "cUsToMeR eXpErIeNcE"),
             ("plain", "Éclair and STRASSE"), ("plain", "éclair and straße"), ("plain", "50%_off a\\b"),
             ("AI营销 plan", None), ("plain", "ai营销 and 用户体验"), ("用户体验报告", "量子 50%_量子"),
             ("Nothing", "unrelated words only")]
    ids = [insert(store, created_at=f"2026-01-{n + 1:02d}T00:00:00.000Z", topic=topic, content=content,
                  status="completed") for n, (topic, content) in enumerate(texts)]
    ids.append(insert(store, created_at="2026-02-01T00:00:00.000Z", topic="draft", status="streaming",
                      content="Ai营销 量子 用户体验 customer"))  # being written: grams NULL
    for term in ("customer", "CUSTOMER", "Customer", "customer experience", "CUSTOMER EXPERIENCE",
                 "éclair", "Éclair", "ÉCLAIR", "straße", "STRASSE", "50%_", "A\\B", "off A",
                 "AI营销", "ai营销", "用户体验", "量子", "量", "50%_量子", "ai", "I营"):
        found = [r["id"] for r in search(store, Filters(query=f'"{term}"')).rows]
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        expected = [i for (i,) in store.conn.execute(
            "SELECT id FROM articles WHERE topic ILIKE ? OR content ILIKE ? ORDER BY id DESC",
            [pattern, pattern])]
        assert found == expected and found, term
    for term in ("customer", "CUSTOMER", "cUSTOMEr"):  # ASCII folds in every locale
        assert sorted(r["id"] for r in search(store, Filters(query=term)).rows) == [*ids[:4], ids[-1]]
    statements = " ".join(sql for sql, _ in traced_sql(store, Filters(query="用户体验 AI营销")))
    assert "strpos(a.content, ?)" in statements and "coalesce(a.content, '') ILIKE" in statements
    assert "a.content LIKE" not in statements and "a.content ILIKE" not in statements  # no trigram bitmap


def traced_sql(store, filters: Filters) -> list[tuple[str, list]]:
    """The statements `search` runs for `filters`, with their parameters."""
    statements, execute = [], store.conn.execute

    def traced(sql, params=()):
        statements.append((sql, list(params)))
        return execute(sql, params)
    store.conn.execute = traced
    try:
        search(store, filters)
    finally:
        del store.conn.execute
    return statements


def without_range(sql: str, params: list) -> tuple[str, list]:
    """A range statement of `_pg_newest` over every id: at 2,000 articles the planner
    reads a range's rows whole (cheaper than a GIN lookup); at 100,000 it ANDs the
    range with the term's index (docs/performance.md, bench_history.py --plans)."""
    assert RANGE in sql and params[-3] < params[-2]
    return sql.replace(" " + RANGE, ""), [*params[:-3], params[-1]]


def plan(store, sql: str, params, *, only_bitmaps: bool = False) -> str:
    """EXPLAIN of one statement; `only_bitmaps` leaves the planner no plain scan (what
    each clause can use, whatever the table's size)."""
    with store.conn.write():  # a transaction, for SET LOCAL
        if only_bitmaps:
            store.conn.execute("SET LOCAL enable_seqscan = off")
            store.conn.execute("SET LOCAL enable_indexscan = off")
        return "\n".join(r[0] for r in store.conn.execute("EXPLAIN " + sql, params))


@pytest.fixture
def many(store):
    """2,000 ordinary articles and a few rare ones, analysed."""
    rows = [(f"2026-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}.000Z", f"Weekly notes {n}",
             f"Plain English text about desks and chairs, number {n}.", "completed")
            for n in range(2000)]
    with store.transaction() as conn:
        conn.executemany("INSERT INTO articles (created_at, topic, content, status) VALUES (?, ?, ?, ?)",
                         rows)
    rare = [insert(store, created_at="2026-02-01T00:00:00.000Z", topic="量子计算", status="completed",
                   content="Quantum keyboards 量子 鑫"),
            insert(store, created_at="2026-02-02T00:00:00.000Z", topic="草稿 量子", status="streaming",
                   content="still being written")]
    store.conn.execute("ANALYZE articles")
    return store, rare


RANGE = "AND a.id > ? AND a.id <= ?"  # search_pg.py `_pg_newest`: one range of ids


@pytest.mark.parametrize("query, index", [("量子", "idx_articles_grams"), ("鑫", "idx_articles_grams"),
                                          ("量子计算", "idx_articles_grams"),
                                          ("keyboards", "idx_articles_trgm"),
                                          ("QUANTUM keyboards", "idx_articles_trgm")])
def test_the_planner_uses_the_search_indexes(many, query, index, monkeypatch):
    """After the first range (read row by row), the ranges are read through the bitmap
    of the term's index: only its candidates have their text read."""
    store, rare = many
    monkeypatch.setattr(search_pg, "PG_SPAN", 1)  # then every other id, through the indexes
    monkeypatch.setattr(search_pg, "PG_GROWTH", 100_000)
    found = [r["id"] for r in search(store, Filters(query=query)).rows]
    assert found == ([rare[1], rare[0]] if query == "量子" else [rare[0]])
    *_, (range_sql, params) = [(s, p) for s, p in traced_sql(store, Filters(query=query))
                               if RANGE in s]  # the last: through the indexes
    shown = plan(store, *without_range(range_sql, params), only_bitmaps=True)
    assert index in shown


def test_a_common_term_reads_only_the_newest_range(many):
    """A term in every article fills its page from the first range (PG_SPAN ids); a rare
    one widens the range until every id is covered, and then its count is exact."""
    store, rare = many
    statements = traced_sql(store, Filters(query="desks"))
    ranges = [p for s, p in statements if RANGE in s]
    assert len(ranges) == 1 and ranges[0][-3:-1] == [rare[1] - search_pg.PG_SPAN, rare[1]]
    page = search(store, Filters(query="desks"))
    assert [r["id"] for r in page.rows] == list(range(2000, 1950, -1)) and page.total is None
    statements = traced_sql(store, Filters(query="keyboards"))
    assert len([s for s, _ in statements if RANGE in s]) > 1
    assert search(store, Filters(query="desks chairs 1999")).total == 1


def test_articles_being_written_are_found_through_the_status_index(many, monkeypatch):
    store, rare = many
    monkeypatch.setattr(search_pg, "PG_SPAN", 1)  # then every other id, through the indexes
    monkeypatch.setattr(search_pg, "PG_GROWTH", 100_000)
    *_, (range_sql, params) = [(s, p) for s, p in traced_sql(store, Filters(query="量子"))
                               if RANGE in s]
    shown = plan(store, *without_range(range_sql, params), only_bitmaps=True)
    assert "idx_articles_grams" in shown and "idx_articles_status" in shown and "BitmapOr" in shown
