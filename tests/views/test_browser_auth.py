"""Sign-in in a real browser: `streamlit run app.py` driven by Debian's chromium.

- **No open door**: WRITER_AUTH=none on `--server.address 0.0.0.0` serves only the page
  that says what to configure, even to a browser on this machine (127.0.0.1): the
  server itself is not bound to loopback.
- **Accounts** (WRITER_AUTH=accounts; the accounts made with `python -m writer user add
  --password-stdin`, the articles seeded with their authors): a wrong password gets the
  form again and nothing of the app — no topic in the page nor in any WebSocket message
  the server sent (the same capture sees the topics once an admin is signed in, so it
  is not blind); a writer has no Settings in the navigation and only their own articles
  in History; an admin has Settings and every article; Sign out goes back to the form,
  a reload stays signed out and the server has closed the session (its cookie is dead).
  While an admin's article streams, neither a signed-out tab nor a writer's is sent its
  topic (the sidebar's running list is the admin's alone).
- **OIDC** (WRITER_AUTH=oidc) against tests/oidc_mock.py, a provider on loopback: the
  button → the provider → back, signed in as the provider's person (their email, a
  writer by WRITER_OIDC_DEFAULT_ROLE, an account's role for an admin); Sign out.
  Streamlit finds `[auth]` through `--secrets.files` (a secrets.toml in the test's
  temporary folder), so nothing is written into the repository's .streamlit/.

The widgets are found by their keys (views/auth.py: signin_name, signin_password,
signin_submit, signout; Streamlit gives each element the class `st-key-<key>`). On a
failure the server's output is in the report and a screenshot in test-artifacts/.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from oidc_mock import MockOIDC, Person
from serving import GRID_JS
from test_browser import AppServer, _free_port, browser, chromium_path, serve_app  # noqa: F401
from test_browser_jobs import held, start_article
from writer.storage import accounts
from writer.storage.migrations import LEGACY_AUTHOR
from writer.storage.store import Store

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
STARTUP_TIMEOUT_S = 30
UI_TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1280, "height": 800}

ADMIN, ADMIN_PASSWORD = "lin.admin", "admin-pass-9431"
WRITER, WRITER_PASSWORD = "chen", "writer-pass-2718"
OIDC_EMAIL, OIDC_ADMIN = "dana@corp.example", "boss@corp.example"

# Seeded articles: (topic, author); ids 1, 2, 3 in this order.
ADMIN_TOPIC = "Board memo on next quarter pricing"
WRITER_TOPIC = "Autumn oat latte launch teaser"
LEGACY_TOPIC = "Welcome post from before sign-in"
ARTICLES = [(ADMIN_TOPIC, ADMIN), (WRITER_TOPIC, WRITER), (LEGACY_TOPIC, LEGACY_AUTHOR)]
ADMIN_ID, WRITER_ID, LEGACY_ID = 1, 2, 3
TOPICS = [topic for topic, _ in ARTICLES]


# ---- servers ----------------------------------------------------------------------------

def app_env(tmp: Path, fake: FakeOpenAI, **extra: str) -> dict:
    """The environment of a server (and of the CLI on its database): no developer's
    WRITER_*/OPENAI_* variables, the fake provider, a scratch database."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))},
            "WRITER_DB": str(tmp / "writer.db"), "WRITER_UI_LANGUAGE": "en",
            "WRITER_NO_DOTENV": "1", "OPENAI_BASE_URL": fake.base_url,
            "OPENAI_API_KEY": "sk-test", "WRITER_MODEL": "gpt-4o-mini", **extra}


@contextlib.contextmanager
def app_server(tmp: Path, env: dict, *, address: str = "127.0.0.1", port: int | None = None,
               args: tuple[str, ...] = ()):
    """`streamlit run app.py` bound to `address`, reached on 127.0.0.1; its output is
    printed at the end (a failed sign-in test shows what the server said)."""
    with serve_app(tmp, env, address=address, port=port, args=args) as server:
        try:
            yield server
        finally:
            print(f"--- streamlit output ({server.url}, bound to {address}) ---\n{server.log()}",
                  file=sys.stderr)


