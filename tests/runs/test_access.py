"""Who may run and stop what (writer/access.py), checked in the runs themselves: a job
writes its actor's article; another writer cannot stop, delete, continue, revise, retitle
or resume it (refused before any request is sent), its author and an admin can; a
person's own hard-capped budget refuses their runs only."""
from __future__ import annotations

import pytest

from fake_openai import Reply
from test_workers import wait_for
from writer.access import AccessDenied, Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.io.sheet import briefs, read_table
from writer.kinds import Status
from writer.providers.choice import choose_provider
from writer.runs import batch, titles
from writer.runs import check as checks
from writer.runs.job import Job, delete_article
from writer.runs.revisions import RevisionJob
from writer.storage import versions
from writer.storage.usage import BudgetExceeded

ADMIN = Actor("boss", "admin")
ALICE = Actor("alice", "writer")
BOB = Actor("bob", "writer")
TEXT = "Streaming keeps readers reading. " * 20
SLOW = Reply(text=TEXT, chunk_chars=4, chunk_delay=0.05)  # about 8 s: long enough to reach


def job(actor: Actor | None = ALICE, **kwargs) -> Job:
    return Job(Brief(topic="access", language="en", target_words=100), load_settings(),
               length_control=False, actor=actor, **kwargs)


def written(fake, actor: Actor = ALICE) -> int:
    """A finished article of `actor`'s."""
    fake.queue(Reply(text=TEXT))
    done = job(actor)
    list(done.run())
    return done.article_id


def test_a_job_writes_its_actor_s_article_and_version(env, fake, store, registry):
    article_id = written(fake)
    assert store.get(article_id)["author"] == "alice"
    assert [v["author"] for v in versions.listing(store, article_id)] == ["alice"]
    fake.queue(SLOW)
    handle = registry.submit(job(BOB))
    assert handle.author == "bob" == store.get(handle.article_id)["author"]
    assert registry.cancel(handle.article_id, wait_s=10, actor=BOB)


def test_another_writer_cannot_stop_a_job_its_author_and_an_admin_can(env, fake, store,
                                                                      registry):
    fake.queue(SLOW, SLOW)
    handle = registry.submit(job(ALICE))
    wait_for(lambda: handle.words > 0, what="the job to stream")
    with pytest.raises(AccessDenied):
        registry.cancel(handle.article_id, wait_s=1, actor=BOB)
    assert not handle.job.cancel_requested and not handle.done.is_set()
    assert registry.cancel(handle.article_id, wait_s=10, actor=ALICE)
    assert store.get(handle.article_id)["status"] == Status.STOPPED
    other = registry.submit(job(ALICE))
    assert registry.cancel(other.article_id, wait_s=10, actor=ADMIN)
    with pytest.raises(TypeError, match="actor"):
        registry.cancel(other.article_id)  # a forgotten actor fails loudly


def test_another_writer_cannot_delete_a_running_article_nor_stop_it_that_way(env, fake, store,
                                                                             registry):
    fake.queue(SLOW)
    handle = registry.submit(job(ALICE))
    wait_for(lambda: handle.words > 0, what="the job to stream")
    with pytest.raises(AccessDenied):
        delete_article(load_settings(), handle.article_id, actor=BOB)
    assert not handle.job.cancel_requested and store.get(handle.article_id) is not None
    assert delete_article(load_settings(), handle.article_id, actor=ADMIN)
    assert handle.done.wait(10) and store.get(handle.article_id) is None


