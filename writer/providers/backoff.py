"""A backoff shared by many articles at once (a batch): a 429 anywhere slows all of them.

One article alone retries a 429 by itself (generation.retry.RetryPolicy). Two hundred rows sent
by eight workers would each hit the limit, each back off on its own clock and, after
four tries, fail. With a `SharedBackoff` on their requests (`generation.engine.Request.backoff`):

- a 429 closes the gate for everyone for the exponential backoff (1, 2, 4 … 60 s, up
  to a quarter more of jitter; the exponent counts closings of the gate since a request
  last got through, not the 429s of one burst), or the server's `Retry-After` when that
  is longer: a hint can lengthen a wait, never shorten it (a relay answering
  `Retry-After: 0` to everything would otherwise be asked again at once, forever); a
  request about to leave waits at the gate instead of adding to the pile;
- the number of rows in flight is halved (`limit`, read by the batch runner; never
  below 1), once per closing of the gate rather than once per 429 of the same burst,
  and grows back by one after `limit` requests in a row get through (AIMD, as TCP
  does);
- a 429 behind the gate does not count against the article's own retries: the row
  waits (its Stop still works) until the provider lets it through, within its own
  caps in count and in time (`RetryPolicy.throttle_max_retries` / `throttle_max_wait_s`,
  WRITER_THROTTLE_MAX_RETRIES / WRITER_THROTTLE_MAX_WAIT), and only then fails.

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
HINT_CAP = 5  # a server's Retry-After is honoured up to this many times cap_s


def backoff_s(strike: int, base_s: float, cap_s: float, hinted: float | None = None) -> float:
    """The wait before retry number `strike` (from 1): base·2^(strike-1), capped at
    `cap_s`, plus up to a quarter more of jitter (never less: jitter spreads the
    retries of many clients without shortening anyone's wait). A server's hint
    (Retry-After) wins only when it is longer."""
    nominal = min(cap_s, base_s * 2 ** max(0, strike - 1))
    wait = nominal * random.uniform(1.0, 1.25)
    if hinted is not None and hinted > wait:
        return float(hinted)
    return wait


class SharedBackoff:
    def __init__(self, limit: int = 1, *, base_s: float = BASE_S, cap_s: float = CAP_S,
                 clock: Callable[[], float] = time.monotonic):
        self.max_limit = max(1, int(limit))
        self.limit = self.max_limit  # requests the batch should have in flight now
        self.base_s, self.cap_s = base_s, cap_s
        self.hits = 0  # 429s seen
        self.cuts = 0  # times the limit was halved
        self.waited_s = 0.0  # time articles spent waiting at the gate, summed
        self._strikes = 0  # closings of the gate since the last request that got through
        self._open_at = -math.inf
        self._passes = 0  # requests through since the limit last changed
        self._clock = clock
        self._lock = threading.Lock()

    def wait_s(self) -> float:
        """How long a request about to leave should still wait (0: go)."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())

    def hit(self, retry_after_s: float | None = None) -> float:
        """A request got a 429: close the gate for at least the backoff (a longer
        Retry-After wins, a shorter one or 0 does not); returns the wait it set."""
        with self._lock:
            now = self._clock()
            self.hits += 1
            burst = now >= self._open_at  # a new burst, not another 429 of the same one
            if burst:
                self._strikes += 1
            hinted = None
            if retry_after_s is not None and retry_after_s >= 0:
                hinted = min(float(retry_after_s), self.cap_s * HINT_CAP)
            wait = backoff_s(self._strikes, self.base_s, self.cap_s, hinted)
            if burst:
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
