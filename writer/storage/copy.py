"""Copying a team's SQLite database into an empty PostgreSQL one (`python -m writer
migrate-db`, writer/cli/migrate_db.py), every row with its id, then checking that both
sides hold the same.

The tables are those of the schema, read from the databases (not listed here): every
table of the PostgreSQL schema but `_migrations`, in the order their foreign keys need
(articles before versions, batches before batch_rows). SQLite's search internals (the
FTS5 tables and their shadow tables) are not copied: the trigram index is PostgreSQL's
own, and `articles.grams` (1–2 character tokens, NULL while an article is being
written) is computed here by `pg_grams`, the Python twin of the trigger's SQL function
(writer/storage/search_pg.py) and about ten times faster; a sample is checked against
the function at the end. A column only the SQLite file has means the two schemas
differ: refused.

The whole copy is one PostgreSQL transaction, under the write lock every server takes
(writer/storage/pg.py), so a failure — or a count that differs at the end — leaves the
target as empty as it was; the SQLite side is read in one read transaction, one
consistent snapshot even if an app still writes to it. Rows go in with COPY, in the
order of their ids. Then the identity sequences are moved past the highest id (or the
highest id SQLite ever gave, `sqlite_sequence`: ids are never reused), so new rows get
new ids.
"""
from __future__ import annotations

import contextlib
import math
import operator
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from writer.storage import pg, search_pg
from writer.storage.connection import SQLITE, StorageError, table_columns
from writer.storage.grams import TOKEN_RANGES, WRITING
from writer.storage.migrations import MIGRATIONS_TABLE, pending
from writer.storage.store import Store

GRAMS_COLUMN, GRAMS_TRIGGER = "grams", "articles_grams"  # writer/storage/search_pg.py
PROGRESS_EVERY = 5000  # rows between two progress calls
INDEX_MEMORY = "256MB"  # maintenance_work_mem while the indexes are built (this transaction)
GRAMS_SAMPLE = 200  # articles whose tokens are checked against the SQL function
_RUN = re.compile("[" + "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                                 for low, high in TOKEN_RANGES) + "]+")  # a run of token characters
SUMMED = ("input_tokens", "output_tokens", "cost")  # totals compared on both sides
Progress = Callable[[str, int, int], None]


class CopyRefused(StorageError):
    """The copy cannot start: a source that is not the app's database, a target that
    already holds data. Nothing was written (exit 2: the input is refused)."""

    exit_code = 2


class CopyMismatch(StorageError):
    """What was copied differs from the source; the copy was rolled back (exit 1)."""


@dataclass
class Report:
    tables: list[tuple[str, int]] = field(default_factory=list)  # (table, rows copied), in order
    sums: dict[str, float] = field(default_factory=dict)  # articles' tokens and cost, both sides
    writing: int = 0  # articles that were being written (queued / streaming) in the source

    @property
    def rows(self) -> int:
        return sum(count for _, count in self.tables)


