"""The prompt plan: everything the engine asks a provider, decided before it starts.

A `PromptPlan` is the first request's messages and `max_tokens`, the `LengthPlan`
(None: free-form), and the prompts for the requests that may follow: continuing
text after a broken stream, asking for more when an answer ends short, and, for a
long article, its outline and each section. `plan_for(brief, prompts, ...)` builds
it from a Brief; the engine (engine.py) never sees the Brief itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from writer.brief import Brief
from writer.generation.length import LengthPlan, budget_for
from writer.generation.prompts import PromptSet, default_prompts

# Tokens per counted word, generous for the tokenizers in use (Chinese ≈ 0.6-2 per
# character, English ≈ 1.3 per word), times headroom for Markdown and overshoot.
TOKENS_PER_WORD = {"zh": 2.0, "en": 1.6}
HEADROOM = 1.5
MAX_OUTPUT_TOKENS = 8192  # the usual cap on any one request's max_tokens


def max_tokens_for(brief: Brief, cap: int) -> int:
    """A bound on a free-form answer so a runaway model cannot cost unbounded money."""
    wanted = math.ceil(brief.target_words * TOKENS_PER_WORD[brief.language] * HEADROOM) + 200
    return min(wanted, cap)


@dataclass(frozen=True)
class PromptPlan:
    messages: list[dict]  # the first request
    max_tokens: int  # its bound (free-form: the bound on the whole answer)
    length: LengthPlan | None = None  # None: free-form, no length control
    max_output_tokens: int = MAX_OUTPUT_TOKENS  # cap on any one request's max_tokens
    prompts: PromptSet = field(default_factory=default_prompts, repr=False)
    # The brief's placeholder values and content type: a long article's outline and
    # section prompts need them (None: never written section by section).
    brief_values: dict | None = field(default=None, repr=False)
    content_type: str = ""

    @property
    def long_form(self) -> bool:
        """Written from an outline, section by section."""
        return self.length is not None and self.length.long_form and self.brief_values is not None

    def with_messages(self, messages: list[dict]) -> "PromptPlan":
        """The same plan asking something else first (a revision's instruction)."""
        return replace(self, messages=messages)

    def continuation(self, messages: list[dict], so_far: str) -> list[dict]:
        """`messages`, then the text so far, then: go on from exactly there."""
        return self.prompts.continuation(messages, so_far)

    def lengthen(self, messages: list[dict], so_far: str, *, words: int,
                 target_words: int) -> list[dict]:
        """`messages`, then the text so far, then: it is short, write the rest."""
        return self.prompts.lengthen(messages, so_far, words=words, target_words=target_words,
                                     language=self.length.language)

    def outline_sections(self) -> int:
        """How many sections a long article's outline asks for."""
        return max(3, min(8, round(self.length.target_words / 450)))

    def outline(self) -> list[dict]:
        """The request for a long article's plan (title and sections)."""
        return self.prompts.outline_from(self.brief_values, self.outline_sections())

    def fixed_outline(self) -> str | None:
        """A long article's plan given by the prompt set (no outline request), or None."""
        return self.prompts.fixed_outline(self.brief_values, self.content_type,
                                          self.length.target_words)

    def section(self, **section) -> list[dict]:
        """The request that writes one section (title, outline, number, count, heading,
        section_words, previous: see PromptSet.section_from)."""
        return self.prompts.section_from(self.brief_values, self.content_type, **section)


def plan_for(brief: Brief, prompts: PromptSet | None = None, *, provider_kind: str = "openai",
             max_output_tokens: int = MAX_OUTPUT_TOKENS,
             length_control: bool = True) -> PromptPlan:
    """The plan for writing `brief`: with length control, the first request's bound
    comes from the provider's tokenizer (`budget_for(provider_kind)`) at the top of
    the accepted range; free-form, from generous tokens per word."""
    prompts = prompts or default_prompts()
    length = (LengthPlan.for_target(brief.target_words, brief.language, prompts.long_form_words)
              if length_control else None)
    if length:
        max_tokens = budget_for(provider_kind).max_tokens(length.high, brief.language,
                                                          max_output_tokens)
    else:
        max_tokens = max_tokens_for(brief, max_output_tokens)
    return PromptPlan(prompts.render(brief), max_tokens, length, max_output_tokens, prompts,
                      prompts.values(brief), brief.content_type)
