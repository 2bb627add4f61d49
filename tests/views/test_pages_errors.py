"""Refusals a person can cause reach the page as one message in the UI language (the
English detail collapsed under it), never as a traceback: views/common.py `guarded`
wraps every callback, page action and fragment, and app.py the page itself."""
from __future__ import annotations

import sqlite3

import pytest

from fake_openai import Reply
from test_pages import app, fill_and_generate
from writer.access import Actor
from writer.io.i18n import Translator
from writer.storage import connection
from writer.storage.store import StorageError, Store

ARTICLE = "# Quiet mornings\n\nThe first coffee of the day should be quick and quiet.\n"
TITLES = "1. Quiet mornings\n2. Coffee in thirty seconds\n3. One button\n4. Why switch?\n" \
         "5. Early bird\n"

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


def messages(at) -> list[str]:
    return [e.value for e in at.error]


def details(at) -> str:
    return "\n".join(e.value for e in at.main if e.type == "text")


@pytest.fixture
def locked(env, monkeypatch):
    """Another program holds the database's write lock (writes give up after 0.2 s)."""
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(env["WRITER_DB"], isolation_level=None)

    class Lock:
        def __enter__(self):
            holder.execute("BEGIN EXCLUSIVE")

        def __exit__(self, *exc):
            holder.execute("ROLLBACK")

    yield Lock()
    holder.close()


def blog_article(env, fake):
    """A blog article written through the Write page (it offers title suggestions)."""
    fake.queue(Reply(text=ARTICLE))
    at = fill_and_generate(app(), topic="quiet mornings", language="en", content_type="blog")
    assert not at.exception and Store(env["WRITER_DB"]).get(1)["status"] == "completed"
    return at


@pytest.mark.parametrize("language", ["en", "zh"])
def test_delete_on_a_locked_database_is_one_message(env, fake, locked, monkeypatch, language):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", language)
    fake.queue(Reply(text="Text to keep."))
    at = fill_and_generate(app(), topic="locked", language="en")
    at.switch_page("views/history.py").run()
    at.button(key="delete-1").click().run()
    with locked:
        at.button(key="delete-yes-1").click().run()
    assert not at.exception, at.exception
    assert Translator(language)("user_errors.storage") in messages(at)
    assert "locked" in details(at)  # the English detail, collapsed under the message
    assert Store(env["WRITER_DB"]).get(1)["content"] == "Text to keep."  # nothing deleted
    assert at.button(key="delete-yes-1")  # still asking: the person can try again
    at.button(key="delete-yes-1").click().run()  # the lock is gone: now it goes
    assert not at.exception and Store(env["WRITER_DB"]).get(1) is None


def test_using_a_title_of_an_article_deleted_meanwhile_is_one_message(env, fake):
    at = blog_article(env, fake)
    fake.queue(Reply(text=TITLES))
    at.button(key="headlines-1-run").click().run()
    assert at.radio(key="headlines-1-pick").options[0] == "Quiet mornings"
    assert Store(env["WRITER_DB"]).delete(1, actor=ADMIN)  # another tab, the CLI
    at.button(key="headlines-1-use").click().run()
    assert not at.exception, at.exception
    assert Translator("en")("user_errors.version") in messages(at)
    assert "there is no article #1" in details(at)


def test_making_a_version_current_on_a_locked_database_is_one_message(env, fake, locked):
    at = blog_article(env, fake)
    fake.queue(Reply(text=TITLES))
    at.button(key="headlines-1-run").click().run()
    at.button(key="headlines-1-use").click().run()  # version 2, with the title
    assert not at.exception and Store(env["WRITER_DB"]).get(1)["current_version"] == 2
    with locked:
        at.button(key="versions-1-choose-1-True").click().run()
    assert not at.exception, at.exception
    assert Translator("en")("user_errors.storage") in messages(at)
    assert Store(env["WRITER_DB"]).get(1)["current_version"] == 2


def test_a_failed_title_request_says_so_without_a_traceback(env, fake):
    at = blog_article(env, fake)
    fake.queue(Reply(status=400, error_message="no titles for you"))
    at.button(key="headlines-1-run").click().run()
    assert not at.exception, at.exception
    assert Translator("en")("user_errors.titles") in messages(at)
    assert "no titles for you" in details(at)


def test_a_storage_error_anywhere_on_a_page_is_one_message(env, fake, monkeypatch):
    """The page itself is guarded (app.py): a refusal outside any callback, here the
    History page's database read, is one message too."""
    fake.queue(Reply(text="Listed."))
    at = fill_and_generate(app(), topic="listed", language="en")

    def refuse(*args, **kwargs):
        raise StorageError("cannot read data/writer.db: disk I/O error")

    monkeypatch.setattr("writer.storage.search.search", refuse)
    at.switch_page("views/history.py").run()
    assert not at.exception, at.exception
    assert Translator("en")("user_errors.storage") in messages(at)
