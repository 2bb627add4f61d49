"""The pages through streamlit.testing.v1.AppTest, against the loopback provider."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from writer.store import Store

ROOT = Path(__file__).resolve().parent.parent

ARTICLE = ("# 流式输出为何重要\n\n第一个字越早出现，读者越愿意等待。"
           "Streaming keeps readers engaged while the rest arrives.\n")


def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    return at.run()


def fill_and_generate(at, topic="流式输出", **fields):
    at.text_input(key="topic").input(topic)
    for key, value in fields.items():
        widget = {"content_type": at.selectbox, "style": at.selectbox, "language": at.radio,
                  "target_words": at.number_input}.get(key, at.text_input)(key=key)
        widget.set_value(value)
    at.button[0].click()  # the form's Generate button
    return at.run()


def markdown_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_write_page_streams_saves_and_shows_stats(env, fake):
    fake.queue(Reply(text=ARTICLE, chunk_chars=5, usage=(150, 60)))
    at = fill_and_generate(app(), target_words=200, audience="市场部", keywords="速度, 体验")
    assert not at.exception
    assert "第一个字越早出现" in markdown_text(at)
    assert any("#1" in s.value for s in at.success)
    (stats,) = [m.value for m in at.markdown if m.value.startswith("| Words")]
    header, _, values = stats.splitlines()
    figures = dict(zip(header.strip("| ").split(" | "), values.strip("| ").split(" | ")))
    assert figures["Input tokens (reported)"] == "150"
    assert figures["Output tokens (reported)"] == "60"
    assert figures["Cost"].endswith(" USD") and figures["Words"].endswith(" / 200")
    assert figures["Speed"].endswith("tokens/s") and figures["First token"].endswith(" s")
    rows = list(Store(env["WRITER_DB"]).db.query("select * from articles"))
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "completed" and row["content"] == ARTICLE
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (150, 60, "reported")
    assert row["cost"] > 0 and row["audience"] == "市场部" and row["target_words"] == 200
    prompt = fake.requests[0]["messages"][1]["content"]
    assert "流式输出" in prompt and "市场部" in prompt and "速度, 体验" in prompt


def test_write_page_progress_bar_reaches_target_and_reports_overshoot(env, fake):
    fake.queue(Reply(text="word " * 120, chunk_chars=10))
    at = fill_and_generate(app(), topic="overshoot", language="en", target_words=100)
    assert not at.exception
    bars = [el for el in at.main if el.type == "progress"]
    assert bars, "no progress bar on the page"
    proto = bars[-1].proto
    assert proto.value == 100 and "120 / 100 words (20% over target)" in proto.text


def test_empty_topic_is_refused_without_calling_the_provider(env, fake):
    at = fill_and_generate(app(), topic="   ")
    assert any("topic is empty" in e.value for e in at.error)
    assert fake.requests == []
    assert Store(env["WRITER_DB"]).count() == 0


def test_provider_error_is_one_line_and_row_failed(env, fake):
    fake.queue(Reply(status=401))
    at = fill_and_generate(app(), topic="bad key")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("API key was rejected" in e for e in errors)
    row = Store(env["WRITER_DB"]).get(1)
    assert row["status"] == "failed" and "OPENAI_API_KEY" in row["error"]


def test_result_survives_a_rerun(env, fake):
    fake.queue(Reply(text=ARTICLE))
    at = fill_and_generate(app())
    at.run()  # any widget click reruns the script
    assert "第一个字越早出现" in markdown_text(at)
    assert at.subheader[0].value == "Last article"


def test_ui_language_defaults_to_chinese(env, monkeypatch):
    monkeypatch.delenv("WRITER_UI_LANGUAGE")
    at = app()
    assert at.title[0].value == "写作"
    assert at.text_input(key="topic").label == "主题"


def test_history_lists_and_opens_articles(env, fake):
    fake.queue(Reply(text="First article body."), Reply(text="第二篇文章的正文。"))
    at = fill_and_generate(app(), topic="first")
    fill_and_generate(at, topic="第二篇")
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert at.title[0].value == "History"
    table = at.dataframe[0].value
    assert list(table["Topic"]) == ["第二篇", "first"]  # newest first
    assert "第二篇文章的正文。" in markdown_text(at)
    at.selectbox[0].set_value(1).run()
    assert "First article body." in markdown_text(at)


def test_truncated_article_can_be_continued_from_the_write_page(env, fake):
    fake.queue(Reply(text="# Title\n\nThe first half", finish_reason="length"),
               Reply(text="first half and the second half."))
    at = fill_and_generate(app(), topic="continue me", language="en")
    assert any("cut off" in w.value for w in at.warning)
    at.button(key="continue-1").click().run()
    assert not at.exception
    row = Store(env["WRITER_DB"]).get(1)
    assert row["status"] == "completed"
    assert row["content"] == "# Title\n\nThe first half and the second half."
    assert Store(env["WRITER_DB"]).count() == 1  # the same row, not a new article
    assert "The first half and the second half." in markdown_text(at)


def test_history_continue_switches_to_write_and_continues(env, fake):
    fake.queue(Reply(text="Stopped text", finish_reason="length"), Reply(text=" goes on."))
    at = fill_and_generate(app(), topic="from history", language="en")
    at.switch_page("pages/history.py").run()
    at.button(key="history-continue-1").click().run()
    assert not at.exception
    assert at.title[0].value == "Write"
    assert Store(env["WRITER_DB"]).get(1)["content"] == "Stopped text goes on."


def test_rate_limited_article_still_arrives_after_a_retry(env, fake):
    fake.queue(Reply(status=429, headers={"retry-after-ms": "100"}), Reply(text="Patience pays."))
    at = fill_and_generate(app(), topic="rate limited", language="en")
    assert not at.exception
    assert "Patience pays." in markdown_text(at)
    row = Store(env["WRITER_DB"]).get(1)
    assert row["status"] == "completed" and row["retries"] == 1
