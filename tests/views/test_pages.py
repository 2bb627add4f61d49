"""The pages through streamlit.testing.v1.AppTest, against the loopback provider."""
import datetime as dt
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from writer.access import Actor
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]

ARTICLE = ("# 流式输出为何重要\n\n第一个字越早出现，读者越愿意等待。"
           "Streaming keeps readers engaged while the rest arrives.\n")

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


def database(env) -> str:
    """Where the pages keep their data: the PostgreSQL URL when the test runs on one (the
    `backend` fixture), else the SQLite file."""
    return env.get("WRITER_DATABASE_URL") or env["WRITER_DB"]


def app():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    return at.run()


def fill_and_generate(at, topic="流式输出", length_control=False, **fields):
    """Fill the form and click Generate. Free-form unless asked: these tests check the
    page's plumbing with short scripted answers (length control: tests/generation/test_length.py)."""
    at.text_input(key="topic").input(topic)
    at.checkbox(key="length_control").set_value(length_control)
    for key, value in fields.items():
        widget = {"content_type": at.selectbox, "style": at.selectbox, "language": at.radio,
                  "target_words": at.number_input}.get(key, at.text_input)(key=key)
        widget.set_value(value)
    at.button(key="generate").click()
    return at.run()


def markdown_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_write_page_streams_saves_and_shows_stats(env, backend, fake):
    fake.queue(Reply(text=ARTICLE, chunk_chars=5, usage=(150, 60)))
    at = fill_and_generate(app(), target_words=200, audience="市场部", keywords="速度, 体验")
    assert not at.exception
    assert "第一个字越早出现" in markdown_text(at)
    assert any("#1" in s.value for s in at.success)
    figures = {m.label: m.value for m in at.metric}  # metrics that wrap, not a table
    assert figures["Input tokens (reported)"] == "150"
    assert figures["Output tokens (reported)"] == "60"
    # the Chinese article counts characters (字), not words
    assert figures["Cost"].endswith(" USD") and figures["Words"].endswith(" / 200 characters")
    assert figures["Speed"].endswith("tokens/s") and figures["First token"].endswith(" s")
    # Copy (rich text + plain text) and the Word / HTML downloads are on the Write page
    assert any("writer-copy" in el.proto.body for el in at.main if el.type == "html")
    labels = [el.proto.label for el in at.main if el.type == "download_button"]
    assert labels[:2] == ["Word (.docx)", "HTML"] and "Markdown" in labels
    rows = Store(database(env)).rows("select * from articles")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "completed" and row["content"] == ARTICLE
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (150, 60, "reported")
    assert row["cost"] > 0 and row["audience"] == "市场部" and row["target_words"] == 200
    prompt = fake.requests[0]["messages"][1]["content"]
    assert "流式输出" in prompt and "市场部" in prompt and "速度, 体验" in prompt
    if backend != env["WRITER_DB"]:  # PostgreSQL: nothing went to the SQLite file
        assert not Path(env["WRITER_DB"]).exists()


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
    assert [e.value for e in at.error] == ["Enter a topic: what is the article about?"]
    assert fake.requests == []
    assert Store(database(env)).count() == 0
    at.text_input(key="topic").input("a topic now").run()  # the stale refusal goes away
    assert not at.error


@pytest.mark.parametrize("language, expected", [
    ("zh", "目标长度须在 50 到 20000 之间。"),
    ("en", "The target length must be between 50 and 20000.")])
@pytest.mark.parametrize("length", [10, 99999999])
def test_out_of_range_length_is_refused_next_to_the_field(env, fake, monkeypatch, language,
                                                          expected, length):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", language)
    at = app()
    at.number_input(key="target_words").set_value(length).run()
    assert [e.value for e in at.error] == [expected]  # at once, before Generate
    at = fill_and_generate(at, topic="length")
    assert [e.value for e in at.error] == [expected]  # once, not twice
    assert fake.requests == [] and Store(database(env)).count() == 0
    at.number_input(key="target_words").set_value(300).run()
    assert not at.error