# -- the source ------------------------------------------------------------------------
def open_source(path: str | Path) -> tuple[Store, int]:
    """The Store on the SQLite file `path`, and how many migrations opening it applied
    (a file of an older version is brought up to the current schema first, as any open
    does). A missing file, or one that is not the app's database, is refused before
    anything is written to it."""
    path = Path(path)
    if not path.is_file():
        raise CopyRefused(f"{path} does not exist (or is not a file); give the SQLite file "
                          "of WRITER_DB")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            tables = {name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            todo = len(pending(conn))
    except sqlite3.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CopyRefused(f"{path} is not a usable SQLite database ({reason})") from None
    if "articles" not in tables or MIGRATIONS_TABLE not in tables:
        raise CopyRefused(f"{path} is not a writer database (it has no articles table)")
    return Store(path), todo


def _source_tables(conn) -> list[str]:
    """The app's tables of the SQLite file: not SQLite's own, not `_migrations`, not a
    virtual (FTS5) table nor one of its shadow tables."""
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
    return sorted(name for name, _ in rows
                  if not name.startswith("sqlite_") and name != MIGRATIONS_TABLE
                  and name not in virtual and not any(name.startswith(f"{v}_") for v in virtual))


def _sequences(conn) -> dict[str, int]:
    """The highest id SQLite ever gave per AUTOINCREMENT table (deleted rows included)."""
    try:
        return {name: seq for name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.OperationalError:  # no AUTOINCREMENT table yet
        return {}


# -- the target ------------------------------------------------------------------------
def _target_tables(conn) -> list[str]:
    """The tables of the PostgreSQL schema but `_migrations`, each after the tables its
    foreign keys name."""
    names = [name for (name,) in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname")
        if name != MIGRATIONS_TABLE]
    needs: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in conn.execute(
            "SELECT c.relname, p.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_class p ON p.oid = k.confrelid WHERE k.contype = 'f' "
            "AND k.connamespace = current_schema()::regnamespace"):
        if child in needs and parent in needs and parent != child:
            needs[child].add(parent)
    ordered: list[str] = []
    while needs:
        ready = sorted(name for name, parents in needs.items() if not parents - set(ordered))
        if not ready:  # a cycle: cannot happen in this schema; keep the name order
            ready = sorted(needs)
        for name in ready:
            ordered.append(name)
            del needs[name]
    return ordered


def _column_types(conn, table: str) -> dict[str, str]:
    return dict(conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = ? ORDER BY ordinal_position", [table]).fetchall())


def _identities(conn) -> list[tuple[str, str]]:
    """(table, column) of every column filled from a sequence."""
    return [tuple(row) for row in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%') "
        "ORDER BY table_name")]


def _count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]


# -- the copy ----------------------------------------------------------------------------
def copy_database(source: Store, target: Store, progress: Progress | None = None) -> Report:
    """Copy every table of `source` (SQLite) into `target` (PostgreSQL, empty), then
    compare each table's count and the articles' token and cost totals on both sides.
    One transaction on the target: on any failure (CopyMismatch included) nothing of the
    copy stays. Refused (CopyRefused) when the target already holds data."""
    if source.dialect != SQLITE or target.dialect != pg.DIALECT:
        raise CopyRefused("the copy goes from a SQLite file to a PostgreSQL database")
    report = Report()
    src = source.conn
    with source.read():
        src.execute("BEGIN")  # one snapshot of the file for the copy and the counts
        try:
            with target.transaction("copy into") as dst:
                _copy(src, dst, report, progress)
        finally:
            if src.in_transaction:
                src.execute("ROLLBACK")
    with target.read() as conn:  # fresh statistics for the planner (search, usage)
        for table, _ in report.tables:
            conn.execute(f"ANALYZE [{table}]")
    return report


def _copy(src, dst, report: Report, progress: Progress | None) -> None:
    tables = _target_tables(dst)
    extra = sorted(set(_source_tables(src)) - set(tables))
    if extra:
        raise CopyRefused(f"the PostgreSQL schema has no table {', '.join(extra)}; run the same "
                          "version of the app on both sides")
    busy = _first_rows(dst, tables)
    if busy:
        table, count = busy
        raise CopyRefused(f"the target database is not empty ({table}: {count:,} rows); copy "
                          "into a new, empty database")
    present = set(_source_tables(src))
    report.writing = src.execute(
        f"SELECT count(*) FROM articles WHERE status IN ({', '.join('?' * len(WRITING))})",
        list(WRITING)).fetchone()[0]
    dst.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_MEMORY}'")
    for table in tables:
        if table not in present:
            report.tables.append((table, 0))
            continue
        # Filling a table without its indexes and building them after is several times
        # faster than updating them row by row (the GIN indexes of search above all);
        # the indexes behind keys and constraints stay, they check the rows.
        indexes = _drop_indexes(dst, table)
        copied = _copy_table(src, dst, table, progress)
        report.tables.append((table, copied))
        for number, statement in enumerate(indexes, 1):
            dst.execute_raw(statement)
            if progress and copied >= PROGRESS_EVERY:  # a big table: a minute or more
                progress(f"{table} indexes", number, len(indexes))
    _advance_sequences(src, dst)
    _check(src, dst, report, present)


def _drop_indexes(dst, table: str) -> list[str]:
    """Drop the indexes of `table` that back no constraint; the statements that make them."""
    found = dst.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE t.relname = ? "
        "AND n.nspname = current_schema() AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
        [table]).fetchall()
    for name, _ in found:
        dst.execute_raw(f'DROP INDEX "{name}"')
    return [statement for _, statement in found]


def _first_rows(conn, tables: list[str]) -> tuple[str, int] | None:
    """(table, rows) of the first of `tables` that holds rows; None when all are empty."""
    for table in tables:
        count = _count(conn, table)
        if count:
            return table, count
    return None


