"""`user add | list | remove | passwd | role`: the accounts people sign in with
(WRITER_AUTH=accounts), and the roles of people who sign in through OIDC.

A password is asked twice on the terminal (not shown), or read as one line from stdin
with `--password-stdin` (for scripts: `printf '%s\\n' "$PW" | python -m writer user add …`);
it is never printed, logged or stored — only its scrypt hash is (writer/access.py).
Changing accounts takes an admin: the CLI acts as WRITER_USER, an admin unless that
name has a writer's account (writer/storage/accounts.py `actor_for`); a writer may
still change their own password.
"""
from __future__ import annotations

import getpass
import json
import sys

from writer.access import AccountError, check_name, hash_password, require_admin
from writer.cli.output import EXIT_OK, CliError, open_store, pad, say
from writer.config import load_settings
from writer.storage import accounts
from writer.storage.store import Store


def cmd_user(args) -> int:
    store = open_store()
    settings = load_settings()
    actor = accounts.actor_for(store, settings)
    command = args.user_command
    if command == "list":
        return _list(store, args.json)
    if command == "passwd":
        if not actor.owns(args.name):
            require_admin(actor, "change another person's password")
    else:
        require_admin(actor, "manage accounts")
    if command == "add":
        return _add(store, args, settings.auth)
    if command == "remove":
        accounts.remove_user(store, args.name)
        say(f"removed account «{args.name}» (what they wrote keeps their name)")
        return EXIT_OK
    if command == "role":
        accounts.set_role(store, args.name, args.role)
        say(f"«{args.name}» is now {_a(args.role)}")
        return EXIT_OK
    return _passwd(store, args)


def _a(role: str) -> str:
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"


def _add(store: Store, args, auth: str) -> int:
    name = check_name(args.name)  # refused before a password is asked for
    taken = accounts.get_user(store, name)
    if taken:
        raise AccountError(f"there is already an account {taken['name']!r}",
                           key="user_errors.user_exists", name=taken["name"])
    if args.no_password:
        password_hash = None
    else:
        password_hash = hash_password(read_password(args.name, args.password_stdin))
    row = accounts.add_user(store, name, args.role, password_hash)
    how = ("signs in only through the identity provider (WRITER_AUTH=oidc)"
           if password_hash is None else "signs in with the password given")
    say(f"added {_a(row['role'])} account «{row['name']}»: {how}")
    if auth == "none":
        say("note: WRITER_AUTH is none (no sign-in, loopback only); set WRITER_AUTH=accounts "
            "for people to sign in with their accounts")
    return EXIT_OK


def _passwd(store: Store, args) -> int:
    if accounts.get_user(store, args.name) is None:  # before asking for a password
        raise accounts.unknown_account(args.name)
    accounts.set_password(store, args.name, hash_password(read_password(args.name,
                                                                        args.password_stdin)))
    say(f"changed the password of «{args.name}»; their sessions are signed out")
    return EXIT_OK


def read_password(name: str, from_stdin: bool) -> str:
    """The new password: one line of stdin (its line break removed, nothing else), or
    asked twice on the terminal without echo. Without a terminal and without
    `--password-stdin`: refused, saying to use it (exit 2)."""
    if from_stdin:
        line = sys.stdin.readline()
        if line.endswith("\n"):
            line = line[:-1]
            if line.endswith("\r"):
                line = line[:-1]
        return line
    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise CliError("no terminal to ask for the password on: pipe it in with "
                       "--password-stdin")
    first = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ; nothing changed",
                           key="user_errors.password_mismatch")
    return first


def _list(store: Store, as_json: bool) -> int:
    users = accounts.list_users(store)
    width = max((len(user["name"]) for user in users), default=0) + 2
    for user in users:
        if as_json:
            print(json.dumps({"name": user["name"], "role": user["role"],
                              "password": user["has_password"],
                              "created_at": user["created_at"]}, ensure_ascii=False))
        else:
            print(pad(user["name"], width) + pad(user["role"], 8)
                  + ("" if user["has_password"] else "  (no password: OIDC only)"))
    if not as_json:
        say(f"{len(users)} account{'s' if len(users) != 1 else ''}")
    return EXIT_OK
