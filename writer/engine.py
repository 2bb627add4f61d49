"""The one streaming engine. Every caller (Write page, CLI, batch, provider check)
gets text from here as a stream of events:

    Delta(text)                 new text, in order, never repeated
    Notice(kind, message, ...)  something the reader should know (kinds.NoticeKind):
                                retrying (wait_s counts down), resuming, fallback,
                                failover, waiting
    Finished(...)               always last: status, finish_reason, error, usage, metrics

What happens when a provider misbehaves, in order:
- before the first token, retryable failures (429, 408, 409, 5xx, connection
  errors, timeouts) are retried with exponential backoff and jitter, honouring
  Retry-After / retry-after-ms, within a total wait cap;
- after text has arrived, a broken stream (reset, malformed chunk, idle timeout,
  end without a finish reason) is resumed with a continuation request; text the
  model repeats at the seam is dropped (seam.py);
- after `fallback_after` consecutive broken streams on a provider (the last within
  `fallback_window_s`), requests to it are made without streaming; the count decays
  with time and resets on a successful stream (StreamHealth);
- a provider that still fails hands over to the next in the failover chain.
Closing the generator (a Streamlit rerun, Ctrl-C) or `cancel()` from another
thread (Stop) closes the provider connection at once, in every state (connecting,
waiting for headers, streaming, a non-streamed request, waiting to retry).
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from . import providers as providers_mod
from .counting import estimate_message_tokens, estimate_tokens
from .errors import BrokenStream, EmptyAnswer, Failure, classify
from .kinds import ErrorKind, NoticeKind, Status
from .prompts import PromptSet, default_prompts
from .providers import Provider
from .seam import SeamFilter

# Failures after which the text so far is continued rather than the request repeated.
RESUMABLE = {ErrorKind.STREAM, ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.SERVER,
             ErrorKind.RATE_LIMIT, ErrorKind.EMPTY}
FINISH_STATUS = {"stop": Status.COMPLETED, "length": Status.TRUNCATED,
                 "content_filter": Status.FAILED}


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

    def clear(self) -> None:
        with self._lock:
            self._broken.clear()


stream_health = StreamHealth()


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    message: str
    wait_s: float = 0.0
    attempt: int = 0
    max_attempts: int = 0


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    source: str  # "reported" or "estimated"


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

    @property
    def continuing(self) -> bool:
        return self.seam is not None

    def receive(self, text: str) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        self.received.append(text)

    def usage(self) -> Usage:
        if self.reported:
            return Usage(*self.reported, "reported")
        return Usage(estimate_message_tokens(self.messages),
                     estimate_tokens("".join(self.received)), "estimated")

    def streamed_span(self) -> tuple[int, float] | None:
        """(output tokens, seconds from its first text to its end) of a streamed
        attempt; None for a non-streamed one, which has no inter-token timing."""
        if not self.streamed or self.first_text_at is None or self.ended is None:
            return None
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

    def add(self, attempt: Attempt) -> None:
        span = attempt.streamed_span()
        if span:
            self.streamed_tokens += span[0]
            self.streamed_seconds += span[1]

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


@dataclass(frozen=True)
class Finished:
    status: Status
    finish_reason: str | None
    error: str | None
    usage: Usage
    metrics: Metrics
    provider: Provider  # the provider that served the last text (else the last one asked)
    failure: Failure | None = None
    retries: int = 0
    resumes: int = 0
    fallback: bool = False
    served_by: str = ""

    @property
    def error_kind(self) -> ErrorKind | None:
        """A stable code for what went wrong (a Failure kind, or content_filter/length)."""
        if self.failure:
            return self.failure.kind
        return ErrorKind(self.finish_reason) if self.error and self.finish_reason else None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    max_total_wait_s: float = 60.0
    base_s: float = 0.5
    cap_s: float = 20.0
    max_resumes: int = 3
    fallback_after: int = 2
    fallback_window_s: float = 300.0

    @classmethod
    def from_settings(cls, settings) -> "RetryPolicy":
        return cls(max_retries=settings.max_retries, max_total_wait_s=settings.retry_max_wait_s,
                   max_resumes=settings.max_resumes, fallback_after=settings.fallback_after,
                   fallback_window_s=settings.fallback_window_s)

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
    failover: list[Provider] = field(default_factory=list)  # tried in order after `provider`
    prefix: str = ""  # text already written (Continue): the engine continues it


class Generation:
    """One request's stream and everything measured about it. Iterate `events()`;
    the attributes stay readable after a stop, so a partial article keeps its
    text, usage estimate and timings."""

    def __init__(self, request: Request, *, sleep: Callable[[float], None] = time.sleep,
                 prompts: PromptSet | None = None, health: StreamHealth | None = None):
        self.request = request
        self.provider = request.provider  # the one being asked now
        self.prompts = prompts or default_prompts()
        self.health = health or stream_health
        self.metrics = Metrics()
        self.parts: list[str] = []  # new text, seams already removed
        self.attempts: list[Attempt] = []
        self.finish_reason: str | None = None
        self.failure: Failure | None = None
        self.retries = 0
        self.resumes = 0
        self.fallback = False
        self.served_by: list[str] = []
        self.cancelled = False
        self.discarded = ""  # text dropped as duplicated seams
        self._served: Provider | None = None  # the provider of the last text
        self._source = None
        self._sleep = sleep

    # -- what callers read ----------------------------------------------------
    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def served_provider(self) -> Provider:
        """The provider of the last text (else the one being asked)."""
        return self._served or self.provider

    def usage(self) -> Usage:
        parts = [attempt.usage() for attempt in self.attempts if attempt.billed]
        if not parts:
            return Usage(0, 0, "estimated")
        source = "reported" if all(u.source == "reported" for u in parts) else "estimated"
        return Usage(sum(u.input_tokens for u in parts), sum(u.output_tokens for u in parts),
                     source)

    def cancel(self) -> None:
        """Stop from any thread: the provider connection is shut at once, whatever the
        request is doing (connecting, waiting, streaming, reading a whole answer)."""
        self.cancelled = True
        source = self._source
        if source is not None:
            source.abort()

    def events(self) -> Iterator:
        """Yield Delta/Notice events and finally one Finished. See the module doc."""
        try:
            yield from self._run()
        finally:
            self.metrics.ended = time.monotonic()
        yield self._finished()

    # -- the loop -------------------------------------------------------------
    def _run(self) -> Iterator:
        chain = [self.request.provider, *self.request.failover]
        for index, provider in enumerate(chain):
            if index:
                yield Notice(NoticeKind.FAILOVER, f"{chain[index - 1].name} failed "
                             f"({self.failure.message}); switching to {provider.name}")
            self.provider = provider
            done = yield from self._serve(provider)
            if done or self.cancelled:
                return

    def _serve(self, provider: Provider) -> Iterator:
        """Use one provider until the article is done (True) or it gives up (False)."""
        policy = self.request.retry
        retries_here, waited = 0, 0.0
        while True:
            attempt = yield from self._attempt(provider)
            failure = self.failure if attempt is not None else None
            if failure is None or self.cancelled:
                return True
            if failure.kind in RESUMABLE and attempt.received:
                # Text had arrived: continue from it rather than start over.
                if self.resumes >= policy.max_resumes:
                    return False
                self.resumes += 1
                yield Notice(NoticeKind.RESUMING, "connection lost, resuming…", 0, self.resumes,
                             policy.max_resumes)
                continue
            if not (failure.retryable and retries_here < policy.max_retries):
                return False
            wait = policy.backoff(retries_here + 1, failure.retry_after_s)
            if waited + wait > policy.max_total_wait_s:
                return False
            retries_here += 1
            self.retries += 1
            waited += wait
            # Sleep in slices and report the countdown, so a Stop is honoured while waiting.
            left = wait
            while left > 0 and not self.cancelled:
                yield Notice(NoticeKind.RETRYING, failure.message, left, retries_here,
                             policy.max_retries)
                step = min(0.1, left)
                self._sleep(step)
                left -= step

    def _streams(self, provider: Provider) -> bool:
        if provider.kind == "local":
            return True
        if self.fallback:  # once this article fell back, it stays that way
            return False
        policy = self.request.retry
        return self.health.recent_failures(provider.name, policy.fallback_window_s) < \
            policy.fallback_after

    def _attempt(self, provider: Provider) -> Iterator:
        """One request. Returns the Attempt (None when stopped before it began);
        `self.failure` says whether it ended properly."""
        if self.cancelled:
            return None
        request = self.request
        so_far = request.prefix + self.text
        messages = self.prompts.continuation(request.messages, so_far) if so_far else request.messages
        stream = self._streams(provider)
        if not stream and not self.fallback:
            self.fallback = True
            yield Notice(NoticeKind.FALLBACK, f"streaming from {provider.name} keeps breaking; "
                         "fetching the rest in one piece")
        attempt = Attempt(provider, messages, stream, SeamFilter(so_far) if so_far else None)
        self.attempts.append(attempt)
        source = None
        try:
            source = providers_mod.open_source(provider, messages, self._max_tokens_left(),
                                               stream)
            self._source = source
            if self.cancelled:  # a Stop that came while the request was being prepared
                source.abort()
            for chunk in source:
                if self.cancelled:
                    break
                if chunk.waiting:
                    yield Notice(NoticeKind.WAITING, "waiting for the local model")
                    continue
                if chunk.text:
                    attempt.receive(chunk.text)
                    shown = attempt.seam.feed(chunk.text) if attempt.seam else chunk.text
                    yield from self._emit(attempt, shown)
                if chunk.finish_reason:
                    attempt.finish_reason = chunk.finish_reason
                if chunk.usage:
                    attempt.reported = chunk.usage
            if self.cancelled:
                yield from self._flush_seam(attempt)
                return attempt
            if attempt.finish_reason is None:
                if attempt.received:
                    raise BrokenStream("the stream ended without a finish reason")
                raise EmptyAnswer("the stream ended without any text", continuing=bool(so_far))
            if attempt.finish_reason == "stop" and not attempt.received and not so_far:
                raise EmptyAnswer("the answer was empty")
            yield from self._flush_seam(attempt)
            self.finish_reason = attempt.finish_reason
            self.failure = None
            if stream:
                self.health.healthy(provider.name)
            return attempt
        except Exception as exc:  # provider errors become a Failure, never a traceback
            if self.cancelled:
                return attempt
            failure = classify(exc, provider.base_url, provider.model)
            if failure.kind == ErrorKind.OTHER:  # the detail goes to the log, not the row
                from .logs import log_exception

                failure = replace(failure, message=log_exception(
                    f"unexpected error from provider {provider.name}", exc))
            if not attempt.received and failure.kind not in {ErrorKind.STREAM, ErrorKind.EMPTY}:
                attempt.billed = False  # refused before generating: nothing was billed
            yield from self._flush_seam(attempt)
            if stream and (attempt.received or failure.kind in {ErrorKind.STREAM, ErrorKind.EMPTY}):
                self.health.broken(provider.name)
            self.failure = failure
            return attempt
        finally:
            self._source = None
            if source is not None:
                source.close()  # also on GeneratorExit: the provider stops generating
            attempt.ended = time.monotonic()
            self.metrics.add(attempt)

    def _flush_seam(self, attempt: Attempt) -> Iterator:
        """At the end of an attempt: what the seam filter held back is part of the
        article unless it repeats the tail."""
        if attempt.seam:
            yield from self._emit(attempt, attempt.seam.flush())
            self.discarded += attempt.seam.dropped

    def _emit(self, attempt: Attempt, text: str) -> Iterator:
        if not text:
            return
        if attempt.streamed:
            self.metrics.first_text_at = self.metrics.first_text_at or time.monotonic()
        self.parts.append(text)
        self._served = attempt.provider
        if not self.served_by or self.served_by[-1] != attempt.provider.name:
            self.served_by.append(attempt.provider.name)
        yield Delta(text)

    def _max_tokens_left(self) -> int:
        if not self.parts:
            return self.request.max_tokens
        return max(256, self.request.max_tokens - estimate_tokens(self.text))

    def _finished(self) -> Finished:
        reason = self.finish_reason
        if self.cancelled:
            status, error = Status.STOPPED, None
        elif self.failure is not None:
            status, error = Status.FAILED, self.failure.message
            if self.request.failover:
                error = f"every provider failed; last: {error}"
        else:
            status, error = FINISH_STATUS.get(reason or "stop", Status.COMPLETED), None
            if reason == "content_filter":
                error = ("the provider's content filter stopped the answer; the partial text is "
                         "kept — rephrase the topic and try again")
            elif reason == "length":
                error = "the answer hit the max_tokens limit; use Continue to finish it"
        return Finished(status, reason, error, self.usage(), self.metrics, self.served_provider,
                        self.failure if status == Status.FAILED else None, self.retries,
                        self.resumes, self.fallback, "→".join(self.served_by))


def stream(request: Request, **kwargs) -> Iterator:
    return Generation(request, **kwargs).events()


def reset_stream_failures() -> None:
    """Forget broken-stream counts (tests, or after changing provider settings)."""
    stream_health.clear()