def add_user(env: dict, name: str, role: str, password: str | None) -> None:
    """`python -m writer user add` as an operator types it on the server."""
    cmd = [sys.executable, "-m", "writer", "user", "add", name, "--role", role,
           "--password-stdin" if password else "--no-password"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, input=f"{password}\n" if password else "",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}: {done.stderr}"


def seed_articles(db_path: Path) -> None:
    store = Store(db_path)  # migrated: the server finds its tables made
    try:
        for topic, author in ARTICLES:
            store.articles.insert({
                "created_at": "2026-11-20T02:10:00.000Z", "updated_at": "2026-11-20T02:10:00.000Z",
                "topic": topic, "author": author, "language": "en", "content_type": "blog",
                "style": "professional", "keywords": "[]", "audience": "", "status": "completed",
                "words": 9, "target_words": 200, "content": f"# {topic}\n\nNine words of body text.",
                "provider": "openai", "model": "gpt-4o-mini"})
    finally:
        store.close()


@pytest.fixture(scope="module")
def fake_provider():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def accounts_server(chromium_path, fake_provider, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("browser-accounts")
    env = app_env(tmp, fake_provider, WRITER_AUTH="accounts")
    seed_articles(tmp / "writer.db")
    add_user(env, ADMIN, "admin", ADMIN_PASSWORD)
    add_user(env, WRITER, "writer", WRITER_PASSWORD)
    with app_server(tmp, env) as server:
        yield server


@pytest.fixture
def accounts_app(accounts_server):
    accounts_server.check_alive()
    return accounts_server


@pytest.fixture(scope="module")
def oidc_provider():
    with MockOIDC(email=OIDC_EMAIL, name="Dana Li") as idp:
        yield idp


@pytest.fixture(scope="module")
def oidc_server(chromium_path, fake_provider, oidc_provider, tmp_path_factory):  # noqa: F811
    """WRITER_AUTH=oidc with `[auth]` in a secrets.toml of the test's own
    (`--secrets.files`); the redirect URI is this server's /oauth2callback on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("browser-oidc")
    port = _free_port()
    secrets_file = tmp / "secrets.toml"
    secrets_file.write_text(oidc_provider.secrets_toml(f"http://127.0.0.1:{port}/oauth2callback"))
    env = app_env(tmp, fake_provider, WRITER_AUTH="oidc")
    seed_articles(tmp / "writer.db")
    add_user(env, OIDC_ADMIN, "admin", None)  # an admin who signs in only through the provider
    with app_server(tmp, env, port=port, args=("--secrets.files", str(secrets_file))) as server:
        yield server


@pytest.fixture
def oidc_app(oidc_server):
    oidc_server.check_alive()
    return oidc_server


# ---- the browser ----------------------------------------------------------------------------

class Tab:
    """A page plus every WebSocket message the server sent it (bytes, as received)."""

    def __init__(self, page):
        self.page, self.received = page, []
        page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        ws.on("framereceived", lambda payload: self.received.append(
            payload if isinstance(payload, bytes) else payload.encode("utf-8")))

    def sent_by_server(self) -> bytes:
        return b"".join(self.received)

    def topics_seen(self) -> set[str]:
        """The seeded topics in the page's HTML or in what the server sent."""
        html, sent = self.page.content(), self.sent_by_server()
        return {topic for topic in TOPICS if topic in html or topic.encode() in sent}


@contextlib.contextmanager
def tab(browser, url: str):  # noqa: F811
    """A fresh browser context (= a Streamlit session and a cookie jar of its own) on
    `url`. On a failure a screenshot goes to test-artifacts/."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    watched = Tab(page)
    try:
        page.goto(url)
        yield watched
    except BaseException:
        with contextlib.suppress(Exception):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"auth-failure-{time.time():.0f}-{id(page)}.png"))
        raise
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def key(page, name: str):
    """The element Streamlit drew for the widget with key `name`."""
    return page.locator(f".st-key-{name}")


def sign_in_form(page):
    """Wait for the sign-in form (name and password fields, the button)."""
    from playwright.sync_api import expect

    expect(key(page, "signin_name").locator("input")).to_be_visible()
    expect(key(page, "signin_password").locator("input")).to_be_visible()
    expect(key(page, "signin_submit").locator("button")).to_be_visible()


def sign_in(page, name: str, password: str) -> None:
    sign_in_form(page)
    key(page, "signin_name").locator("input").fill(name)
    key(page, "signin_password").locator("input").fill(password)
    key(page, "signin_submit").locator("button").click()


def navigation(page) -> list[str]:
    """The sidebar navigation's page names, once it is drawn (a link's text is its
    Material icon's name, then the page's)."""
    nav = page.get_by_test_id("stSidebarNav")
    nav.wait_for()
    return [text.strip().splitlines()[-1].strip()
            for text in nav.get_by_role("link").all_inner_texts()]


def assert_nothing_of_the_app(page) -> None:
    """No navigation, nothing in the sidebar (after Sign out an empty one may stay
    drawn: Streamlit keeps the panel until the page is loaded again), no Write form."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    expect(page.get_by_test_id("stSidebar").get_by_test_id("stElementContainer")).to_have_count(0)
    expect(page.get_by_role("textbox", name="Topic", exact=True)).to_have_count(0)