def test_provider_error_is_one_line_and_row_failed(env, fake):
    fake.queue(Reply(status=401))
    at = fill_and_generate(app(), topic="bad key")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors == ["The request failed; nothing was written. The API key was rejected: "
                      "check OPENAI_API_KEY in .env"]
    # nothing was written: no bar, no figures, no article, no download, no "partial"
    assert not [el for el in at.main if el.type in ("progress", "metric", "download_button")]
    assert not any("partial" in m.value or "saved as" in m.value for m in at.markdown)
    (details,) = at.expander  # the provider's own words, collapsed
    assert "HTTP 401" in details.text[0].value
    row = Store(database(env)).get(1)
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


def test_history_lists_and_opens_articles(env, backend, fake):
    fake.queue(Reply(text="First article body."), Reply(text="第二篇文章的正文。"))
    at = fill_and_generate(app(), topic="first")
    fill_and_generate(at, topic="第二篇")
    at.switch_page("views/history.py").run()
    assert not at.exception
    assert at.title[0].value == "History"
    table = at.dataframe[0].value
    assert list(table["Topic"]) == ["第二篇", "first"]  # newest first
    assert "第二篇文章的正文。" in markdown_text(at)
    at.selectbox(key="open_article").set_value(1).run()
    assert "First article body." in markdown_text(at)


def test_truncated_article_can_be_continued_from_the_write_page(env, fake):
    fake.queue(Reply(text="# Title\n\nThe first half", finish_reason="length"),
               Reply(text="first half and the second half."))
    at = fill_and_generate(app(), topic="continue me", language="en")
    assert any("not finished" in w.value for w in at.warning)
    at.button(key="continue-1").click().run()
    assert not at.exception
    row = Store(database(env)).get(1)
    assert row["status"] == "completed"
    assert row["content"] == "# Title\n\nThe first half and the second half."
    assert Store(database(env)).count() == 1  # the same row, not a new article
    assert "The first half and the second half." in markdown_text(at)


def test_history_continue_switches_to_write_and_continues(env, fake):
    fake.queue(Reply(text="Stopped text", finish_reason="length"), Reply(text=" goes on."))
    at = fill_and_generate(app(), topic="from history", language="en")
    at.switch_page("views/history.py").run()
    at.button(key="history-continue-1").click().run()
    assert not at.exception
    assert at.title[0].value == "Write"
    assert Store(database(env)).get(1)["content"] == "Stopped text goes on."


def test_rate_limited_article_still_arrives_after_a_retry(env, fake):
    fake.queue(Reply(status=429, headers={"retry-after-ms": "100"}), Reply(text="Patience pays."))
    at = fill_and_generate(app(), topic="rate limited", language="en")
    assert not at.exception
    assert "Patience pays." in markdown_text(at)
    row = Store(database(env)).get(1)
    assert row["status"] == "completed" and row["retries"] == 1


def seed(env, fake, *items):
    """Write articles through the real Write page."""
    at = app()
    for topic, text, language in items:
        fake.queue(Reply(text=text))
        fill_and_generate(at, topic=topic, language=language)
    return at


def test_history_search_in_chinese_highlights_matches(env, backend, fake):
    at = seed(env, fake, ("咖啡机评测", "这台咖啡机的流式萃取很稳定。", "zh"),
              ("Streaming guide", "Streaming keeps readers.", "en"))
    at.switch_page("views/history.py").run()
    at.text_input(key="history_query").input("流式萃取").run()
    assert not at.exception
    html = markdown_text(at)
    assert "<mark>流式萃取</mark>" in html and "Streaming guide" not in html
    at.text_input(key="history_query").input("咖啡").run()  # 2 characters: the bigram index
    assert "<mark>咖啡</mark>" in markdown_text(at)
    assert not any("substring" in c.value for c in at.caption)  # no scan, so no such note
    at.text_input(key="history_query").input("St").run()  # 2 ASCII letters: indexed too
    assert "<mark>St</mark>reaming guide" in markdown_text(at)
    assert not any("substring" in c.value for c in at.caption)


