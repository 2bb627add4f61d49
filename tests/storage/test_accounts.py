"""writer/storage/accounts.py: accounts, sign-in with its lock, sessions, the CLI's actor.
On both databases (tests/storage/conftest.py); time is the `now=` the functions take (no sleeps)."""
from __future__ import annotations

import datetime as dt
import hashlib
from types import SimpleNamespace

import pytest

from writer import access
from writer.access import AccountError, Actor, hash_password
from writer.storage import accounts
from writer.storage.accounts import SignInRefused
from writer.storage.store import Store

PASSWORD = "correct horse 42"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def store(database):
    store = Store(database)
    yield store
    store.close()


@pytest.fixture(scope="module")
def hashed():
    return hash_password(PASSWORD)  # scrypt is slow on purpose: once per module


@pytest.fixture
def file_bytes(stored):
    """What a reader of the database finds: SQLite's files, or every PostgreSQL row."""
    def read(store: Store) -> bytes:
        raw = stored(store.path)
        assert b"scrypt$" in raw  # it holds the accounts
        return raw
    return read


def test_an_account_keeps_only_a_salted_hash_of_its_password(store, file_bytes):
    accounts.add_user(store, "li.na", "admin", hash_password(PASSWORD))
    accounts.add_user(store, "wang", "writer", hash_password(PASSWORD))
    hashes = [row["password_hash"] for row in store.rows("SELECT password_hash FROM users")]
    assert len(set(hashes)) == 2 and PASSWORD not in hashes  # salted: same password, 2 hashes
    assert all(h.startswith("scrypt$") for h in hashes)
    store.checkpoint()
    assert PASSWORD.encode() not in file_bytes(store)
    assert accounts.get_user(store, "LI.NA") == {
        "name": "li.na", "role": "admin", "has_password": True,
        "created_at": accounts.get_user(store, "li.na")["created_at"],
        "updated_at": accounts.get_user(store, "li.na")["updated_at"],
        "failed_attempts": 0, "locked_until": None}
    assert "password_hash" not in accounts.get_user(store, "wang")


def test_a_plain_password_is_never_stored(store):
    with pytest.raises(ValueError, match="hash"):
        accounts.add_user(store, "wang", "writer", PASSWORD)
    with pytest.raises(ValueError, match="hash"):
        accounts.set_password(store, "wang", PASSWORD)
    assert accounts.list_users(store) == []


def test_names_roles_and_taken_names_are_refused(store, hashed):
    accounts.add_user(store, "wang", "writer", hashed)
    with pytest.raises(AccountError) as taken:
        accounts.add_user(store, "WANG", "admin", hashed)
    assert taken.value.key == "user_errors.user_exists" and taken.value.exit_code == 2
    with pytest.raises(AccountError) as role:
        accounts.add_user(store, "zhao", "owner", hashed)
    assert role.value.key == "user_errors.account_role"
    with pytest.raises(AccountError) as name:
        accounts.add_user(store, "(before sign-in)", "writer", hashed)
    assert name.value.key == "user_errors.account_name"
    with pytest.raises(AccountError) as unknown:
        accounts.set_role(store, "nobody", "admin")
    assert unknown.value.key == "user_errors.unknown_user"
    assert [u["name"] for u in accounts.list_users(store)] == ["wang"]


def test_list_users_gives_names_roles_and_whether_there_is_a_password(store, hashed):
    accounts.add_user(store, "wang", "writer", hashed)
    accounts.add_user(store, "boss@corp.com", "admin", None)
    listed = accounts.list_users(store)
    assert [(u["name"], u["role"], u["has_password"]) for u in listed] == [
        ("boss@corp.com", "admin", False), ("wang", "writer", True)]
    assert all(u["created_at"].endswith("Z") for u in listed)


