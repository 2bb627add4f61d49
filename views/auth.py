"""Who is using the app: the gate app.py runs before anything else is drawn.

WRITER_AUTH (docs/settings.md) chooses how a person is known:

- `none` (the default): no sign-in, the machine's one user (WRITER_USER) as an admin, and
  only on loopback: bound beyond 127.0.0.1, reached from another address or through a
  proxy, the app serves a page that says what to configure and nothing else.
- `accounts`: a name and a password (`python -m writer user add`). A session's random
  token is kept in a cookie (SameSite=Strict, WRITER_SESSION_HOURS) so a reload stays
  signed in; only its SHA-256 is in the database (writer/storage/accounts.py), which
  also locks an account after wrong passwords. Sign-in attempts are limited per client
  here as well (`ATTEMPTS` per `WINDOW_S`).
- `oidc`: the company's identity provider through Streamlit's own st.login / st.user /
  st.logout (`[auth]` in .streamlit/secrets.toml); a person with no `users` row gets
  WRITER_OIDC_DEFAULT_ROLE (`none`: refused).

Until someone is signed in the navigation holds only the sign-in page (under every
page's address, so a link or a reload opens the same page once signed in) and nothing
is drawn in the sidebar: no article, topic or running job reaches the browser.
"""
from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, NoReturn

import streamlit as st

from views.common import PageContext, page_context, remember_language
from writer.access import ADMIN, ROLES, Actor
from writer.errors import UserError
from writer.io.i18n import UI_LANGUAGES
from writer.io.markup import plain
from writer.storage import accounts

SESSION_COOKIE = "writer_session"  # the session's random token (accounts)
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")  # what open_session hands out
ATTEMPTS, WINDOW_S = 10, 300  # sign-in attempts per client per window, over the DB's lockout
MAX_CLIENTS = 10_000  # addresses remembered by the limiter (the oldest go first)
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
KEEP_ON_SIGN_IN = ("ui_language", "language_cookie_written")  # the rest is the last person's


class SignInRateLimited(UserError):
    """Too many sign-in attempts from one client."""

    key = "user_errors.sign_in_rate"


# -- the gate ----------------------------------------------------------------------

def gate(ctx: PageContext, page_paths: list[str]) -> Actor:
    """The signed-in Actor (also `st.session_state["actor"]`). Anyone else gets a page
    of its own (the loopback refusal, the sign-in form, a refusal) and the run stops."""
    settings = ctx.settings
    if settings.auth == "accounts":
        actor = _account_actor(ctx) or _alone(ctx, page_paths, _signin_form)
    elif settings.auth == "oidc":
        actor = _oidc_actor(ctx, page_paths)
    else:  # none: the machine's one user, on loopback only
        if not on_loopback():
            _alone(ctx, page_paths, _open_door)
        actor = Actor(settings.user, ADMIN)
    st.session_state["actor"] = actor
    return actor


def is_loopback(host: str | None) -> bool:
    """Whether an address is this machine only ("" / None, all interfaces, is not)."""
    host = (host or "").strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def on_loopback() -> bool:
    """Served on loopback to a browser on this machine, with no proxy in between."""
    if not is_loopback(st.get_option("server.address")):
        return False
    try:
        ip, headers = st.context.ip_address, st.context.headers
    except Exception:  # no browser behind this run (a bare script run)
        return True
    if isinstance(ip, str) and not is_loopback(ip):  # None: Streamlit's "this machine"
        return False
    return not any(headers.get(name) for name in PROXY_HEADERS)


def client_address() -> str:
    """Who is trying to sign in: the peer, or behind a proxy on this machine the address
    the proxy saw (the last X-Forwarded-For hop: the one the client cannot write)."""
    try:
        ip, headers = st.context.ip_address, st.context.headers
        hops = [h.strip() for line in headers.get_all("X-Forwarded-For") for h in line.split(",")]
    except Exception:
        return "local"
    if isinstance(ip, str):
        return ip
    return hops[-1] if hops and hops[-1] else "local"


# -- pages shown alone -------------------------------------------------------------

def _alone(ctx: PageContext, page_paths: list[str], draw: Callable[[PageContext], None]) -> NoReturn:
    """A page alone in the navigation (hidden), under the app's own addresses too (a link
    to /history opens it, and History once signed in); nothing in the sidebar."""
    title = ctx.t("auth.signin_title") if draw is _signin_form else ctx.t("app.title")

    def page() -> None:
        _language_picker(ctx)
        draw(ctx)

    pages = [st.Page(page, title=title, icon=":material/lock:", url_path="signin", default=True),
             *(st.Page(page, title=title, icon=":material/lock:", url_path=Path(p).stem,
                       visibility="hidden") for p in page_paths)]
    st.navigation(pages, position="hidden").run()
    st.stop()


