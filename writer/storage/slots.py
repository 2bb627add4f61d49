"""A provider's stream limit across processes (issue 24): the SQL of taking a slot.

`Provider.max_streams` bounds the articles written at once through a provider. Several
servers (and CLI processes) on one database share that bound: a queued row starts only
when the rows of its provider being written by live writers — `streaming` articles and
revisions, not deleted, with a fresh heartbeat (writer/storage/liveness.py) — number
fewer than the limit. The count and the start are one write transaction (SQLite
`BEGIN IMMEDIATE`, PostgreSQL the advisory write lock: one writer at a time), so two
processes can never both take the last slot. A writer that died stops counting once
its heartbeat is stale. The queue itself is in-process: writer/runs/streams.py.
"""
from __future__ import annotations

import os

from writer.storage import liveness
from writer.storage.connection import immediate

LIVE_ARTICLES = ("SELECT count(*) AS n FROM articles WHERE status = 'streaming' AND provider = ? "
                 "AND deleted_at IS NULL AND heartbeat_at >= ? AND id <> ?")
# a revision's heartbeat is its `updated_at` (liveness.beat_rows stamps it)
LIVE_REVISIONS = ("SELECT count(*) AS n FROM versions v JOIN articles a ON a.id = v.article_id "
                  "WHERE v.status = 'streaming' AND v.provider = ? AND v.updated_at >= ? "
                  "AND a.deleted_at IS NULL AND NOT (v.article_id = ? AND v.number = ?)")


def live_streams(conn, provider: str, *, article_id: int = 0, version: int | None = None) -> int:
    """Rows of `provider` being written now by a live writer, except the given one."""
    cutoff = liveness.stale_cutoff()
    articles = conn.execute(LIVE_ARTICLES, [provider, cutoff,
                                            article_id if version is None else 0]).fetchone()
    revisions = conn.execute(LIVE_REVISIONS, [provider, cutoff, article_id,
                                              version if version is not None else -1]).fetchone()
    return int(articles["n"]) + int(revisions["n"])


def try_start(target: str | os.PathLike, article_id: int, provider: str, limit: int, *,
              version: int | None = None) -> bool:
    """Start a queued row if `provider` has a free slot across every process: in one
    write transaction, count the live streams and, below `limit`, mark the row
    `streaming` (the article's; the revision's `version` when given). False: no slot now
    (try again later). True also when the row is gone: its job finds out and ends."""
    conn = liveness.connect_short(target)  # on the way to a job's first request: light
    try:
        with immediate(conn):
            if live_streams(conn, provider, article_id=article_id, version=version) >= limit:
                return False
            now = liveness.utc_iso()
            if version is None:
                conn.execute("UPDATE articles SET status = 'streaming', heartbeat_at = ?, "
                             "updated_at = ? WHERE id = ? AND status = 'queued' AND "
                             "deleted_at IS NULL", [now, now, article_id])
            else:
                conn.execute("UPDATE versions SET status = 'streaming', updated_at = ? WHERE "
                             "article_id = ? AND number = ? AND status = 'queued'",
                             [now, article_id, version])
        return True
    finally:
        conn.close()