def _copy_table(src, dst, table: str, progress: Progress | None) -> int:
    types = _column_types(dst, table)
    source_columns = table_columns(src, table)
    missing = [c for c in source_columns if c not in types]
    if missing:
        raise CopyRefused(f"the PostgreSQL table {table} has no column {', '.join(missing)}; "
                          "run the same version of the app on both sides")
    columns = [c for c in types if c in source_columns]  # the target's order
    # SQLite may keep 3.0 in an INTEGER column; PostgreSQL's BIGINT takes only 3.
    integral = [i for i, c in enumerate(columns) if types[c] in ("bigint", "integer", "smallint")]
    grams = table == "articles" and GRAMS_COLUMN in types
    total = _count(src, table)
    names = ", ".join(f"[{c}]" for c in columns)
    order = " ORDER BY [id]" if "id" in source_columns else ""
    rows = src.execute(f"SELECT {names} FROM [{table}]{order}")
    if grams:
        # The trigger computes search tokens in SQL, ~10 ms for 5,000 characters of text:
        # 100,000 articles would take a quarter of an hour. The Python twin below gives
        # the same array ~10x faster; the trigger is off for this transaction only (the
        # table's lock keeps every other session out until the copy commits).
        at = {name: columns.index(name) for name in ("topic", "content", "status")}
        dst.execute_raw(f"ALTER TABLE articles DISABLE TRIGGER {GRAMS_TRIGGER}")
        columns = [*columns, GRAMS_COLUMN]
    done = 0
    psycopg = pg._psycopg()
    quoted = ", ".join(f'"{c}"' for c in columns)
    try:
        with dst.raw.cursor() as cursor, \
                cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
            while batch := rows.fetchmany(1000):
                for row in batch:
                    if integral:
                        row = _integral(row, integral)
                    if grams:
                        row = (*row, None if row[at["status"]] in WRITING
                               else _array(pg_grams(row[at["topic"]], row[at["content"]])))
                    copy.write_row(row)
                done += len(batch)
                if progress and (done % PROGRESS_EVERY < len(batch) or done == total):
                    progress(table, done, total)
        if grams:
            dst.execute_raw(f"ALTER TABLE articles ENABLE TRIGGER {GRAMS_TRIGGER}")
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise pg.PgError(f"copying {table}: {reason}", getattr(exc, "sqlstate", None)) from exc
    if progress and done == 0:
        progress(table, 0, total)
    return done


def pg_grams(topic: str | None, content: str | None) -> set[str]:
    """`writer_grams(topic || ' ' || content)` of writer/storage/search_pg.py in Python:
    every token character (TOKEN_RANGES) and every pair of adjacent token characters,
    lowercased, each once (tests/cli/test_cli_migrate_db.py compares the two)."""
    found: set[str] = set()
    for text in (topic, content):
        text = (text or "").lower()
        chars = set("".join(_RUN.findall(text)))
        found |= chars
        found.update(pair for pair in set(map(operator.add, text, text[1:]))
                     if pair[0] in chars and pair[1] in chars)
    return found


def _array(grams: set[str]) -> str:
    """A text[] literal; tokens are letters, digits and CJK: nothing to quote."""
    return "{" + ",".join(grams) + "}"


def _integral(row: tuple, indexes: list[int]) -> tuple:
    if not any(isinstance(row[i], float) for i in indexes):
        return row
    values = list(row)
    for i in indexes:
        value = values[i]
        if isinstance(value, float) and value.is_integer():
            values[i] = int(value)
    return tuple(values)


def _advance_sequences(src, dst) -> None:
    """Each identity past the highest id copied, and past the highest SQLite ever gave."""
    given = _sequences(src)
    for table, column in _identities(dst):
        high = max(dst.execute(f"SELECT coalesce(max([{column}]), 0) FROM [{table}]").fetchone()[0],
                   given.get(table) or 0)
        if high:
            dst.execute("SELECT setval(pg_get_serial_sequence(?, ?), ?)",
                        [f'"{table}"', column, high])


def _check(src, dst, report: Report, present: set[str]) -> None:
    """Every table's count equal on both sides, the articles' tokens and cost too, and
    every finished article in the search tokens (`grams`); else CopyMismatch."""
    for table, copied in report.tables:
        source_count = _count(src, table) if table in present else 0
        target_count = _count(dst, table)
        if not source_count == copied == target_count:
            raise CopyMismatch(f"{table}: {source_count:,} rows in SQLite, {target_count:,} in "
                               "PostgreSQL; nothing was copied")
    sums = ", ".join(f"coalesce(sum({c}), 0)" for c in SUMMED)
    ours = src.execute(f"SELECT {sums} FROM articles").fetchone()
    theirs = dst.execute(f"SELECT {sums} FROM articles").fetchone()
    for name, a, b in zip(SUMMED, ours, theirs):
        if not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9):
            raise CopyMismatch(f"articles' {name} add up to {a} in SQLite, {b} in PostgreSQL; "
                               "nothing was copied")
        report.sums[name] = a
    sample = dst.execute(
        f"SELECT count(*) FROM (SELECT grams, {search_pg.GRAMS_FUNCTION}(coalesce(topic, '') || ' ' "
        f"|| coalesce(content, '')) AS want FROM articles WHERE grams IS NOT NULL ORDER BY id "
        f"DESC LIMIT {GRAMS_SAMPLE}) s WHERE NOT (grams @> want AND grams <@ want)").fetchone()[0]
    if sample:
        raise CopyMismatch(f"the search tokens of {sample} copied articles differ from "
                           f"{search_pg.GRAMS_FUNCTION}(); nothing was copied")
    unindexed = dst.execute(
        f"SELECT count(*) FROM articles WHERE grams IS NULL AND status NOT IN "
        f"({', '.join('?' * len(WRITING))})", list(WRITING)).fetchone()[0]
    if unindexed:
        raise CopyMismatch(f"{unindexed:,} copied articles are missing from the search tokens; "
                           "nothing was copied")

