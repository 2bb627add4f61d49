"""Batches in the database (tables `batches` and `batch_rows`, m009): a batch and its
rows as read from the spreadsheet, each row's state joined from its article, the
counts, the claim of a running batch and the recovery of one whose runner died.
Each batch records its `author` (m016), who made it. Running a batch (and who may
stop or resume one) is writer/runs/batch.py.
"""
from __future__ import annotations

import json
import os

from writer.io.sheet import Row, dumps
from writer.kinds import BatchStatus, RowState, Status
from writer.storage import liveness
from writer.storage.store import Store, author_name, utc_now


def create(store: Store, *, file_name: str, settings: dict, columns: list[str],
           rows: list[Row], author: str | None = None) -> int:
    """Save a new batch and its rows (status paused until a run starts), made by
    `author`; its id."""
    now = utc_now()
    with store.transaction("save a batch in") as conn:
        cursor = conn.execute(
            "INSERT INTO batches (created_at, updated_at, file_name, status, settings, columns, "
            "total_rows, valid_rows, completed_rows, failed_rows, author) VALUES (?, ?, ?, ?, ?, "
            "?, ?, ?, 0, 0, ?)", [now, now, file_name, BatchStatus.PAUSED.value, dumps(settings),
                                  dumps(columns), len(rows), sum(row.ok for row in rows),
                                  author_name(conn, author)])
        batch_id = cursor.lastrowid
        conn.executemany(
            "INSERT INTO batch_rows (batch_id, row_no, input, brief, error) VALUES (?, ?, ?, ?, ?)",
            [(batch_id, row.number, dumps(row.cells),
              dumps(row.brief.as_dict()) if row.brief else None,
              dumps({"code": row.error, "detail": row.detail}) if row.error else None)
             for row in rows])
    return batch_id


def get(store: Store, batch_id: int) -> dict | None:
    recover(store)
    found = store.rows("SELECT * FROM batches WHERE id = ?", [batch_id])
    return _decode(found[0]) if found else None


def listing(store: Store, limit: int = 50, *, author: str | None = None) -> list[dict]:
    """Batches, newest first, with their counts; only `author`'s when given (the
    `idx_batches_author` index: a writer's own, WRITER_HISTORY_SCOPE=own)."""
    recover(store)
    where, params = ("WHERE author = ?", [author]) if author else ("", [])
    return [_decode(r) for r in store.rows(f"SELECT * FROM batches {where} ORDER BY id DESC "
                                           "LIMIT ?", [*params, limit])]


def _decode(row: dict) -> dict:
    row["settings"] = json.loads(row.get("settings") or "{}")
    row["columns"] = json.loads(row.get("columns") or "[]")
    return row


ROW_SQL = """
    SELECT r.row_no, r.input, r.brief, r.error AS row_error,
           a.id AS article_id, a.status, a.words, a.target_words, a.input_tokens,
           a.output_tokens, a.cost, a.currency, a.error, a.error_kind, a.retries,
           a.length_outcome, a.duration_ms, a.updated_at, a.topic {content}
    FROM batch_rows r
    LEFT JOIN articles a ON a.batch_id = r.batch_id AND a.batch_row = r.row_no
                        AND a.deleted_at IS NULL
    WHERE r.batch_id = ? {where}
    ORDER BY r.row_no"""


