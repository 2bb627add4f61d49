"""The saved articles: `history`, `show`, `delete`, `usage`, `versions`, `choose`.

Read the store only: nothing here loads a provider SDK, a tokenizer or a model.
Nothing stored is printed raw: a control character (C0, DEL, C1: an escape sequence
can retitle or clear a terminal) in a row stored before the brief stripped them, or
in a model's answer, is printed as its JSON escape (`\\u001b`); line breaks and tabs of
an article stay as they are.

Commands act as WRITER_USER (writer/storage/accounts.py `actor_for`): its account's
role when it has one, else an admin. A writer reads their own articles (or the team's,
WRITER_HISTORY_SCOPE=team) and changes only their own, as on the pages.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from writer.access import Actor, visible_author
from writer.cli.output import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    ask,
    get_article,
    is_yes,
    one_line,
    open_store,
    pad,
    say,
    write_file,
)
from writer.config import load_settings
from writer.io.export import FORMATS, export
from writer.io.i18n import article_unit
from writer.kinds import Status
from writer.storage import brands as brand_kits
from writer.storage import versions
from writer.storage.accounts import actor_for
from writer.storage.search import Filters, search
from writer.storage.store import Store, require_author
from writer.storage.usage import by_group

_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES_TEXT = {code: text for code, text in _ESCAPES.items() if chr(code) not in "\n\t"}


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` for a terminal: each control character as `\\u001b` (valid inside a JSON
    string too); with `multiline`, line breaks and tabs kept."""
    return str(text).translate(_ESCAPES_TEXT if multiline else _ESCAPES)


def _print(line: str) -> None:
    print(printable(line))


def acting(store: Store) -> Actor:
    """Who this command acts as: WRITER_USER (writer/storage/accounts.py `actor_for`)."""
    return actor_for(store, load_settings())


def reader_author(store: Store, asked: str | None) -> str | None:
    """The author a read is limited to: `asked` (--author), or the actor's own when
    they may read only their own (a writer, WRITER_HISTORY_SCOPE=own)."""
    actor = acting(store)
    own = visible_author(actor, load_settings().history_scope)
    if own is not None and asked and not actor.owns(asked.strip()):
        raise CliError(f"{actor.name} may read only their own articles "
                       "(WRITER_HISTORY_SCOPE=own); leave out --author")
    return own or asked


def readable(store: Store, article_id: int) -> dict:
    """The article, if the actor may read it: not another's for a writer who reads only
    their own (WRITER_HISTORY_SCOPE=own) — then as if there were none."""
    row = get_article(store, article_id)
    own = reader_author(store, None)
    if own is not None and not acting(store).owns(row.get("author")):
        raise CliError(f"there is no article #{article_id} of {own}'s")
    return row


def cmd_history(args) -> int:
    store = open_store()
    author = reader_author(store, getattr(args, "author", None))
    page = search(store, Filters(query=args.search, status=args.status, author=author),
                  limit=max(1, args.limit))
    if args.json:
        for row in page.rows:
            _print(json.dumps({**row, "unit": article_unit(row.get("language"))},
                              ensure_ascii=False))
    else:
        for r in page.rows:
            cost = "unpriced" if r["cost"] is None else f"{r['cost']:.4f} {r['currency']}"
            _print(f"#{r['id']:<5} {r['created_at'][:16].replace('T', ' ')}  {r['status']:<9} "
                  f"{r['words']:>6}/{r['target_words']:<6} {pad(article_unit(r['language']), 5)} "
                  f"{cost:>14}  {pad(one_line(r.get('author') or '-', 20), 20)}  {r['model']}  "
                  f"{r['topic']}")
    say(f"{len(page.rows)} shown of {page.total_label} matching")
    return EXIT_OK