def _language_picker(ctx: PageContext) -> None:
    _, right = st.columns([4, 1])
    right.selectbox("UI / 界面", UI_LANGUAGES, key="ui_language",
                    index=UI_LANGUAGES.index(ctx.t.language),
                    format_func=lambda code: {"zh": "中文", "en": "English"}[code])
    remember_language(st.session_state["ui_language"])


def _open_door(ctx: PageContext) -> None:
    """WRITER_AUTH=none beyond loopback: what to configure, nothing else."""
    t = ctx.t
    st.title(t("auth.open_title"))
    st.error(t("auth.open_body"), icon=":material/lock_open:")
    st.markdown(t("auth.open_accounts"))
    st.code("WRITER_AUTH=accounts\npython -m writer user add NAME --role admin",
            language="bash")
    st.markdown(t("auth.open_oidc"))
    st.caption(t("auth.open_loopback"))


# -- accounts ----------------------------------------------------------------------

def _cookie() -> str | None:
    """The session cookie the browser sent when this tab connected (a token's shape)."""
    try:
        token = st.context.cookies.get(SESSION_COOKIE)
    except Exception:  # no browser behind this run
        return None
    return token if isinstance(token, str) and TOKEN_SHAPE.match(token) else None


def _session_token() -> str | None:
    token = st.session_state.get("session_token")
    if token or st.session_state.get("signed_out"):  # this tab signed out: not the old cookie
        return token
    return _cookie()


def _account_actor(ctx: PageContext) -> Actor | None:
    token = _session_token()
    if not token:
        return None
    actor = accounts.session_actor(ctx.store, token)
    if actor is None:  # expired, closed elsewhere, or the account is gone
        _forget()
        st.session_state["auth_notice"] = "expired"
        return None
    previous = st.session_state.get("actor")
    if previous is not None and previous.name.casefold() != actor.name.casefold():
        _forget(keep_token=token)  # another person's cookie in this tab: nothing of the last one
    st.session_state["session_token"] = token
    return actor


def _forget(*, keep_token: str | None = None) -> None:
    """Drop everything this session holds but the UI language (the app's state: forms,
    the article shown, the signed-in person)."""
    for key in list(st.session_state):
        if key not in KEEP_ON_SIGN_IN:
            del st.session_state[key]
    if keep_token:
        st.session_state["session_token"] = keep_token


_attempts: dict[str, deque] = {}
_attempts_lock = threading.Lock()


