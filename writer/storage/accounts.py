"""People and their sign-ins in the database (tables `users` and `sessions`, m016).

- **Accounts** (`add_user`, `set_password`, `set_role`, `remove_user`, `get_user`,
  `list_users`): a name (compared without case), a role (writer/access.py `ROLES`) and
  a password kept only as its scrypt hash — or none, for a person who signs in only
  through the company's identity provider (WRITER_AUTH=oidc), whose row gives the role.
  The last admin can be neither removed nor made a writer.
- **Sign-in** (`authenticate`): the same refusal for a name that does not exist and a
  wrong password, and the same work (a scrypt check against a dummy hash) for both, so
  neither the answer nor its time tells which names exist. `LOCK_AFTER` wrong passwords
  in a row lock the account for `LOCK_FIRST_S` seconds, twice as long for every further
  wrong one, at most `LOCK_MAX_S`; while locked even the right password is refused (and
  not checked). The count and the lock are in the database, so they hold across
  restarts and across the server's processes; a right password resets them.
- **Sessions** (`open_session`, `session_actor`, `close_session`, `close_sessions`,
  `purge_expired`): a random token for the browser's cookie, of which only the SHA-256
  is stored. A session ends when it expires, when it is closed (sign-out), when its
  person's password changes or the person is removed. Its role is read from `users` at
  every `session_actor`: an admin made a writer is a writer at their next page run.
- **The CLI's actor** (`actor_for`): WRITER_USER, with its account's role when it has
  one, else an admin — the person at the server's shell owns the database file anyway.

Every write is one `store.transaction` (BEGIN IMMEDIATE); timestamps are UTC ISO strings
like every other in the database (`utc_now`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from writer.access import ADMIN, AccountError, Actor, check_name, check_role, verify_password
from writer.errors import UserError
from writer.storage.connection import utc_now
from writer.storage.liveness import utc_iso
from writer.storage.store import Store

LOCK_AFTER = 5  # wrong passwords in a row before the account is locked
LOCK_FIRST_S = 60  # the first lock; each further wrong password doubles it
LOCK_MAX_S = 15 * 60
SEEN_EVERY_S = 300  # `sessions.last_seen_at` is written at most this often per session
TOKEN_BYTES = 32


class SignInRefused(UserError, PermissionError):
    """A sign-in refused: a wrong name or password (one message for both), or an account
    locked after too many wrong passwords (`key` user_errors.sign_in_locked, `seconds`)."""

    key = "user_errors.sign_in_refused"


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.timezone.utc)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_hash(password_hash: str | None) -> str | None:
    """A stored password is a hash (writer/access.py `hash_password`), never the password."""
    if password_hash is not None and not password_hash.startswith("scrypt$"):
        raise ValueError("add_user/set_password take a hash from writer.access.hash_password")
    return password_hash


def unknown_account(name: str) -> AccountError:
    return AccountError(f"there is no account {name!r}", key="user_errors.unknown_user",
                        name=name)


def _admins(conn) -> int:
    return conn.execute("SELECT count(*) FROM users WHERE role = ?", [ADMIN]).fetchone()[0]


def _last_admin(name: str, action: str) -> AccountError:
    return AccountError(f"cannot {action} {name!r}: it is the last admin; make another "
                        "account an admin first", key="user_errors.last_admin", name=name)


# -- accounts -----------------------------------------------------------------------
def add_user(store: Store, name: str, role: str, password_hash: str | None) -> dict:
    """A new account (the name checked, the role one of ROLES); `password_hash` from
    `hash_password`, or None for a person who signs in only through OIDC. A name already
    taken (in any case) is refused (AccountError user_exists). Returns `get_user`'s row."""
    name, role, password_hash = check_name(name), check_role(role), _check_hash(password_hash)
    now = utc_now()
    with store.transaction(f"add account {name!r} to") as conn:
        taken = conn.execute("SELECT name FROM users WHERE name = ?", [name]).fetchone()
        if taken:
            raise AccountError(f"there is already an account {taken[0]!r}",
                               key="user_errors.user_exists", name=taken[0])
        conn.execute("INSERT INTO users (name, role, password_hash, created_at, updated_at, "
                     "failed_attempts) VALUES (?, ?, ?, ?, ?, 0)",
                     [name, role, password_hash, now, now])
    return get_user(store, name)


