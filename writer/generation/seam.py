"""Joining a continuation to the text so far without a duplicated seam.

Asked to continue, models often start by repeating the last words they wrote.
`SeamFilter` holds back the start of the continuation only while it could still
be such a repeat (while it occurs in the tail of the text so far), then drops the
longest prefix that equals the end of the text so far. Usually it decides after a
few characters, so the reader barely waits.
"""
from __future__ import annotations

WINDOW = 400  # how far back a repeat is looked for, in characters
MIN_OVERLAP = 6  # shorter matches are coincidence ("the ", "。")


class SeamFilter:
    def __init__(self, existing: str, window: int = WINDOW, min_overlap: int = MIN_OVERLAP):
        self.tail = existing[-window:]
        self.window = window
        self.min_overlap = min_overlap
        self.buffer = ""
        self.decided = not self.tail
        self.dropped = ""  # what was discarded as a duplicate (for tests and logs)

    def feed(self, text: str) -> str:
        """Text that can be shown now."""
        if self.decided:
            return text
        self.buffer += text
        if len(self.buffer) < self.window and self.buffer in self.tail:
            return ""  # could still be a repeat of the tail: wait for more
        return self._decide()

    def flush(self) -> str:
        """At the end of the continuation: whatever is still held back."""
        return "" if self.decided else self._decide()

    def _decide(self) -> str:
        self.decided = True
        buffer, self.buffer = self.buffer, ""
        for k in range(min(len(buffer), len(self.tail)), self.min_overlap - 1, -1):
            if self.tail.endswith(buffer[:k]):
                self.dropped = buffer[:k]
                return buffer[k:]
        # The text so far ends with a line break, and the model repeats the words
        # before it: drop them, and the spaces that would then start the line.
        trimmed = self.tail.rstrip()
        if trimmed != self.tail:
            for k in range(min(len(buffer), len(trimmed)), self.min_overlap - 1, -1):
                if trimmed.endswith(buffer[:k]):
                    rest = buffer[k:]
                    self.dropped = buffer[:k] + rest[:len(rest) - len(rest.lstrip(" \t"))]
                    return rest.lstrip(" \t")
        return buffer


def repeated_at(text: str, seams: list[int], min_chars: int = MIN_OVERLAP) -> str | None:
    """Text repeated across a seam (a position where a continuation joined `text`):
    the same `min_chars`+ characters right before and right after it, or None. A
    check for tests and benchmarks that no seam duplicated text."""
    for at in seams:
        before, after = text[:at].rstrip(), text[at:].lstrip()
        for k in range(min_chars, min(len(before), len(after), WINDOW) + 1):
            if before.endswith(after[:k]):
                return after[:k]
    return None
