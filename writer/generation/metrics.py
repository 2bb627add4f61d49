"""What one generation measured: each request (`Attempt`), the whole (`Metrics`:
time to first token, tokens/s, inter-token intervals), tokens used (`Usage`), and
the broken streams per provider shared by the process (`StreamHealth`)."""
from __future__ import annotations

import math
import statistics as stats
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from writer.generation.counting import estimate_message_tokens, estimate_tokens
from writer.generation.seam import SeamFilter
from writer.providers.base import Provider


def percentile(values, q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class StreamHealth:
    """Broken streams per provider, shared by every generation in the process.

    `fallback_after` broken streams in a row, the last within `window_s`, make the
    engine ask that provider without streaming; the count is forgotten when the
    window passes (so a healthy provider streams again) or a stream succeeds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._broken: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def broken(self, provider: str) -> None:
        with self._lock:
            self._broken.setdefault(provider, []).append(self.clock())

    def healthy(self, provider: str) -> None:
        with self._lock:
            self._broken.pop(provider, None)

    def recent_failures(self, provider: str, window_s: float) -> int:
        with self._lock:
            times = self._broken.get(provider) or []
            if times and self.clock() - times[-1] > window_s:
                self._broken.pop(provider, None)  # quiet for a whole window: start afresh
                return 0
            return len(times)

    def falls_back(self, provider: str, policy) -> bool:
        """Whether to ask `provider` without streaming (a retry.RetryPolicy's threshold)."""
        return self.recent_failures(provider, policy.fallback_window_s) >= policy.fallback_after

    def clear(self) -> None:
        with self._lock:
            self._broken.clear()


stream_health = StreamHealth()


def reset_stream_failures() -> None:
    """Forget broken-stream counts (tests, or after changing provider settings)."""
    stream_health.clear()


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    source: str  # "reported" or "estimated"


def total_usage(attempts: list["Attempt"]) -> Usage:
    """Tokens of the billed attempts: "reported" only when every one was reported."""
    parts = [attempt.usage() for attempt in attempts if attempt.billed]
    if not parts:
        return Usage(0, 0, "estimated")
    source = "reported" if all(u.source == "reported" for u in parts) else "estimated"
    return Usage(sum(u.input_tokens for u in parts), sum(u.output_tokens for u in parts), source)


@dataclass
class Attempt:
    """One request to one provider: what it asked, what came back, what it cost."""

    provider: Provider
    messages: list[dict]
    streamed: bool
    seam: SeamFilter | None  # set when it continues text written before it
    started: float = field(default_factory=time.monotonic)
    received: list[str] = field(default_factory=list)  # text exactly as the provider sent it
    reported: tuple[int, int] | None = None  # usage as the provider reported it
    finish_reason: str | None = None
    first_text_at: float | None = None
    ended: float | None = None
    billed: bool = True  # False when it was refused before generating anything
    joined: bool = False  # its first text was joined to the text before it (join_seam)
    lengthens: bool = False  # asks for more after a finished answer (not a resume)
    seam_at: int | None = None  # where its text joined the article (continuations)
    arrivals: list[float] = field(default_factory=list)  # when each piece of text came

    @property
    def continuing(self) -> bool:
        return self.seam is not None

    def receive(self, text: str) -> None:
        now = time.monotonic()
        if self.first_text_at is None:
            self.first_text_at = now
        self.received.append(text)
        self.arrivals.append(now)

    def usage(self) -> Usage:
        if self.reported:
            return Usage(*self.reported, "reported")
        return Usage(estimate_message_tokens(self.messages),
                     estimate_tokens("".join(self.received)), "estimated")

    def streamed_span(self) -> tuple[int, float] | None:
        """(output tokens, seconds from its first text to its end) of a streamed
        attempt; None for a non-streamed one, which has no inter-token timing."""
        if not self.streamed or len(self.received) < 2 or self.ended is None:
            return None  # one piece of text has no rate between tokens
        return self.usage().output_tokens, self.ended - self.first_text_at


@dataclass
class Metrics:
    """Timestamps of one generation; derived figures are in ms or tokens/s.

    Time to first token and tokens/s describe streamed text only: a non-streamed
    answer arrives all at once, so it has neither (None, never a made-up figure)."""

    started: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None  # first visible text of a streamed attempt
    ended: float | None = None
    streamed_tokens: int = 0
    streamed_seconds: float = 0.0
    gaps_s: list[float] = field(default_factory=list)  # between text chunks of a stream

    def add(self, attempt: Attempt) -> None:
        span = attempt.streamed_span()
        if span:
            self.streamed_tokens += span[0]
            self.streamed_seconds += span[1]
        if attempt.streamed:  # inter-token intervals: within one stream, never across two
            times = attempt.arrivals
            self.gaps_s.extend(b - a for a, b in zip(times, times[1:]))

    # Inter-token figures (chunk to chunk: providers send about one token per chunk).
    # None when nothing was streamed (a non-streamed answer has no such timing).
    @property
    def itl_mean_ms(self) -> float | None:
        return round(stats.fmean(self.gaps_s) * 1000, 2) if self.gaps_s else None

    @property
    def itl_p95_ms(self) -> float | None:
        return round(percentile(self.gaps_s, 95) * 1000, 2) if self.gaps_s else None

    @property
    def itl_cv(self) -> float | None:
        """Standard deviation over mean of the intervals: 0 = a perfectly even stream."""
        if len(self.gaps_s) < 2:
            return None
        mean = stats.fmean(self.gaps_s)
        return round(stats.pstdev(self.gaps_s) / mean, 4) if mean > 0 else None

    @property
    def max_gap_ms(self) -> float | None:
        return round(max(self.gaps_s) * 1000, 2) if self.gaps_s else None

    @property
    def ttft_ms(self) -> float | None:
        if self.first_text_at is None:
            return None
        return round((self.first_text_at - self.started) * 1000, 1)

    @property
    def duration_ms(self) -> float:
        return round(((self.ended or time.monotonic()) - self.started) * 1000, 1)

    @property
    def tokens_per_s(self) -> float | None:
        if not self.streamed_tokens or self.streamed_seconds <= 0.001:
            return None
        return round(self.streamed_tokens / self.streamed_seconds, 2)

