"""Title suggestions for an article: one request through the one engine (retries,
failover, cost), five titles, its tokens and cost added to the article's. Using one
makes a new version with that title as its level-1 heading. Both are for the article's
author or an admin (AccessDenied): the request is charged to the article."""
from __future__ import annotations

import re

from writer.access import Actor
from writer.config import Settings
from writer.generation.counting import count_words
from writer.generation.engine import Generation, Request
from writer.generation.events import Finished
from writer.generation.plan import PromptPlan
from writer.generation.retry import RetryPolicy
from writer.kinds import Status
from writer.providers.base import Provider
from writer.providers.choice import choose_provider, failover_chain, resolve_model
from writer.runs.job import JobError
from writer.runs.revisions import _kit, revise_prompts
from writer.storage import versions
from writer.storage.prices import price_table
from writer.storage.store import Store, require_author
from writer.storage.usage import require_within_budget

COUNT = 5
QUOTES = {('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("「", "」"), ("《", "》")}
MAX_TOKENS = 400


def suggest(article_id: int, settings: Settings, provider: Provider | None = None, *,
            actor: Actor) -> list[str]:
    """Five titles for the article, in its language."""
    from writer.generation.prompts import default_prompts

    store = Store(settings.database)
    try:
        row = store.get(article_id)
        if row is None or not (row["content"] or "").strip():
            raise JobError(f"article #{article_id} has no text to suggest titles for")
        require_author(actor, row.get("author"), f"suggest titles for article #{article_id}")
        kit = _kit(store, row["brand"]) if row.get("brand") else None
        prompts = default_prompts()
        part = revise_prompts()["headlines"]
        values = {"count": COUNT, "article": row["content"].strip()[:6000],
                  "language": prompts.shared["languages"][row["language"]],
                  "brand": prompts.brand_text(kit)}
        messages = [{"role": "system", "content": part["system"].format(**values).strip()},
                    {"role": "user", "content": part["user"].format(**values).strip()}]
        provider = resolve_model(provider or choose_provider(settings))
        require_within_budget(store, settings, provider, actor=actor)  # a hard cap: refused
        generation = Generation(Request(PromptPlan(messages, MAX_TOKENS), provider,
                                        RetryPolicy.from_settings(settings),
                                        failover=failover_chain(settings, provider)[1:]))
        finished = None
        for event in generation.events():
            if isinstance(event, Finished):
                finished = event
        usage = generation.usage()
        served = generation.served_provider
        price = price_table(settings.prices_file, store.price_edits()).lookup(served.model,
                                                                               served.name)
        store.charge(article_id, versions.Charge(  # added atomically: a revision may end now
            usage.input_tokens, usage.output_tokens,
            price.cost(usage.input_tokens, usage.output_tokens) if price else None,
            price.currency if price else None, usage.source))
        if finished is None or finished.status not in (Status.COMPLETED, Status.TRUNCATED):
            raise JobError(finished.error if finished and finished.error else
                           "the provider gave no titles")
        return parse(generation.text)[:COUNT]
    finally:
        store.close()


def parse(text: str) -> list[str]:
    """Titles from the answer: one per line, numbering, bullets, quotes and # dropped."""
    titles = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•#]+|\d+[.)、:：]|[（(]?\d+[)）])\s*", "", line).strip()
        line = line.strip("*").strip()
        if len(line) > 1 and (line[0], line[-1]) in QUOTES:  # a title wrapped in quotes
            line = line[1:-1].strip()
        if line and line not in titles:
            titles.append(line)
    return titles


def use_title(store: Store, article_id: int, title: str, *, actor: Actor) -> int:
    """A new version whose level-1 heading is `title` (added when there is none); current."""
    row = store.get(article_id)
    if row is None:
        raise versions.VersionError(f"there is no article #{article_id}")
    content = row["content"] or ""
    if re.search(r"(?m)^#\s+\S", content):
        content = re.sub(r"(?m)^#\s+.*$", lambda _m: f"# {title}", content, count=1)
    else:
        content = f"# {title}\n\n{content}"
    number = versions.open_version(store, article_id, kind="revision", status=Status.COMPLETED,
                                   instruction=f"# {title}", content=content,
                                   words=count_words(content), actor=actor)
    versions.update_version(store, article_id, number, input_tokens=0, output_tokens=0,
                            cost=0.0, currency=row["currency"])  # no request: free
    versions.choose(store, article_id, number, actor=actor)
    return number