def test_sign_in_gives_the_account_s_actor_whatever_the_case_typed(store, hashed):
    accounts.add_user(store, "Li.Na", "admin", hashed)
    assert accounts.authenticate(store, "li.na", PASSWORD) == Actor("Li.Na", "admin")


def test_an_unknown_name_and_a_wrong_password_are_refused_alike_after_the_same_work(
        store, hashed, monkeypatch):
    accounts.add_user(store, "wang", "writer", hashed)
    checked = []
    real = access.verify_password
    monkeypatch.setattr(accounts, "verify_password",
                        lambda password, stored: checked.append(stored) or real(password,
                                                                               stored))
    refusals = []
    for name, password in [("wang", "wrong password"), ("nobody", PASSWORD), ("", PASSWORD)]:
        with pytest.raises(SignInRefused) as info:
            accounts.authenticate(store, name, password)
        refusals.append((str(info.value), info.value.key, info.value.exit_code))
    assert len(set(refusals)) == 1 and refusals[0][1] == "user_errors.sign_in_refused"
    assert checked == [hashed, None, None]  # a scrypt check (a dummy one) for unknown names


def test_an_account_without_a_password_cannot_sign_in_with_one(store):
    accounts.add_user(store, "boss@corp.com", "admin", None)
    with pytest.raises(SignInRefused):
        accounts.authenticate(store, "boss@corp.com", "")
    with pytest.raises(SignInRefused):
        accounts.authenticate(store, "boss@corp.com", PASSWORD)


def _wrong(store, times, now):
    for _ in range(times):
        with pytest.raises(SignInRefused):
            accounts.authenticate(store, "wang", "not the password", now=now)


def test_five_wrong_passwords_lock_the_account_for_a_minute_then_twice_as_long(store, hashed):
    accounts.add_user(store, "wang", "writer", hashed)
    _wrong(store, 4, T0)
    assert accounts.authenticate(store, "wang", PASSWORD, now=T0) == Actor("wang", "writer")
    assert accounts.get_user(store, "wang")["failed_attempts"] == 0  # success resets

    _wrong(store, 5, T0)
    with pytest.raises(SignInRefused) as locked:  # the right password, during the lock
        accounts.authenticate(store, "wang", PASSWORD, now=T0 + dt.timedelta(seconds=59))
    assert locked.value.key == "user_errors.sign_in_locked"
    assert locked.value.values["seconds"] == 1
    # The lock is in the file: another Store (another process, a restart) sees it.
    other = Store(store.path)
    with pytest.raises(SignInRefused, match="locked"):
        accounts.authenticate(other, "wang", PASSWORD, now=T0 + dt.timedelta(seconds=30))
    other.close()

    later = T0 + dt.timedelta(seconds=61)
    _wrong(store, 1, later)  # a sixth wrong one in a row: two minutes
    with pytest.raises(SignInRefused, match="locked"):
        accounts.authenticate(store, "wang", PASSWORD, now=later + dt.timedelta(seconds=119))
    assert accounts.authenticate(store, "wang", PASSWORD,
                                 now=later + dt.timedelta(seconds=121)).name == "wang"
    assert accounts.get_user(store, "wang")["locked_until"] is None


def test_the_lock_doubles_up_to_fifteen_minutes():
    assert [accounts.lock_seconds(n) for n in range(4, 11)] == [0, 60, 120, 240, 480, 900, 900]
    assert accounts.lock_seconds(10_000) == 900


def test_attempts_during_a_lock_do_not_lengthen_it_or_check_the_password(store, hashed,
                                                                          monkeypatch):
    accounts.add_user(store, "wang", "writer", hashed)
    _wrong(store, 5, T0)
    until = accounts.get_user(store, "wang")["locked_until"]
    monkeypatch.setattr(accounts, "verify_password", lambda *a: pytest.fail("checked"))
    with pytest.raises(SignInRefused, match="locked"):
        accounts.authenticate(store, "wang", "guess", now=T0 + dt.timedelta(seconds=10))
    assert accounts.get_user(store, "wang")["locked_until"] == until
    assert accounts.get_user(store, "wang")["failed_attempts"] == 5