def test_history_filters_and_delete_with_confirmation(env, fake):
    at = seed(env, fake, ("first", "First body.", "en"), ("第二篇", "第二篇正文。", "zh"))
    at.switch_page("views/history.py").run()
    at.selectbox(key="f_language").set_value("en").run()
    assert list(at.dataframe[0].value["Topic"]) == ["first"]
    at.selectbox(key="f_language").set_value("").run()
    assert list(at.dataframe[0].value["Topic"]) == ["第二篇", "first"]
    # The article opened while filtering (#1) stays open.
    assert at.selectbox(key="open_article").value == 1
    at.button(key="delete-1").click().run()
    assert Store(database(env)).count() == 2  # nothing deleted before confirming
    assert any("Delete article #1?" in w.value for w in at.warning)
    at.button(key="delete-yes-1").click().run()
    assert not at.exception
    assert Store(database(env)).count() == 1 and Store(database(env)).get(1) is None
    assert list(at.dataframe[0].value["Topic"]) == ["第二篇"]


def test_history_exports_and_write_again(env, fake):
    at = seed(env, fake, ("Export me", "# Export me\n\nSome **bold** text.", "en"))
    at.switch_page("views/history.py").run()
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Markdown", "Plain text", "HTML", "Word (.docx)"]
    write_again = next(b for b in at.button if b.label == "Write again with these settings")
    write_again.click().run()
    assert not at.exception
    assert at.title[0].value == "Write"
    assert at.text_input(key="topic").value == "Export me"
    assert at.radio(key="language").value == "en"
    assert at.number_input(key="target_words").value == 800
    assert not at.warning  # no "set via the Session State API" warning


def insert_article(store: Store, **values) -> None:
    store.articles.insert({"target_words": 300, "language": "en", "content_type": "blog",
                           "style": "casual", "keywords": "[]", "provider": "deepseek.com",
                           "model": "deepseek-chat", **values})


