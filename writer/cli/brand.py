"""`brand import | export | list`, and the kit lookup `write` and `batch` share. An
import acts as WRITER_USER (writer/storage/accounts.py `actor_for`): new kits are
theirs, and replacing a saved kit is for its author or an admin."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from writer import brands as brand_kits
from writer.brands import BrandError
from writer.cli.output import EXIT_OK, CliError, one_line, open_store, read_file, say, write_file
from writer.config import load_settings
from writer.storage import brands as brand_store
from writer.storage.accounts import actor_for
from writer.storage.store import Store


def kit_named(store: Store, name: str) -> brand_kits.BrandKit:
    """The saved kit of this name, or a one-line error naming the known ones."""
    kit = brand_store.get(store, name)
    if kit is None:
        known = brand_store.names(store)
        raise CliError(f"there is no brand kit «{one_line(name)}»; " + (
            f"known: {', '.join(known)}" if known else
            "none saved yet: python -m writer brand import FILE.toml"))
    return kit


def cmd_brand(args) -> int:
    store = open_store()
    if args.brand_command == "import":
        return _import(store, Path(args.file), getattr(args, "replace", False))
    if args.brand_command == "export":
        kit = kit_named(store, args.name)
        text = brand_kits.to_toml(kit)
        if args.out:
            write_file(Path(args.out), text.encode("utf-8"))
            say(f"saved brand kit «{kit.name}» as {args.out}")
        else:
            sys.stdout.write(text)
        return EXIT_OK
    return _list(store, args.json)


def _import(store: Store, path: Path, replace: bool = False) -> int:
    """Add the file's kits; a kit with the name of a saved one replaces it only with
    `--replace` (otherwise nothing is imported and the names are said, exit 2)."""
    data = read_file(path)
    try:
        kits = brand_kits.from_toml(data)
    except BrandError as exc:
        raise CliError(f"{path.name}: {exc}") from None
    taken = brand_store.existing(store, kits)
    if taken and not replace:
        names = ", ".join(f"«{one_line(name)}»" for name in taken)
        raise CliError(f"{path.name}: brand kit{'s' if len(taken) > 1 else ''} {names} already "
                       "saved; nothing imported. Add --replace to replace "
                       f"{'them' if len(taken) > 1 else 'it'}")
    actor = actor_for(store, load_settings())
    for kit in kits:
        try:
            brand_store.save(store, kit, replace=replace, actor=actor)
        except BrandError as exc:  # saved meanwhile by someone else
            raise CliError(f"{path.name}: {exc}; add --replace to replace it") from None
        say(f"{'replaced' if kit.name in taken else 'imported'} brand kit «{one_line(kit.name)}»")
    return EXIT_OK


def _list(store: Store, as_json: bool) -> int:
    kits = brand_store.listing(store)
    for kit in kits:
        if as_json:
            print(json.dumps({"id": kit.id, **kit.as_dict()}, ensure_ascii=False))
        else:
            print(f"{kit.name:<24} {len(kit.banned_words):>3} banned · "
                  f"{len(kit.required_terms):>3} required · {len(kit.do) + len(kit.dont):>3} "
                  f"rules · {len(kit.samples)} sample{'s' if len(kit.samples) != 1 else ''}"
                  + (f" · {one_line(kit.voice, 40)}" if kit.voice else ""))
    if not as_json:
        say(f"{len(kits)} brand kit{'s' if len(kits) != 1 else ''}")
    return EXIT_OK
