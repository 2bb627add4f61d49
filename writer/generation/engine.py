"""The one streaming engine. Every caller (Write page, CLI, batch, provider check)
gets text from here as a stream of events (events.py: Delta, Notice, Outlined, and
always last one Finished).

What happens when a provider misbehaves, in order:
- before the first token, retryable failures (429, 408, 409, 5xx, connection
  errors, timeouts) are retried with exponential backoff and jitter, lengthened (never
  shortened) by Retry-After / retry-after-ms, within a count and a total wait cap; in a
  batch, 429s wait at the shared backoff within caps of their own (retry.py);
- after text has arrived, a broken stream (reset, malformed chunk, idle timeout,
  end without a finish reason) is resumed with a continuation request; text the
  model repeats at the seam is dropped (seam.py);
- after `fallback_after` consecutive broken streams on a provider (the last within
  `fallback_window_s`), requests to it are not streamed (StreamHealth: decays with time);
- a provider that still fails hands over to the next in the failover chain.
What it asks comes from a `PromptPlan` (plan.py: messages, budget, length plan, and the
prompts to continue, lengthen, outline, write sections); the engine never sees a Brief.
With a `LengthPlan` (length.py) the length gate (gate.py) ends text past the target at
the next sentence end and closes the stream; an answer that ends below 0.8× is topped up
(a `lengthen` round); a long target is outlined first (`Outlined` event; or a prompt set's
fixed outline) and written section by section (`section` notices). Closing the generator
(a rerun, Ctrl-C) or `cancel()` from another thread (Stop) closes the provider connection
at once, in every state (connecting, headers, streaming, non-streamed, waiting to retry).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

from writer.generation.counting import WordCounter, estimate_tokens
from writer.generation.events import Delta, Finished, Notice, Outlined, Usage, ending
from writer.generation.gate import Bounds, LengthGate
from writer.generation.length import Budget, Outline, budget_for, join_seam, outcome, parse_outline
from writer.generation.metrics import Attempt, Metrics, StreamHealth, stream_health, total_usage
from writer.generation.plan import PromptPlan
from writer.generation.retry import RESUMABLE, RetryPolicy, given_up
from writer.generation.seam import SeamFilter
from writer.kinds import ErrorKind, LengthOutcome, NoticeKind, Status
from writer.providers import sources
from writer.providers.base import Provider
from writer.providers.failures import BrokenStream, EmptyAnswer, Failure, classify


@dataclass
class Request:
    plan: PromptPlan  # what to ask: messages, budget, length plan, follow-up prompts
    provider: Provider
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    failover: list[Provider] = field(default_factory=list)  # tried in order after `provider`
    prefix: str = ""  # text already written (Continue): the engine continues it
    backoff: object = None  # a backoff.SharedBackoff: 429s slow every article sharing it


@dataclass
class Piece:
    """What a series of requests is writing: the whole article, or one section of a
    long one. Word figures count the whole article (prefix included)."""

    messages: list[dict]  # the request that writes it from its start
    start: int  # where its text starts in the article
    bounds: Bounds | None = None  # None: not length-controlled (free-form, the outline)
    rounds: int = 1  # requests that wrote it, top-ups included (not resumes)
    lengthen: bool = False  # the next request asks for more rather than resuming

    @property
    def controlled(self) -> bool:
        return self.bounds is not None


class Generation:
    """One request's stream and everything measured about it. Iterate `events()`;
    the attributes stay readable after a stop, so a partial article keeps its
    text, usage estimate and timings."""

    def __init__(self, request: Request, *, sleep: Callable[[float], None] = time.sleep,
                 health: StreamHealth | None = None):
        self.request = request
        self.plan = request.plan
        self.provider = request.provider  # the one being asked now
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
        self.seams: list[int] = []  # where in the article each continuation's text begins
        self.counter = WordCounter(request.prefix)  # words of the article so far
        self.gate = LengthGate(self.counter, self._recent)  # where controlled text may end
        self.length_rounds = 0
        self.outline: Outline | None = None
        self._budget: Budget | None = None
        self._chain_at = 0  # index in the failover chain of the provider in use
        self._served: Provider | None = None  # the provider of the last text
        self._source = None
        self._sleep = sleep
        self.throttled_s = 0.0  # time spent waiting behind a shared backoff (429s)
        self.throttles = 0  # 429s waited out behind a shared backoff

    # -- what callers read ----------------------------------------------------
    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def trimmed(self) -> str:
        """Text received past the end length control chose (paid, not kept)."""
        return self.gate.trimmed

    @property
    def served_provider(self) -> Provider:
        """The provider of the last text (else the one being asked)."""
        return self._served or self.provider

    def usage(self) -> Usage:
        """Tokens of every billed request so far (estimated where none were reported)."""
        return total_usage(self.attempts)

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
        request, plan = self.request, self.plan.length
        if plan is None:
            yield from self._write_piece(Piece(self.plan.messages, 0))
            return
        if self.plan.long_form and not request.prefix:
            done = yield from self._long_form()
            if done is not None:
                return
        piece = Piece(self.plan.messages, 0, Bounds(plan.target_words, plan.low, plan.high))
        if request.prefix:  # Continue: the first request asks for the rest
            piece.lengthen = self.counter.words < plan.low
        yield from self._write_piece(piece)

    def _write_piece(self, piece: Piece) -> Iterator:
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

    def _long_form(self) -> Iterator:
        """Plan, then write each section with its own budget into the same article.
        Returns None when no usable plan came back (the caller writes it in one go)."""
        plan = self.plan.length
        fixed = self.plan.fixed_outline()  # the prompt set's own (a base model's are poor)
        planned = (parse_outline(fixed, plan.target_words) if fixed
                   else (yield from self._plan(Piece(self.plan.outline(), 0))))
        if planned is None:
            return None
        self.outline = planned
        yield Outlined(planned)
        sections = planned.sections
        if planned.title:
            yield self._emit(None, f"# {planned.title}\n\n", visible_only=True)
        for number, (heading, words) in enumerate(sections, 1):
            if self.cancelled:
                return True
            yield Notice(NoticeKind.SECTION, heading, 0, number, len(sections))
            if number > 1:
                yield self._emit(None, "\n\n", visible_only=True)
            if self.plan.prompts.heading_in_text:  # the prompt ends with it: not written
                yield self._emit(None, f"## {heading}\n\n", visible_only=True)
            before = self.counter.words
            bounds = Bounds.for_section(plan, before, words, last=number == len(sections))
            piece = Piece(self.plan.section(
                title=planned.title, outline=planned.as_markdown(), number=number,
                count=len(sections), heading=heading,
                section_words=max(words, bounds.target - before),
                previous=self.article[-600:]), len(self.article), bounds)
            done = yield from self._write_piece(piece)
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
            outline = parse_outline("".join(attempt.received), self.plan.length.target_words)
            if outline is not None:
                return outline
        return None

    def _serve(self, provider: Provider, piece: Piece) -> Iterator:
        """Use one provider until the piece is done (True) or it gives up (False)."""
        policy = self.request.retry
        plan = self.plan.length
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
                short = piece.controlled and self.counter.words < piece.bounds.low and \
                    attempt.finish_reason in ("stop", "length")
                if short and piece.rounds < plan.max_rounds and attempt.received:
                    # Ended below the range (finish stop or length): ask for the rest.
                    piece.rounds += 1
                    # Cut by max_tokens mid-thought: finish it exactly where it stopped;
                    # ended on its own: ask for more material.
                    piece.lengthen = attempt.finish_reason != "length"
                    self.length_rounds += 1
                    yield Notice(NoticeKind.LENGTHEN, f"{self.counter.words} of "
                                 f"{piece.bounds.target} words; asking for the rest", 0,
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
                # A batch: the whole batch slows down (backoff.py); this row waits at the gate
                # with the others, not spending its own retries, within throttle caps.
                shared.hit(failure.retry_after_s)
                if policy.throttled_out(self.throttles, self.throttled_s + shared.wait_s()):
                    self.failure = given_up(failure, self.throttles, self.throttled_s)
                    return False
                self.throttles += 1
                self.retries += 1
                continue
            wait = policy.backoff(retries_here + 1, failure.retry_after_s)
            if not (failure.retryable and retries_here < policy.max_retries) or \
                    waited + wait > policy.max_total_wait_s:
                self.failure = given_up(failure, retries_here, waited)
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
        countdown notice, in slices so a Stop is honoured; within `throttle_max_wait_s`."""
        while not self.cancelled and self.throttled_s < self.request.retry.throttle_max_wait_s:
            wait = shared.wait_s()
            if wait <= 0:
                return
            yield Notice(NoticeKind.THROTTLED, self.provider.name, wait, shared.hits, 0,
                         provider=self.provider.title)
            step = min(0.1, wait)
            self._sleep(step)
            self.throttled_s += step
            shared.waited(step)

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
            messages = self.plan.lengthen(piece.messages, so_far, words=self.counter.words,
                                          target_words=piece.bounds.target)
        else:
            messages = self.plan.continuation(piece.messages, so_far)
        # Once this article fell back (streams kept breaking), it stays that way.
        stream = provider.kind == "local" or not (
            self.fallback or self.health.falls_back(provider.name, self.request.retry))
        if not stream and not self.fallback:
            self.fallback = True
            yield Notice(NoticeKind.FALLBACK, f"streaming from {provider.name} keeps breaking; "
                         "fetching the rest in one piece")
        attempt = Attempt(provider, messages, stream, SeamFilter(so_far) if so_far else None,
                          lengthens=bool(so_far) and piece.lengthen)
        self.attempts.append(attempt)
        source = None
        try:
            source = sources.open_source(provider, messages, self._max_tokens(provider, piece),
                                         stream, keep_going=visible and piece.controlled)
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
        gate = self.gate
        if attempt.seam:
            tail = attempt.seam.flush()
            self.discarded += attempt.seam.dropped
            if tail:
                if keep_all:
                    joined = attempt.lengthens and not attempt.joined
                    gate.hold(join_seam(self._recent() + gate.held, tail) if joined else tail)
                    attempt.joined = True
                else:
                    yield from self._deliver(attempt, tail, piece)
        if not gate.held:
            return
        if keep_all or not piece.controlled:
            yield self._emit(attempt, gate.release())
            return
        # The answer ended (finish stop or length): end on a sentence, within range.
        shown = gate.end(piece.bounds, complete=complete)
        if shown:
            yield self._emit(attempt, shown)

    def _deliver(self, attempt: Attempt, text: str, piece: Piece) -> Iterator:
        """Show new text, or hold it while it cannot end the article yet (the length
        gate). Returns True when length control ends the piece here."""
        if not text:
            return False
        if attempt.lengthens and not attempt.joined:
            text = join_seam(self._recent(), text)  # new text after an ending: no "end.Next"
        attempt.joined = True
        if piece.bounds is None:
            yield self._emit(attempt, text)
            return False
        shown, ended = self.gate.feed(text, piece.bounds)
        if shown:
            yield self._emit(attempt, shown)
        return ended

    def _emit(self, attempt: Attempt | None, text: str, visible_only: bool = False) -> Delta:
        """Text (never empty) into the article, as the Delta to yield. `visible_only`
        (attempt None): the engine's own (a long article's title, headings, section
        breaks) — shown and counted, not served by anyone."""
        if not visible_only:
            if attempt.streamed:
                self.metrics.first_text_at = self.metrics.first_text_at or time.monotonic()
            if attempt.seam is not None and attempt.seam_at is None:
                attempt.seam_at = len(self.article)
                self.seams.append(attempt.seam_at)
            self._served = attempt.provider
            if not self.served_by or self.served_by[-1] != attempt.provider.name:
                self.served_by.append(attempt.provider.name)
        self.parts.append(text)
        self.counter.feed(text)
        return Delta(text)

    def _max_tokens(self, provider: Provider, piece: Piece) -> int:
        plan = self.plan
        if plan.length is None:  # free-form: the caller's bound, less what was written
            if not self.parts:
                return plan.max_tokens
            return max(256, plan.max_tokens - estimate_tokens(self.text))
        if self._budget is None:
            self._budget = budget_for(provider.kind)
        if not piece.controlled:  # the outline
            return min(600, plan.max_output_tokens)
        wanted = max(piece.bounds.high - self.counter.words, 32)
        return self._budget.max_tokens(wanted, plan.length.language, plan.max_output_tokens)

    def _finished(self) -> Finished:
        reason = self.finish_reason
        plan = self.plan.length
        landed = outcome(self.counter.words, plan.target_words, plan) if plan else None
        if plan and reason == "length" and landed != LengthOutcome.SHORT:
            reason = "stop"  # hit max_tokens past the range: ended on a sentence, complete
        status, error = ending(reason, cancelled=self.cancelled, failure=self.failure,
                               failover=bool(self.request.failover))
        rounds = self.length_rounds + (len(self.outline.sections) if self.outline else 1)
        return Finished(status, reason, error, self.usage(), self.metrics, self.served_provider,
                        self.failure if status == Status.FAILED else None, self.retries,
                        self.resumes, self.fallback, "→".join(self.served_by), landed,
                        rounds if plan else 0,
                        self.outline.as_markdown() if self.outline else None)


def stream(request: Request, **kwargs) -> Iterator:
    return Generation(request, **kwargs).events()