def test_a_session_stores_only_its_token_s_hash_and_expires(store, hashed, file_bytes):
    accounts.add_user(store, "wang", "writer", hashed)
    actor = accounts.authenticate(store, "wang", PASSWORD)
    token = accounts.open_session(store, actor, 12, now=T0)
    assert len(token) >= 40
    (row,) = store.rows("SELECT * FROM sessions")
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    store.checkpoint()
    assert token.encode() not in file_bytes(store)
    assert accounts.session_actor(store, token, now=T0 + dt.timedelta(hours=11)) == actor
    assert accounts.session_actor(store, token, now=T0 + dt.timedelta(hours=12)) is None
    assert accounts.session_actor(store, token + "x", now=T0) is None
    assert accounts.session_actor(store, "", now=T0) is None
    assert accounts.purge_expired(store, now=T0 + dt.timedelta(hours=13)) == 1
    assert store.rows("SELECT * FROM sessions") == []


def test_sign_out_a_new_password_or_removal_ends_sessions(store, hashed):
    accounts.add_user(store, "li.na", "admin", hashed)
    accounts.add_user(store, "wang", "writer", hashed)
    wang = Actor("wang", "writer")
    first, second = accounts.open_session(store, wang, 1), accounts.open_session(store, wang, 1)
    boss = accounts.open_session(store, Actor("li.na", "admin"), 1)
    accounts.close_session(store, first)
    assert accounts.session_actor(store, first) is None
    assert accounts.session_actor(store, second) == wang
    accounts.set_password(store, "WANG", hash_password("another password"))
    assert accounts.session_actor(store, second) is None
    assert accounts.session_actor(store, boss) == Actor("li.na", "admin")  # others stay
    with pytest.raises(SignInRefused):
        accounts.authenticate(store, "wang", PASSWORD)
    assert accounts.authenticate(store, "wang", "another password") == wang
    third = accounts.open_session(store, wang, 1)
    accounts.remove_user(store, "wang")
    assert accounts.session_actor(store, third) is None
    assert accounts.close_sessions(store, "li.na") == 1
    assert accounts.session_actor(store, boss) is None


def test_a_session_s_role_is_read_at_every_use(store, hashed):
    accounts.add_user(store, "li.na", "admin", hashed)
    accounts.add_user(store, "zhao", "admin", hashed)
    token = accounts.open_session(store, Actor("zhao", "admin"), 1)
    assert accounts.session_actor(store, token).is_admin
    accounts.set_role(store, "zhao", "writer")
    assert accounts.session_actor(store, token) == Actor("zhao", "writer")


def test_the_last_admin_can_be_neither_removed_nor_demoted(store, hashed):
    accounts.add_user(store, "li.na", "admin", hashed)
    accounts.add_user(store, "wang", "writer", hashed)
    for attempt in (lambda: accounts.remove_user(store, "li.na"),
                    lambda: accounts.set_role(store, "LI.NA", "writer")):
        with pytest.raises(AccountError) as info:
            attempt()
        assert info.value.key == "user_errors.last_admin" and info.value.exit_code == 2
    assert accounts.get_user(store, "li.na")["role"] == "admin"
    accounts.set_role(store, "wang", "admin")
    accounts.remove_user(store, "li.na")  # another admin is left
    assert [(u["name"], u["role"]) for u in accounts.list_users(store)] == [("wang", "admin")]


def test_the_cli_acts_as_writer_user_with_its_account_s_role_else_as_an_admin(store, hashed):
    assert accounts.actor_for(store, SimpleNamespace(user="root")) == Actor("root", "admin")
    accounts.add_user(store, "Wang", "writer", hashed)
    assert accounts.actor_for(store, SimpleNamespace(user="wang")) == Actor("Wang", "writer")
