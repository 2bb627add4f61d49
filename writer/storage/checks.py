"""Provider checks in the database (table `provider_checks`, m010): one row per run,
the whole report as JSON plus its headline figures as columns for charts over time.
Each check records its `author` (m016), who ran it; deleting one is for its author or
an admin. Measuring is writer/runs/check.py.
"""
from __future__ import annotations

import json

from writer import logs
from writer.access import Actor
from writer.kinds import CheckStatus
from writer.storage.store import Store, author_name, require_author, utc_now


def save(store: Store, report: dict, *, author: str | None = None) -> int:
    """Save a check's report, redacted (`logs.redact_data`): its base URL without its
    credentials, its errors without a key a provider echoed; run by `author`. Its id."""
    report = logs.redact_data(report)
    ttft = report.get("ttft_ms") or {}
    usage = report.get("usage") or {}
    row = {
        "created_at": report.get("created_at") or utc_now(), "provider": report["provider"],
        "model": report.get("model"), "base_url": report.get("base_url"),
        "status": str(report.get("status", CheckStatus.COMPLETED)),
        "settings": json.dumps({"runs": report.get("runs"), "prompt_set": report.get("prompt_set"),
                                "levels": report.get("levels")}),
        "report": json.dumps(report, ensure_ascii=False),
        "connect_ms": report.get("connect_ms"), "ttft_p50_ms": ttft.get("p50"),
        "ttft_p95_ms": ttft.get("p95"), "itl_mean_ms": report.get("itl_mean_ms"),
        "itl_p95_ms": report.get("itl_p95_ms"), "itl_cv": report.get("itl_cv"),
        "interruption_rate": report.get("interruption_rate"),
        "tokens_per_s": report.get("tokens_per_s"), "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"), "cost": usage.get("cost"),
        "currency": usage.get("currency"),
    }
    with store.transaction("save a provider check in") as conn:
        row["author"] = author_name(conn, author)
        cursor = conn.execute(
            f"INSERT INTO provider_checks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
            "RETURNING id", list(row.values()))
        return cursor.fetchone()[0]


def delete(store: Store, check_id: int, *, actor: Actor) -> bool:
    """Delete a saved check; only the person who ran it or an admin may (AccessDenied).
    Whether there was one."""
    with store.transaction(f"delete provider check #{check_id} from") as conn:
        found = conn.execute("SELECT author FROM provider_checks WHERE id = ?",
                             [check_id]).fetchone()
        if found is None:
            return False
        require_author(actor, found[0], f"delete provider check #{check_id}")
        return conn.execute("DELETE FROM provider_checks WHERE id = ?", [check_id]).rowcount > 0


def history(store: Store, provider: str | None = None, limit: int = 500) -> list[dict]:
    """Saved checks, oldest first (for charts), with their report decoded."""
    where, params = ("WHERE provider = ?", [provider]) if provider else ("", [])
    found = store.rows(
        f"SELECT * FROM (SELECT * FROM provider_checks {where} ORDER BY id DESC LIMIT ?) "
        "AS newest ORDER BY id", [*params, limit])  # PostgreSQL wants the alias
    return [_decoded(row) for row in found]


def latest(store: Store) -> list[dict]:
    """The newest completed check of each provider (and model), newest first."""
    found = store.rows(
        "SELECT * FROM provider_checks WHERE id IN (SELECT max(id) FROM provider_checks "
        "WHERE status = 'completed' GROUP BY provider, model) ORDER BY id DESC")
    return [_decoded(row) for row in found]


def _decoded(row: dict) -> dict:
    """A saved check with its report decoded, redacted again: a row saved by an older
    version of the app may hold a URL's credentials or a key a provider echoed."""
    row = logs.redact_data(row)
    row["report"] = logs.redact_data(json.loads(row["report"] or "{}"))
    return row
