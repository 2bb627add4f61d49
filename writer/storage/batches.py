"""Batches in the database (tables `batches` and `batch_rows`, m009): a batch and its
rows as read from the spreadsheet, each row's state joined from its article, the
counts, the start of a run and the recovery of a batch whose runners died.
Each batch records its `author` (m016), who made it. Running a batch (and who may
stop or resume one) is writer/runs/batch.py.

Several runners (servers, CLI processes) may run one batch at once (issue 24, m018):
each writes only the rows it claimed (`claim_rows`: `batch_rows.claimed_by`, taken in
one write transaction, `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two never write the
same row. A runner beats its claims (`beat`); a claim whose runner stopped beating
(stale, as a row's heartbeat: writer/storage/liveness.py) is free again. A Stop from
any of them (`request_stop`) reaches every runner at its next beat.
"""
from __future__ import annotations

import json
import os

from writer.io.sheet import Row, dumps
from writer.kinds import BatchStatus, RowState, Status
from writer.storage import liveness
from writer.storage.connection import SQLITE
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
            "?, ?, ?, 0, 0, ?) RETURNING id", [now, now, file_name, BatchStatus.PAUSED.value, dumps(settings),
                                  dumps(columns), len(rows), sum(row.ok for row in rows),
                                  author_name(conn, author)])
        batch_id = cursor.fetchone()[0]
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
    """Mark the batch running by this process: ("claimed", None); ("joined", the other
    process's pid) when another live process runs it too (each writes the rows it
    claims: `claim_rows`); ("missing", None)."""
    recover(store)
    now = utc_now()
    with store.transaction(f"start batch #{batch_id} in") as conn:
        row = conn.execute("SELECT status, worker_pid FROM batches WHERE id = ?",
                           [batch_id]).fetchone()
        if row is None:
            return "missing", None
        joined = row[0] == BatchStatus.RUNNING and row[1] != os.getpid()
        conn.execute("UPDATE batches SET status = 'running', note = NULL, worker_pid = ?, "
                     "heartbeat_at = ?, updated_at = ? WHERE id = ?",
                     [os.getpid(), now, now, batch_id])
    return ("joined", row[1]) if joined else ("claimed", None)


CLAIM_WINDOW = 500  # rows offered per statement (bound parameters stay few)


def claim_rows(store: Store, batch_id: int, runner: str, numbers: list[int],
               limit: int) -> list[int]:
    """Claim for `runner` up to `limit` of `numbers` (lowest first) that no live runner
    holds: free, its own, or held by a runner that stopped beating. One write
    transaction per window; on PostgreSQL the rows are also locked `FOR UPDATE SKIP
    LOCKED`, so concurrent claimers skip each other's rows instead of waiting."""
    claimed: list[int] = []
    wanted = sorted({int(n) for n in numbers})
    for start in range(0, len(wanted), CLAIM_WINDOW):
        if len(claimed) >= limit:
            break
        window = wanted[start:start + CLAIM_WINDOW]
        skip = " FOR UPDATE SKIP LOCKED" if store.dialect != SQLITE else ""
        pick = (f"SELECT row_no FROM batch_rows WHERE batch_id = ? AND row_no IN "
                f"({', '.join('?' * len(window))}) AND (claimed_by IS NULL OR claimed_by = ? "
                f"OR claimed_at IS NULL OR claimed_at < ?) ORDER BY row_no LIMIT ?{skip}")
        now, cutoff = utc_now(), liveness.stale_cutoff()
        with store.transaction(f"claim rows of batch #{batch_id} in") as conn:
            got = conn.execute(
                f"UPDATE batch_rows SET claimed_by = ?, claimed_at = ? WHERE batch_id = ? AND "
                f"row_no IN ({pick}) RETURNING row_no",
                [runner, now, batch_id, batch_id, *window, runner, cutoff,
                 limit - len(claimed)]).fetchall()
        claimed += sorted(n for (n,) in got)
    return claimed


def release_rows(store: Store, batch_id: int, runner: str,
                 numbers: list[int] | None = None) -> None:
    """Give back `runner`'s claims on `numbers` (all of them when None)."""
    where, params = "", []
    if numbers is not None:
        if not numbers:
            return
        where = f" AND row_no IN ({', '.join('?' * len(numbers))})"
        params = [int(n) for n in numbers]
    with store.transaction(f"release rows of batch #{batch_id} in") as conn:
        conn.execute("UPDATE batch_rows SET claimed_by = NULL, claimed_at = NULL WHERE "
                     f"batch_id = ? AND claimed_by = ?{where}", [batch_id, runner, *params])


def others_running(store: Store, batch_id: int, runner: str) -> bool:
    """Does another live runner hold rows of the batch (a fresh claim)?"""
    with store.read() as conn:
        return conn.execute(
            "SELECT 1 FROM batch_rows WHERE batch_id = ? AND claimed_by <> ? AND "
            "claimed_at >= ? LIMIT 1", [batch_id, runner, liveness.stale_cutoff()]
        ).fetchone() is not None


def beat(store: Store, batch_id: int, runner: str) -> str | None:
    """`runner` is alive: its claims and the batch's heartbeat are stamped, the batch
    shows as running (another runner that ended may have saved it paused or done) and
    its counts are saved. Returns when a Stop was last requested (None: never)."""
    now = utc_now()
    with store.transaction(f"save batch #{batch_id} in") as conn:
        conn.execute("UPDATE batch_rows SET claimed_at = ? WHERE batch_id = ? AND "
                     "claimed_by = ?", [now, batch_id, runner])
        found = conn.execute("SELECT stop_requested_at FROM batches WHERE id = ?",
                             [batch_id]).fetchone()
        save_counts(store, batch_id, heartbeat_at=now, status=BatchStatus.RUNNING, note=None)
    return found[0] if found else None


def request_stop(store: Store, batch_id: int) -> None:
    """Ask every runner of the batch to pause (each sees it at its next beat)."""
    with store.transaction(f"stop batch #{batch_id} in") as conn:
        conn.execute("UPDATE batches SET stop_requested_at = ? WHERE id = ?",
                     [utc_now(), batch_id])


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
