"""The one streaming engine. Every caller (Write page, CLI, batch, provider check)
gets text from here as a stream of events:

    Delta(text)                 new text, in order
    Notice(kind, wait_s, ...)   something the reader should know (retrying, waiting)
    Finished(...)               always last: status, finish_reason, error, usage, metrics

Closing the generator (Stop, Ctrl-C, a Streamlit rerun) closes the provider
connection at once. Retries before the first token live here, so every caller
behaves the same.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import providers as providers_mod
from .counting import estimate_message_tokens, estimate_tokens
from .errors import EmptyAnswer, Failure, classify
from .providers import Provider


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Notice:
    kind: str  # "retrying" (wait_s counts down) or "waiting" (queued for the local model)
    message: str
    wait_s: float = 0.0
    attempt: int = 0
    max_attempts: int = 0


@dataclass
class Metrics:
    """Timestamps of one generation; all derived figures are in ms or tokens/s."""

    started: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    ended: float | None = None
    chunk_times: list[float] = field(default_factory=list)

    def mark_text(self) -> None:
        now = time.monotonic()
        if self.first_text_at is None:
            self.first_text_at = now
        self.chunk_times.append(now)

    @property
    def ttft_ms(self) -> float | None:
        if self.first_text_at is None:
            return None
        return round((self.first_text_at - self.started) * 1000, 1)

    @property
    def duration_ms(self) -> float:
        return round(((self.ended or time.monotonic()) - self.started) * 1000, 1)

    def tokens_per_s(self, output_tokens: int | None) -> float | None:
        if not output_tokens or self.first_text_at is None:
            return None
        span = (self.ended or time.monotonic()) - self.first_text_at
        if span <= 0.001:
            return None
        return round(output_tokens / span, 2)

    def inter_chunk_ms(self) -> dict:
        gaps = sorted((b - a) * 1000 for a, b in zip(self.chunk_times, self.chunk_times[1:]))
        if not gaps:
            return {}
        p95 = gaps[min(len(gaps) - 1, int(round(0.95 * (len(gaps) - 1))))]
        return {"mean": round(sum(gaps) / len(gaps), 2), "p95": round(p95, 2)}


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    source: str  # "reported" or "estimated"


@dataclass(frozen=True)
class Finished:
    status: str  # completed | stopped | failed | truncated
    finish_reason: str | None
    error: str | None
    usage: Usage
    metrics: Metrics
    provider: Provider
    failure: Failure | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    max_total_wait_s: float = 60.0
    base_s: float = 0.5
    cap_s: float = 20.0

    def backoff(self, attempt: int, hinted: float | None) -> float:
        """Exponential with full jitter; a server's Retry-After wins when given."""
        if hinted is not None:
            return hinted
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1))) + 0.05 * attempt


@dataclass
class Request:
    messages: list[dict]
    max_tokens: int
    provider: Provider
    retry: RetryPolicy = field(default_factory=RetryPolicy)


FINISH_STATUS = {"stop": "completed", "length": "truncated", "content_filter": "failed"}


class Generation:
    """One request's stream and everything measured about it. Iterate `events()`;
    the attributes stay readable after a stop, so a partial article keeps its
    text, usage estimate and timings."""

    def __init__(self, request: Request, *, sleep: Callable[[float], None] = time.sleep):
        self.request = request
        self.provider = request.provider
        self.metrics = Metrics()
        self.parts: list[str] = []
        self.reported: tuple[int, int] | None = None
        self.finish_reason: str | None = None
        self.failure: Failure | None = None
        self.retries = 0
        self._sleep = sleep

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def usage(self) -> Usage:
        if self.reported:
            return Usage(self.reported[0], self.reported[1], "reported")
        return Usage(estimate_message_tokens(self.request.messages), estimate_tokens(self.text),
                     "estimated")

    def events(self) -> Iterator:
        """Yield Delta/Notice events and finally one Finished. See the module doc."""
        try:
            yield from self._attempts()
        finally:
            self.metrics.ended = time.monotonic()
        yield self._finished()

    def _attempts(self) -> Iterator:
        request, provider = self.request, self.provider
        waited = 0.0
        while True:
            chunks = providers_mod.open_chunks(provider, request.messages, request.max_tokens)
            try:
                for chunk in chunks:
                    if chunk.waiting:
                        yield Notice("waiting", "waiting for the local model")
                        continue
                    if chunk.text:
                        self.metrics.mark_text()
                        self.parts.append(chunk.text)
                        yield Delta(chunk.text)
                    if chunk.finish_reason:
                        self.finish_reason = chunk.finish_reason
                    if chunk.usage:
                        self.reported = chunk.usage
                if not self.parts and self.finish_reason is None:
                    raise EmptyAnswer("the stream ended without any text")
                self.failure = None
                return
            except Exception as exc:  # provider errors become a Failure, never a traceback
                self.failure = classify(exc, provider.base_url, provider.model)
            finally:
                chunks.close()  # also on GeneratorExit: the provider stops generating
            failure = self.failure
            if not (failure.retryable and not self.parts and self.retries < request.retry.max_retries):
                return
            wait = request.retry.backoff(self.retries + 1, failure.retry_after_s)
            if waited + wait > request.retry.max_total_wait_s:
                return
            self.retries += 1
            waited += wait
            # Sleep in slices and report the countdown, so a Stop is honoured while waiting.
            left = wait
            while left > 0:
                yield Notice("retrying", failure.message, left, self.retries,
                             request.retry.max_retries)
                step = min(0.25, left)
                self._sleep(step)
                left -= step

    def _finished(self) -> Finished:
        reason = self.finish_reason
        if self.failure is not None:
            status, error = "failed", self.failure.message
        else:
            status, error = FINISH_STATUS.get(reason or "stop", "completed"), None
            if reason == "content_filter":
                error = "the provider's content filter stopped the answer; the partial text is kept"
            elif reason == "length":
                error = "the answer hit the max_tokens limit; use Continue to finish it"
        return Finished(status, reason, error, self.usage(), self.metrics, self.provider,
                        self.failure)


def stream(request: Request, **kwargs) -> Iterator:
    return Generation(request, **kwargs).events()
