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
With a `LengthPlan` (writer/generation/length.py) the target length is kept here too: text past
the target ends at the next sentence end and the stream is closed; an answer that ends
below 0.8× is topped up (a `lengthen` round); a long target is outlined first
(`Outlined` event) and written section by section (`section` notices).
Closing the generator (a Streamlit rerun, Ctrl-C) or `cancel()` from another
thread (Stop) closes the provider connection at once, in every state (connecting,
waiting for headers, streaming, a non-streamed request, waiting to retry).
"""
from __future__ import annotations

import math
import random
import statistics as stats
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from writer.providers import base as providers_mod
from writer.generation.counting import WordCounter, estimate_message_tokens, estimate_tokens
from writer.providers.failures import BrokenStream, EmptyAnswer, Failure, classify
from writer.kinds import ErrorKind, LengthOutcome, NoticeKind, Status
from writer.generation.length import (Budget, LengthPlan, Outline, budget_for, join_seam,
                     outcome, parse_outline, sentence_ends)
from writer.generation.prompts import PromptSet, default_prompts
from writer.providers.base import Provider
from writer.generation.seam import SeamFilter

def percentile(values, q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


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
    message: str  # English, for the CLI and logs; pages build theirs from the fields
    wait_s: float = 0.0
    attempt: int = 0
    max_attempts: int = 0
    error_kind: str | None = None  # RETRYING / FAILOVER: what failed (kinds.ErrorKind)
    status: int | None = None  # … and its HTTP status, if any
    provider: str = ""  # the provider it concerns, as people call it (FAILOVER: the new one)
    failed_provider: str = ""  # FAILOVER: the one that failed


@dataclass(frozen=True)
class Outlined:
    """Long-form: the plan the article is written from (shown and stored with it)."""
    outline: Outline


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
    length_outcome: LengthOutcome | None = None  # None: length control was off
    length_rounds: int = 0  # requests that wrote the article's text (sections, top-ups)
    outline: str | None = None

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
    length: LengthPlan | None = None  # None = free-form (no length control)
    brief: object = None  # the Brief (long-form plans and section prompts need it)
    max_output_tokens: int = 8192  # cap on any one request's max_tokens
    backoff: object = None  # a backoff.SharedBackoff: 429s slow every article sharing it


@dataclass
class Piece:
    """What a series of requests is writing: the whole article, or one section of a
    long one. Word figures count the whole article (prefix included)."""

    messages: list[dict]  # the request that writes it from its start
    start: int  # where its text starts in the article
    target: int | None = None  # words at which it ends, at the next sentence end
    low: int | None = None  # below this when the model stops: ask for more (a round)
    high: int | None = None  # never beyond this many words
    rounds: int = 1  # requests that wrote it, top-ups included (not resumes)
    lengthen: bool = False  # the next request asks for more rather than resuming

    @property
    def controlled(self) -> bool:
        return self.target is not None


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
        self.trimmed = ""  # text received past the end length control chose (paid, not kept)
        self.seams: list[int] = []  # where in the article each continuation's text begins
        self.counter = WordCounter(request.prefix)  # words of the article so far
        self.length_rounds = 0
        self.outline: Outline | None = None
        self._held = ""  # received text not shown yet: after the last sentence end
        self._budget: Budget | None = None
        self._chain_at = 0  # index in the failover chain of the provider in use
        self._served: Provider | None = None  # the provider of the last text
        self._source = None
        self._sleep = sleep
        self.throttled_s = 0.0  # time spent waiting behind a shared backoff (429s)

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
    @property
    def article(self) -> str:
        return self.request.prefix + self.text

    def _recent(self, chars: int = 2000) -> str:
        """The end of the article, without joining all of it: the sentence-end and seam
        checks run on every chunk near the end and need only the last lines."""
        tail, size = [], 0
        for part in reversed(self.parts):
            tail.append(part)
            size += len(part)
            if size >= chars:
                break
        else:
            tail.append(self.request.prefix[-chars:])
        return "".join(reversed(tail))[-chars:]

    def _run(self) -> Iterator:
        request, plan = self.request, self.request.length
        if plan is None:
            yield from self._write(Piece(request.messages, 0))
            return
        if plan.long_form and request.brief is not None and not request.prefix:
            done = yield from self._long_form(plan)
            if done is not None:
                return
        piece = Piece(request.messages, 0, plan.target_words, plan.low, plan.high)
        if request.prefix:  # Continue: the first request asks for the rest
            piece.lengthen = self.counter.words < plan.low
        yield from self._write(piece)

    def _write(self, piece: Piece) -> Iterator:
        """Write one piece, failing over along the chain; True when it is done."""
        chain = [self.request.provider, *self.request.failover]
        while self._chain_at < len(chain):
            provider = chain[self._chain_at]
            if provider is not self.provider:
                yield Notice(NoticeKind.FAILOVER, f"{self.provider.name} failed "
                             f"({self.failure.message}); switching to {provider.name}",
                             error_kind=self.failure.kind, status=self.failure.status,
                             provider=provider.title, failed_provider=self.provider.title)
            self.provider = provider
            done = yield from self._serve(provider, piece)
            if done or self.cancelled:
                return True
            self._chain_at += 1
        return False

    def _long_form(self, plan: LengthPlan) -> Iterator:
        """Plan, then write each section with its own budget into the same article.
        Returns None when no usable plan came back (the caller writes it in one go)."""
        brief = self.request.brief
        count = max(3, min(8, round(plan.target_words / 450)))
        planning = Piece(self.prompts.outline(brief, count), 0)
        planned = yield from self._plan(planning)
        if planned is None:
            return None
        self.outline = planned
        yield Outlined(planned)
        sections = planned.sections
        if planned.title:
            yield from self._emit(self.attempts[-1], f"# {planned.title}\n\n", visible_only=True)
        for number, (heading, words) in enumerate(sections, 1):
            if self.cancelled:
                return True
            yield Notice(NoticeKind.SECTION, heading, 0, number, len(sections))
            if number > 1:
                yield from self._emit(self.attempts[-1], "\n\n", visible_only=True)
            before = self.counter.words
            last = number == len(sections)
            target = plan.target_words if last else before + words
            low = max(before + int(words * plan.min_ratio), plan.low if last else 0)
            high = min(before + int(words * plan.max_ratio), plan.high) if not last else plan.high
            previous = self.article[-600:]
            piece = Piece(self.prompts.section(
                brief, title=planned.title, outline=planned.as_markdown(), number=number,
                count=len(sections), heading=heading, section_words=max(words, target - before),
                previous=previous), len(self.article), max(target, before + 1),
                low, max(high, before + 2))
            done = yield from self._write(piece)
            if not done or self.cancelled:
                return True
        return True

    def _plan(self, piece: Piece, tries: int = 2) -> Iterator:
        """The outline request: streamed, not shown; parsed into an Outline, or None
        when no usable plan came back (asked twice: small models sometimes ramble)."""
        for _ in range(tries):
            attempt = yield from self._attempt(self.provider, piece, visible=False)
            if attempt is None or self.cancelled or self.failure is not None:
                if self.failure is not None and not self.cancelled:
                    self.failure = None  # write it in one go instead
                return None
            outline = parse_outline("".join(attempt.received), self.request.length.target_words)
            if outline is not None:
                return outline
        return None

    def _serve(self, provider: Provider, piece: Piece) -> Iterator:
        """Use one provider until the piece is done (True) or it gives up (False)."""
        policy = self.request.retry
        plan = self.request.length
        retries_here, waited = 0, 0.0
        shared = self.request.backoff
        while True:
            if shared is not None:
                yield from self._at_gate(shared)
            attempt = yield from self._attempt(provider, piece)
            failure = self.failure if attempt is not None else None
            if attempt is None or self.cancelled:
                return True
            if failure is None:
                if shared is not None:
                    shared.passed()
                short = piece.controlled and self.counter.words < piece.low and \
                    attempt.finish_reason in ("stop", "length")
                if short and piece.rounds < plan.max_rounds and attempt.received:
                    # Ended below the range (finish stop or length): ask for the rest.
                    piece.rounds += 1
                    # Cut by max_tokens mid-thought: finish it exactly where it stopped;
                    # ended on its own: ask for more material.
                    piece.lengthen = attempt.finish_reason != "length"
                    self.length_rounds += 1
                    yield Notice(NoticeKind.LENGTHEN, f"{self.counter.words} of "
                                 f"{piece.target} words; asking for the rest", 0,
                                 piece.rounds, plan.max_rounds)
                    continue
                return True
            if failure.kind in RESUMABLE and attempt.received:
                # Text had arrived: continue from it rather than start over.
                if self.resumes >= policy.max_resumes:
                    return False
                self.resumes += 1
                piece.lengthen = False
                yield Notice(NoticeKind.RESUMING, "connection lost, resuming…", 0, self.resumes,
                             policy.max_resumes)
                continue
            if shared is not None and failure.kind == ErrorKind.RATE_LIMIT:
                # A batch: the whole batch slows down (backoff.py); this row waits at the
                # gate with the others instead of spending its own retries.
                if self.throttled_s >= shared.max_wait_s:
                    return False
                shared.hit(failure.retry_after_s)
                self.retries += 1
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
                             policy.max_retries, error_kind=failure.kind, status=failure.status,
                             provider=provider.title)
                step = min(0.1, left)
                self._sleep(step)
                left -= step

    def _at_gate(self, shared) -> Iterator:
        """Wait while a shared backoff is closed (another request got a 429), with a
        countdown notice, in slices so a Stop is honoured; at most `max_wait_s` in all."""
        while not self.cancelled and self.throttled_s < shared.max_wait_s:
            wait = shared.wait_s()
            if wait <= 0:
                return
            yield Notice(NoticeKind.THROTTLED, self.provider.name, wait, shared.hits, 0,
                         provider=self.provider.title)
            step = min(0.1, wait)
            self._sleep(step)
            self.throttled_s += step
            shared.waited(step)

    def _streams(self, provider: Provider) -> bool:
        if provider.kind == "local":
            return True
        if self.fallback:  # once this article fell back, it stays that way
            return False
        policy = self.request.retry
        return self.health.recent_failures(provider.name, policy.fallback_window_s) < \
            policy.fallback_after

    def _attempt(self, provider: Provider, piece: Piece, visible: bool = True) -> Iterator:
        """One request. Returns the Attempt (None when stopped before it began);
        `self.failure` says whether it ended properly. `visible=False` (the outline)
        collects the answer without adding it to the article."""
        if self.cancelled:
            return None
        so_far = self.article[piece.start:] if visible else ""
        if not so_far:
            messages = piece.messages
        elif piece.lengthen:
            messages = self.prompts.lengthen(
                piece.messages, so_far, words=self.counter.words, target_words=piece.target,
                language=self.request.length.language)
        else:
            messages = self.prompts.continuation(piece.messages, so_far)
        stream = self._streams(provider)
        if not stream and not self.fallback:
            self.fallback = True
            yield Notice(NoticeKind.FALLBACK, f"streaming from {provider.name} keeps breaking; "
                         "fetching the rest in one piece")
        attempt = Attempt(provider, messages, stream, SeamFilter(so_far) if so_far else None,
                          lengthens=bool(so_far) and piece.lengthen)
        self.attempts.append(attempt)
        source = None
        try:
            source = providers_mod.open_source(provider, messages,
                                               self._max_tokens(provider, piece), stream,
                                               keep_going=visible and piece.controlled)
            self._source = source
            if self.cancelled:  # a Stop that came while the request was being prepared
                source.abort()
            ended_here = False  # length control ended the piece: stop reading (and paying)
            for chunk in source:
                if self.cancelled:
                    break
                if chunk.waiting:
                    yield Notice(NoticeKind.WAITING, "waiting for the local model")
                    continue
                if chunk.text:
                    attempt.receive(chunk.text)
                    if visible:
                        shown = attempt.seam.feed(chunk.text) if attempt.seam else chunk.text
                        ended_here = yield from self._deliver(attempt, shown, piece)
                        if ended_here:
                            attempt.finish_reason = "stop"
                            break
                if chunk.finish_reason:
                    attempt.finish_reason = chunk.finish_reason
                if chunk.usage:
                    attempt.reported = chunk.usage
            if self.cancelled:
                yield from self._flush(attempt, piece, keep_all=True)
                return attempt
            if attempt.finish_reason is None:
                if attempt.received:
                    raise BrokenStream("the stream ended without a finish reason")
                raise EmptyAnswer("the stream ended without any text", continuing=bool(so_far))
            if attempt.finish_reason == "stop" and not attempt.received and not so_far:
                raise EmptyAnswer("the answer was empty")
            if not ended_here:
                yield from self._flush(attempt, piece, complete=attempt.finish_reason == "stop")
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
                from writer.logs import log_exception

                failure = replace(failure, message=log_exception(
                    f"unexpected error from provider {provider.name}", exc))
            if not attempt.received and failure.kind not in {ErrorKind.STREAM, ErrorKind.EMPTY}:
                attempt.billed = False  # refused before generating: nothing was billed
            yield from self._flush(attempt, piece, keep_all=True)
            if stream and (attempt.received or failure.kind in {ErrorKind.STREAM, ErrorKind.EMPTY}):
                self.health.broken(provider.name)
            self.failure = failure
            return attempt
        finally:
            self._source = None
            if source is not None:
                source.close()  # also on GeneratorExit: the provider stops generating
                known = getattr(source, "usage", None)  # the local model counts exactly
                if attempt.reported is None and known is not None and known():
                    attempt.reported = known()
            attempt.ended = time.monotonic()
            self.metrics.add(attempt)

    def _flush(self, attempt: Attempt, piece: Piece, *, complete: bool = False,
               keep_all: bool = False) -> Iterator:
        """At the end of an attempt: what the seam filter and the length gate held back.
        `keep_all` (stopped, failed, broken: the text is kept and may be resumed) shows
        it all; `complete` (the model finished) lets it end without a sentence mark."""
        if attempt.seam:
            tail = attempt.seam.flush()
            self.discarded += attempt.seam.dropped
            if tail:
                if keep_all:
                    joined = attempt.lengthens and not attempt.joined
                    self._held += join_seam(self._recent() + self._held, tail) if joined else tail
                    attempt.joined = True
                else:
                    yield from self._deliver(attempt, tail, piece)
        if not self._held:
            return
        if keep_all or not piece.controlled:
            held, self._held = self._held, ""
            yield from self._emit(attempt, held)
            return
        # The answer ended (finish stop or length): end on a sentence, within range.
        base = self._recent()
        full = base + self._held
        ends = sentence_ends(full, len(base), final=complete)
        fits = [e for e in ends if self.counter.words_with(full[len(base):e]) <= piece.high]
        if complete and self.counter.words_with(self._held) <= piece.high:
            cut = len(full)  # the model's own ending: keep it as written
        elif fits:
            cut = fits[-1]
        else:
            cut = len(base)  # an unfinished sentence: never shown half
        self.trimmed += full[cut:]
        self._held = ""
        if cut > len(base):
            yield from self._emit(attempt, full[len(base):cut])

    def _deliver(self, attempt: Attempt, text: str, piece: Piece) -> Iterator:
        """Show new text, or hold it while it cannot end the article yet. Returns True
        when length control ends the piece here (on a sentence end past its target)."""
        if not text:
            return False
        if attempt.lengthens and not attempt.joined:
            text = join_seam(self._recent(), text)  # new text after an ending: no "end.Next"
        attempt.joined = True
        if not piece.controlled:
            yield from self._emit(attempt, text)
            return False
        held = self._held + text
        words = self.counter.words_with(held)
        if words < piece.low:  # far from the end: show it as it comes
            self._held = ""
            yield from self._emit(attempt, held)
            return False
        base = self._recent()
        full = base + held
        ends = sentence_ends(full, len(base))
        if words >= piece.target:
            for end in ends:
                if self.counter.words_with(full[len(base):end]) >= piece.target:
                    self._held = ""
                    self.trimmed += full[end:]
                    yield from self._emit(attempt, full[len(base):end])
                    return True
        if words > piece.high:
            fits = [e for e in ends if self.counter.words_with(full[len(base):e]) <= piece.high]
            if fits or words > piece.high * 1.25:
                cut = fits[-1] if fits else len(base)
                self._held = ""
                self.trimmed += full[cut:]
                if cut > len(base):
                    yield from self._emit(attempt, full[len(base):cut])
                return True
        # Near the end: show up to the last sentence end, hold the unfinished one.
        cut = ends[-1] if ends else len(base)
        self._held = full[cut:]
        if cut > len(base):
            yield from self._emit(attempt, full[len(base):cut])
        return False

    def _emit(self, attempt: Attempt, text: str, visible_only: bool = False) -> Iterator:
        """Text into the article. `visible_only`: the engine's own (a long article's
        title, section breaks) — shown and counted, not served by anyone."""
        if not text:
            return
        if attempt.streamed and not visible_only:
            self.metrics.first_text_at = self.metrics.first_text_at or time.monotonic()
        if attempt.seam is not None and not visible_only and attempt.seam_at is None:
            attempt.seam_at = len(self.article)
            self.seams.append(attempt.seam_at)
        self.parts.append(text)
        self.counter.feed(text)
        if not visible_only:
            self._served = attempt.provider
            if not self.served_by or self.served_by[-1] != attempt.provider.name:
                self.served_by.append(attempt.provider.name)
        yield Delta(text)

    def _max_tokens(self, provider: Provider, piece: Piece) -> int:
        request = self.request
        if request.length is None:  # free-form: the caller's bound, less what was written
            if not self.parts:
                return request.max_tokens
            return max(256, request.max_tokens - estimate_tokens(self.text))
        if self._budget is None:
            self._budget = budget_for(provider.kind)
        if not piece.controlled:  # the outline
            return min(600, request.max_output_tokens)
        wanted = max(piece.high - self.counter.words, 32)
        return self._budget.max_tokens(wanted, request.length.language, request.max_output_tokens)

    def _finished(self) -> Finished:
        reason = self.finish_reason
        plan = self.request.length
        landed = outcome(self.counter.words, plan.target_words, plan) if plan else None
        if plan and reason == "length" and landed != LengthOutcome.SHORT:
            reason = "stop"  # hit max_tokens past the range: ended on a sentence, complete
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
        rounds = self.length_rounds + (len(self.outline.sections) if self.outline else 1)
        return Finished(status, reason, error, self.usage(), self.metrics, self.served_provider,
                        self.failure if status == Status.FAILED else None, self.retries,
                        self.resumes, self.fallback, "→".join(self.served_by), landed,
                        rounds if plan else 0,
                        self.outline.as_markdown() if self.outline else None)


def stream(request: Request, **kwargs) -> Iterator:
    return Generation(request, **kwargs).events()


def reset_stream_failures() -> None:
    """Forget broken-stream counts (tests, or after changing provider settings)."""
    stream_health.clear()
