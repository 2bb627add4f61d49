"""Sign-in, roles and authors on the pages through AppTest (issue 23): the loopback
refusal, the sign-in form shown alone (nothing of the app in what the server sends), a
wrong password, signing in and out, a writer's pages and a forged price change, an
admin's view of everyone. The browser tests are tests/views/test_browser_auth.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from views import auth
from writer.access import Actor, hash_password
from writer.io.i18n import Translator
from writer.storage import accounts
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
SECRET_TOPIC = "Quarterly plan for the Zephyr launch"  # must never reach a signed-out page
PASSWORD = "correct horse battery"
en = Translator("en")


@pytest.fixture
def store(env):
    return Store(env["WRITER_DB"])


@pytest.fixture
def team(env, store, monkeypatch):
    """WRITER_AUTH=accounts with an admin (boss), two writers (ann, bob) and an article
    each; the per-client sign-in limit starts empty."""
    monkeypatch.setenv("WRITER_AUTH", "accounts")
    monkeypatch.setattr(auth, "_attempts", {})
    for name, role in (("boss", "admin"), ("ann", "writer"), ("bob", "writer")):
        accounts.add_user(store, name, role, hash_password(PASSWORD))
    for author, topic in (("ann", "Ann coffee guide"), ("bob", SECRET_TOPIC)):
        store.articles.insert({"created_at": "2026-01-05T10:00:00Z", "topic": topic,
                               "content": f"# {topic}\n\nText.", "status": "completed",
                               "words": 2, "target_words": 300, "content_type": "blog",
                               "language": "en", "provider": "api.example.com",
                               "model": "gpt-4o-mini", "author": author})
    return store


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()


def everything(at: AppTest) -> str:
    """Every element the run produced (main and sidebar), as the server sends it."""
    out = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    at.button(key="signin_submit").click()
    return at.run()


def signed_in(name: str) -> AppTest:
    at = sign_in(app(), name)
    assert not at.exception, at.exception
    assert at.session_state["actor"].name == name
    return at


def test_bound_beyond_loopback_without_sign_in_serves_only_what_to_configure(env, store):
    store.articles.insert({"created_at": "2026-01-05T10:00:00Z", "topic": SECRET_TOPIC,
                           "content": "x", "status": "completed", "words": 1,
                           "target_words": 300, "content_type": "blog", "language": "en"})
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = app()
    finally:
        config.set_option("server.address", before)
    assert not at.exception, at.exception
    assert at.title[0].value == en("auth.open_title")
    assert "WRITER_AUTH=accounts" in at.code[0].value
    assert "user add" in at.code[0].value
    assert len(at.sidebar) == 0 and not at.text_input and not at.button
    assert SECRET_TOPIC not in everything(at)
    assert "actor" not in at.session_state


@pytest.mark.parametrize("address,expected", [("127.0.0.1", True), ("::1", True),
                                              ("localhost", True), ("[::1]", True),
                                              ("0.0.0.0", False), ("", False), (None, False),
                                              ("192.168.1.20", False), ("::", False)])
def test_which_server_addresses_are_loopback(address, expected):
    assert auth.is_loopback(address) is expected


def test_signed_out_the_sign_in_form_is_all_there_is(team):
    at = app()
    assert not at.exception, at.exception
    assert at.title[0].value == en("auth.signin_title")
    assert [w.key for w in at.text_input] == ["signin_name", "signin_password"]
    assert [b.key for b in at.button] == ["signin_submit"]
    assert len(at.sidebar) == 0  # no running list, no provider, no navigation
    sent = everything(at)
    assert SECRET_TOPIC not in sent and "Ann coffee guide" not in sent
    assert en("app.nav_history") not in sent
    assert "actor" not in at.session_state


def test_a_wrong_password_shows_the_form_again_with_a_message(team):
    at = sign_in(app(), "bob", "not the password")
    assert not at.exception, at.exception
    assert [e.value for e in at.error][0] == en("user_errors.sign_in_refused")
    assert [w.key for w in at.text_input] == ["signin_name", "signin_password"]
    assert at.text_input(key="signin_password").value == ""  # not kept
    assert SECRET_TOPIC not in everything(at) and len(at.sidebar) == 0
    # an unknown name reads the same
    at = sign_in(at, "nobody", "not the password")
    assert [e.value for e in at.error][0] == en("user_errors.sign_in_refused")


def test_sign_in_attempts_are_limited_per_client(team):
    now = 1000.0
    assert all(auth.allow_attempt("10.0.0.9", now=now) == 0 for _ in range(auth.ATTEMPTS))
    assert auth.allow_attempt("10.0.0.9", now=now + 1) == pytest.approx(auth.WINDOW_S - 1)
    assert auth.allow_attempt("10.0.0.8", now=now + 1) == 0  # another client
    assert auth.allow_attempt("10.0.0.9", now=now + auth.WINDOW_S + 0.1) == 0  # window passed
    # through the page: the eleventh try in a row is refused before the password is checked
    at = app()
    for _ in range(auth.ATTEMPTS):
        at = sign_in(at, "boss", "not the password")
    at = sign_in(at, "boss", PASSWORD)
    assert [e.value for e in at.error][0].startswith("Too many sign-in attempts")
    assert "actor" not in at.session_state


def test_signing_in_shows_the_app_and_signing_out_forgets_everything(team):
    at = signed_in("boss")
    assert at.title[0].value == en("write.title")
    captions = [c.value for c in at.sidebar.caption]
    assert en("auth.signed_in_as", name="boss", role=en("auth.role_admin")) in captions
    token = at.session_state["session_token"]
    assert accounts.session_actor(team, token) == Actor("boss", "admin")
    # the cookie that keeps a reload signed in: the token, SameSite=Strict, the session's hours
    cookie = [el.proto.body for el in at.sidebar if el.type == "html"
              and auth.SESSION_COOKIE in el.proto.body]
    assert cookie and token in cookie[0] and "samesite=strict" in cookie[0]
    assert f"max-age={12 * 3600}" in cookie[0]
    at.text_input(key="topic").input("a draft topic").run()
    at.button(key="signout").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == en("auth.signin_title")
    assert en("auth.signed_out") in [s.value for s in at.success]
    assert accounts.session_actor(team, token) is None  # closed in the database
    assert "topic" not in at.session_state and "actor" not in at.session_state
    assert len(at.sidebar) == 0


def test_an_ended_session_is_back_at_the_sign_in_form(team):
    at = signed_in("ann")
    accounts.close_sessions(team, "ann")  # e.g. the password was changed on the server
    at.run()
    assert at.title[0].value == en("auth.signin_title")
    assert en("auth.expired") in [i.value for i in at.info]
    assert "Ann coffee guide" not in everything(at)


def test_a_writer_has_no_settings_page_and_sees_only_their_own_articles(team):
    at = signed_in("ann")
    captions = [c.value for c in at.sidebar.caption]
    assert en("auth.signed_in_as", name="ann", role=en("auth.role_writer")) in captions
    with pytest.raises(ValueError, match="Known pages") as missing:  # not in the navigation
        at.switch_page("views/settings.py")
    known = str(missing.value).split("Known pages")[1]
    assert "views/history.py" in known and "views/settings.py" not in known
    at.switch_page("views/history.py").run()
    assert not at.exception, at.exception
    sent = everything(at)
    assert "Ann coffee guide" in sent and SECRET_TOPIC not in sent
    assert "f_author" not in [s.key for s in at.selectbox]  # one author: no filter
    at.switch_page("views/usage.py").run()
    assert not at.exception, at.exception
    assert en("auth.own_usage") in [c.value for c in at.caption]
    assert en("auth.by_author_title") not in [s.value for s in at.subheader]


def test_an_admin_sees_everyone_with_authors(team):
    at = signed_in("boss")
    at.switch_page("views/history.py").run()
    assert not at.exception, at.exception
    sent = everything(at)
    assert "Ann coffee guide" in sent and SECRET_TOPIC in sent
    authors = at.selectbox(key="f_author")
    assert set(authors.options) >= {"ann", "bob"}
    authors.set_value("bob").run()
    sent = everything(at)
    assert SECRET_TOPIC in sent and "Ann coffee guide" not in sent
    at.switch_page("views/settings.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == en("settings.title")
    people = at.dataframe[-1].value  # the people list (read only)
    assert sorted(people[en("auth.col_name")]) == ["ann", "bob", "boss"]


def test_a_writers_forged_price_change_is_refused_by_the_server(env, store):
    """The page drawn for an admin, then the request comes from a writer (a forged
    widget event, or a role changed meanwhile): writer/ refuses, the price stays."""
    at = AppTest.from_file(str(ROOT / "views" / "settings.py"), default_timeout=30)
    at.session_state["actor"] = Actor("boss", "admin")
    at.run()
    assert not at.exception, at.exception
    at.session_state["actor"] = Actor("ann", "writer")
    at.text_input(key="price_model").input("forged-model")
    at.number_input(key="price_input").set_value(0.01)
    at.number_input(key="price_output").set_value(0.02)
    at.selectbox(key="price_currency").set_value("USD")
    at.button(key="price_save").click()
    at.number_input(key="budget_USD").set_value(1.0)
    at.run()
    assert not at.exception, at.exception
    assert store.price_edits() == []
    assert en("user_errors.access_denied", action="change a price") in [e.value for e in at.error]
    # and the budget form's button, reached the same way
    at.session_state["actor"] = Actor("boss", "admin")
    at.run()
    at.session_state["actor"] = Actor("ann", "writer")
    at.number_input(key="budget_USD").set_value(1.0)
    at.button(key="budgets_save").click().run()
    assert store.budgets() == {}
    # the page itself shows a writer nothing but the refusal
    assert not at.dataframe and not at.text_input


def test_oidc_without_an_auth_section_says_what_to_configure(env, monkeypatch):
    monkeypatch.setenv("WRITER_AUTH", "oidc")
    monkeypatch.setattr(auth, "oidc_configured", lambda: False)
    at = app()
    assert not at.exception, at.exception
    assert at.title[0].value == en("auth.oidc_missing_title")
    assert "[auth]" in at.code[0].value and len(at.sidebar) == 0


class FakeUser(dict):
    """What st.user holds after an OIDC sign-in (the ID token's claims)."""

    is_logged_in = True


@pytest.mark.parametrize("default_role", ["writer", "none"])
def test_oidc_people_without_an_account_get_the_default_role(env, store, monkeypatch,
                                                             default_role):
    import streamlit

    monkeypatch.setenv("WRITER_AUTH", "oidc")
    monkeypatch.setenv("WRITER_OIDC_DEFAULT_ROLE", default_role)
    monkeypatch.setattr(auth, "oidc_configured", lambda: True)
    monkeypatch.setattr(streamlit, "user", FakeUser(email="new.person@corp.example", sub="x1"))
    accounts.add_user(store, "Boss@corp.example", "admin", None)
    at = app()
    assert not at.exception, at.exception
    if default_role == "none":
        assert at.title[0].value == en("auth.refused_title")
        assert "user add new.person@corp.example" in at.code[0].value
        assert "actor" not in at.session_state and len(at.sidebar) == 0
    else:
        assert at.session_state["actor"] == Actor("new.person@corp.example", "writer")
        assert at.title[0].value == en("write.title")
    # an account's role is used (and its spelling)
    monkeypatch.setattr(streamlit, "user", FakeUser(email="boss@corp.example"))
    at = app()
    assert at.session_state["actor"] == Actor("Boss@corp.example", "admin")
