"""The job registry without Streamlit: attach, detach, queue, cancel, shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Finished, Notice
from writer.kinds import NoticeKind, Status
from writer.runs.feed import Feed
from writer.runs.job import Job, delete_article
from writer.runs.pacing import Pacer
from writer.runs.registry import Registry, State
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

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
    from writer.runs.feed import viewer_scale

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
    registry.cancel(handle.article_id, wait_s=5, actor=ADMIN)


def test_a_stalled_stream_paints_what_it_has_within_the_pacing_budget(env, fake, registry):
    # Before the worker, the page's pacer could hold the last piece until the next delta.
    fake.queue(Reply(text="First sentence. " * 3 + "Held back?", chunk_chars=16,
                     chunk_delay=0.001, stall_after=4, stall_seconds=30))
    handle = registry.submit(new_job())
    shown = ""
    for update in handle.follow(pacer=Pacer(), tick_s=0.05):
        shown += update.text
        if shown.endswith("Held back?"):
            break
        assert not update.done, "text of a stalled stream was held back"
    # Painted while the stream stalls (30 s): the budget, not the stream's end, painted it.
    assert handle.state == State.RUNNING and not handle.feed.closed
    registry.cancel(handle.article_id, wait_s=5, actor=ADMIN)


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
    from writer.providers.choice import local_provider

    monkeypatch.setenv("WRITER_MAX_STREAMS", "8")  # remote providers only
    jobs = [Job(Brief(topic=f"Local {n}", language="en", target_words=60), load_settings(),
                provider=local_provider(), length_control=False) for n in range(2)]
    first, second = (registry.submit(job) for job in jobs)
    assert first.state == State.RUNNING and second.state == State.QUEUED
    assert registry.position(second) == 1
    wait_for(lambda: first.feed.text, timeout=60, what="the local model's first words")
    assert second.state == State.QUEUED  # still waiting while the first one writes
    assert registry.cancel(first.article_id, wait_s=10, actor=ADMIN)
    wait_for(lambda: second.state != State.QUEUED, what="the second one to start")
    assert registry.cancel(second.article_id, wait_s=10, actor=ADMIN)
    assert second.started_at >= first.ended_at


def test_stopping_a_queued_job_saves_it_stopped_without_a_request(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=2, stall_seconds=10))
    registry = Registry()
    try:
        running = registry.submit(new_job("running"))
        queued = registry.submit(new_job("queued"))
        assert queued.state == State.QUEUED
        assert registry.cancel(queued.article_id, wait_s=5, actor=ADMIN)
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
    # Saved within 5 s of a state that lasts 10 s or more: the Stop ended it.
    assert registry.cancel(handle.article_id, wait_s=5, actor=ADMIN)
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
    assert delete_article(load_settings(), handle.article_id, actor=ADMIN)
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


# -- the registry of live runs: one place for rows, workers, batches and checks ------

def test_a_job_is_tracked_with_its_heartbeat_only_while_it_runs(env, fake, registry):
    from writer.runs.registry import shared

    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=3, stall_seconds=30))
    handle = registry.submit(new_job())
    live = shared(load_settings().db_path)  # the process's registry of this database
    wait_for(lambda: handle.feed.text, what="first text")
    assert live.tracked() == [handle.article_id] and live.job(handle.article_id) is handle.job
    assert registry.cancel(handle.article_id, wait_s=5, actor=ADMIN)
    assert live.tracked() == [] and live.job(handle.article_id) is None


def test_a_providers_file_broken_while_queued_ends_the_row_and_frees_the_slot(
        env, fake, registry, tmp_path, monkeypatch):
    """A job that finds the providers file broken once it starts ends failed, leaves the
    registry and frees its provider's slot for the next one."""
    from writer.runs.registry import shared

    path = tmp_path / "providers.toml"
    path.write_text('[[providers]]\nname = "backup"\nbase_url = "http://127.0.0.1:9/v1"\n'
                    'api_key_env = "BACKUP_KEY"\n')
    monkeypatch.setenv("WRITER_PROVIDERS_FILE", str(path))
    monkeypatch.setenv("BACKUP_KEY", "sk-backup-secret")
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.queue(Reply(text=TEXT, chunk_chars=8, stall_after=2, stall_seconds=30))
    first = registry.submit(new_job("first"))
    broken = registry.submit(new_job("broken"))
    assert broken.state == State.QUEUED
    wait_for(lambda: fake.requests, what="the first job's request")
    path.write_text("[[providers]\nname = ")  # broken while the second one waits
    assert registry.cancel(first.article_id, wait_s=5, actor=ADMIN)
    assert broken.done.wait(10)
    saved = row(env, broken.article_id)
    assert saved["status"] == Status.FAILED and "providers file" in saved["error"]
    assert broken.finished.status == Status.FAILED and broken.error is None
    assert shared(load_settings().db_path).tracked() == []
    assert registry.active() == [] and len(fake.requests) == 1


class Run:
    """A batch run or a check, as the registry sees one: it ends when `done` is set."""

    def __init__(self):
        self.done = threading.Event()


def test_one_live_run_per_key_and_ended_runs_are_pruned(tmp_path):
    now = [0.0]
    registry = Registry(tmp_path / "writer.db", keep_finished_s=60, clock=lambda: now[0])
    first, second, other = Run(), Run(), Run()
    assert registry.begin("batch", 1, first, first.done) is None
    assert registry.begin("batch", 1, second, second.done) is first  # one live run per batch
    assert registry.begin("batch", 2, other, other.done) is None
    assert registry.run("batch", 1) is first and registry.runs("batch") == [first, other]
    refused = Run()
    with pytest.raises(RuntimeError, match="claimed elsewhere"):
        registry.begin("check", None, refused, refused.done,
                       claim=lambda: (_ for _ in ()).throw(RuntimeError("claimed elsewhere")))
    assert registry.run("check") is None  # a refused claim registers nothing
    first.done.set()
    assert registry.run("batch", 1) is first  # ended: still readable for a while
    assert registry.begin("batch", 1, second, second.done) is None  # a new run replaces it
    second.done.set()
    now[0] += 30
    assert registry.run("batch", 1) is second
    now[0] += 61
    assert registry.run("batch", 1) is None and registry.runs("batch") == [other]  # pruned


def test_the_provider_check_is_the_shared_registrys_one_check(env, fake):
    from scripted_check import ByKind
    from writer.providers.choice import choose_provider
    from writer.runs import check as checks
    from writer.runs.registry import shared

    settings = load_settings()
    fake.responder = ByKind(first_delay=30)  # the check waits on its first answer
    plan = checks.Plan(runs=1, levels=(), long_answer=False)
    check = checks.start(settings, choose_provider(settings), plan)
    try:
        assert shared(settings.db_path).run("check") is check is checks.current(settings)
        with pytest.raises(checks.CheckError, match="already running"):
            checks.start(settings, choose_provider(settings), plan)
        assert checks.current(settings) is check  # the refused one registered nothing
    finally:
        check.cancel(actor=ADMIN)
        assert check.finished.wait(10)
    assert checks.current(settings) is check  # ended: still readable for a while
