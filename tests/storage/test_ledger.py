"""The ledger: every request's tokens and cost are added to its article's totals by one
function, atomically, in the transaction of the version it pays for — so requests that
end at the same time never lose each other's charge."""
import threading

import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.runs.job import Job
from writer.runs.revisions import RevisionJob
from writer.storage import versions
from writer.storage.ledger import Charge
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

PRICE = (0.15, 0.60)  # gpt-4o-mini per 1M tokens


def cost(usage) -> float:
    return (usage[0] * PRICE[0] + usage[1] * PRICE[1]) / 1e6


def test_a_revision_ending_during_a_title_request_keeps_both_charges(backend_env, fake):
    from writer.runs import titles

    fake.queue(Reply(text="# 咖啡机\n\n清晨的第一杯咖啡。\n\n## 研磨\n\n很安静。\n", usage=(100, 50)))
    job = Job(Brief(topic="咖啡机", target_words=60), load_settings(), length_control=False)
    list(job.run())
    article_id = job.article_id

    title_asked, revision_done = threading.Event(), threading.Event()

    def responder(request):
        if "different titles" in request["messages"][1]["content"]:
            title_asked.set()
            revision_done.wait(30)  # the title answer comes after the revision has ended
            return Reply(text="1. 清晨\n2. 安静\n3. 咖啡\n4. 早上\n5. 研磨\n", usage=(300, 40))
        return Reply(text="# 咖啡机\n\n短了。\n", usage=(200, 20))

    fake.responder = responder
    found: dict = {}
    asking = threading.Thread(
        target=lambda: found.setdefault("titles", titles.suggest(article_id, load_settings(), actor=ADMIN)))
    asking.start()
    assert title_asked.wait(30)
    revision = RevisionJob(article_id, load_settings(), length_control=False, preset="shorter", actor=ADMIN)
    list(revision.run())
    revision_done.set()
    asking.join(30)
    assert len(found["titles"]) == 5
    store = Store(backend_env["database"])
    article = store.get(article_id)
    assert (article["input_tokens"], article["output_tokens"]) == (100 + 200 + 300, 50 + 20 + 40)
    assert article["cost"] == pytest.approx(cost((100, 50)) + cost((200, 20)) + cost((300, 40)))
    listed = versions.listing(store, article_id)
    assert [v["number"] for v in listed] == [1, 2] and article["current_version"] == 2


def _article(store: Store) -> int:
    return store.create_article(Brief(topic="ledger"), provider="p", model="m", max_tokens=10)


def test_threads_charging_one_article_at_once_lose_nothing(database):
    path = database
    article_id = _article(Store(path))
    start = threading.Barrier(8)
    errors: list = []

    def charge_many(n: int) -> None:
        store = Store(path)  # one connection per thread, like every session and process
        try:
            start.wait(10)
            for _ in range(25):
                store.charge(article_id, Charge(10, n, 0.001, "USD", "reported"))
        except Exception as exc:  # reported below: a thread's failure is the test's
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=charge_many, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    row = Store(path).get(article_id)
    assert (row["input_tokens"], row["output_tokens"]) == (8 * 25 * 10, 25 * sum(range(1, 9)))
    assert row["cost"] == pytest.approx(8 * 25 * 0.001) and row["currency"] == "USD"


def test_one_rule_for_currencies_and_unpriced_requests(database):
    store = Store(database)

    def totals(article_id: int) -> tuple:
        row = store.get(article_id, include_deleted=True)
        return (row["input_tokens"], row["output_tokens"], row["cost"], row["currency"],
                row["usage_source"])

    first = _article(store)  # the first charge sets an empty row
    store.charge(first, Charge(100, 50, 0.5, "CNY", "reported"))
    store.charge(first, Charge(10, 5, 0.25, "CNY", "estimated"))
    assert totals(first) == (110, 55, 0.75, "CNY", "estimated")
    store.charge(first, Charge(0, 0, None, None))  # nothing spent, no price: no change
    store.charge(first, Charge(1, 1, 0.1, "CNY", "reported"))
    assert totals(first) == (111, 56, 0.85, "CNY", "estimated")  # estimated for good
    store.charge(first, Charge(1, 1, 0.1, "USD"))  # another currency: no sum is honest
    assert totals(first)[2:4] == (None, "CNY")
    store.charge(first, Charge(1, 1, 0.1, "CNY"))  # and it stays unpriced
    assert totals(first)[:4] == (113, 58, None, "CNY")
    unpriced = _article(store)
    store.charge(unpriced, Charge(100, 50, None, None))  # a model without a price
    store.charge(unpriced, Charge(10, 5, 0.25, "USD"))
    assert totals(unpriced)[:4] == (110, 55, None, "USD")
    assert store.charge(999, Charge(1, 1, 0.1, "USD")) is False  # no such article
    deleted = _article(store)
    store.delete(deleted, actor=ADMIN)  # what was spent after a delete still counts
    store.charge(deleted, Charge(7, 9, 0.01, "USD"))
    assert store.get(deleted, include_deleted=True)["output_tokens"] == 9
