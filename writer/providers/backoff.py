"""A backoff shared by many articles at once (a batch): a 429 anywhere slows all of them.

One article alone retries a 429 by itself (generation.retry.RetryPolicy). Two hundred rows sent
by eight workers would each hit the limit, each back off on its own clock and, after
four tries, fail. With a `SharedBackoff` on their requests (`generation.engine.Request.backoff`):

- a 429 closes the gate for everyone until the server's `Retry-After` (or, without
  one, an exponential wait with jitter: 1, 2, 4 … 60 s) has passed; a request about to
  leave waits at the gate instead of adding to the pile;
- the number of rows in flight is halved (`limit`, read by the batch runner; never
  below 1), once per closing of the gate rather than once per 429 of the same burst,
  and grows back by one after `limit` requests in a row get through (AIMD, as TCP
  does);
- a 429 behind the gate does not count against the article's own retries: the row
  waits (its Stop still works) until the provider lets it through, within
  `max_wait_s` for that article, and only then fails.

Pure Python, thread-safe, no I/O.
"""
from __future__ import annotations

import math
import random
import threading
import time
from typing import Callable

BASE_S = 1.0
CAP_S = 60.0
MAX_WAIT_S = 900.0  # one article waits at most this long in all behind the gate


class SharedBackoff:
    def __init__(self, limit: int = 1, *, base_s: float = BASE_S, cap_s: float = CAP_S,
                 max_wait_s: float = MAX_WAIT_S, clock: Callable[[], float] = time.monotonic):
        self.max_limit = max(1, int(limit))
        self.limit = self.max_limit  # requests the batch should have in flight now
        self.base_s, self.cap_s, self.max_wait_s = base_s, cap_s, max_wait_s
        self.hits = 0  # 429s seen
        self.cuts = 0  # times the limit was halved
        self.waited_s = 0.0  # time articles spent waiting at the gate, summed
        self._strikes = 0  # 429s since the last request that got through
        self._open_at = -math.inf
        self._passes = 0  # requests through since the limit last changed
        self._clock = clock
        self._lock = threading.Lock()

    def wait_s(self) -> float:
        """How long a request about to leave should still wait (0: go)."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())

    def hit(self, retry_after_s: float | None = None) -> float:
        """A request got a 429: close the gate; returns the wait it set."""
        with self._lock:
            now = self._clock()
            self.hits += 1
            self._strikes += 1
            if retry_after_s is not None and retry_after_s >= 0:
                wait = min(float(retry_after_s), self.cap_s * 5)
            else:
                wait = min(self.cap_s, self.base_s * 2 ** (self._strikes - 1))
                wait *= random.uniform(0.75, 1.25)
            if now >= self._open_at:  # a new burst, not another 429 of the same one
                self.limit = max(1, self.limit // 2)
                self.cuts += 1
                self._passes = 0
            self._open_at = max(self._open_at, now + wait)
            return wait

    def passed(self) -> None:
        """A request got through (it streamed an answer): grow back slowly."""
        with self._lock:
            self._strikes = 0
            if self.limit >= self.max_limit:
                return
            self._passes += 1
            if self._passes >= self.limit:
                self.limit += 1
                self._passes = 0

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.waited_s += seconds

    def set_limit(self, limit: int) -> None:
        """The user changed the batch's concurrency."""
        with self._lock:
            self.max_limit = max(1, int(limit))
            self.limit = min(self.limit, self.max_limit) if self.cuts else self.max_limit