def cmd_show(args) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
        fmt = suffix if suffix in FORMATS else "md"
    if fmt == "docx" and not args.out:
        raise CliError("docx is binary: add --out FILE")
    store = open_store()
    row = readable(store, args.id)
    if fmt == "json":  # every version: draft, variants, revisions
        row["versions"] = versions.listing(store, args.id)
    data, _, _ = export(row, fmt)
    if args.out:
        write_file(Path(args.out), data)
        say(f"saved #{args.id} as {args.out}")
        return EXIT_OK
    data = printable(data.decode("utf-8"), multiline=True).encode("utf-8")  # a terminal
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:  # bytes as exported, whatever the terminal's encoding
        sys.stdout.flush()
        out.write(data)
        out.flush()
    else:
        sys.stdout.write(data.decode("utf-8"))
    return EXIT_OK


def cmd_delete(args) -> int:
    store = open_store()
    row = readable(store, args.id)
    topic = one_line(row.get("topic"))
    actor = acting(store)
    require_author(actor, row.get("author"), f"delete article #{args.id}")  # before asking
    if not args.yes:
        answer = ask(f"delete #{args.id} «{topic}»? [y/N] ",
                     f"not deleting #{args.id} without confirmation: add --yes")
        if not is_yes(answer):
            if not answer.endswith("\n"):
                sys.stderr.write("\n")  # EOF: end the prompt line
            say(f"kept #{args.id}")
            return EXIT_FAILED
    if row.get("status") == Status.STREAMING:
        say(f"#{args.id} is still being written; the writer notices the delete and stops "
            f"within a few seconds")
    if not store.delete(args.id, actor=actor):
        raise CliError(f"there is no article #{args.id}")
    say(f"deleted #{args.id} «{topic}»; its tokens and cost stay in usage")
    return EXIT_OK


def cmd_usage(args) -> int:
    store = open_store()
    rows = by_group(store, args.by, args.since, args.until,
                    author=reader_author(store, getattr(args, "author", None)))
    if args.json:
        print(printable(json.dumps(rows, ensure_ascii=False, indent=2), multiline=True))
        return EXIT_OK
    print(f"{args.by:<24} {'currency':<8} {'articles':>8} {'input':>12} {'output':>12} "
          f"{'cost':>14} {'unpriced':>8} {'estimated':>9}")
    for r in rows:
        cost = "-" if r["cost"] is None else f"{r['cost']:.4f}"
        _print(f"{str(r['group']):<24} {r['currency'] or '-':<8} {r['articles']:>8} "
              f"{r['input_tokens']:>12} {r['output_tokens']:>12} {cost:>14} "
              f"{r['unpriced_articles']:>8} {r['estimated_articles']:>9}")
    return EXIT_OK


def cmd_versions(args) -> int:
    store = open_store()
    article = readable(store, args.id)
    if args.sections:
        from writer.generation.sections import sections

        for part in sections(article["content"] or ""):
            sys.stdout.write(f"{part.number}\t{printable(part.title)}\n")
        return EXIT_OK
    listed = versions.listing(store, args.id)
    if args.json:
        for v in listed:
            sys.stdout.write(printable(json.dumps({**v, "current": v["number"] == article.get(
                "current_version"), "unit": article_unit(article.get("language"))},
                ensure_ascii=False)) + "\n")
        return EXIT_OK
    counted = article_unit(article.get("language"))  # 字 for a Chinese article
    for v in listed:
        mark = "*" if v["number"] == article.get("current_version") else " "
        cost = ("unpriced" if v["cost"] is None else f"{v['cost']:.6f} {v['currency']}")
        what = v["kind"] + (f" §{v['section']}" if v["section"] else "")
        sys.stdout.write(printable(f"{mark}{v['number']:>3}  {what:<12} {v['status']:<10} "
                                   f"{v['words'] or 0:>6} {pad(counted, 5)}  {cost:<18} "
                                   f"{v['created_at'][:16]}  {one_line(v['instruction'] or '')}")
                         + "\n")
    if not listed:
        say(f"article #{args.id} has no versions (written before versions were kept)")
    return EXIT_OK


def cmd_choose(args) -> int:
    store = open_store()
    article = readable(store, args.id)
    kit = brand_kits.get(store, article["brand"]) if article.get("brand") else None
    try:
        versions.choose(store, args.id, args.version, kit,  # its checks run again
                        actor=acting(store))
    except versions.VersionError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    say(f"#{args.id}: version {args.version} is now current")
    return EXIT_OK
