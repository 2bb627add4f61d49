"""`python -m writer migrate-db --from sqlite:///writer.db --to postgresql://…`: copy a
team's SQLite database into a new, empty PostgreSQL database (writer/storage/copy.py),
then check that both hold the same rows.

The source is opened as the app opens it (an older file is brought up to the current
schema first, said on stderr); the target's schema is created by opening it. A target
that already holds data is refused (exit 2): the copy keeps every id, so it never
merges. The copy is one transaction: a failure or a count that differs leaves the
target empty (exit 1). Progress goes to stderr, the rows copied per table and the
check to stdout. A URL's password is never printed.
"""
from __future__ import annotations

from pathlib import Path

from writer.cli.output import EXIT_OK, CliError, say
from writer.storage import copy, pg
from writer.storage.store import Store

SQLITE_PREFIX = "sqlite:///"  # sqlite:///relative/path, sqlite:////absolute/path


def sqlite_path(text: str) -> Path:
    """The file a `--from` value names: a `sqlite:///` URL (three slashes and a relative
    path, four and an absolute one, as SQLAlchemy spells them) or a plain path."""
    value = (text or "").strip()
    if value.startswith(SQLITE_PREFIX) and len(value) > len(SQLITE_PREFIX):
        return Path(value[len(SQLITE_PREFIX):].split("?", 1)[0])
    if "://" in value or not value:
        shown = pg.redact_url(value) if pg.is_url(value) else value
        raise CliError(f"--from {shown!r} is not a SQLite file; give sqlite:///path/to/writer.db "
                       "or the file's path")
    return Path(value)


def target_url(text: str) -> str:
    value = (text or "").strip()
    if not pg.is_url(value):
        raise CliError("--to must be a postgresql:// URL, e.g. postgresql://db-host:5432/writer "
                       "(the user and password before the host)")
    return value


def cmd_migrate_db(args) -> int:
    source_file = sqlite_path(args.source)
    url = target_url(args.target)
    shown = pg.redact_url(url)
    source, migrated = copy.open_source(source_file)
    try:
        if migrated:
            say(f"{source_file}: brought up to the current schema first ({migrated} migrations "
                "applied to the file)")
        target = Store(url)  # creates the schema in an empty database
        try:
            say(f"copying {source_file} into {shown}")
            report = copy.copy_database(source, target, _progress)
        finally:
            target.close()
    finally:
        source.close()
        pg.close_pool()
    if report.writing:
        say(f"warning: articles being written (queued or streaming) in {source_file}: "
            f"{report.writing:,}, copied as they were; an app server on PostgreSQL marks them "
            "stopped (interrupted) once their writer stops; stop the servers before copying")
    width = max(len(table) for table, _ in report.tables)
    for table, count in report.tables:
        print(f"{table:<{width}}  {count:>12,}")
    sums = report.sums
    print(f"counts checked: {len(report.tables)} tables, {report.rows:,} rows, equal in SQLite and "
          f"PostgreSQL; articles' tokens {sums['input_tokens']:,} in / {sums['output_tokens']:,} "
          f"out and cost {sums['cost']:.6g} equal too")
    return EXIT_OK


def _progress(table: str, done: int, total: int) -> None:
    say(f"{table} {done:,}/{total:,}")