def set_password(store: Store, name: str, password_hash: str | None) -> None:
    """Replace the account's password hash (None: OIDC only), lift its lock and end every
    session it has: whoever signed in with the old password is signed out."""
    password_hash = _check_hash(password_hash)
    with store.transaction(f"change the password of {name!r} in") as conn:
        changed = conn.execute("UPDATE users SET password_hash = ?, failed_attempts = 0, "
                               "locked_until = NULL, updated_at = ? WHERE name = ?",
                               [password_hash, utc_now(), name]).rowcount
        if not changed:
            raise unknown_account(name)
        conn.execute("DELETE FROM sessions WHERE user_name = ?", [name])


def set_role(store: Store, name: str, role: str) -> None:
    """Make the account an admin or a writer; the last admin cannot become a writer. Its
    sessions stay: their role is read again at the next page run."""
    role = check_role(role)
    with store.transaction(f"change the role of {name!r} in") as conn:
        row = conn.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            raise unknown_account(name)
        if row[0] == ADMIN and role != ADMIN and _admins(conn) <= 1:
            raise _last_admin(name, "make a writer of")
        conn.execute("UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
                     [role, utc_now(), name])


def remove_user(store: Store, name: str) -> None:
    """Remove the account and end its sessions (the last admin is refused). What the
    person wrote stays, with their name as its author."""
    with store.transaction(f"remove account {name!r} from") as conn:
        row = conn.execute("SELECT role FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            raise unknown_account(name)
        if row[0] == ADMIN and _admins(conn) <= 1:
            raise _last_admin(name, "remove")
        conn.execute("DELETE FROM sessions WHERE user_name = ?", [name])
        conn.execute("DELETE FROM users WHERE name = ?", [name])


def get_user(store: Store, name: str) -> dict | None:
    """The account (name as saved, role, has_password, created_at, updated_at,
    failed_attempts, locked_until), found without case; None when there is none. Never
    the password hash."""
    rows = store.rows("SELECT name, role, password_hash IS NOT NULL AS has_password, "
                      "created_at, updated_at, failed_attempts, locked_until FROM users "
                      "WHERE name = ?", [(name or "").strip()])
    if not rows:
        return None
    return {**rows[0], "has_password": bool(rows[0]["has_password"])}


def list_users(store: Store) -> list[dict]:
    """Every account by name: name, role, created_at, has_password."""
    return [{**row, "has_password": bool(row["has_password"])} for row in store.rows(
        "SELECT name, role, created_at, password_hash IS NOT NULL AS has_password "
        "FROM users ORDER BY name")]


# -- sign-in --------------------------------------------------------------------------
def lock_seconds(failures: int) -> int:
    """How long `failures` wrong passwords in a row lock an account (0: not locked)."""
    if failures < LOCK_AFTER:
        return 0
    return min(LOCK_FIRST_S * 2 ** min(failures - LOCK_AFTER, 16), LOCK_MAX_S)


def _refused() -> SignInRefused:
    return SignInRefused("wrong name or password")


def _locked(seconds: float) -> SignInRefused:
    seconds = max(1, int(seconds + 0.999))
    return SignInRefused(f"too many wrong passwords: sign-in is locked for {seconds} s more",
                         key="user_errors.sign_in_locked", seconds=seconds)


def authenticate(store: Store, name: str, password: str, *,
                 now: dt.datetime | None = None) -> Actor:
    """The account's Actor when `password` is its password; otherwise SignInRefused (the
    same for an unknown name as for a wrong password), counting the failure."""
    moment = _now(now)
    name = (name or "").strip()
    row = None
    if name and len(name) <= 256:
        found = store.rows("SELECT name, role, password_hash, locked_until FROM users "
                           "WHERE name = ?", [name])
        row = found[0] if found else None
    if row and row["locked_until"] and row["locked_until"] > utc_iso(moment):
        left = dt.datetime.fromisoformat(row["locked_until"].replace("Z", "+00:00")) - moment
        raise _locked(left.total_seconds())
    stored = row["password_hash"] if row else None
    matches = verify_password(password or "", stored)  # a dummy hash when there is none
    if row is None:
        raise _refused()
    with store.transaction("record a sign-in in") as conn:
        if matches:
            # Right, unless the password changed (or the account went) meanwhile.
            done = conn.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL "
                                "WHERE name = ? AND password_hash = ?",
                                [row["name"], stored]).rowcount
            if done:
                return Actor(row["name"], row["role"])
            raise _refused()
        failures = conn.execute("UPDATE users SET failed_attempts = failed_attempts + 1 "
                                "WHERE name = ? RETURNING failed_attempts",
                                [row["name"]]).fetchone()
        seconds = lock_seconds(failures[0]) if failures else 0
        if seconds:
            conn.execute("UPDATE users SET locked_until = ? WHERE name = ?",
                         [utc_iso(moment + dt.timedelta(seconds=seconds)), row["name"]])
    raise _refused()