def test_another_writer_cannot_continue_revise_or_retitle_and_nothing_is_sent(env, fake, store):
    article_id = written(fake)
    store.update(article_id, status="stopped")
    sent = len(fake.requests)
    settings = load_settings()
    with pytest.raises(AccessDenied):
        Job.continuing(article_id, settings, actor=BOB)
    with pytest.raises(AccessDenied):
        job(BOB, article=store.get(article_id))  # a batch row resumed by someone else
    with pytest.raises(AccessDenied):
        RevisionJob(article_id, settings, instruction="shorter", actor=BOB)
    with pytest.raises(AccessDenied):
        titles.suggest(article_id, settings, actor=BOB)
    with pytest.raises(AccessDenied):
        titles.use_title(store, article_id, "Bob's title", actor=BOB)
    assert len(fake.requests) == sent  # refused before any request
    assert len(versions.listing(store, article_id)) == 1
    assert store.get(article_id)["content"] == TEXT
    fake.queue(Reply(text="Shorter."))
    revision = RevisionJob(article_id, settings, instruction="shorter", actor=ADMIN)
    list(revision.run())
    assert revision.author == "alice"  # still alice's article: an admin's version of it
    assert [v["author"] for v in versions.listing(store, article_id)] == ["alice", "boss"]
    assert titles.use_title(store, article_id, "Alice's title", actor=ALICE) == 3


def test_a_batch_is_run_stopped_and_added_to_only_by_its_author_or_an_admin(env, fake, store,
                                                                            registry):
    settings = load_settings()
    table = read_table("topic\nTopic 1\nTopic 2\n".encode(), "two.csv")
    batch_id = batch.create(store, file_name="two.csv", table=table, rows=briefs(table),
                            provider=choose_provider(settings), concurrency=1, actor=ALICE)
    assert batch.get(store, batch_id)["author"] == "alice"
    with pytest.raises(AccessDenied):
        batch.BatchRun(settings, batch_id, registry, choose_provider(settings), actor=BOB)
    fake.queue(SLOW, SLOW)
    run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings),
                         actor=ALICE).start()
    wait_for(lambda: run.in_flight, what="a row in flight")
    for refused in (lambda: run.stop(wait_s=1, actor=BOB), lambda: run.add([2], actor=BOB),
                    lambda: run.set_concurrency(4, actor=BOB)):
        with pytest.raises(AccessDenied):
            refused()
    assert not run.stopping and run.concurrency == 1
    (handle,) = run.in_flight.values()
    assert handle.author == "alice"
    assert run.stop(wait_s=15, actor=ADMIN)
    authors = {store.get(r["article_id"])["author"]
               for r in batch.rows(store, batch_id) if r["article_id"]}
    assert authors == {"alice"}


def test_only_who_ran_a_check_or_an_admin_cancels_it(env, fake, store):
    settings = load_settings()
    fake.queue(Reply(first_delay=20))
    check = checks.start(settings, choose_provider(settings), checks.Plan(runs=1, levels=()),
                         actor=ALICE)
    with pytest.raises(AccessDenied):
        check.cancel(actor=BOB)
    assert not check.cancelled
    check.cancel(actor=ALICE)
    assert check.finished.wait(10) and check.saved_id
    (saved,) = checks.history(store)
    assert saved["author"] == "alice"


def test_with_sign_in_a_run_without_its_actor_is_refused(env, fake, monkeypatch):
    assert job(None).actor.is_admin  # WRITER_AUTH=none: the machine's one user
    monkeypatch.setenv("WRITER_AUTH", "accounts")
    with pytest.raises(ValueError, match="actor"):
        job(None)
    assert job(ALICE).author == "alice"


def test_a_person_s_hard_capped_budget_refuses_their_runs_only(env, fake, store):
    spent = written(fake)  # alice's: 11 + 22 tokens of gpt-4o-mini
    store.update(spent, cost=1.0)
    store.set_person_budget("alice", "USD", 0.5, hard_cap=True, actor=ADMIN)
    sent = len(fake.requests)
    with pytest.raises(BudgetExceeded) as caught:
        job(ALICE)
    assert caught.value.key == "user_errors.person_budget_exceeded"
    settings = load_settings()
    with pytest.raises(BudgetExceeded):
        checks.Check(settings, choose_provider(settings), actor=ALICE)
    assert len(fake.requests) == sent
    bobs = job(BOB)  # bob has no budget of his own; the team has none
    fake.queue(Reply(text="Bob writes."))
    list(bobs.run())
    assert store.get(bobs.article_id)["status"] == Status.COMPLETED
    store.set_person_budget("alice", "USD", 0.5, hard_cap=False, actor=ADMIN)
    assert job(ALICE).author == "alice"  # not a cap: the pages ask first, nothing refused
