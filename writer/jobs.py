"""One article end to end: row → engine → periodic draft saves → final row.

Every caller (Write page, CLI, batch) runs a `Job` and consumes its events; the
row is saved the same way whoever the caller is. The `finally` in `run()` is
where a stopped or interrupted article is saved: closing the generator (Stop,
Ctrl-C, a Streamlit rerun) closes the provider stream first, then saves.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Iterator

from .brief import Brief
from .config import Settings
from .costs import price_table
from .counting import WordCounter
from .engine import Delta, Finished, Generation, Request, Usage
from .prompts import PromptSet, default_prompts
from .providers import Provider, choose_provider
from .store import Store

# Tokens per counted word, generous for the tokenizers in use (Chinese ≈ 0.6-2 per
# character, English ≈ 1.3 per word), times headroom for Markdown and overshoot.
TOKENS_PER_WORD = {"zh": 2.0, "en": 1.6}
HEADROOM = 1.5
DRAFT_INTERVAL_S = 2.0


def max_tokens_for(brief: Brief, cap: int) -> int:
    """A bound on the answer so a runaway model cannot cost unbounded money."""
    wanted = math.ceil(brief.target_words * TOKENS_PER_WORD[brief.language] * HEADROOM) + 200
    return min(wanted, cap)


class Job:
    def __init__(self, brief: Brief, settings: Settings, *, provider: Provider | None = None,
                 prompts: PromptSet | None = None, draft_interval_s: float = DRAFT_INTERVAL_S):
        self.provider = provider or choose_provider(settings)
        self.requested_language = brief.language
        languages = self.provider.languages
        if languages and brief.language not in languages:
            # e.g. the local demo model writes English only: ask for what it can do,
            # and record the truth in the row.
            brief = replace(brief, language=languages[0])
        self.brief = brief
        self.settings = settings
        self.messages = (prompts or default_prompts()).render(brief)
        self.max_tokens = max_tokens_for(brief, settings.max_output_tokens)
        self.draft_interval_s = draft_interval_s
        self.counter = WordCounter()
        self.article_id: int | None = None
        self.finished: Finished | None = None
        self.generation: Generation | None = None
        self.cost: float | None = None
        self.currency: str | None = None
        self.saved = False  # the final row has been written

    @property
    def words(self) -> int:
        return self.counter.words

    @property
    def text(self) -> str:
        return self.generation.text if self.generation else ""

    def run(self) -> Iterator:
        """Yield the engine's events while keeping the `articles` row up to date."""
        store = Store(self.settings.db_path)
        self.article_id = store.create_article(self.brief, provider=self.provider.name,
                                               model=self.provider.model,
                                               max_tokens=self.max_tokens)
        self.generation = Generation(Request(self.messages, self.max_tokens, self.provider))
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
                    self.finished = event
                    self._save_final(store, event.status, event.finish_reason, event.error,
                                     event.usage)
                yield event
        except Exception as exc:
            self._save_final(store, "failed", None, f"{type(exc).__name__}: {exc}",
                             self.generation.usage())
            raise
        finally:
            if not self.saved:
                events.close()  # closes the provider connection before saving
                self._save_final(store, "stopped", None, "stopped before the end",
                                 self.generation.usage())
            store.close()

    def _save_final(self, store: Store, status: str, finish_reason: str | None,
                    error: str | None, usage: Usage) -> None:
        metrics = self.generation.metrics
        if metrics.ended is None:
            metrics.ended = time.monotonic()
        price = price_table(self.settings.prices_file).lookup(self.provider.model)
        self.cost = price.cost(usage.input_tokens, usage.output_tokens) if price else None
        self.currency = price.currency if price else None
        store.update(
            self.article_id,
            status=status,
            content=self.text,
            words=self.words,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_source=usage.source,
            cost=self.cost,
            currency=self.currency,
            price_input_per_1m=price.input_per_1m if price else None,
            price_output_per_1m=price.output_per_1m if price else None,
            ttft_ms=metrics.ttft_ms,
            duration_ms=metrics.duration_ms,
            tokens_per_s=metrics.tokens_per_s(usage.output_tokens),
            finish_reason=finish_reason,
            error=error,
        )
        self.saved = True
