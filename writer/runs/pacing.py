"""How often a UI repaints a growing text.

`st.write_stream` re-sends the whole text on every chunk, so painting every delta
costs O(n²) for an n-character article. The first delta is painted at once (time
to first text is what users feel), the next few on a short ramp (20, 40 ms: the
first line fills in quickly), later ones are coalesced on a budget that grows
slowly with the text's length. `scale` stretches the budget when many pages watch
at once (writer/runs/feed.py sets it from the number of viewers in the process), so
20 tabs on a small machine do not paint 20× as often as one and fall behind.
"""
from __future__ import annotations

import time
from typing import Callable

RAMP_S = (0.02, 0.04)  # budgets of the 2nd and 3rd paints


class Pacer:
    def __init__(self, base_s: float = 0.08, per_char_s: float = 1 / 200_000,
                 clock: Callable[[], float] = time.monotonic, ramp: tuple = RAMP_S):
        self.base_s = base_s
        self.per_char_s = per_char_s
        self.clock = clock
        self.ramp = ramp
        self.scale = 1.0
        self.paints = 0
        self._last: float | None = None

    def budget_s(self, total_chars: int) -> float:
        if 0 < self.paints <= len(self.ramp):
            return self.ramp[self.paints - 1]
        return (self.base_s + total_chars * self.per_char_s) * self.scale

    def wait_s(self, total_chars: int) -> float:
        """Seconds until the next paint is due (0: now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.budget_s(total_chars) - self.clock())

    def due(self, total_chars: int) -> bool:
        """True when the text should be painted now; records the paint."""
        now = self.clock()
        if self._last is None or now - self._last >= self.budget_s(total_chars):
            self._last = now
            self.paints += 1
            return True
        return False


def progress_fraction(words: int, target: int) -> float:
    return 0.0 if target <= 0 else min(1.0, words / target)


def overshoot_percent(words: int, target: int) -> int:
    """How far past the target, in whole percent (0 when not past it)."""
    return max(0, round((words - target) * 100 / target)) if target > 0 else 0