def test_history_local_times_units_and_a_refused_request(env, monkeypatch):
    """No browser here: the zone is WRITER_TIMEZONE's. A request the provider refused
    (no text) is listed as one and, opened, shows only the error and what to do."""
    monkeypatch.setenv("WRITER_TIMEZONE", "Asia/Shanghai")
    store = Store(database(env))
    insert_article(store, created_at="2026-11-20T02:10:00.000Z", topic="spring espresso",
                   content="Mornings are short.", status="completed", words=3, cost=0.0123,
                   currency="USD")
    insert_article(store, created_at="2026-11-26T17:30:00.000Z", topic="春季新品", language="zh",
                   content="早上多睡十分钟。", status="completed", words=8, cost=0.0034,
                   currency="CNY")
    insert_article(store, created_at="2026-11-27T01:00:00.000Z", topic="refused", content="",
                   status="failed", words=0, error="HTTP 401: invalid api key",
                   error_kind="auth")
    at = app()
    at.switch_page("views/history.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    rows = {r["ID"]: r for r in table.to_dict("records")}
    assert [rows[i]["Created"] for i in (1, 2, 3)] == [
        "2026-11-20 10:10", "2026-11-27 01:30", "2026-11-27 09:00"]
    assert (rows[1]["Words"], rows[2]["Words"]) == ("3 / 300 words", "8 / 300 characters")
    assert (rows[3]["Status"], rows[3]["Words"], rows[3]["Cost"]) == ("failed request", "–", "–")

    # The refused request is the newest, so it is open: the error and what to do, only.
    assert at.selectbox(key="open_article").value == 3
    (error,) = at.error
    assert "OPENAI_API_KEY" in error.value
    assert any("Write again with these settings" in c.value for c in at.caption)
    assert any("2026-11-27 09:00" in c.value and "UTC" not in c.value for c in at.caption)
    assert not at.get("download_button") and not at.tabs
    labels = [b.label for b in at.button]
    assert "Write again with these settings" in labels and "Delete" in labels
    assert "Continue" not in labels
    assert not any(m.value.startswith("| Words") for m in at.markdown)  # no figures

    # Local days: 2026-11-27 in Shanghai starts at 16:00Z on the 26th.
    at.date_input(key="f_dates").set_value((dt.date(2026, 11, 27), dt.date(2026, 11, 27))).run()
    assert sorted(at.dataframe[0].value["ID"]) == [2, 3]
    at.date_input(key="f_dates").set_value((dt.date(2026, 11, 20), dt.date(2026, 11, 26))).run()
    assert list(at.dataframe[0].value["ID"]) == [1]
    assert "Articles: 1" in [c.value for c in at.caption]

    at.selectbox(key="open_article").set_value(1).run()
    assert [b.label for b in at.get("download_button")] == [
        "Markdown", "Plain text", "HTML", "Word (.docx)"]


def test_usage_page_totals_per_currency_unpriced_and_csv(env, backend, fake, monkeypatch):
    fake.queue(Reply(text="priced one", usage=(1000, 1000)))
    at = fill_and_generate(app(), topic="priced", language="en")
    monkeypatch.setenv("WRITER_MODEL", "mystery-model")
    fake.queue(Reply(text="unpriced one", usage=(10, 10)))
    at = fill_and_generate(app(), topic="unpriced", language="en")
    at.switch_page("views/usage.py").run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Articles"] == "2"
    assert metrics["Cost (USD)"] == "0.0008 USD"  # 1000 × 0.15 + 1000 × 0.60 per 1M
    assert any("1 article uses a model with no price" in w.value for w in at.warning)
    assert [b.label for b in at.get("download_button")] == ["Export CSV"]
    at.selectbox(key="usage_by").set_value("model").run()
    table = at.dataframe[0].value
    assert set(table["Model"]) == {"gpt-4o-mini", "mystery-model"}


def test_budget_warns_at_80_percent_and_needs_confirmation_past_100(env, fake):
    fake.queue(Reply(text="spend", usage=(1_000_000, 0)))  # 0.15 USD
    at = fill_and_generate(app(), topic="spend", language="en")
    Store(database(env)).set_budget("USD", 0.18, actor=ADMIN)  # 83 %
    at = app()
    assert any("83% of this month's USD budget" in w.value for w in at.warning)
    Store(database(env)).set_budget("USD", 0.1, actor=ADMIN)  # 150 %
    at = app()
    assert any("budget is exceeded" in e.value for e in at.error)
    fake.queue(Reply(text="should not be written"))
    at = fill_and_generate(at, topic="over budget", language="en")
    assert any("tick the confirmation" in e.value for e in at.error)
    assert Store(database(env)).count() == 1
    at.checkbox(key="budget_confirm").check()
    fake.queue(Reply(text="confirmed"))
    at = fill_and_generate(at, topic="over budget", language="en")
    assert Store(database(env)).count() == 2
    # Asked again for the next article: the confirmation does not stay ticked.
    assert at.checkbox(key="budget_confirm").value is False
    at = fill_and_generate(at, topic="over budget again", language="en")
    assert any("tick the confirmation" in e.value for e in at.error)
    assert Store(database(env)).count() == 2


def test_local_model_note_tells_the_truth_and_keeps_a_chinese_brief(env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")  # no key: the bundled local model is the default
    monkeypatch.setenv("WRITER_UI_LANGUAGE", "zh")
    at = app()
    assert at.selectbox(key="provider").value == "local"
    assert at.radio(key="language").value == "zh"  # Gemma writes Chinese: nothing preset
    (note,) = [c for c in at.caption if "演示模型" in c.value]  # before Generate, in zh
    assert "不可靠" in note.value and "英文主题" not in note.value
    assert "Gemma 3 270M" in note.proto.help and "不可靠" in note.proto.help  # its tooltip
    at.text_input(key="topic").input("新款咖啡机上市").run()
    assert not at.warning  # a Chinese topic is fine
    assert at.button(key="generate").disabled is False


def test_local_model_note_in_english(env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    at = app()
    (note,) = [c for c in at.caption if "demo model" in c.value]
    assert "unreliable" in note.value and "in English" not in note.value
    assert "Chinese briefs are written by Gemma" in note.proto.help


def test_a_chosen_language_is_kept_when_the_provider_changes(env):
    at = app()
    assert at.radio(key="language").value == "zh"  # a remote provider: the form's default
    at.selectbox(key="provider").set_value("local").run()
    assert at.radio(key="language").value == "zh"  # the local model writes Chinese too
    at.radio(key="language").set_value("en").run()
    assert at.radio(key="language").value == "en"
    assert not any("answer in English" in c.value for c in at.caption)


def test_settings_page_edits_prices_and_budgets(env, backend, fake):
    at = app()
    at.switch_page("views/settings.py").run()
    assert not at.exception
    at.text_input(key="price_model").input("Mystery-Model")
    at.number_input(key="price_input").set_value(1.0)
    at.number_input(key="price_output").set_value(2.0)
    at.selectbox(key="price_currency").set_value("CNY")
    next(b for b in at.button if b.label == "Save price").click().run()
    assert not at.exception
    (edit,) = Store(database(env)).price_edits()
    assert (edit["model"], edit["currency"], edit["output_per_1m"]) == ("mystery-model", "CNY", 2.0)
    at.number_input(key="budget_CNY").set_value(500.0)
    next(b for b in at.button if b.label == "Save budgets").click().run()
    assert Store(database(env)).budgets() == {"CNY": 500.0}
    about = markdown_text(at)  # where the data is (a URL without its password)
    assert ("postgresql://" in about) == (backend != env["WRITER_DB"])


def test_errors_are_explained_in_chinese(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", "zh")
    fake.queue(Reply(status=401))
    at = app()
    at.text_input(key="topic").input("错误提示")
    at.button[0].click()
    at.run()
    (message,) = [e.value for e in at.error]
    assert message == "请求失败，没有写出任何内容。API Key 被拒绝：请检查 .env 中的 OPENAI_API_KEY"
    (details,) = at.expander  # the provider's English detail only in a collapsed line
    assert details.label == "详情（服务商返回的原始信息）"
    assert "HTTP 401" in details.text[0].value
    row = Store(database(env)).get(1)
    assert row["error_kind"] == "auth"


def test_interrupted_article_is_explained_and_can_be_continued(env, fake, monkeypatch):
    store = Store(database(env))
    store.articles.insert({"created_at": "2026-11-24T00:00:00.000Z", "topic": "killed",
                           "content": "Half an article", "status": "streaming", "worker_pid": 999999,
                           "target_words": 300, "language": "en", "content_type": "blog",
                           "style": "casual", "keywords": "[]"})
    assert store.recover_interrupted() == [1]
    at = app()
    at.switch_page("views/history.py").run()
    assert any("The writing process died" in i.value for i in at.info)
    assert at.button(key="history-continue-1")


@pytest.mark.parametrize("variable, content, message", [
    ("WRITER_PROVIDERS_FILE", "[[providers]]\nname = 'x'\n", "needs name, base_url"),
    ("WRITER_PRICES_FILE", "[models.x]\ninput = 1\n", "needs input, output"),
])
def test_broken_config_files_are_one_clear_message(env, tmp_path, monkeypatch, variable, content,
                                                   message):
    path = tmp_path / "broken.toml"
    path.write_text(content)
    monkeypatch.setenv(variable, str(path))
    at = app()
    assert not at.exception
    assert any(message in e.value for e in at.error)


def test_write_page_holds_the_article_to_its_target(env, fake):
    from scripted_writer import ScriptedWriter

    fake.responder = ScriptedWriter("ramble")
    at = fill_and_generate(app(), topic="length control", language="en", target_words=200,
                           length_control=True)
    assert not at.exception
    row = Store(database(env)).get(1)
    assert row["length_control"] == 1 and row["length_outcome"] == "on_target"
    assert 200 <= row["words"] <= 240
    bars = [el for el in at.main if el.type == "progress"]
    assert bars[-1].proto.text == f"{row['words']} / 200 words · on target"
    assert any("Length: on target" in c.value and "requests: 1" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key and b.key.startswith("continue-")]
