"""Brand kits in the database (table `brands`, m011): save, get, list and delete
them. The kit itself — its fields, validation, checks and TOML — is writer/brands.py.
Every kit records its `author` (m016), who made it; anyone may write with any kit,
but only its author or an admin may save over it or delete it (AccessDenied).
"""
from __future__ import annotations

import json

from writer.access import Actor
from writer.brands import FIELDS, BrandError, BrandKit
from writer.storage.store import Store, author_name, require_author, utc_now


def _from_row(row: dict) -> BrandKit:
    try:
        data = json.loads(row["kit"] or "{}")
    except ValueError:
        data = {}
    data = {k: v for k, v in data.items() if k in FIELDS and k != "name"}
    return BrandKit(name=row["name"], id=row["id"], **data)


def _kit_json(kit: BrandKit) -> str:
    data = kit.as_dict()
    data.pop("name")  # a column of its own
    return json.dumps(data, ensure_ascii=False)


def save(store: Store, kit: BrandKit, *, replace: bool = True, actor: Actor) -> int:
    """Insert the kit, or update the one with its name; its id. A kit read from the
    database (with an `id`) is updated by id, so a rename keeps it one kit; renaming
    it to the name of another kit is refused (BrandError `name_taken`). With
    `replace=False` (an import not confirmed, a new kit) a new kit whose name is taken
    is refused the same way instead of replacing the saved one. A new kit is `actor`'s;
    saving over one is for its author or an admin (AccessDenied)."""
    now = utc_now()
    with store.transaction(f"save brand kit «{kit.name}» in") as conn:
        same_name = conn.execute("SELECT id FROM brands WHERE name = ?", [kit.name]).fetchone()
        target = None
        if kit.id is not None and conn.execute("SELECT 1 FROM brands WHERE id = ?",
                                               [kit.id]).fetchone():
            target = kit.id
            if same_name and same_name[0] != kit.id:
                raise BrandError(f"there is already a brand kit named «{kit.name}»",
                                 code="name_taken", field="name", name=kit.name)
        elif same_name:
            if not replace:
                raise BrandError(f"there is already a brand kit named «{kit.name}»",
                                 code="name_taken", field="name", name=kit.name)
            target = same_name[0]
        if target is None:
            cursor = conn.execute("INSERT INTO brands (name, created_at, updated_at, kit, author) "
                                  "VALUES (?, ?, ?, ?, ?) RETURNING id",
                                  [kit.name, now, now, _kit_json(kit), author_name(conn, actor.name)])
            return cursor.fetchone()[0]
        (author,) = conn.execute("SELECT author FROM brands WHERE id = ?", [target]).fetchone()
        require_author(actor, author, f"change brand kit «{kit.name}»")
        conn.execute("UPDATE brands SET name = ?, kit = ?, updated_at = ? WHERE id = ?",
                     [kit.name, _kit_json(kit), now, target])
        return target


def get(store: Store, name_or_id: str | int) -> BrandKit | None:
    """The kit with this id (an int) or name (a str: exact, else the one kit whose
    name matches ignoring case); None when there is none."""
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        rows = store.rows("SELECT * FROM brands WHERE id = ?", [name_or_id])
    else:
        name = " ".join(str(name_or_id or "").split())
        rows = store.rows("SELECT * FROM brands WHERE name = ?", [name])
        if not rows:
            rows = store.rows("SELECT * FROM brands WHERE lower(name) = lower(?)", [name])
            rows = rows if len(rows) == 1 else []
    return _from_row(rows[0]) if rows else None


def listing(store: Store) -> list[BrandKit]:
    """Every kit, by name."""
    return [_from_row(row) for row in
            store.rows("SELECT * FROM brands ORDER BY lower(name), id")]


def existing(store: Store, kits) -> list[str]:
    """The names of `kits` already saved (as saved), in the order of `kits`: what an
    import would replace."""
    saved = set(names(store))
    return [kit.name for kit in kits if kit.name in saved]


def names(store: Store) -> list[str]:
    return [row["name"] for row in
            store.rows("SELECT name FROM brands ORDER BY lower(name), id")]


def authors(store: Store) -> dict[str, str | None]:
    """{kit name: who made it} (the pages say whose a kit is, and offer its changes
    only to its author and admins)."""
    return {row["name"]: row["author"] for row in store.rows("SELECT name, author FROM brands")}


def delete(store: Store, name: str, *, actor: Actor) -> bool:
    """Delete the kit with this name; whether there was one. Only its author or an
    admin may (AccessDenied). Articles written with it keep its name (`articles.brand`)
    and their checks."""
    with store.transaction(f"delete brand kit «{name}» from") as conn:
        found = conn.execute("SELECT author FROM brands WHERE name = ?", [name]).fetchone()
        if found is None:
            return False
        require_author(actor, found[0], f"delete brand kit «{name}»")
        return conn.execute("DELETE FROM brands WHERE name = ?", [name]).rowcount > 0
