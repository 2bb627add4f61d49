"""Authors in storage (m016): every row records who made it; the writes a person may not
make are refused where they are made (writer/access.py), whatever a page showed; reads
by author use their indexes; a person's own budget."""
import datetime as dt

import pytest
import sqlite_utils

from writer.access import AccessDenied, Actor
from writer.brands import BrandKit
from writer.brief import Brief
from writer.io.sheet import Row
from writer.storage import batches, brands, checks, migrations, usage, versions
from writer.storage.migrations import LEGACY_AUTHOR, MIGRATIONS, migrate
from writer.storage.search import Filters, distinct, search
from writer.storage.store import Store
from writer.storage.usage import BudgetExceeded

ADMIN = Actor("boss", "admin")
ALICE = Actor("alice", "writer")
BOB = Actor("bob", "writer")
TODAY = dt.date.today()


class _Provider:
    name, model = "openai", "gpt-4o-mini"


class _Settings:
    prices_file = None
    timezone = None


@pytest.fixture
def store(database):
    s = Store(database)
    yield s
    s.close()


def article(store: Store, author: str | None, topic: str = "咖啡机", cost: float = 0.01,
            currency: str = "USD") -> int:
    article_id = store.create_article(Brief(topic=topic, target_words=100), provider="openai",
                                      model="gpt-4o-mini", max_tokens=500, author=author)
    store.update(article_id, status="completed", content=f"{topic}的正文。", words=8,
                 input_tokens=100, output_tokens=50, cost=cost, currency=currency)
    versions.open_version(store, article_id, kind="draft", status="completed",
                          content=f"{topic}的正文。", words=8, actor=Actor(author or "x", "admin"))
    return article_id


# -- who made it ---------------------------------------------------------------------
def test_every_kind_of_row_records_its_author(store):
    article_id = article(store, "alice")
    assert store.get(article_id)["author"] == "alice" == store.author_of(article_id)
    number = versions.open_version(store, article_id, kind="revision", status="completed",
                                   content="新的正文。", words=5, actor=ADMIN)
    # the admin's revision of alice's article: alice's article, the admin's version
    assert versions.get(store, number=number, article_id=article_id)["author"] == "boss"
    assert store.get(article_id)["author"] == "alice"
    batch_id = batches.create(store, file_name="a.csv", settings={}, columns=["topic"],
                              rows=[Row(1, {"topic": "x"}, Brief(topic="x"))], author="bob")
    assert batches.get(store, batch_id)["author"] == "bob"
    check_id = checks.save(store, {"provider": "openai", "model": "m"}, author="bob")
    assert checks.history(store)[-1]["author"] == "bob" and check_id
    brands.save(store, BrandKit(name="MiniBrew"), actor=ALICE)
    assert brands.authors(store) == {"MiniBrew": "alice"}


def test_an_author_is_spelled_as_their_account(store):
    with store.transaction() as conn:
        conn.execute("INSERT INTO users (name, role, created_at) VALUES ('Alice', 'writer', 'x')")
    article_id = article(store, "ALICE")  # e.g. an OIDC e-mail in another case
    assert store.get(article_id)["author"] == "Alice"
    assert [r["id"] for r in search(store, Filters(author="alice")).rows] == [article_id]


def test_rows_from_before_sign_in_get_the_placeholder_and_only_admins_change_them(tmp_path,
                                                                                  monkeypatch):
    """SQLite: upgrading a database from before m016 (PostgreSQL's start at the baseline)."""
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    monkeypatch.setattr(migrations, "MIGRATIONS", [f for f in MIGRATIONS if f.__name__ < "m016"])
    migrate(db)
    db["articles"].insert({"id": 1, "created_at": "2026-01-01T00:00:00.000Z", "topic": "旧文章",
                           "content": "旧的正文。", "status": "completed", "cost": 0.5,
                           "currency": "USD"})
    db["brands"].insert({"name": "Old", "created_at": "x", "updated_at": "x", "kit": "{}"})
    db.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    store = Store(path)  # applies m016
    assert store.get(1)["author"] == LEGACY_AUTHOR == "(before sign-in)"
    assert brands.authors(store) == {"Old": LEGACY_AUTHOR}
    with pytest.raises(AccessDenied):
        store.delete(1, actor=ALICE)
    with pytest.raises(AccessDenied):  # not even by a writer named like the placeholder
        store.delete(1, actor=Actor(LEGACY_AUTHOR.upper(), "writer"))
    with pytest.raises(AccessDenied):
        brands.save(store, BrandKit(name="Old", voice="新"), actor=ALICE)
    assert store.get(1) is not None
    assert store.delete(1, actor=ADMIN)
    assert brands.delete(store, "Old", actor=ADMIN)
    store.close()


