"""The pages on PostgreSQL (WRITER_DATABASE_URL), through AppTest: the main flows of
tests/views/test_pages.py — write, History (list, open, Chinese search), Usage, Settings
— read and write the shared database as they do a SQLite file."""
from __future__ import annotations

import pytest

from fake_openai import Reply
from test_pages import ARTICLE, app, fill_and_generate, markdown_text
from writer.storage import pg
from writer.storage.store import Store


@pytest.fixture
def pg_env(env, pg_url, monkeypatch):
    monkeypatch.setenv("WRITER_DATABASE_URL", pg_url)
    yield {**env, "WRITER_DATABASE_URL": pg_url}
    pg.close_pool()


def rows(url: str) -> list[dict]:
    store = Store(url)
    try:
        return store.rows("SELECT * FROM articles ORDER BY id")
    finally:
        store.close()


def test_write_page_streams_and_saves_to_postgresql(pg_env, fake, tmp_path):
    fake.queue(Reply(text=ARTICLE, chunk_chars=5, usage=(150, 60)))
    at = fill_and_generate(app(), target_words=200, audience="市场部")
    assert not at.exception
    assert "第一个字越早出现" in markdown_text(at)
    figures = {m.label: m.value for m in at.metric}
    assert figures["Input tokens (reported)"] == "150" and figures["Cost"].endswith(" USD")
    (row,) = rows(pg_env["WRITER_DATABASE_URL"])
    assert row["status"] == "completed" and row["content"] == ARTICLE
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (150, 60, "reported")
    assert row["audience"] == "市场部" and row["cost"] > 0
    assert not (tmp_path / "writer.db").exists()  # nothing went to the SQLite file


def test_history_lists_opens_and_searches_chinese_on_postgresql(pg_env, fake):
    fake.queue(Reply(text="First article body."), Reply(text="第二篇文章讲量子计算。"))
    at = fill_and_generate(app(), topic="first")
    fill_and_generate(at, topic="第二篇")
    at.switch_page("views/history.py").run()
    assert not at.exception
    assert list(at.dataframe[0].value["Topic"]) == ["第二篇", "first"]
    at.selectbox(key="open_article").set_value(1).run()
    assert "First article body." in markdown_text(at)
    at.text_input(key="history_query").input("量子").run()  # 2 characters: the grams index
    assert not at.exception
    html = markdown_text(at)
    assert "<mark>量子</mark>" in html and "First article body." not in html
    at.text_input(key="history_query").input("Fi").run()  # 2 ASCII letters, case folded
    assert "<mark>Fi</mark>rst article body." in markdown_text(at)


def test_usage_and_settings_on_postgresql(pg_env, fake):
    fake.queue(Reply(text="priced one", usage=(1000, 1000)))
    at = fill_and_generate(app(), topic="priced", language="en")
    at.switch_page("views/usage.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Articles"] == "1" and metrics["Cost (USD)"] == "0.0008 USD"
    at.switch_page("views/settings.py").run()
    assert not at.exception
    at.text_input(key="price_model").input("Mystery-Model")
    at.number_input(key="price_input").set_value(1.0)
    at.number_input(key="price_output").set_value(2.0)
    at.selectbox(key="price_currency").set_value("CNY")
    next(b for b in at.button if b.label == "Save price").click().run()
    assert not at.exception
    at.number_input(key="budget_CNY").set_value(500.0)
    next(b for b in at.button if b.label == "Save budgets").click().run()
    store = Store(pg_env["WRITER_DATABASE_URL"])
    try:
        (edit,) = store.price_edits()
        assert (edit["model"], edit["currency"], edit["output_per_1m"]) == ("mystery-model", "CNY", 2.0)
        assert store.budgets() == {"CNY": 500.0}
    finally:
        store.close()
    about = markdown_text(at)
    assert "postgresql://" in about and "127.0.0.1" in about  # where the data is, no password
