"""Who is acting, and what they may do: people, roles and the checks every change passes.

An `Actor` is the person behind a page run or a CLI command: an account's name and role
(WRITER_AUTH=accounts), a person signed in through the company's identity provider
(WRITER_AUTH=oidc), or, with no sign-in (WRITER_AUTH=none, loopback only), the machine's
one user `WRITER_USER` as an admin. Two roles:

- **admin** sees and manages everything: every article, prices, budgets, people.
- **writer** writes, batches, revises and checks providers; sees their own articles (or
  the team's, WRITER_HISTORY_SCOPE=team) and changes only their own articles, brand kits,
  batches and checks. Prices and budgets are not theirs to change.

The checks (`require_admin`, `require_owner`) run in `writer/` below the pages, where the
change is made: a forged request that reaches a widget the page never showed is refused
all the same (AccessDenied, a UserError the pages and CLI show in one line).

Passwords are kept only as scrypt hashes (`hash_password`, `verify_password`): a random
16-byte salt per password, n=2**14, r=8, p=1 (about 50 ms and 16 MiB per check).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from writer.errors import UserError

ROLES = ("admin", "writer")
ADMIN, WRITER = ROLES
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")  # an account's name
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # scrypt reads it all: a 1 MB "password" would be work for nothing
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_BYTES = 2**14, 8, 1, 32


class AccessDenied(UserError, PermissionError):
    """The actor may not do this (a writer changing a price, another person's article)."""

    key = "user_errors.access_denied"


class AccountError(UserError, ValueError):
    """An account name, role or password that cannot be used (exit 2 on the CLI)."""

    key = "user_errors.account"


@dataclass(frozen=True)
class Actor:
    name: str
    role: str = WRITER

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def owns(self, author: str | None) -> bool:
        """Whether a row made by `author` is this actor's own (names compare without case)."""
        return author is not None and author.casefold() == self.name.casefold()

    def may_change(self, author: str | None) -> bool:
        return self.is_admin or self.owns(author)


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; use {' or '.join(ROLES)}",
                           key="user_errors.account_role", role=role)
    return role


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise AccountError(f"{name!r} cannot be an account name: use 1–64 letters, digits "
                           "and . _ @ + - (starting with a letter or digit)",
                           key="user_errors.account_name", name=name)
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password is too short; use at least {MIN_PASSWORD_CHARS} "
                           "characters", key="user_errors.password_short",
                           limit=MIN_PASSWORD_CHARS)
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password is too long; use at most {MAX_PASSWORD_CHARS} "
                           "characters", key="user_errors.password_long",
                           limit=MAX_PASSWORD_CHARS)
    return password


def require_admin(actor: Actor | None, action: str) -> None:
    """Refuse `action` (English, for the one-line detail) unless `actor` is an admin."""
    if actor is None or not actor.is_admin:
        raise AccessDenied(f"only an admin may {action}", action=action)


def require_owner(actor: Actor | None, author: str | None, action: str) -> None:
    """Refuse `action` on a row made by `author` unless it is the actor's own (or an admin's)."""
    if actor is None or not actor.may_change(author):
        raise AccessDenied(f"only its author or an admin may {action}", action=action)


def visible_author(actor: Actor | None, scope: str) -> str | None:
    """The author whose rows `actor` may read (History, Usage, the running list): None
    for everyone's (an admin, or a writer with WRITER_HISTORY_SCOPE=team)."""
    if actor is None or actor.is_admin or scope == "team":
        return None
    return actor.name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (base64) of a checked password."""
    check_password(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=SCRYPT_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


_DUMMY_HASH: list[str] = []


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`, in constant time. With no stored hash (no
    such account, or one without a password) a dummy hash is checked all the same, so
    the time taken does not tell which names exist."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    if not stored:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hash_password(secrets.token_hex(16)))
        stored, known = _DUMMY_HASH[0], False
    else:
        known = True
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected),
                                maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected) and known
