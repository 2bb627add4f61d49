"""What a batch will cost, before anything is sent (writer/runs/batch.py `estimate`):
the prompts as they will be sent, the answers at their target length, and the monthly
budgets it would pass — the team's, and the person's own when they have one."""
from __future__ import annotations

import math
from dataclasses import dataclass

from writer.access import Actor
from writer.brief import Brief
from writer.config import Settings
from writer.generation.counting import estimate_message_tokens
from writer.generation.length import budget_for
from writer.generation.prompts import default_prompts
from writer.providers.base import Provider
from writer.storage.prices import price_table
from writer.storage.store import Store
from writer.storage.usage import budget_status


@dataclass
class Estimate:
    rows: int
    input_tokens: int
    output_tokens: int
    cost: float | None  # None: the model has no price
    currency: str | None
    budget: dict | None = None  # usage.budget_status in that currency
    over_budget: bool = False  # this month's spend plus the estimate passes a budget
    person_budget: dict | None = None  # the actor's own (usage.budget_status(author=…))

    @property
    def free(self) -> bool:
        return self.currency == "local"


def estimate(briefs: list[Brief], provider: Provider, settings: Settings,
             store: Store, *, actor: Actor | None = None) -> Estimate:
    """Tokens and cost of writing these briefs, before anything is sent: the prompts as
    they will be sent, the answers at their target length (measured tokens per word),
    with the length control's usual extra (a top-up round on some rows). `over_budget`:
    it would pass the team's budget or `actor`'s own."""
    prompts = default_prompts()
    ratio = budget_for("openai")  # the cl100k ratios: a fair yardstick for any model
    input_tokens = output_tokens = 0
    for brief in briefs:
        input_tokens += estimate_message_tokens(prompts.render(brief))
        output_tokens += math.ceil(brief.target_words * ratio.tokens_per_word(brief.language))
    input_tokens = math.ceil(input_tokens * 1.15)  # top-up rounds re-send the prompt
    output_tokens = math.ceil(output_tokens * 1.1)  # and some text is trimmed at the end
    price = price_table(settings.prices_file, store.price_edits()).lookup(provider.model,
                                                                          provider.name)
    if price is None:
        return Estimate(len(briefs), input_tokens, output_tokens, None, None)
    cost = price.cost(input_tokens, output_tokens)
    budget = mine = None
    if price.currency != "local":
        budget = budget_status(store, price.currency)
        if actor is not None:
            mine = budget_status(store, price.currency, author=actor.name)
    over = any(b["spent"] + cost >= b["budget"] for b in (budget, mine) if b)
    return Estimate(len(briefs), input_tokens, output_tokens, cost, price.currency, budget,
                    over, mine)
