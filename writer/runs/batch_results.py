"""A batch's results (writer/runs/batch.py): the input's columns with each row's
outcome, as a table, CSV, Excel or a zip of Markdown files; and the words written by
unit. Also `BatchError`, which both modules raise. Pure Python, no Streamlit.
"""
from __future__ import annotations

from pathlib import Path

from writer.errors import UserError
from writer.io.export import slugify, to_markdown
from writer.io.i18n import article_unit
from writer.io.sheet import RESULT_COLUMNS, to_csv, to_xlsx, to_zip
from writer.storage.batches import get, rows
from writer.storage.store import Store


class BatchError(UserError, ValueError):
    """The batch cannot start or resume; the message is one line that says why."""

    key = "user_errors.batch"


def words_by_unit(batch_rows: list[dict], live: dict | None = None) -> dict[str, int]:
    """Words written, totalled by the unit each row counts in ({"字": 5200, "words": 800}):
    a Chinese row's characters are never added to an English row's words. `live`: the
    handles of rows in flight by row number (their live count, not the last draft's)."""
    totals: dict[str, int] = {}
    for row in batch_rows:
        handle = (live or {}).get(row["row_no"])
        count = handle.words if handle is not None else row.get("words") or 0
        if count and row.get("brief"):
            counted = article_unit(row["brief"].get("language"))
            totals[counted] = totals.get(counted, 0) + count
    return totals


def results(store: Store, batch_id: int, labels: dict | None = None) -> tuple[list[str], list]:
    """The input's columns, then the results (RESULT_COLUMNS, renamed by `labels`). A
    row's `unit` is `labels["unit.<language>"]`, else its article's own (字 / words)."""
    batch = get(store, batch_id)
    if batch is None:
        raise BatchError(f"there is no batch #{batch_id}")
    columns = batch["columns"]
    labels = labels or {}
    header = [*columns, *(labels.get(name, name) for name in RESULT_COLUMNS)]
    table = []
    for row in rows(store, batch_id, content=True):
        error = row["error"]
        if row["invalid"]:
            code, detail = row["invalid"]["code"], row["invalid"]["detail"]
            error = f"{code}: {detail}" if detail else code
        state = labels.get(f"state.{row['state']}", row["state"])
        language = (row["brief"] or {}).get("language")
        counted = labels.get(f"unit.{language}", article_unit(language)) if row["brief"] else ""
        values = {"row": row["row_no"], "article_id": row["article_id"], "status": state,
                  "words": row["words"], "target_words": row["target_words"],
                  "unit": counted, "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
                  "cost": row["cost"], "currency": row["currency"], "error": error,
                  "article": row.get("content") or ""}
        table.append([row["input"].get(c, "") for c in columns]
                     + [values[name] for name in RESULT_COLUMNS])
    return header, table


EXPORTS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument."
           "spreadsheetml.sheet", "zip": "application/zip"}


def export(store: Store, batch_id: int, fmt: str, labels: dict | None = None) -> tuple[bytes, str, str]:
    """(data, mime type, file name): the results as CSV (UTF-8 with BOM), Excel, or a
    zip with one Markdown file per written row."""
    if fmt not in EXPORTS:
        raise BatchError(f"unknown results format {fmt!r}; use csv, xlsx or zip")
    batch = get(store, batch_id)
    if batch is None:
        raise BatchError(f"there is no batch #{batch_id}")
    stem = f"batch-{batch_id}-{slugify(Path(batch['file_name'] or 'batch').stem, 30)}"
    if fmt == "zip":
        files = []
        for row in rows(store, batch_id, content=True):
            if row.get("content"):
                article = store.get(row["article_id"]) or {}
                name = f"{row['row_no']:04d}-{slugify(row['topic'] or '', 40)}.md"
                files.append((name, to_markdown(article) if article else row["content"]))
        return to_zip(files), EXPORTS[fmt], f"{stem}.zip"
    header, table = results(store, batch_id, labels)
    data = to_csv(header, table) if fmt == "csv" else to_xlsx(header, table)
    return data, EXPORTS[fmt], f"{stem}.{fmt}"