# -- prices and budgets: admins only -------------------------------------------------
def test_a_writer_cannot_set_or_delete_a_price_or_a_budget_and_nothing_changes(store):
    store.set_price(provider="*", model="m1", input_per_1m=1, output_per_1m=2, currency="USD",
                    actor=ADMIN)
    store.set_budget("USD", 10, hard_cap=True, actor=ADMIN)
    before = (store.price_edits(), store.budgets(), store.hard_caps())
    refused = [
        lambda: store.set_price(provider="*", model="m1", input_per_1m=0, output_per_1m=0,
                                currency="USD", actor=ALICE),
        lambda: store.set_price(provider="*", model="m2", input_per_1m=0, output_per_1m=0,
                                currency="USD", actor=ALICE),
        lambda: store.delete_price(provider="*", model="m1", actor=ALICE),
        lambda: store.set_budget("USD", 1_000_000, actor=ALICE),
        lambda: store.set_budget("USD", None, actor=ALICE),
        lambda: store.set_person_budget("alice", "USD", 1_000_000, actor=ALICE),
        lambda: store.set_price(provider="*", model="m1", input_per_1m=0, output_per_1m=0,
                                currency="USD", actor=None),
    ]
    for change in refused:
        with pytest.raises(AccessDenied) as caught:
            change()
        assert caught.value.key == "user_errors.access_denied"
    assert (store.price_edits(), store.budgets(), store.hard_caps()) == before
    assert store.person_budgets() == []
    assert store.price_edits()[0]["input_per_1m"] == 1  # the price stays
    store.delete_price(provider="*", model="m1", actor=ADMIN)
    store.set_budget("USD", None, actor=ADMIN)
    assert store.price_edits() == [] and store.budgets() == {}


@pytest.mark.parametrize("name", ["set_price", "delete_price", "set_budget", "set_person_budget"])
def test_the_actor_of_a_price_or_budget_change_cannot_be_left_out(store, name):
    with pytest.raises(TypeError, match="actor"):
        {"set_price": lambda: store.set_price(provider="*", model="m", input_per_1m=1,
                                              output_per_1m=1, currency="USD"),
         "delete_price": lambda: store.delete_price(provider="*", model="m"),
         "set_budget": lambda: store.set_budget("USD", 5),
         "set_person_budget": lambda: store.set_person_budget("alice", "USD", 5)}[name]()


# -- articles, versions, brand kits, checks: their author's or an admin's --------------
def test_a_writer_cannot_delete_or_change_another_s_article_but_their_own_and_an_admin_can(store):
    alices, bobs = article(store, "alice"), article(store, "bob")
    with pytest.raises(AccessDenied):
        store.delete(alices, actor=BOB)
    with pytest.raises(AccessDenied):
        versions.choose(store, alices, 1, actor=BOB)
    with pytest.raises(AccessDenied):
        versions.open_version(store, alices, kind="revision", status="completed",
                              content="篡改", words=2, actor=BOB)
    assert store.get(alices)["content"] == "咖啡机的正文。"
    assert [v["number"] for v in versions.listing(store, alices)] == [1]
    assert store.delete(bobs, actor=BOB)
    versions.choose(store, alices, 1, actor=Actor("ALICE", "writer"))  # names ignore case
    assert store.delete(alices, actor=ADMIN)
    with pytest.raises(TypeError, match="actor"):
        store.delete(alices)  # a forgotten actor fails loudly


