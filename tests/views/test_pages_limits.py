"""Inputs with limits on the pages (issue 21), through AppTest: the Write page's text
boxes carry the brief's limits, too many keywords are refused next to their box before
anything is sent, a hard-capped monthly budget already spent refuses Generate with the
figures, and the Settings page toggles the hard cap per currency."""
from __future__ import annotations

import html

import pytest
from streamlit.testing.v1 import AppTest

from test_pages import ROOT, fill_and_generate
from writer.access import Actor
from writer.brief import MAX_FIELD_CHARS, MAX_KEYWORDS, MAX_KEYWORDS_TEXT_CHARS, MAX_TOPIC_CHARS
from writer.io.i18n import Translator
from writer.storage.store import Store, utc_now

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


def open_page(page: str, language: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.session_state["ui_language"] = language
    at.run()
    if page != "write":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def spent(env, cost: float = 0.02) -> None:
    """This month has already cost `cost` USD."""
    store = Store(env["WRITER_DB"])
    try:
        store.articles.insert({"created_at": utc_now(), "topic": "t", "content": "text", "status": "completed",
                               "words": 10, "provider": "p", "model": "gpt-4o-mini",
                               "content_type": "blog", "input_tokens": 1, "output_tokens": 1,
                               "cost": cost, "currency": "USD", "usage_source": "reported",
                               "target_words": 300})
    finally:
        store.close()


def test_the_write_pages_text_boxes_carry_the_briefs_limits(env):
    at = open_page("write")
    assert at.text_input(key="topic").max_chars == MAX_TOPIC_CHARS
    assert at.text_input(key="audience").max_chars == MAX_FIELD_CHARS
    assert at.text_input(key="keywords").max_chars == MAX_KEYWORDS_TEXT_CHARS
    at.selectbox(key="style").set_value("custom").run()
    assert at.text_input(key="custom_style").max_chars == MAX_FIELD_CHARS


@pytest.mark.parametrize("language", ["zh", "en"])
def test_too_many_keywords_are_refused_next_to_their_box(env, fake, language):
    at = open_page("write", language)
    many = ",".join(f"k{n}" for n in range(MAX_KEYWORDS + 1))
    at = fill_and_generate(at, topic="咖啡机", keywords=many)
    assert not at.exception, at.exception
    expected = Translator(language)("brief_errors.keywords_many", keywords_max=MAX_KEYWORDS)
    assert expected in [html.unescape(e.value) for e in at.error]
    assert fake.requests == [] and Store(env["WRITER_DB"]).count() == 0


def test_a_hard_capped_budget_already_spent_refuses_generate_with_the_figures(env, fake):
    spent(env, 0.02)
    Store(env["WRITER_DB"]).set_budget("USD", 0.01, hard_cap=True, actor=ADMIN)
    at = open_page("write")
    assert not any(c.key == "budget_confirm" for c in at.checkbox)  # nothing to confirm
    shown = " ".join(html.unescape(e.value) for e in at.error)
    assert "hard cap" in shown and "confirmation" not in shown  # the banner says it is refused
    at = fill_and_generate(at, topic="over the cap", language="en")
    assert not at.exception, at.exception
    refusal = Translator("en")("user_errors.budget_exceeded", currency="USD", spent="0.02",
                               budget="0.01")
    assert refusal in [html.unescape(e.value) for e in at.error]  # shown as plain text
    assert fake.requests == [] and Store(env["WRITER_DB"]).count() == 1


def test_settings_toggles_the_hard_cap_per_currency(env):
    at = open_page("settings")
    cap = at.checkbox(key="budget_cap_USD")
    assert cap.value is False and cap.label == "Hard cap"
    at.number_input(key="budget_USD").set_value(10.0)
    cap.check()
    next(b for b in at.button if b.label == "Save budgets").click().run()
    assert not at.exception, at.exception
    store = Store(env["WRITER_DB"])
    assert store.budgets() == {"USD": 10.0} and store.hard_caps() == {"USD"}
    at = open_page("settings", "zh")
    assert at.checkbox(key="budget_cap_USD").value is True
    assert at.checkbox(key="budget_cap_USD").label == "硬上限"
    at.checkbox(key="budget_cap_USD").uncheck()
    next(b for b in at.button if b.label == Translator("zh")("settings.save_budgets")).click().run()
    assert store.budgets() == {"USD": 10.0} and store.hard_caps() == set()
