"""Inputs with limits through `python -m writer` (issue 21): too many keywords are
refused before any request; what history, show and versions print of stored text has
no raw control character; a hard-capped monthly budget already spent refuses `write`
with the figures, before any request."""
from __future__ import annotations

import datetime as dt

from fake_openai import Reply
from test_cli import cli, rows
from writer.access import Actor
from writer.brief import MAX_KEYWORDS
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ESC, BEL = "\x1b", "\x07"


def _old_row(env, **fields) -> int:
    """A row stored before control characters were stripped on input."""
    store = Store(env["WRITER_DB"])
    try:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        row = {"created_at": now, "updated_at": now, "topic": "t", "content": "text",
               "status": "completed", "words": 1, "provider": "p", "model": "m",
               "content_type": "blog", "language": "zh", "style": "professional",
               "target_words": 300, "input_tokens": 10, "output_tokens": 10, "cost": 0.02,
               "currency": "USD", "usage_source": "reported"}
        row.update(fields)
        return store.articles.insert(row).last_pk
    finally:
        store.close()


def _raw_controls(text: str) -> list[str]:
    return [ch for ch in text if (ord(ch) < 0x20 and ch not in "\n\t") or 0x7F <= ord(ch) < 0xA0]


def test_too_many_keywords_are_refused_before_any_request(env, fake):
    fake.queue(Reply(text="never sent"))
    many = ",".join(f"kw{n}" for n in range(10_000))
    result = cli("write", "--topic", "t", "--keywords", many, env=env)
    assert result.returncode == 2, result.stderr
    assert f"at most {MAX_KEYWORDS}" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert fake.requests == [] and rows(env) == []


def test_history_show_and_versions_print_no_control_character_raw(env):
    attack = f"{ESC}]0;pwn{BEL}咖啡机{ESC}[2J\x9b31m"
    article_id = _old_row(env, topic=attack, model=f"m{ESC}[5m",
                          content=f"# 标题\n\n正文{ESC}]0;owned{BEL}。\n\t缩进\n")
    listed = cli("history", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "咖啡机" in listed.stdout and ESC not in listed.stdout and BEL not in listed.stdout
    assert _raw_controls(listed.stdout) == [] and "\\u001b" in listed.stdout
    as_json = cli("history", "--json", env=env)
    assert as_json.returncode == 0 and _raw_controls(as_json.stdout) == []
    shown = cli("show", str(article_id), env=env)
    assert shown.returncode == 0, shown.stderr
    assert _raw_controls(shown.stdout) == [] and "正文" in shown.stdout
    assert "\n\t缩进" in shown.stdout  # line breaks and tabs stay
    shown_json = cli("show", str(article_id), "--format", "json", env=env)
    assert shown_json.returncode == 0 and _raw_controls(shown_json.stdout) == []
    listed_versions = cli("versions", str(article_id), "--json", env=env)
    assert listed_versions.returncode == 0 and _raw_controls(listed_versions.stdout) == []


def test_a_hard_capped_budget_already_spent_refuses_write_with_the_figures(env, fake):
    _old_row(env, cost=0.02, currency="USD")  # this month: 0.02 USD spent
    store = Store(env["WRITER_DB"])
    try:
        store.set_budget("USD", 0.01, hard_cap=True, actor=ADMIN)
    finally:
        store.close()
    fake.queue(Reply(text="never sent"))
    result = cli("write", "--topic", "t", "--language", "en", env=env)
    assert result.returncode == 2, result.stderr
    assert "0.02 spent of 0.01 USD" in result.stderr and "hard cap" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and fake.requests == []
    assert len(rows(env)) == 1  # no article row either
    # the check refuses too (--yes: no question first)
    checked = cli("check", "--runs", "1", "--concurrency", "0", "--yes", env=env)
    assert checked.returncode == 2 and "0.02 spent of 0.01 USD" in checked.stderr
    assert fake.requests == []
    # without the cap (the same budget), the CLI writes as before
    store = Store(env["WRITER_DB"])
    try:
        store.set_budget("USD", 0.01, hard_cap=False, actor=ADMIN)
    finally:
        store.close()
    written = cli("write", "--topic", "t", "--language", "en", env=env)
    assert written.returncode == 0, written.stderr
    assert len(fake.requests) == 1