# -- sessions -------------------------------------------------------------------------
def open_session(store: Store, actor: Actor, hours: float, *,
                 now: dt.datetime | None = None) -> str:
    """A new session for `actor` lasting `hours`; the token for the cookie (only its
    SHA-256 is stored). Expired sessions are removed on the way."""
    moment = _now(now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with store.transaction("open a session in") as conn:
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", [utc_iso(moment)])
        conn.execute("INSERT INTO sessions (token_hash, user_name, created_at, expires_at, "
                     "last_seen_at) VALUES (?, ?, ?, ?, ?)",
                     [_token_hash(token), actor.name, utc_iso(moment),
                      utc_iso(moment + dt.timedelta(hours=hours)), utc_iso(moment)])
    return token


def session_actor(store: Store, token: str | None, *,
                  now: dt.datetime | None = None) -> Actor | None:
    """The Actor signed in with `token`, its role as it is now; None when the token is
    unknown, closed or expired, or its account was removed."""
    if not token or len(token) > 256:
        return None
    moment = utc_iso(_now(now))
    digest = _token_hash(token)
    rows = store.rows("SELECT u.name, u.role, s.expires_at, s.last_seen_at FROM sessions s "
                      "JOIN users u ON u.name = s.user_name WHERE s.token_hash = ?", [digest])
    if not rows or rows[0]["expires_at"] <= moment:
        return None
    row = rows[0]
    seen_due = utc_iso(_now(now) - dt.timedelta(seconds=SEEN_EVERY_S))
    if not row["last_seen_at"] or row["last_seen_at"] < seen_due:
        with store.transaction("record a session in") as conn:
            conn.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?",
                         [moment, digest])
    return Actor(row["name"], row["role"])


def close_session(store: Store, token: str | None) -> None:
    """Sign out: the session of `token` ends (nothing happens for an unknown token)."""
    if token:
        with store.transaction("close a session in") as conn:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", [_token_hash(token)])


def close_sessions(store: Store, name: str) -> int:
    """End every session of the person `name` (a password changed, an account removed);
    how many there were."""
    with store.transaction(f"close the sessions of {name!r} in") as conn:
        return conn.execute("DELETE FROM sessions WHERE user_name = ?", [name]).rowcount


def purge_expired(store: Store, *, now: dt.datetime | None = None) -> int:
    """Remove expired sessions; how many."""
    with store.transaction("remove expired sessions from") as conn:
        return conn.execute("DELETE FROM sessions WHERE expires_at <= ?",
                            [utc_iso(_now(now))]).rowcount


# -- the CLI's actor --------------------------------------------------------------------
def actor_for(store: Store, settings) -> Actor:
    """Who a CLI command acts as: WRITER_USER (`settings.user`) with its account's role
    (and name as saved) when it has an account, else an admin — whoever runs commands
    in the server's shell can read and write the database file anyway."""
    row = get_user(store, settings.user)
    if row is None:
        return Actor(settings.user, ADMIN)
    return Actor(row["name"], row["role"])
