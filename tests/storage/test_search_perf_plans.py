"""Every plan `search` may choose returns exactly what a plain scan returns.

The plans (writer/storage/search.py): the trigram or the grams index drives, chosen by
rarity; a short term checked by LIKE on the candidate's row; a selective column filter
checked against the ids read from its index, a common one on the row; the count of a
single index's query. Each is forced here (the caps patched) and compared, page by page
with offsets, with a brute-force Python filter over a few hundred generated articles:
mixed statuses (articles being written and deleted ones included), languages, models,
authors, dates and texts. No timings are asserted.

The comparison runs on PostgreSQL too, on the same articles, through its plans
(search_pg.py `_pg_newest`: ranges of ids newest first — one range holding every article,
or ranges of 1 or 5 ids growing 2× or 4×); the SQL of SQLite's plans is SQLite's only."""
import datetime as dt
import random

import pytest

from writer.storage import pg, search_pg
from writer.storage import search as search_module
from writer.storage.search import Filters, search
from writer.storage.store import Store

WORDS_ZH = ["量子", "计算机", "咖啡", "冷萃模式", "的", "用户体验", "营销", "转化率", "鑫", "降噪",
            "续航时间", "品牌故事"]
WORDS_EN = ["customer", "experience", "Noise-Cancelling", "keyboard", "mechanical", "AI", "5G",
            "battery", "life", "coffee", "Machine", "5%"]
STATUSES = ["completed"] * 6 + ["failed", "stopped", "truncated", "streaming", "queued"]
MODELS = [("openai", "gpt-4o-mini"), ("deepseek", "deepseek-chat"), ("qwen", "qwen-plus")]
TYPES = ["blog", "social_post", "product_description"]
AUTHORS = [None, "alice", "bob"]
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    url = None
    if request.param == "sqlite":
        store = Store(tmp_path_factory.mktemp("plans") / "w.db")
    else:
        server = request.getfixturevalue("pg_server")
        url = server.new_database()
        store = Store(url)
    rng = random.Random(22)
    rows = []
    for n in range(320):
        words = WORDS_ZH if rng.random() < 0.5 else WORDS_EN
        sep = "" if words is WORDS_ZH else " "
        provider, model = rng.choice(MODELS)
        rows.append({
            "created_at": (START + dt.timedelta(hours=7 * n)).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "topic": sep.join(rng.choices(words, k=2)),
            "content": sep.join(rng.choices(words, k=rng.randint(0, 12))),
            "status": rng.choice(STATUSES), "language": "zh" if words is WORDS_ZH else "en",
            "content_type": rng.choice(TYPES), "provider": provider, "model": model,
            "author": rng.choice(AUTHORS), "words": 1,
            "deleted_at": "2026-06-01T00:00:00.000Z" if rng.random() < 0.05 else None,
        })
    names = list(rows[0])
    with store.transaction() as conn:
        conn.executemany(f"INSERT INTO articles ({', '.join(names)}) VALUES "
                         f"({', '.join('?' for _ in names)})", [[r[n] for n in names] for r in rows])
    if url:
        store.conn.execute("ANALYZE articles")
    yield store
    store.close()
    if url:
        pg.close_pool()
        server.drop_database(url)


def truth(store, filters: Filters) -> list[int]:
    """The matches by brute force: every term a substring of the topic or the content
    (ASCII case folded, as LIKE and both indexes do), every filter equal, newest first."""
    terms = [t.lower() for t in filters.terms()]
    start, end = filters.bounds()
    found = []
    for row in store.rows("SELECT * FROM articles ORDER BY id DESC"):
        text = [(row["topic"] or "").lower(), (row["content"] or "").lower()]
        if row["deleted_at"] or not all(any(t in part for part in text) for t in terms):
            continue
        if any(getattr(filters, name) and row[name] != getattr(filters, name)
               for name in ("status", "model", "provider", "language", "content_type", "author")):
            continue
        if (start and row["created_at"] < start) or (end and row["created_at"] >= end):
            continue
        found.append(row["id"])
    return found