def rows(store: Store, batch_id: int, *, content: bool = False,
         numbers: list[int] | None = None) -> list[dict]:
    """Every row with its state (`state`: an article status or a RowState), its brief
    and its article's figures."""
    where, params = "", [batch_id]
    if numbers:
        where = f"AND r.row_no IN ({', '.join('?' * len(numbers))})"
        params += list(numbers)
    sql = ROW_SQL.format(content=", a.content" if content else "", where=where)
    with store.read() as conn:
        found = store.rows(sql, params)
        deleted = {n for (n,) in conn.execute(
            "SELECT DISTINCT batch_row FROM articles WHERE batch_id = ? AND deleted_at IS NOT NULL",
            [batch_id])}
    for row in found:
        row["input"] = json.loads(row["input"] or "{}")
        row["brief"] = json.loads(row["brief"]) if row["brief"] else None
        error = json.loads(row.pop("row_error")) if row.get("row_error") else None
        row["invalid"] = error
        if error:
            row["state"] = RowState.INVALID.value
        elif row["article_id"] is not None:
            row["state"] = row["status"]
        elif row["row_no"] in deleted:
            row["state"] = RowState.DELETED.value
        else:
            row["state"] = RowState.PENDING.value
        if row["brief"] and row["target_words"] is None:
            row["target_words"] = row["brief"]["target_words"]
    return found


def counts(batch_rows: list[dict]) -> dict:
    """Rows by state, words written, cost by currency, retries."""
    by_state: dict[str, int] = {}
    cost: dict[str, float] = {}
    words = retries = 0
    for row in batch_rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
        words += row.get("words") or 0
        retries += row.get("retries") or 0
        if row.get("cost") is not None and row.get("currency"):
            cost[row["currency"]] = cost.get(row["currency"], 0.0) + row["cost"]
    valid = len(batch_rows) - by_state.get(RowState.INVALID, 0)
    ended = sum(by_state.get(s, 0) for s in (Status.COMPLETED, Status.FAILED, RowState.DELETED))
    return {"total": len(batch_rows), "valid": valid, "by_state": by_state,
            "completed": by_state.get(Status.COMPLETED, 0),
            "failed": by_state.get(Status.FAILED, 0), "ended": ended,
            "words": words, "cost": cost, "retries": retries}


def save_counts(store: Store, batch_id: int, **extra) -> None:
    """Store the batch's completed / failed counts, with other columns (`extra`)."""
    found = counts(rows(store, batch_id))
    fields = {"completed_rows": found["completed"], "failed_rows": found["failed"],
              "updated_at": utc_now(), **extra}
    with store.transaction(f"save batch #{batch_id} in") as conn:
        conn.execute(f"UPDATE batches SET {', '.join(f'[{k}] = ?' for k in fields)} WHERE id = ?",
                     [*(v.value if isinstance(v, BatchStatus) else v for v in fields.values()),
                      batch_id])


def claim(store: Store, batch_id: int) -> tuple[str, int | None]:
    """Mark the batch running by this process, unless another process runs it:
    ("claimed", None), ("running", the other process's pid) or ("missing", None)."""
    recover(store)
    now = utc_now()
    with store.transaction(f"start batch #{batch_id} in") as conn:
        row = conn.execute("SELECT status, worker_pid FROM batches WHERE id = ?",
                           [batch_id]).fetchone()
        if row is None:
            return "missing", None
        if row[0] == BatchStatus.RUNNING and row[1] != os.getpid():
            return "running", row[1]
        conn.execute("UPDATE batches SET status = 'running', note = NULL, worker_pid = ?, "
                     "heartbeat_at = ?, updated_at = ? WHERE id = ?",
                     [os.getpid(), now, now, batch_id])
    return "claimed", None


def recover(store: Store) -> list[int]:
    """Batches left `running` by a process that stopped beating (a server restart, a
    killed CLI) are paused with note "interrupted": Resume picks them up."""
    cutoff = liveness.stale_cutoff()
    stale = "status = 'running' AND coalesce(heartbeat_at, updated_at, created_at) < ?"
    with store.read() as conn:
        if conn.execute(f"SELECT 1 FROM batches WHERE {stale} LIMIT 1", [cutoff]).fetchone() is None:
            return []
    with store.transaction("recover interrupted batches in") as conn:
        ids = [i for (i,) in conn.execute(f"SELECT id FROM batches WHERE {stale}", [cutoff])]
        conn.execute(f"UPDATE batches SET status = 'paused', note = 'interrupted', updated_at = ? "
                     f"WHERE {stale}", [utc_now(), cutoff])
    return ids