def test_brand_kits_anyone_uses_but_only_their_author_or_an_admin_changes(store):
    kit_id = brands.save(store, BrandKit(name="MiniBrew", banned_words=("最",)), actor=ALICE)
    with pytest.raises(AccessDenied):  # over it by name (an import with --replace)
        brands.save(store, BrandKit(name="MiniBrew", voice="bob's"), actor=BOB)
    with pytest.raises(AccessDenied):  # over it by id (the edit form)
        brands.save(store, BrandKit(name="Renamed", id=kit_id), actor=BOB)
    with pytest.raises(AccessDenied):
        brands.delete(store, "MiniBrew", actor=BOB)
    assert brands.get(store, "MiniBrew").banned_words == ("最",)
    assert brands.save(store, BrandKit(name="BobBrew"), actor=BOB) != kit_id  # a kit of his own
    assert brands.save(store, BrandKit(name="MiniBrew", voice="v2"), actor=ALICE) == kit_id
    assert brands.save(store, BrandKit(name="MiniBrew", voice="v3"), actor=ADMIN) == kit_id
    assert brands.authors(store)["MiniBrew"] == "alice"  # an admin's edit keeps its author
    assert brands.delete(store, "MiniBrew", actor=ADMIN)


def test_a_check_is_deleted_only_by_who_ran_it_or_an_admin(store):
    mine = checks.save(store, {"provider": "openai"}, author="alice")
    with pytest.raises(AccessDenied):
        checks.delete(store, mine, actor=BOB)
    assert checks.delete(store, mine, actor=ALICE)
    theirs = checks.save(store, {"provider": "openai"}, author="bob")
    assert checks.delete(store, theirs, actor=ADMIN)
    assert not checks.delete(store, theirs, actor=ADMIN) and checks.history(store) == []


# -- reads by author -----------------------------------------------------------------
def test_the_author_filter_lists_only_that_person_s_articles(store):
    ids = {name: [article(store, name, topic=f"{name} 文章 {n}") for n in range(3)]
           for name in ("alice", "bob")}
    assert [r["id"] for r in search(store, Filters(author="alice")).rows] == ids["alice"][::-1]
    page = search(store, Filters(author="bob", query="文章"))
    assert [r["id"] for r in page.rows] == ids["bob"][::-1]
    assert {r["author"] for r in page.rows} == {"bob"}
    assert search(store, Filters(author="carol")).rows == []
    assert Filters(author="bob").narrowed
    assert distinct(store, "author") == ["alice", "bob"]
    store.delete(ids["bob"][0], actor=ADMIN)
    assert search(store, Filters(author="bob")).total == 2


def test_an_author_filter_on_a_big_table_reads_its_index_not_the_table(tmp_path):
    """SQLite: its query plans (PostgreSQL's: tests/storage/test_search_perf_plans.py)."""
    store = Store(tmp_path / "writer.db")
    with store.transaction() as conn:
        conn.executemany("INSERT INTO articles (created_at, topic, status, author, content) "
                         "VALUES ('2026-01-01T00:00:00.000Z', 't', 'completed', ?, '')",
                         [(f"w{n % 50}",) for n in range(5000)])
        conn.execute("ANALYZE")
    sql = ("SELECT a.id FROM articles a WHERE a.deleted_at IS NULL AND a.author = ? "
           "AND a.status = ? ORDER BY a.id DESC LIMIT 51")
    plan = " ".join(r[3] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}", ["w7", "x"]))
    assert "idx_articles_author" in plan and "SCAN" not in plan, plan
    usage_sql = ("SELECT currency, sum(cost) FROM articles WHERE author = ? AND created_at >= ? "
                 "GROUP BY 1")
    plan = " ".join(r[3] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {usage_sql}",
                                                     ["w7", "2026"]))
    assert "COVERING INDEX idx_articles_usage_author" in plan, plan
    assert len(search(store, Filters(author="w7"), limit=200).rows) == 100