def poll(condition, what: str, timeout_s: float = 15, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def history_ids(page) -> set[int]:
    table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame")
    table.wait_for()
    return {int(row["ID"]) for row in (table.evaluate(GRID_JS) or []) if row}


def open_history(page) -> None:
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="History").click()
    expect(page.get_by_test_id("stMain").get_by_role("heading", name="History")).to_be_visible()


# ---- no open door ------------------------------------------------------------------------------

def test_no_sign_in_bound_beyond_loopback_serves_only_what_to_configure(
        browser, fake_provider, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    seed_articles(tmp_path / "writer.db")
    env = app_env(tmp_path, fake_provider, WRITER_AUTH="none")
    with app_server(tmp_path, env, address="0.0.0.0") as server, \
            tab(browser, server.url + "/") as watched:  # from this machine, all the same
        page = watched.page
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("WRITER_AUTH=accounts").first).to_be_visible()
        expect(main).to_contain_text("python -m writer user add")
        assert_nothing_of_the_app(page)
        expect(key(page, "signin_name")).to_have_count(0)  # no form either
        page.goto(server.url + "/history")  # the app's own addresses: the same page
        expect(main.get_by_text("WRITER_AUTH=accounts").first).to_be_visible()
        assert_nothing_of_the_app(page)
        assert watched.topics_seen() == set()
        assert watched.received, "no WebSocket message captured: the check above is blind"


# ---- accounts ----------------------------------------------------------------------------------

def failed_attempts(server: AppServer, name: str) -> int:
    store = Store(server.db_path)
    try:
        return accounts.get_user(store, name)["failed_attempts"]
    finally:
        store.close()


def test_a_wrong_password_gets_the_form_again_and_nothing_of_the_app(browser, accounts_app):  # noqa: F811
    from playwright.sync_api import expect

    refused = "Wrong name or password."
    before = failed_attempts(accounts_app, WRITER)
    with tab(browser, accounts_app.url + "/history") as watched:
        page = watched.page
        main = page.get_by_test_id("stMain")
        sign_in_form(page)
        assert_nothing_of_the_app(page)
        sign_in(page, "nobody-here", WRITER_PASSWORD)  # an unknown name …
        expect(main.get_by_text(refused, exact=True)).to_be_visible()
        sign_in_form(page)
        assert_nothing_of_the_app(page)

        sign_in(page, WRITER, "not-the-password")  # … and a wrong password: the same answer
        poll(lambda: failed_attempts(accounts_app, WRITER) == before + 1,
             "the wrong password counted against the account")
        expect(main.get_by_text(refused, exact=True)).to_be_visible()
        sign_in_form(page)
        expect(key(page, "signin_password").locator("input")).to_have_value("")
        assert_nothing_of_the_app(page)
        assert watched.topics_seen() == set()
        assert watched.received, "no WebSocket message captured: the check above is blind"
        assert all(c["name"] != "writer_session" for c in page.context.cookies())


