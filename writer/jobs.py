"""One article end to end: row → engine → periodic draft saves → final row.

Every caller (Write page, CLI, batch) runs a `Job` and consumes its events; the
row is saved the same way whoever the caller is. The `finally` in `run()` is
where a stopped or interrupted article is saved: closing the generator (Ctrl-C,
a Streamlit rerun) closes the provider stream first, then saves. `cancel()` does
the same from another thread (the Stop button).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import Iterator

from .brief import Brief
from .config import Settings
from .costs import price_table
from .counting import WordCounter
from .engine import Delta, Finished, Generation, Request, RetryPolicy, Usage
from .prompts import PromptSet, default_prompts
from .providers import Provider, choose_provider, failover_chain
from .store import Store

# Tokens per counted word, generous for the tokenizers in use (Chinese ≈ 0.6-2 per
# character, English ≈ 1.3 per word), times headroom for Markdown and overshoot.
TOKENS_PER_WORD = {"zh": 2.0, "en": 1.6}
HEADROOM = 1.5
DRAFT_INTERVAL_S = 2.0
CONTINUABLE = ("stopped", "truncated", "failed")


class JobError(ValueError):
    """The job cannot start; the message is one line that says why."""


def max_tokens_for(brief: Brief, cap: int) -> int:
    """A bound on the answer so a runaway model cannot cost unbounded money."""
    wanted = math.ceil(brief.target_words * TOKENS_PER_WORD[brief.language] * HEADROOM) + 200
    return min(wanted, cap)


class Job:
    def __init__(self, brief: Brief, settings: Settings, *, provider: Provider | None = None,
                 prompts: PromptSet | None = None, draft_interval_s: float = DRAFT_INTERVAL_S,
                 article: dict | None = None):
        self.provider = provider or choose_provider(settings)
        self.requested_language = brief.language
        languages = self.provider.languages
        if languages and brief.language not in languages:
            # e.g. the local demo model writes English only: ask for what it can do,
            # and record the truth in the row.
            brief = replace(brief, language=languages[0])
        self.brief = brief
        self.settings = settings
        self.prompts = prompts or default_prompts()
        self.messages = self.prompts.render(brief)
        self.max_tokens = max_tokens_for(brief, settings.max_output_tokens)
        self.draft_interval_s = draft_interval_s
        self.article = article  # the row being continued, if any
        self.prefix = article["content"] if article else ""
        self.counter = WordCounter(self.prefix)
        self.article_id: int | None = article["id"] if article else None
        self.generation: Generation | None = None
        self.cost: float | None = None
        self.currency: str | None = None
        self.saved = threading.Event()  # set once the final row is written
        self.cancel_requested = False

    @classmethod
    def continuing(cls, article_id: int, settings: Settings, *,
                   provider: Provider | None = None, **kwargs) -> "Job":
        """A job that appends to a stopped, truncated or failed article."""
        store = Store(settings.db_path)
        try:
            row = store.get(article_id)
        finally:
            store.close()
        if row is None:
            raise JobError(f"there is no article #{article_id}")
        if row["status"] not in CONTINUABLE or not row["content"]:
            raise JobError(f"article #{article_id} is {row['status']}; only stopped, truncated or "
                           "failed articles with text can be continued")
        brief = Brief(topic=row["topic"], content_type=row["content_type"], style=row["style"],
                      target_words=row["target_words"], language=row["language"],
                      audience=row["audience"] or "", keywords=row["keywords"])
        return cls(brief, settings, provider=provider, article=row, **kwargs)

    @property
    def words(self) -> int:
        return self.counter.words

    @property
    def text(self) -> str:
        return self.prefix + (self.generation.text if self.generation else "")

    def cancel(self, wait_s: float = 2.0) -> bool:
        """Stop from another thread; True once the partial article is saved."""
        self.cancel_requested = True
        if self.generation is None:  # not started: run() will stop at once
            return False
        self.generation.cancel()
        return self.saved.wait(wait_s)

    def run(self) -> Iterator:
        """Yield the engine's events while keeping the `articles` row up to date."""
        store = Store(self.settings.db_path)
        if self.article is None:
            self.article_id = store.create_article(self.brief, provider=self.provider.name,
                                                   model=self.provider.model,
                                                   max_tokens=self.max_tokens)
        else:
            store.reopen(self.article_id, provider=self.provider.name, model=self.provider.model)
        chain = failover_chain(self.settings, self.provider)
        self.generation = Generation(
            Request(self.messages, self.max_tokens, self.provider,
                    RetryPolicy.from_settings(self.settings), failover=chain[1:],
                    prefix=self.prefix), prompts=self.prompts)
        if self.cancel_requested:
            self.generation.cancel()
        events = self.generation.events()
        last_save = time.monotonic()
        try:
            for event in events:
                if isinstance(event, Delta):
                    self.counter.feed(event.text)
                    now = time.monotonic()
                    if now - last_save >= self.draft_interval_s:
                        store.save_draft(self.article_id, self.text, self.words)
                        last_save = now
                elif isinstance(event, Finished):
                    self._save_final(store, event.status, event.finish_reason, event.error,
                                     event.usage, event.error_kind)
                yield event
        except Exception as exc:
            self._save_final(store, "failed", None, f"{type(exc).__name__}: {exc}",
                             self.generation.usage(), "other")
            raise
        finally:
            if not self.saved.is_set():
                events.close()  # closes the provider connection before saving
                self._save_final(store, "stopped", None, None, self.generation.usage())
            store.close()

    def _save_final(self, store: Store, status: str, finish_reason: str | None,
                    error: str | None, usage: Usage, error_kind: str | None = None) -> None:
        generation = self.generation
        metrics = generation.metrics
        if metrics.ended is None:
            metrics.ended = time.monotonic()
        served = generation.provider
        price = price_table(self.settings.prices_file, store.price_edits()).lookup(
            served.model, served.name)
        self.cost = price.cost(usage.input_tokens, usage.output_tokens) if price else None
        self.currency = price.currency if price else None
        input_tokens, output_tokens, source = usage.input_tokens, usage.output_tokens, usage.source
        retries, resumes, fallback = generation.retries, generation.resumes, generation.fallback
        served_by = "→".join(generation.served_by) or served.name
        previous = self.article
        if previous:  # a continuation adds to what the article already cost
            input_tokens += previous["input_tokens"] or 0
            output_tokens += previous["output_tokens"] or 0
            if previous["usage_source"] == "estimated":
                source = "estimated"
            if self.cost is None or previous["cost"] is None or previous["currency"] != self.currency:
                self.cost = None  # unpriced if any part is (or the currencies differ)
            else:
                self.cost = round(self.cost + previous["cost"], 8)
            retries += previous.get("retries") or 0
            resumes += previous.get("resumes") or 0
            fallback = fallback or bool(previous.get("fallback"))
            if previous.get("served_by") and previous["served_by"] != served_by:
                served_by = f"{previous['served_by']}→{served_by}"
        store.update(
            self.article_id,
            status=status,
            content=self.text,
            words=self.words,
            provider=self.provider.name,
            model=served.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usage_source=source,
            cost=self.cost,
            currency=self.currency,
            price_input_per_1m=price.input_per_1m if price else None,
            price_output_per_1m=price.output_per_1m if price else None,
            ttft_ms=metrics.ttft_ms,
            duration_ms=metrics.duration_ms,
            tokens_per_s=metrics.tokens_per_s(usage.output_tokens),
            finish_reason=finish_reason,
            error=error,
            error_kind=error_kind,
            retries=retries,
            resumes=resumes,
            fallback=int(fallback),
            served_by=served_by,
        )
        self.saved.set()
