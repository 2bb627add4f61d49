"""The job registry without Streamlit: attach, detach, queue, cancel, shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from fake_openai import Reply
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.engine import Finished, Notice
from writer.runs.job import Job, delete_article
from writer.kinds import NoticeKind, Status
from writer.runs.pacing import Pacer
from writer.storage.store import Store
from writer.runs.workers import Feed, Registry, State

TEXT = "Streaming keeps readers reading. " * 20


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def new_job(topic: str = "workers", **kwargs) -> Job:
    return Job(Brief(topic=topic, language="en", target_words=100), load_settings(),
               length_control=False, **kwargs)


def row(env, article_id: int) -> dict:
    store = Store(env["WRITER_DB"])
    try:
        return store.get(article_id)
    finally:
        store.close()


@pytest.fixture
def registry():
    reg = Registry()
    yield reg
    reg.shutdown(wait_s=5)


def test_a_job_runs_without_any_viewer_and_saves_its_row(env, fake, registry):
    fake.queue(Reply(text=TEXT, chunk_chars=16, chunk_delay=0.002))
    handle = registry.submit(new_job())
    assert handle.article_id and row(env, handle.article_id)["status"] in ("queued", "streaming")
    assert handle.done.wait(10)
    saved = row(env, handle.article_id)
    assert saved["status"] == "completed" and saved["content"] == TEXT
    assert handle.state == State.DONE and isinstance(handle.finished, Finished)
    assert handle.feed.text == TEXT


def test_viewers_attach_late_get_the_text_so_far_and_detach_without_stopping_it(env, fake,
                                                                               registry):
    fake.queue(Reply(text=TEXT, chunk_chars=8, chunk_delay=0.01))
    handle = registry.submit(new_job())
    first = handle.follow(tick_s=0.05)
    seen = next(first).text
    while len(seen) < 40:
        seen += next(first).text
    first.close()  # detach: the page went away
    wait_for(lambda: len(handle.feed.text) > len(seen) + 40, what="more text after detach")
    assert handle.state == State.RUNNING and not fake.disconnects
    # A second viewer (a reload, another tab) gets everything so far at once, then the rest.
    updates = list(handle.follow(tick_s=0.05))
    assert len(updates[0].text) > len(seen)
    assert "".join(u.text for u in updates) == TEXT
    assert updates[-1].done and isinstance(updates[-1].finished, Finished)
    assert len(fake.requests) == 1  # many viewers, one stream
    assert row(env, handle.article_id)["status"] == "completed"


def test_twenty_viewers_of_one_job_cost_one_stream(env, fake, registry):
    fake.queue(Reply(text=TEXT, chunk_chars=8, chunk_delay=0.005))
    handle = registry.submit(new_job())
    results: list[str] = []

    def view():
        results.append("".join(u.text for u in handle.follow(tick_s=0.05)))

    threads = [threading.Thread(target=view) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == [TEXT] * 20
    assert len(fake.requests) == 1


def test_many_viewers_stretch_the_paint_budget(env, fake, registry):
    from writer.runs.workers import viewer_scale

    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=3, stall_seconds=10))
    handle = registry.submit(new_job())
    wait_for(lambda: handle.feed.text, what="first text")
    assert viewer_scale() == 1.0
    viewers = [handle.follow(tick_s=0.05) for _ in range(8)]
    for viewer in viewers:
        next(viewer)
    assert viewer_scale() == 2.0  # 8 viewers: twice the budget between paints
    for viewer in viewers:
        viewer.close()
    assert viewer_scale() == 1.0
    registry.cancel(handle.article_id, wait_s=5)


def test_a_stalled_stream_paints_what_it_has_within_the_pacing_budget(env, fake, registry):
    # Before the worker, the page's pacer could hold the last piece until the next delta.
    fake.queue(Reply(text="First sentence. " * 3 + "Held back?", chunk_chars=16,
                     chunk_delay=0.001, stall_after=4, stall_seconds=3))
    handle = registry.submit(new_job())
    shown = ""
    started = time.monotonic()
    for update in handle.follow(pacer=Pacer(), tick_s=0.05):
        shown += update.text
        if shown.endswith("Held back?"):
            break
        assert time.monotonic() - started < 2, "text of a stalled stream was held back"
    assert handle.state == State.RUNNING
    registry.cancel(handle.article_id, wait_s=5)


def test_notice_in_force_is_replayed_to_a_late_viewer_and_cleared_by_text(env, fake, registry):
    fake.queue(Reply(status=503, error_message="busy", headers={"Retry-After": "1"}),
               Reply(text=TEXT, chunk_chars=40, chunk_delay=0.01))
    handle = registry.submit(new_job())
    wait_for(lambda: any(isinstance(i, Notice) for i in handle.feed.read(0)[0]),
             what="the retry notice")
    update = next(handle.follow(tick_s=0.05))
    assert update.notice is not None and update.notice.kind == NoticeKind.RETRYING
    later = [u for u in handle.follow(tick_s=0.05)]
    assert later[0].notice is None or later[0].text == ""  # replay: text came after it
    assert any(u.text for u in later) and later[-1].done
    assert row(env, handle.article_id)["status"] == "completed"


def test_jobs_beyond_the_provider_limit_queue_in_order_with_positions(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "2")
    for _ in range(5):
        fake.queue(Reply(text=TEXT, chunk_chars=20, chunk_delay=0.01))
    registry = Registry()
    try:
        handles = [registry.submit(new_job(f"job {n}")) for n in range(5)]
        states = [h.state for h in handles]
        assert states[:2] == [State.RUNNING] * 2 and states[2:] == [State.QUEUED] * 3
        assert [registry.position(h) for h in handles] == [None, None, 1, 2, 3]
        assert row(env, handles[4].article_id)["status"] == "queued"
        for handle in handles:
            assert handle.done.wait(20)
        assert fake.max_active == 2  # never more than the limit at once
        started = sorted(handles, key=lambda h: h.started_at)
        assert started == handles  # first in, first started
        assert all(row(env, h.article_id)["status"] == "completed" for h in handles)
    finally:
        registry.shutdown(wait_s=5)


@pytest.mark.slow
def test_the_local_model_writes_one_article_at_a_time(env, registry, monkeypatch):
    from writer.providers.base import local_provider

    monkeypatch.setenv("WRITER_MAX_STREAMS", "8")  # remote providers only
    jobs = [Job(Brief(topic=f"Local {n}", language="en", target_words=60), load_settings(),
                provider=local_provider(), length_control=False) for n in range(2)]
    first, second = (registry.submit(job) for job in jobs)
    assert first.state == State.RUNNING and second.state == State.QUEUED
    assert registry.position(second) == 1
    wait_for(lambda: first.feed.text, timeout=60, what="the local model's first words")
    assert second.state == State.QUEUED  # still waiting while the first one writes
    assert registry.cancel(first.article_id, wait_s=10)
    wait_for(lambda: second.state != State.QUEUED, what="the second one to start")
    assert registry.cancel(second.article_id, wait_s=10)
    assert second.started_at >= first.ended_at


def test_stopping_a_queued_job_saves_it_stopped_without_a_request(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=2, stall_seconds=10))
    registry = Registry()
    try:
        running = registry.submit(new_job("running"))
        queued = registry.submit(new_job("queued"))
        assert queued.state == State.QUEUED
        assert registry.cancel(queued.article_id, wait_s=5)
        saved = row(env, queued.article_id)
        assert saved["status"] == "stopped" and saved["content"] == ""
        wait_for(lambda: fake.requests, what="the running job's request")
        assert len(fake.requests) == 1  # the queued one never reached the provider
        assert running.state == State.RUNNING  # and the other one goes on
    finally:
        registry.shutdown(wait_s=5)


@pytest.mark.parametrize("state", ["waiting for headers", "streaming", "stalled",
                                   "waiting to retry"])
def test_cancel_stops_a_running_job_in_every_state(env, fake, registry, state):
    reply = {
        "waiting for headers": Reply(text=TEXT, header_delay=10),
        "streaming": Reply(text=TEXT * 20, chunk_chars=4, chunk_delay=0.01),
        "stalled": Reply(text=TEXT, chunk_chars=8, stall_after=3, stall_seconds=10),
        "waiting to retry": Reply(status=429, error_message="slow down",
                                  headers={"Retry-After": "30"}),
    }[state]
    fake.queue(reply)
    handle = registry.submit(new_job())
    if state in ("streaming", "stalled"):
        wait_for(lambda: handle.feed.text, what="first text")
    elif state == "waiting to retry":
        wait_for(lambda: any(isinstance(i, Notice) for i in handle.feed.read(0)[0]),
                 what="the retry notice")
    else:
        wait_for(lambda: fake.requests, what="the request")
    started = time.monotonic()
    assert registry.cancel(handle.article_id, wait_s=5)
    assert time.monotonic() - started < 1.0
    saved = row(env, handle.article_id)
    assert saved["status"] == "stopped"
    assert saved["content"] == handle.feed.text
    assert handle.finished.status == Status.STOPPED


def test_shutdown_stops_and_saves_every_job_with_its_text(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "2")
    for _ in range(2):
        fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=5, stall_seconds=30))
    registry = Registry()
    handles = [registry.submit(new_job(f"job {n}")) for n in range(3)]
    wait_for(lambda: all(h.feed.text for h in handles[:2]), what="text from both")
    stopped = registry.shutdown(wait_s=5)
    assert sorted(stopped) == sorted(h.article_id for h in handles)
    for handle in handles:
        saved = row(env, handle.article_id)
        assert saved["status"] == "stopped" and saved["content"] == handle.feed.text
    assert handles[0].feed.text and not handles[2].feed.text  # the queued one had none
    with pytest.raises(Exception, match="shutting down"):
        registry.submit(new_job())


def test_deleting_a_queued_or_running_article_stops_its_job(env, fake, registry, monkeypatch):
    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=3, stall_seconds=10))
    handle = registry.submit(new_job())
    wait_for(lambda: handle.feed.text, what="first text")
    assert delete_article(load_settings(), handle.article_id)
    assert handle.done.wait(5)
    assert handle.finished.status == Status.STOPPED


def test_feed_wait_wakes_on_new_items_and_on_close_only_when_asked():
    feed = Feed("so far ")
    items, cursor, closed = feed.read(0)
    assert items == ["so far "] and cursor == 1 and not closed
    assert feed.wait(cursor, 0.01) is False
    threading.Timer(0.05, feed.append, args=("more",)).start()
    assert feed.wait(cursor, 2) is True
    _, cursor, _ = feed.read(cursor)
    threading.Timer(0.05, feed.append, args=("x",)).start()
    assert feed.wait(cursor, 0.3, close_only=True) is False  # text alone does not wake it
    threading.Timer(0.05, feed.close).start()
    assert feed.wait(cursor, 2, close_only=True) is True
    assert feed.text == "so far morex"