def test_a_writer_sees_no_settings_and_only_their_own_articles(browser, accounts_app):  # noqa: F811
    from playwright.sync_api import expect

    with tab(browser, accounts_app.url + "/") as watched:
        page = watched.page
        sign_in(page, WRITER, WRITER_PASSWORD)
        pages = navigation(page)
        assert "Settings" not in pages and "History" in pages and "Write" in pages, pages
        expect(page.get_by_test_id("stSidebar")).to_contain_text(WRITER)
        open_history(page)
        poll(lambda: history_ids(page) == {WRITER_ID}, "only the writer's own article listed")
        assert watched.topics_seen() == {WRITER_TOPIC}
        page.goto(accounts_app.url + "/settings")  # typed by hand: still no Settings page
        navigation(page)
        expect(page.get_by_test_id("stMain").get_by_role("heading", name="Settings")).to_have_count(0)
        assert watched.topics_seen() <= {WRITER_TOPIC}


def test_an_admin_sees_settings_and_every_article(browser, accounts_app):  # noqa: F811
    with tab(browser, accounts_app.url + "/") as watched:
        page = watched.page
        sign_in(page, ADMIN, ADMIN_PASSWORD)
        pages = navigation(page)
        assert "Settings" in pages and "History" in pages, pages
        open_history(page)
        poll(lambda: {ADMIN_ID, WRITER_ID, LEGACY_ID} <= history_ids(page), "every article listed")
        # The capture that saw no topic before sign-in (the other tests) sees them now.
        poll(lambda: all(topic.encode() in watched.sent_by_server() for topic in TOPICS),
             "every topic in what the server sent")


def test_sign_out_goes_back_to_the_form_and_a_reload_stays_signed_out(browser, accounts_app):  # noqa: F811
    from playwright.sync_api import expect

    with tab(browser, accounts_app.url + "/") as watched:
        page = watched.page
        sign_in(page, WRITER, WRITER_PASSWORD)
        navigation(page)
        poll(lambda: any(c["name"] == "writer_session" for c in page.context.cookies()),
             "the session's cookie")
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "writer_session")
        store = Store(accounts_app.db_path)
        try:
            assert accounts.session_actor(store, token).name == WRITER
            page.reload()  # signed in across a reload
            assert "History" in navigation(page)

            key(page, "signout").locator("button").click()
            sign_in_form(page)
            assert_nothing_of_the_app(page)
            assert accounts.session_actor(store, token) is None  # closed on the server
            page.reload()
            sign_in_form(page)
            assert_nothing_of_the_app(page)
            expect(key(page, "signin_name").locator("input")).to_have_value("")
        finally:
            store.close()
        assert all(c["name"] != "writer_session" or c["value"] != token
                   for c in page.context.cookies())


RUNNING_TOPIC = "Confidential merger announcement draft"


