"""Variants: N versions of one brief, written at once (each a normal `Job` on the one
engine, side by side through the registry or one after the other in the CLI), then
gathered into one article whose versions they are; the user picks the one that is
current (`versions.choose`).

While they are written each variant is its own `articles` row tagged `variant_group`
(the first one's id) and `variant_no`. `gather()` then moves every other variant into
`versions` of the first article — its text, words, tokens and cost — charges their
tokens and cost to the first article (writer/storage/ledger.py) and removes their
rows, in one transaction, so Usage and budgets count every variant exactly once.
"""
from __future__ import annotations

import threading

from writer.access import Actor
from writer.brief import Brief
from writer.config import Settings
from writer.providers.base import Provider
from writer.runs.job import Job
from writer.storage import versions
from writer.storage.store import Store

MAX_VARIANTS = 3
DEFAULT_VARIANTS = {"marketing_copy": 3, "social_post": 3}  # else 1


def default_count(content_type: str) -> int:
    return DEFAULT_VARIANTS.get(content_type, 1)


def jobs_for(brief: Brief, settings: Settings, count: int, *, provider: Provider | None = None,
             length_control: bool = True, actor: Actor | None = None) -> list[Job]:
    """`count` jobs for the same brief, by `actor` (runs.registry.acting); their rows are
    tagged when they are queued."""
    if not 1 <= count <= MAX_VARIANTS:
        raise ValueError(f"variants must be 1 to {MAX_VARIANTS}, not {count}")
    jobs = [Job(brief, settings, provider=provider, length_control=length_control, actor=actor)
            for _ in range(count)]
    for job in jobs:
        job.version_kind = "variant" if count > 1 else "draft"
    return jobs


def tag(store: Store, article_ids: list[int]) -> None:
    """Mark rows as one group of variants (the first id names the group)."""
    for number, article_id in enumerate(article_ids, 1):
        store.update(article_id, variant_group=article_ids[0], variant_no=number)


_gather_lock = threading.Lock()


def gather(store: Store, group: int) -> int | None:
    """Make the group's variants versions of its first article, once all have ended
    (writer/storage/versions.py `gather_variants`: one transaction, each variant's
    cost charged to the article by the ledger). Returns the article's id, or None
    while some variant is still being written (or when there is no such group). Safe
    to call many times, from any thread."""
    with _gather_lock:
        return versions.gather_variants(store, group)