def test_usage_by_author_and_of_one_author_sums_each_person_s_spend(store):
    for name, cost in [("alice", 0.01), ("alice", 0.02), ("bob", 0.5)]:
        article(store, name, cost=cost)
    article(store, "alice", cost=3.0, currency="CNY")
    rows = {(r["group"], r["currency"]): r for r in usage.by_group(store, "author")}
    assert rows[("alice", "USD")]["cost"] == pytest.approx(0.03)
    assert rows[("alice", "USD")]["articles"] == 2 and rows[("bob", "USD")]["cost"] == 0.5
    assert rows[("alice", "CNY")]["cost"] == 3.0  # never summed across currencies
    mine = usage.totals(store, author="alice")
    assert mine["articles"] == 3 and mine["cost"] == {"USD": pytest.approx(0.03), "CNY": 3.0}
    assert usage.totals(store)["cost"]["USD"] == pytest.approx(0.53)
    assert {r["author"] for r in usage.articles(store, author="bob")} == {"bob"}
    assert usage.month_spend(store, author="bob") == {"USD": 0.5}
    assert [r["group"] for r in usage.by_group(store, "type", author="bob")] == ["blog"]


# -- a person's own budget -----------------------------------------------------------
def test_person_budgets_are_set_listed_and_removed_by_admins(store):
    store.set_person_budget("alice", "USD", 5, hard_cap=True, actor=ADMIN)
    store.set_person_budget("bob", "USD", 7, actor=ADMIN)
    assert [(r["author"], r["monthly_amount"], r["hard_cap"]) for r in store.person_budgets()] \
        == [("alice", 5.0, True), ("bob", 7.0, False)]
    assert store.person_budget("ALICE", "USD")["monthly_amount"] == 5.0
    assert store.person_budget("alice", "CNY") is None
    store.set_person_budget("alice", "USD", None, actor=ADMIN)
    assert [r["author"] for r in store.person_budgets()] == ["bob"]


def test_a_person_s_hard_cap_refuses_them_and_not_the_others(store, monkeypatch):
    article(store, "alice", cost=0.02)
    article(store, "bob", cost=0.001)
    monkeypatch.setattr(usage, "budget_status_for",
                        lambda s, settings, provider, tz=None, author=None:
                        usage.budget_status(s, "USD", tz=tz, author=author))
    store.set_person_budget("alice", "USD", 0.01, hard_cap=False, actor=ADMIN)
    usage.require_within_budget(store, _Settings(), _Provider(), actor=ALICE)  # not a cap
    status = usage.budget_status(store, "USD", author="alice")
    assert status["level"] == "over" and status["spent"] == 0.02 and not status["hard_cap"]
    store.set_person_budget("alice", "USD", 0.01, hard_cap=True, actor=ADMIN)
    with pytest.raises(BudgetExceeded) as caught:
        usage.require_within_budget(store, _Settings(), _Provider(), actor=ALICE)
    assert caught.value.key == "user_errors.person_budget_exceeded"
    assert caught.value.values["name"] == "alice"
    usage.require_within_budget(store, _Settings(), _Provider(), actor=BOB)  # not bob's cap
    usage.require_within_budget(store, _Settings(), _Provider())  # nor the team's
    assert usage.budget_status(store, "USD") is None  # the team has no budget
    burn = usage.burn_down(store, "USD", author="alice")
    assert burn[TODAY.day - 1]["spent"] == 0.02 and burn[-1]["even_pace"] == 0.01


def test_batches_of_one_author(store):
    for name in ("alice", "bob", "alice"):
        batches.create(store, file_name=f"{name}.csv", settings={}, columns=["topic"],
                       rows=[Row(1, {"topic": "x"}, Brief(topic="x"))], author=name)
    assert [b["file_name"] for b in batches.listing(store, author="alice")] == ["alice.csv"] * 2
    assert len(batches.listing(store)) == 3