def test_a_running_article_reaches_no_one_signed_out_nor_another_writer(
        browser, accounts_app, fake_provider):  # noqa: F811
    """While an admin's article streams (held mid-stream by the fake), its topic is in
    neither the page nor the server's messages of a signed-out tab (before and after a
    wrong password) nor of a writer's tab, whose sidebar lists no running article; the
    admin's own sidebar does (the same checks see it there)."""
    from playwright.sync_api import expect

    reply = held()
    with tab(browser, accounts_app.url + "/") as admin:
        sign_in(admin.page, ADMIN, ADMIN_PASSWORD)
        navigation(admin.page)
        article_id, _ = start_article(admin.page, fake_provider, RUNNING_TOPIC, reply)
        try:
            poll(lambda: reply.held.is_set(), "the article streaming (held by the fake)")
            expect(admin.page.get_by_test_id("stSidebar").get_by_text(RUNNING_TOPIC)).to_be_visible()
            assert RUNNING_TOPIC.encode() in admin.sent_by_server()

            with tab(browser, accounts_app.url + "/history") as stranger:
                sign_in_form(stranger.page)
                sign_in(stranger.page, ADMIN, "a-wrong-password")
                expect(stranger.page.get_by_test_id("stMain").get_by_text(
                    "Wrong name or password.", exact=True)).to_be_visible()
                assert_nothing_of_the_app(stranger.page)
                assert RUNNING_TOPIC not in stranger.page.content()
                assert RUNNING_TOPIC.encode() not in stranger.sent_by_server()

            with tab(browser, accounts_app.url + "/") as writer:
                sign_in(writer.page, WRITER, WRITER_PASSWORD)
                navigation(writer.page)
                open_history(writer.page)
                poll(lambda: history_ids(writer.page) == {WRITER_ID}, "the writer's own article")
                expect(writer.page.get_by_test_id("stSidebar").get_by_text(RUNNING_TOPIC)).to_have_count(0)
                expect(writer.page.get_by_test_id("stSidebar").get_by_role(
                    "button", name="Stop")).to_have_count(0)
                assert RUNNING_TOPIC not in writer.page.content()
                assert RUNNING_TOPIC.encode() not in writer.sent_by_server()
        finally:
            reply.release()
    store = Store(accounts_app.db_path)
    try:
        poll(lambda: store.get(article_id)["status"] == "completed", "the article to finish")
        assert store.get(article_id)["author"] == ADMIN
    finally:
        store.close()


# ---- OIDC ------------------------------------------------------------------------------------

def oidc_sign_in(page):
    from playwright.sync_api import expect

    button = key(page, "signin_oidc").locator("button")
    expect(button).to_be_visible()
    assert_nothing_of_the_app(page)
    button.click()  # → the provider → /oauth2callback → the app


def test_oidc_sign_in_and_out_against_the_mock_provider(browser, oidc_app, oidc_provider):  # noqa: F811
    from playwright.sync_api import expect

    with tab(browser, oidc_app.url + "/") as watched:
        page = watched.page
        oidc_sign_in(page)
        pages = navigation(page)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar).to_contain_text(OIDC_EMAIL)
        expect(sidebar).to_contain_text("writer")  # WRITER_OIDC_DEFAULT_ROLE's default
        assert "Settings" not in pages and "Write" in pages, pages
        assert oidc_provider.errors == []
        request = oidc_provider.token_requests[-1]
        assert request["code_verifier"]  # PKCE S256 was used (the provider checked it)
        assert watched.topics_seen() == set()  # Dana wrote nothing: none of the seeded topics

        key(page, "signout").locator("button").click()
        expect(key(page, "signin_oidc").locator("button")).to_be_visible()
        assert_nothing_of_the_app(page)
        assert oidc_provider.logout_requests, "the provider's end_session_endpoint was not visited"
        page.reload()
        expect(key(page, "signin_oidc").locator("button")).to_be_visible()
        assert_nothing_of_the_app(page)


def test_oidc_admin_by_account_role(browser, oidc_app, oidc_provider):  # noqa: F811
    oidc_provider.person = Person(email=OIDC_ADMIN, sub="mock-subject-boss", name="The Boss")
    try:
        with tab(browser, oidc_app.url + "/") as watched:
            page = watched.page
            oidc_sign_in(page)
            pages = navigation(page)
            assert "Settings" in pages, pages
            open_history(page)
            poll(lambda: history_ids(page) == {ADMIN_ID, WRITER_ID, LEGACY_ID},
                 "every article listed for an admin")
    finally:
        oidc_provider.person = Person(email=OIDC_EMAIL, name="Dana Li")
