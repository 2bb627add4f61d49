"""The length gate: where a length-controlled piece of an article may end.

Pure logic (no provider, no clock, no I/O): the engine feeds it the text as it
arrives and shows what it returns. Far from the end, text passes straight through;
near it, the gate holds back the unfinished sentence, so the article can end on a
sentence end (CJK or Latin punctuation, or a complete Markdown line; never right
after a heading, writer/generation/length.py `sentence_ends`). Past the target it
ends the piece at the next sentence end; what came after is `trimmed` (received
and paid for, not kept). Word figures count the whole article, through the
engine's `WordCounter`, which the engine feeds with every text it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from writer.generation.counting import WordCounter
from writer.generation.length import LengthPlan, sentence_ends

RUNAWAY = 1.25  # past high × this with no sentence end that fits: end with nothing more


@dataclass(frozen=True)
class Bounds:
    """A piece's length in words of the whole article (the text before it included)."""

    target: int  # end at the first sentence end at or past this many words
    low: int  # below this, text is shown as it comes (and an answer that stops is short)
    high: int  # never beyond this many words

    @classmethod
    def for_section(cls, plan: LengthPlan, before: int, words: int, *, last: bool) -> "Bounds":
        """One section of a long article planned at `words`, after `before` words: the
        last one ends the article, so it ends within the whole article's range."""
        target = plan.target_words if last else before + words
        low = max(before + int(words * plan.min_ratio), plan.low if last else 0)
        high = plan.high if last else min(before + int(words * plan.max_ratio), plan.high)
        return cls(max(target, before + 1), low, max(high, before + 2))


class LengthGate:
    """Holds back what cannot end the article yet. `counter` counts the article as
    shown so far; `recent()` returns its last lines (sentence ends are found there)."""

    def __init__(self, counter: WordCounter, recent: Callable[[], str]):
        self.counter = counter
        self.recent = recent
        self.held = ""  # received, not shown: after the last sentence end
        self.trimmed = ""  # received past the end the gate chose (paid, not kept)

    def feed(self, text: str, bounds: Bounds) -> tuple[str, bool]:
        """New text: (what to show now, whether the piece ends here)."""
        held = self.held + text
        words = self.counter.words_with(held)
        if words < bounds.low:  # far from the end: show it as it comes
            self.held = ""
            return held, False
        base = self.recent()
        full = base + held
        ends = sentence_ends(full, len(base))
        if words >= bounds.target:
            for end in ends:
                upto = self.counter.words_with(full[len(base):end])
                if upto >= bounds.target:
                    if upto > bounds.high:  # that sentence runs past the range: end before it
                        fits = self._fits(full, len(base), ends, bounds.high)
                        if fits:
                            end = fits[-1]
                        elif self.counter.words >= bounds.low:  # what is shown ends well
                            end = len(base)
                    self.held = ""
                    self.trimmed += full[end:]
                    return full[len(base):end], True
        if words > bounds.high:
            fits = self._fits(full, len(base), ends, bounds.high)
            if fits or words > bounds.high * RUNAWAY:
                cut = fits[-1] if fits else len(base)
                self.held = ""
                self.trimmed += full[cut:]
                return full[len(base):cut], True
        # Near the end: show up to the last sentence end, hold the unfinished one.
        cut = ends[-1] if ends else len(base)
        self.held = full[cut:]
        return full[len(base):cut], False

    def hold(self, text: str) -> None:
        """Text that must wait with the rest (a seam's tail after a broken stream)."""
        self.held += text

    def release(self) -> str:
        """Everything held, to show as it is (stopped, failed, broken: the text is kept
        and may be resumed), or uncontrolled text."""
        held, self.held = self.held, ""
        return held

    def end(self, bounds: Bounds, *, complete: bool) -> str:
        """The answer ended (finish stop or length): what to show so the piece ends on a
        sentence within range. `complete` (the model finished) keeps its own ending,
        even without a sentence mark, when it fits."""
        if not self.held:
            return ""
        base = self.recent()
        full = base + self.held
        ends = sentence_ends(full, len(base), final=complete)
        fits = self._fits(full, len(base), ends, bounds.high)
        if complete and self.counter.words_with(self.held) <= bounds.high:
            cut = len(full)  # the model's own ending: keep it as written
        elif fits:
            cut = fits[-1]
        else:
            cut = len(base)  # an unfinished sentence: never shown half
        self.trimmed += full[cut:]
        self.held = ""
        return full[len(base):cut]

    def _fits(self, full: str, start: int, ends: list[int], high: int) -> list[int]:
        return [e for e in ends if self.counter.words_with(full[start:e]) <= high]
