"""The pages as viewers of background jobs (AppTest): the sidebar's running list and its
Stop, History's live rows, attaching by link, and the form kept across pages."""
from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from test_pages import ROOT, app, fill_and_generate, markdown_text
from writer.brief import Brief
from writer.config import load_settings
from writer.runs.job import Job
from writer.runs.registry import State
from writer.storage.store import Store

TEXT = "Background jobs keep writing. " * 30


@pytest.fixture
def registry(env):
    from views.common import registry

    reg = registry()  # the same registry the pages use (st.cache_resource, per database)
    yield reg
    reg.shutdown(wait_s=5)


def submit(registry, topic: str = "running in the background"):
    job = Job(Brief(topic=topic, language="en", target_words=300), load_settings(),
              length_control=False)
    return registry.submit(job)


def wait_for(condition, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_sidebar_lists_a_running_article_and_stops_it(env, fake, registry):
    # (AppTest drops the sidebar after switch_page; tests/views/test_browser_jobs.py checks
    # the sidebar on the other pages in a real browser.)
    fake.queue(Reply(text=TEXT, chunk_chars=10, stall_after=3, stall_seconds=30))
    handle = submit(registry)
    wait_for(lambda: handle.feed.text, "first text")
    at = app()
    assert not at.exception
    assert any(c.value == "Writing now (1)" for c in at.sidebar.caption)
    stop = at.sidebar.button(key=f"sidebar-stop-{handle.article_id}")
    assert stop.label == "Stop"
    stop.click().run()
    assert handle.done.wait(5) and handle.state == State.DONE
    row = Store(env["WRITER_DB"]).get(handle.article_id)
    assert row["status"] == "stopped" and row["content"] == handle.feed.text
    assert fake.disconnects
    at.run()
    assert not any(c.value.startswith("Writing now") for c in at.sidebar.caption)


def test_history_shows_running_and_queued_rows_live(env, fake, registry, monkeypatch):
    monkeypatch.setenv("WRITER_MAX_STREAMS", "1")
    fake.queue(Reply(text=TEXT, chunk_chars=10, stall_after=3, stall_seconds=30))
    first, second = submit(registry, "first"), submit(registry, "second")
    wait_for(lambda: first.feed.text, "first text")
    at = app().switch_page("views/history.py").run()
    table = at.dataframe[0].value
    status = dict(zip(table["ID"], table["Status"]))
    assert status == {first.article_id: "streaming", second.article_id: "queued"}
    words = dict(zip(table["ID"], table["Words"]))
    assert words[first.article_id] == f"{first.words} / 300 words"
    # The open article (the newest: the queued one) shows its place in line and a Stop.
    assert any("queued · number 1 in line" in p.proto.text for p in at.get("progress"))
    at.selectbox(key="open_article").set_value(first.article_id).run()
    assert "Background jobs keep writing." in markdown_text(at)
    at.button(key=f"history-stop-{first.article_id}").click().run()
    assert first.done.wait(5)
    assert Store(env["WRITER_DB"]).get(first.article_id)["status"] == "stopped"
    assert second.done.wait(5)  # its turn came when the first one stopped
    assert second.started_at >= first.ended_at
    assert Store(env["WRITER_DB"]).get(second.article_id)["status"] == "completed"


def test_write_page_attaches_to_a_job_by_link_and_shows_the_result(env, fake, registry):
    fake.queue(Reply(text=TEXT, chunk_chars=30, chunk_delay=0.01))
    handle = submit(registry, "watched from a link")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["article"] = str(handle.article_id)
    at.run()
    assert not at.exception
    assert TEXT.strip() in markdown_text(at)  # streamed to its end in this run
    assert any(f"#{handle.article_id}" in s.value for s in at.success)
    assert len(fake.requests) == 1


def test_what_was_typed_survives_a_visit_to_another_page(env):
    at = app()
    at.text_input(key="topic").input("kept across pages")
    at.text_input(key="audience").input("marketing team")
    at.number_input(key="target_words").set_value(1200)
    at.run()
    at.switch_page("views/usage.py").run()
    at.switch_page("views/write.py").run()
    assert at.text_input(key="topic").value == "kept across pages"
    assert at.text_input(key="audience").value == "marketing team"
    assert at.number_input(key="target_words").value == 1200


def test_generate_runs_the_article_in_the_registry(env, fake):
    from views.common import registry

    fake.queue(Reply(text="Written by a worker."))
    at = fill_and_generate(app(), topic="via the registry", language="en")
    handle = registry().get(1)
    assert handle is not None and handle.state == State.DONE and handle.thread is not None
    assert handle.thread.name == "writer-job-1"
    assert at.query_params["article"] == "1"  # a reload comes back to it