def allow_attempt(client: str, *, now: float | None = None) -> float:
    """Record a sign-in attempt from `client`; 0 when it may go ahead, else the seconds
    until it may (ATTEMPTS per WINDOW_S, per client, in this process)."""
    now = time.monotonic() if now is None else now
    with _attempts_lock:
        recent = _attempts.setdefault(client, deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        if len(recent) >= ATTEMPTS:
            return recent[0] + WINDOW_S - now
        recent.append(now)
        if len(_attempts) > MAX_CLIENTS:  # a flood of addresses: the longest-idle go
            for stale in sorted(_attempts, key=lambda c: _attempts[c][-1] if _attempts[c] else 0)[
                    :len(_attempts) - MAX_CLIENTS]:
                _attempts.pop(stale, None)
        return 0.0


def _sign_in() -> None:
    """The form's button (a callback: the gate that follows in this run sees the session)."""
    ss = st.session_state
    name, password = (ss.get("signin_name") or "").strip(), ss.get("signin_password") or ""
    ss["signin_password"] = ""  # never kept past this click
    ss.pop("signin_error", None)
    if not name or not password:
        ss["signin_error"] = "auth.fill_both"
        return
    now = page_context()
    try:
        wait_s = allow_attempt(client_address())
        if wait_s:
            minutes = max(1, round(wait_s / 60))
            raise SignInRateLimited(f"too many sign-in attempts; wait {minutes} min",
                                    minutes=minutes)
        actor = accounts.authenticate(now.store, name, password)
        token = accounts.open_session(now.store, actor, now.settings.session_hours)
    except UserError as exc:  # wrong name or password, locked, limited: the form again
        ss["signin_error"] = exc
        return
    _forget(keep_token=token)  # nothing of whoever used this tab before
    ss["actor"] = actor


def _signin_form(ctx: PageContext) -> None:
    t, ss = ctx.t, st.session_state
    _clear_cookie_once()
    st.title(t("auth.signin_title"))
    notice = ss.pop("auth_notice", None)
    if notice == "signed_out":
        st.success(t("auth.signed_out"), icon=":material/logout:")
    elif notice == "expired":
        st.info(t("auth.expired"), icon=":material/schedule:")
    with st.form("signin", enter_to_submit=True, width=420):
        st.caption(t("auth.signin_intro"))
        st.text_input(t("auth.name"), key="signin_name", max_chars=64, autocomplete="username")
        st.text_input(t("auth.password"), key="signin_password", type="password",
                      max_chars=1024, autocomplete="current-password")
        st.form_submit_button(t("auth.submit"), type="primary", key="signin_submit",
                              icon=":material/login:", on_click=_sign_in)
        error = ss.get("signin_error")
        if error:  # in the UI language only: no "details" of a refused sign-in
            st.error(_refusal_text(error, t) if isinstance(error, UserError) else t(error),
                     icon=":material/error:")


def _refusal_text(exc: UserError, t) -> str:
    key = exc.key if t.has(exc.key) else "user_errors.generic"
    try:
        return t(key, **exc.values)
    except (KeyError, IndexError):
        return t("user_errors.generic")


def _clear_cookie_once() -> None:
    """Signed out or expired: the browser forgets the token (once per session)."""
    if (_cookie() or st.session_state.get("signed_out")) and \
            not st.session_state.get("session_cookie_cleared"):
        st.html(f"<script>document.cookie = '{SESSION_COOKIE}=; path=/; max-age=0; "
                "samesite=strict';</script>", unsafe_allow_javascript=True)
        st.session_state["session_cookie_cleared"] = True


def remember_session(hours: float) -> None:
    """Keep the session's token in a cookie (a reload stays signed in), written once."""
    token = st.session_state.get("session_token")
    if not token or not TOKEN_SHAPE.match(token):
        return
    if token != _cookie() and st.session_state.get("session_cookie_written") != token:
        st.html(f"<script>document.cookie = '{SESSION_COOKIE}={token}; path=/; "
                f"max-age={int(hours * 3600)}; samesite=strict' + "
                "(location.protocol === 'https:' ? '; secure' : '');</script>",
                unsafe_allow_javascript=True)
        st.session_state["session_cookie_written"] = token


def _sign_out() -> None:
    token = st.session_state.get("session_token")
    if token:
        accounts.close_session(page_context().store, token)
    _forget()
    st.session_state["signed_out"] = True
    st.session_state["auth_notice"] = "signed_out"


# -- OIDC --------------------------------------------------------------------------

def oidc_configured() -> bool:
    """`[auth]` in .streamlit/secrets.toml with what st.login needs at least."""
    try:
        section = st.secrets.get("auth") or {}
    except Exception:  # no secrets file at all
        return False
    return bool(section.get("redirect_uri") and section.get("cookie_secret"))


def _oidc_actor(ctx: PageContext, page_paths: list[str]) -> Actor:
    if not oidc_configured():
        _alone(ctx, page_paths, _oidc_missing)
    if not st.user.is_logged_in:
        _alone(ctx, page_paths, _oidc_signin)
    name = str(st.user.get("email") or st.user.get("sub") or "")
    row = accounts.get_user(ctx.store, name) if name else None
    role = row["role"] if row else ctx.settings.oidc_default_role
    if role not in ROLES:  # WRITER_OIDC_DEFAULT_ROLE=none and no account
        st.session_state["oidc_refused"] = name
        _alone(ctx, page_paths, _oidc_refused)
    previous = st.session_state.get("actor")
    if previous is not None and previous.name.casefold() != name.casefold():
        _forget()
    return Actor(row["name"] if row else name, role)


def _oidc_signin(ctx: PageContext) -> None:
    t = ctx.t
    st.title(t("auth.signin_title"))
    st.caption(t("auth.oidc_intro"))
    if st.button(t("auth.oidc_button"), type="primary", icon=":material/login:",
                 key="signin_oidc"):
        st.login()


def _oidc_missing(ctx: PageContext) -> None:
    t = ctx.t
    st.title(t("auth.oidc_missing_title"))
    st.error(t("auth.oidc_missing_body"), icon=":material/settings:")
    st.code('[auth]\nredirect_uri = "https://writer.example.com/oauth2callback"\n'
            'cookie_secret = "…a long random string…"\nclient_id = "…"\nclient_secret = "…"\n'
            'server_metadata_url = "https://idp.example.com/.well-known/openid-configuration"',
            language="toml")


def _oidc_refused(ctx: PageContext) -> None:
    t = ctx.t
    name = st.session_state.get("oidc_refused") or "?"
    st.title(t("auth.refused_title"))
    st.error(t("auth.oidc_refused", name=plain(name)), icon=":material/block:")
    st.code(f"python -m writer user add {name} --role writer", language="bash")
    if st.button(t("auth.signout"), key="signout", icon=":material/logout:"):
        _forget()
        st.logout()


# -- the sidebar -------------------------------------------------------------------

def sidebar_account(ctx: PageContext, actor: Actor) -> None:
    """Who is signed in, with what role; Sign out (accounts, oidc)."""
    t = ctx.t
    role = t(f"auth.role_{actor.role}")
    mode = ctx.settings.auth
    st.caption(t("auth.signed_in_as" if mode != "none" else "auth.local_user",
                 name=plain(actor.name), role=role))
    if mode == "accounts":
        remember_session(ctx.settings.session_hours)
        st.button(t("auth.signout"), key="signout", icon=":material/logout:",
                  on_click=_sign_out)
    elif mode == "oidc" and st.button(t("auth.signout"), key="signout",
                                      icon=":material/logout:"):
        _forget()
        st.logout()