QUERIES = ["", "customer experience", "量子", "的 用户体验", "营销 转化率", "鑫 量子", "AI", "ai keyboard",
           "coffee 量子", "noise-cancelling", "的", "5%", "5% battery", "Machine life", "咖啡 冷萃模式",
           "鑫", "nothing-here"]
FILTERS = [{}, {"status": "failed"}, {"status": "completed"}, {"language": "zh", "content_type": "blog"},
           {"model": "qwen-plus", "status": "stopped"}, {"provider": "openai"}, {"author": "alice"},
           {"status": "streaming"}, {"since": "2026-01-20", "until": "2026-02-10"},
           {"author": "bob", "language": "en", "since": "2026-02-01"}]
# (SELECTIVE_CAP, RARITY_CAP): every filter checked on its ids / on the row; the rarity
# of a mixed query told apart (the rarer index drives) or always a tie (trigram drives).
PLANS = [(10_000, 2000), (0, 2000), (40, 3), (10_000, 0)]


@pytest.mark.parametrize("selective_cap, rarity_cap", PLANS)
def test_every_plan_equals_a_scan_page_by_page(store, monkeypatch, selective_cap, rarity_cap):
    if store.dialect != "sqlite":  # its plans: ranges of ids, newest first, of a few sizes
        monkeypatch.setattr(search_pg, "PG_SPAN", {10_000: 1000, 0: 1, 40: 5}[selective_cap])
        monkeypatch.setattr(search_pg, "PG_GROWTH", 2 if rarity_cap == 3 else 8)
    monkeypatch.setattr(search_module, "SELECTIVE_CAP", selective_cap)
    monkeypatch.setattr(search_module, "RARITY_CAP", rarity_cap)
    for query in QUERIES:
        for extra in FILTERS:
            filters = Filters(query=query, **extra)
            expected = truth(store, filters)
            got, offset = [], 0
            while True:
                page = search(store, filters, limit=7, offset=offset)
                got += [row["id"] for row in page.rows]
                assert page.has_more == (offset + 7 < len(expected)), (filters, offset)
                if page.total is not None:
                    assert page.total == len(expected), (filters, offset)
                if not page.has_more:
                    break
                offset += 7
            assert got == expected, filters
            whole = search(store, filters, limit=500)
            assert [row["id"] for row in whole.rows] == expected, filters
            assert whole.total == len(expected) and not whole.has_more


def test_plans_check_before_reading_the_row(store, monkeypatch):
    """The SQL of the plans: a selective filter as a list of ids on f.rowid (under the
    cap), on the row past it; a short term of a mixed query by LIKE when the trigram
    index drives; the count of two column filters on the covering usage index. SQLite's
    SQL (PostgreSQL's plans: tests/storage/test_search_pg.py)."""
    if store.dialect != "sqlite":
        pytest.skip("SQLite's own SQL and trace")
    statements = []
    store.conn.set_trace_callback(statements.append)
    try:
        search(store, Filters(query="customer", status="failed"))
        page_sql = next(s for s in statements if "ORDER BY f.rowid DESC" in s)
        assert "+f.rowid IN (SELECT id FROM articles WHERE status = " in page_sql
        monkeypatch.setattr(search_module, "SELECTIVE_CAP", 0)
        statements.clear()
        search(store, Filters(query="customer", status="failed"))
        page_sql = next(s for s in statements if "ORDER BY f.rowid DESC" in s)
        assert "a.status = 'failed'" in page_sql and "+f.rowid IN" not in page_sql
        monkeypatch.setattr(search_module, "RARITY_CAP", 0)  # a tie: the trigram index drives
        statements.clear()
        search(store, Filters(query="的 用户体验"))
        page_sql = next(s for s in statements if "ORDER BY f.rowid DESC" in s)
        assert "FROM articles_fts f CROSS JOIN" in page_sql and "LIKE '%的%'" in page_sql
        assert "articles_grams MATCH" not in page_sql
        statements.clear()  # two column filters, no text: counted on the covering index
        page = search(store, Filters(language="zh", content_type="blog"), limit=3)
        assert page.has_more and page.total == len(truth(store, Filters(language="zh",
                                                                        content_type="blog")))
        assert any("INDEXED BY idx_articles_usage" in s for s in statements)
    finally:
        store.conn.set_trace_callback(None)
