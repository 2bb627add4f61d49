"""A monthly budget as a hard cap (issue 21): past it, an article, a batch (at its start
and before each row) and a provider check are refused before any request, with the
figures; without the cap nothing changes (the pages ask first, as before)."""
from __future__ import annotations

import pytest

from fake_openai import Reply
from test_batch import new_batch
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.kinds import BatchStatus, Status
from writer.providers.choice import choose_provider
from writer.runs import batch
from writer.runs import check as checks
from writer.runs.job import Job
from writer.storage.store import Store, utc_now
from writer.storage.usage import BudgetExceeded, require_within_budget

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

COSTLY = (1_000_000, 0)  # gpt-4o-mini: 0.15 USD a request


def spend(store: Store, cost: float, currency: str = "USD") -> None:
    store.articles.insert({"created_at": utc_now(), "topic": "t", "content": "x",
                           "status": "completed", "words": 1, "provider": "p",
                           "model": "gpt-4o-mini", "content_type": "blog", "input_tokens": 1,
                           "output_tokens": 1, "cost": cost, "currency": currency,
                           "usage_source": "reported", "target_words": 300})


def test_the_check_refuses_only_a_hard_cap_that_is_reached(env, store):
    settings = load_settings()
    provider = choose_provider(settings)
    spend(store, 0.02)
    store.set_budget("USD", 0.01, actor=ADMIN)  # over, but not a cap: asked on the page, never refused
    require_within_budget(store, settings, provider)
    store.set_budget("CNY", 0.01, hard_cap=True, actor=ADMIN)  # a cap in another currency
    spend(store, 1.0, "CNY")
    require_within_budget(store, settings, provider)
    store.set_budget("USD", 0.03, hard_cap=True, actor=ADMIN)  # a cap not reached yet
    require_within_budget(store, settings, provider)
    store.set_budget("USD", 0.02, hard_cap=True, actor=ADMIN)  # reached: spent == budget
    with pytest.raises(BudgetExceeded) as refused:
        require_within_budget(store, settings, provider)
    assert refused.value.exit_code == 2
    assert refused.value.values == {"spent": "0.02", "budget": "0.02", "currency": "USD"}
    assert "0.02 spent of 0.02 USD" in str(refused.value)
    local = choose_provider(settings, "local")  # free: never refused
    require_within_budget(store, settings, local)


def test_an_article_and_a_provider_check_are_refused_before_any_request(env, fake, store):
    settings = load_settings()
    spend(store, 0.02)
    store.set_budget("USD", 0.01, hard_cap=True, actor=ADMIN)
    with pytest.raises(BudgetExceeded):
        Job(Brief(topic="t", language="en"), settings, length_control=False)
    with pytest.raises(BudgetExceeded):
        checks.start(settings, choose_provider(settings), checks.Plan(runs=1, levels=()))
    with pytest.raises(BudgetExceeded):
        checks.connection_test(settings, choose_provider(settings))
    assert fake.requests == [] and store.count() == 1


def test_a_batch_is_refused_at_its_start_and_pauses_before_the_row_past_the_cap(
        env, fake, store, registry):
    settings = load_settings()
    store.set_budget("USD", 0.01, hard_cap=True, actor=ADMIN)  # nothing spent yet
    for _ in range(3):
        fake.queue(Reply(text="A short answer.", usage=COSTLY))
    data = b"topic,length,language\nkettle one,50,English\nkettle two,50,English\n" \
           b"kettle three,50,English\n"
    batch_id = new_batch(store, data, concurrency=1)
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                         concurrency=1, length_control=False, actor=ADMIN)
    run.start()
    assert run.done.wait(30), "the batch did not end"
    # the first row spent 0.15 USD: the next row is refused and the batch pauses, saying so
    assert len(fake.requests) == 1
    assert "0.15 spent of 0.01 USD" in run.error and "hard cap" in run.note
    states = [r["state"] for r in batch.rows(store, batch_id)]
    assert states[0] == Status.COMPLETED and states[1:] == ["pending", "pending"]
    assert batch.get(store, batch_id)["status"] == BatchStatus.PAUSED
    # Resume: refused at its start, with the figures, nothing sent
    again = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                           concurrency=1, length_control=False, actor=ADMIN)
    with pytest.raises(BudgetExceeded) as refused:
        again.start()
    assert refused.value.values["spent"] == "0.15" and len(fake.requests) == 1


def test_title_suggestions_are_refused_past_a_hard_cap(env, fake, store):
    from writer.runs import titles

    fake.queue(Reply(text="一篇文章的正文。"))
    job = Job(Brief(topic="t", language="zh", target_words=100), load_settings(),
              length_control=False)
    list(job.run())
    spend(store, 1.0)
    store.set_budget("USD", 0.5, hard_cap=True, actor=ADMIN)
    asked = len(fake.requests)
    with pytest.raises(BudgetExceeded):
        titles.suggest(job.article_id, load_settings(), actor=ADMIN)
    assert len(fake.requests) == asked  # refused before any request
