"""Length control: the target length is a promise the engine keeps.

Pure functions the engine (engine.py) uses, so every caller gets the same promise:

- `LengthPlan`: the target, the accepted range (0.8–1.2×), how many rounds may top a
  short article up, and whether the article is written section by section.
- `sentence_end(text, start)`: where the text may end — after a sentence (CJK or
  Latin punctuation, closing quotes and brackets included) or after a Markdown line
  (list item, paragraph), never inside a sentence and never right after a heading.
- `Budget`: tokens per counted word, measured with the tokenizer of the model family
  (the local model's own; cl100k_base, an upper bound, for remote models), so
  `max_tokens` never cuts an article below its target.
- `join_seam(before, after)`: a space where two Latin words would otherwise be glued
  ("needThe"), nothing between CJK text.
- `parse_outline(text)`: the title and the section headings (with word budgets) of
  the outline a long article is written from.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache

from writer.config import PROJECT_ROOT
from writer.generation.counting import count_words
from writer.kinds import LengthOutcome

MIN_RATIO, MAX_RATIO = 0.8, 1.2
LONG_FORM_WORDS = 1500  # targets from here on are written from an outline, section by section
MAX_ROUNDS = 4  # requests that may top up a short article (first answer included)
MAX_SECTIONS = 8
SAMPLES_FILE = PROJECT_ROOT / "prompts" / "_length_samples.toml"
HEADROOM = 1.35  # over the measured tokens per word: Markdown, a sentence's overshoot


@dataclass(frozen=True)
class LengthPlan:
    target_words: int
    language: str
    min_ratio: float = MIN_RATIO
    max_ratio: float = MAX_RATIO
    max_rounds: int = MAX_ROUNDS
    long_form: bool = False

    @classmethod
    def for_target(cls, target_words: int, language: str,
                   long_form_words: int | None = None) -> "LengthPlan":
        return cls(target_words, language,
                   long_form=target_words >= (long_form_words or LONG_FORM_WORDS))

    @property
    def low(self) -> int:
        return math.ceil(self.target_words * self.min_ratio)

    @property
    def high(self) -> int:
        return math.floor(self.target_words * self.max_ratio)


def outcome(words: int, target: int, plan: LengthPlan | None = None) -> LengthOutcome:
    plan = plan or LengthPlan(target, "en")
    if words < target * plan.min_ratio:
        return LengthOutcome.SHORT
    if words > target * plan.max_ratio:
        return LengthOutcome.LONG
    return LengthOutcome.ON_TARGET


# -- where an article may end -------------------------------------------------------

_CLOSERS = "”’\"'）)]」』》】*_`"
# CJK sentence ends need no space after them; Latin ones need whitespace (or the end
# of the text) after them, and a full stop between digits ("3.5") is not one.
_CJK_END = re.compile(rf"[。！？；…]+[{re.escape(_CLOSERS)}]*")
_LATIN_END = re.compile(rf"(?<![0-9A-Z])(?:[.!?]|\.\.\.)+[{re.escape(_CLOSERS)}]*(?=\s)")
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+\S")
_TERMINAL = tuple("。！？；….!?:：") + tuple(_CLOSERS)


HEADING_WORDS = 15  # an unpunctuated line this short before a blank line is a heading


def _heading_like(line: str) -> bool:
    """A short line without an end mark ("2.用小号相机拍", "Why it matters"): what
    follows it belongs to it, so a blank line after it does not end anything."""
    return count_words(line) <= HEADING_WORDS


def _line_at(text: str, end: int) -> str:
    start = text.rfind("\n", 0, end) + 1
    return text[start:end]


def _ends_well(text: str, end: int) -> bool:
    """Text cut at `end` does not end on a heading (or an empty article). Scans back
    from `end` without copying the text: it runs on every chunk near the end."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if i == 0:
        return False
    return not _HEADING.match(text, text.rfind("\n", 0, i) + 1)


def sentence_ends(text: str, start: int = 0, final: bool = False) -> list[int]:
    """Positions (exclusive ends) at or after `start` where `text` may end. A Latin
    sentence end is only known once the next character has arrived (whitespace),
    unless `final` says the text is complete."""
    found: set[int] = set()
    for match in _CJK_END.finditer(text, start):
        if match.end() < len(text) or final:
            found.add(match.end())
    for match in _LATIN_END.finditer(text, start):
        found.add(match.end())
    if final and text[start:].rstrip() and text.rstrip()[-1:] in _TERMINAL:
        found.add(len(text.rstrip()))
    # A Markdown line that is complete on its own: a list item, or a paragraph line
    # ending in punctuation; a blank line closes whatever came before it, but a heading.
    position = text.find("\n", max(0, start - 1))
    while position != -1:
        if position >= start:
            line = _line_at(text, position).rstrip()
            if line and (_LIST_ITEM.match(line) or line.endswith(_TERMINAL)
                         or (text.startswith("\n\n", position) and not _heading_like(line))):
                found.add(position)
        position = text.find("\n", position + 1)
    return sorted(p for p in found if p >= start and _ends_well(text, p))


