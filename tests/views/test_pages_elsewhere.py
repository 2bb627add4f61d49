"""The pages and an article another process writes on the same database (issue 24),
through AppTest: the sidebar lists it (its Stop is a request the writing process
honours), and the Write page follows its saved drafts until it ends. The "other
process" is a row written here with a fresh heartbeat that this process does not track:
to the pages it is exactly a row another process writes (the real cross-process Stop is
tests/cli/test_cli_remote_stop.py; two real servers on one PostgreSQL are
tests/views/test_browser_servers.py). Every test runs on both databases (`backend`,
tests/runs/test_remote.py: a SQLite file, or a fresh PostgreSQL database)."""
from __future__ import annotations

import threading
import time

from streamlit.testing.v1 import AppTest

from test_pages import ROOT, markdown_text
from test_remote import sql
from writer.brief import Brief
from writer.config import load_settings
from writer.kinds import Status
from writer.storage import liveness
from writer.storage.store import Store


def row_elsewhere(db: str, content: str) -> int:
    store = Store(db)
    try:
        article_id = store.create_article(Brief(topic="written elsewhere", language="en",
                                                target_words=300), provider="p", model="m",
                                          max_tokens=10, status=Status.STREAMING,
                                          author=load_settings().user)
    finally:
        store.close()
    save(db, article_id, content)
    return article_id


def save(db: str, article_id: int, content: str, status: str = "streaming") -> None:
    sql(db, "UPDATE articles SET content = ?, words = ?, status = ?, heartbeat_at = ? WHERE id = ?",
        [content, len(content.split()), status, liveness.utc_iso(), article_id])


def requested(db: str, article_id: int):
    return sql(db, "SELECT stop_requested_by FROM articles WHERE id = ?", [article_id])[0][0]


def test_sidebar_lists_an_article_written_elsewhere_and_stops_it_by_request(backend):
    article_id = row_elsewhere(backend, "Saved so far by the other process.")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    assert any(c.value == "Writing now (1)" for c in at.sidebar.caption)
    assert any("7 / 300 words" in p.proto.text for p in at.sidebar.get("progress"))

    def other_process() -> None:  # honours the request as a writing process does
        deadline = time.monotonic() + 30
        while requested(backend, article_id) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        save(backend, article_id, "Saved so far by the other process.", status="stopped")

    honour = threading.Thread(target=other_process, daemon=True)
    honour.start()
    at.sidebar.button(key=f"sidebar-stop-{article_id}").click().run()
    honour.join(30)
    assert requested(backend, article_id) == load_settings().user  # the signed-in actor
    assert not at.exception
    at.run()
    assert not any(c.value.startswith("Writing now") for c in at.sidebar.caption)


def test_write_page_follows_the_saved_drafts_of_an_article_written_elsewhere(backend):
    article_id = row_elsewhere(backend, "First draft words.")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.query_params["article"] = str(article_id)
    at.run()
    assert not at.exception
    assert "First draft words." in markdown_text(at)
    assert at.button(key=f"elsewhere-stop-{article_id}").label == "Stop"
    save(backend, article_id, "First draft words. And then some more.")
    at.run()
    assert "First draft words. And then some more." in markdown_text(at)
    save(backend, article_id, "First draft words. And then some more. The end.", status="done")
    at.run()
    assert not at.exception
    assert "The end." in markdown_text(at)
    assert not [b for b in at.button if b.key == f"elsewhere-stop-{article_id}"]


def test_history_follows_an_article_written_elsewhere_and_stops_it_by_request(backend):
    """History opens an article another process is writing: its saved text and progress
    (not the download and version panels of a finished one), and Stop as a request."""
    article_id = row_elsewhere(backend, "Words the other process saved.")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.switch_page("views/history.py").run()
    assert not at.exception
    assert at.selectbox(key="open_article").value == article_id
    assert "Words the other process saved." in markdown_text(at)
    assert any("5 / 300 words" in p.proto.text for p in at.main.get("progress"))
    assert not [b for b in at.get("download_button")]  # still being written
    at.button(key=f"elsewhere-stop-{article_id}").click().run()
    assert requested(backend, article_id) == load_settings().user
    assert not at.exception