def sentence_end(text: str, start: int = 0, final: bool = False) -> int | None:
    """The first place at or after `start` where the text may end, or None."""
    ends = sentence_ends(text, start, final)
    return ends[0] if ends else None


def last_sentence_end(text: str, start: int = 0, final: bool = False) -> int | None:
    ends = sentence_ends(text, start, final)
    return ends[-1] if ends else None


# -- seams ----------------------------------------------------------------------------

_WORDISH = re.compile(r"[A-Za-z0-9À-ɏ]")


def join_seam(before: str, after: str) -> str:
    """`after`, with a space in front when appending it to `before` would glue two
    Latin words or a sentence end to the next word ("needThe", "end.Next")."""
    if not before or not after or before[-1].isspace() or after[0].isspace():
        return after
    if _WORDISH.match(after[0]) and (_WORDISH.match(before[-1]) or before[-1] in ".!?,;:)]\"'”’"):
        return " " + after
    return after


# -- token budget ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _samples() -> dict[str, str]:
    with open(SAMPLES_FILE, "rb") as fh:
        return {language: text["text"] for language, text in tomllib.load(fh).items()}


@dataclass
class Budget:
    """Tokens per counted word (CJK character or Latin word), measured once per
    tokenizer and language on the sample texts in prompts/_length_samples.toml."""

    counter: object = None  # callable text -> tokens; default cl100k_base (offline)
    name: str = "cl100k_base"
    _ratios: dict[str, float] = field(default_factory=dict)

    def tokens_per_word(self, language: str) -> float:
        if language not in self._ratios:
            text = _samples()[language]
            tokens = self.counter(text) if self.counter else _cl100k(text)
            self._ratios[language] = tokens / max(1, count_words(text))
        return self._ratios[language]

    def max_tokens(self, words: int, language: str, cap: int) -> int:
        """Enough tokens for `words` more words with headroom, never over `cap`."""
        wanted = math.ceil(max(words, 1) * self.tokens_per_word(language) * HEADROOM) + 64
        return max(64, min(wanted, cap))


def _cl100k(text: str) -> int:
    from writer.generation.counting import estimate_tokens

    return estimate_tokens(text)


_warming = None


def warm_up() -> None:
    """Measure the remote budget (loads the cl100k encoding, ≈0.3 s) on a background
    thread, once per process, so the first Generate click does not wait for it."""
    global _warming
    if _warming is None:
        import threading

        def measure():
            for language in ("zh", "en"):
                budget_for("openai").tokens_per_word(language)

        _warming = threading.Thread(target=measure, name="writer-budget", daemon=True)
        _warming.start()


@lru_cache(maxsize=8)
def budget_for(kind: str) -> Budget:
    """The budget for a provider kind: the local model counts with its own tokenizer."""
    if kind == "local":
        from writer.providers import local as local_model

        return Budget(counter=local_model.count_tokens, name="local")
    return Budget()


# -- outlines -----------------------------------------------------------------------------

_OUTLINE_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,2}[.)、])\s*(?:#+\s*)?(?P<heading>.+?)\s*"
                           r"(?:[:：|（(]\s*(?:about|约|~|≈)?\s*(?P<words>\d{2,5})\s*"
                           r"(?:words?|字|characters?)?\s*[)）]?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Outline:
    title: str
    sections: tuple[tuple[str, int], ...]  # (heading, words)

    def as_markdown(self) -> str:
        lines = [f"# {self.title}", ""] if self.title else []
        lines += [f"{i}. {heading} ({words})" for i, (heading, words) in
                  enumerate(self.sections, 1)]
        return "\n".join(lines)


def parse_outline(text: str, target_words: int) -> Outline | None:
    """Title and sections from a model's outline; budgets are rescaled so they add up
    to the target. None when fewer than two sections can be read."""
    title = ""
    sections: list[tuple[str, int | None]] = []
    for line in text.splitlines():
        stripped = line.strip().strip("*").strip()
        if not stripped:
            continue
        if stripped.startswith("# ") and not title:
            title = stripped[2:].strip()
            continue
        match = _OUTLINE_ITEM.match(line)
        if match:
            heading = match["heading"].strip().strip("*#").strip()
            if heading:
                sections.append((heading, int(match["words"]) if match["words"] else None))
        elif stripped.startswith("## "):
            sections.append((stripped[3:].strip(), None))
    sections = sections[:MAX_SECTIONS]
    if len(sections) < 2:
        return None
    given = [w for _, w in sections if w]
    default = max(1, sum(given) // len(given)) if given else target_words // len(sections)
    raw = [w or default for _, w in sections]
    scale = target_words / sum(raw)
    budgets = [max(40, round(w * scale)) for w in raw]
    return Outline(title, tuple((h, b) for (h, _), b in zip(sections, budgets)))
