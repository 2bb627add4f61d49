"""The one streaming engine. Every caller (Write page, CLI, batch, provider check)
gets text from here as a stream of events:

    Delta(text)                 new text, in order, never repeated
    Notice(kind, message, ...)  something the reader should know: "retrying" (wait_s
                                counts down), "resuming", "fallback", "failover", "waiting"
    Finished(...)               always last: status, finish_reason, error, usage, metrics

What happens when a provider misbehaves, in order:
- before the first token, retryable failures (429, 408, 409, 5xx, connection
  errors, timeouts) are retried with exponential backoff and jitter, honouring
  Retry-After / retry-after-ms, within a total wait cap;
- after text has arrived, a broken stream (reset, malformed chunk, idle timeout,
  end without a finish reason) is resumed with a continuation request; text the
  model repeats at the seam is dropped (seam.py);
- after `fallback_after` consecutive broken streams on a provider, requests to it
  are made without streaming;
- a provider that still fails hands over to the next in the failover chain.
Closing the generator (a Streamlit rerun, Ctrl-C) or `cancel()` from another
thread (Stop) closes the provider connection at once.
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import providers as providers_mod
from .counting import estimate_message_tokens, estimate_tokens
from .errors import BrokenStream, EmptyAnswer, Failure, classify
from .prompts import PromptSet, default_prompts
from .providers import Provider
from .seam import SeamFilter

RESUMABLE = {"stream", "connect", "timeout", "server", "rate_limit", "empty"}
FINISH_STATUS = {"stop": "completed", "length": "truncated", "content_filter": "failed"}

# Consecutive broken streams per provider, across generations in this process.
_stream_failures: dict[str, int] = defaultdict(int)
_stream_failures_lock = threading.Lock()


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Notice:
    kind: str
    message: str
    wait_s: float = 0.0
    attempt: int = 0
    max_attempts: int = 0


@dataclass
class Metrics:
    """Timestamps of one generation; derived figures are in ms or tokens/s."""

    started: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    ended: float | None = None

    def mark_text(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()

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
    provider: Provider  # the provider that served the last text
    failure: Failure | None = None
    retries: int = 0
    resumes: int = 0
    fallback: bool = False
    served_by: str = ""

    @property
    def error_kind(self) -> str | None:
        """A stable code for what went wrong (a Failure kind, or content_filter/length)."""
        if self.failure:
            return self.failure.kind
        return self.finish_reason if self.error else None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    max_total_wait_s: float = 60.0
    base_s: float = 0.5
    cap_s: float = 20.0
    max_resumes: int = 3
    fallback_after: int = 2

    @classmethod
    def from_settings(cls, settings) -> "RetryPolicy":
        return cls(max_retries=settings.max_retries, max_total_wait_s=settings.retry_max_wait_s,
                   max_resumes=settings.max_resumes, fallback_after=settings.fallback_after)

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
                 prompts: PromptSet | None = None):
        self.request = request
        self.provider = request.provider
        self.prompts = prompts or default_prompts()
        self.metrics = Metrics()
        self.parts: list[str] = []  # new text, seams already removed
        self.finish_reason: str | None = None
        self.failure: Failure | None = None
        self.retries = 0
        self.resumes = 0
        self.fallback = False
        self.served_by: list[str] = []
        self.cancelled = False
        self.discarded = ""  # text dropped as duplicated seams
        self._usage: list[Usage] = []  # one per finished attempt
        self._attempt_text: list[str] = []
        self._attempt_messages: list[dict] = []
        self._attempt_reported: tuple[int, int] | None = None
        self._source = None
        self._broke_mid_stream = False  # the last attempt failed after some text
        self._sleep = sleep

    # -- what callers read ----------------------------------------------------
    @property
    def text(self) -> str:
        return "".join(self.parts)

    def usage(self) -> Usage:
        parts = self._usage + ([self._attempt_usage()] if self._attempt_messages else [])
        if not parts:
            return Usage(0, 0, "estimated")
        source = "reported" if all(u.source == "reported" for u in parts) else "estimated"
        return Usage(sum(u.input_tokens for u in parts), sum(u.output_tokens for u in parts),
                     source)

    def cancel(self) -> None:
        """Stop from any thread: the provider connection is shut at once."""
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
            self._end_attempt()
        yield self._finished()

    # -- the loop -------------------------------------------------------------
    def _run(self) -> Iterator:
        chain = [self.request.provider, *self.request.failover]
        for index, provider in enumerate(chain):
            if index:
                yield Notice("failover", f"{chain[index - 1].name} failed ({self.failure.message}); "
                             f"switching to {provider.name}")
            self.provider = provider
            done = yield from self._serve(provider)
            if done or self.cancelled:
                return

    def _serve(self, provider: Provider) -> Iterator:
        """Use one provider until the article is done (True) or it gives up (False)."""
        policy = self.request.retry
        retries_here, waited = 0, 0.0
        while True:
            failure = yield from self._attempt(provider)
            if failure is None or self.cancelled:
                return True
            if failure.kind in RESUMABLE and self._broke_mid_stream:
                # Text had arrived: continue from it rather than start over.
                if self.resumes >= policy.max_resumes:
                    return False
                self.resumes += 1
                yield Notice("resuming", "connection lost, resuming…", 0, self.resumes,
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
                yield Notice("retrying", failure.message, left, retries_here, policy.max_retries)
                step = min(0.25, left)
                self._sleep(step)
                left -= step

    def _attempt(self, provider: Provider) -> Iterator:
        """One request. Returns None when the answer ended properly, else a Failure."""
        if self.cancelled:
            return None
        request, policy = self.request, self.request.retry
        so_far = request.prefix + self.text
        messages = self.prompts.continuation(request.messages, so_far) if so_far else request.messages
        with _stream_failures_lock:
            stream = provider.kind == "local" or _stream_failures[provider.name] < policy.fallback_after
        if not stream and not self.fallback:
            self.fallback = True
            yield Notice("fallback", f"streaming from {provider.name} keeps breaking; "
                         "fetching the rest in one piece")
        seam = SeamFilter(so_far) if so_far else None
        self._begin_attempt(messages)
        self._broke_mid_stream = False
        source = providers_mod.open_source(provider, messages, self._max_tokens_left(), stream)
        self._source = source
        finish = None
        try:
            for chunk in source:
                if self.cancelled:
                    break
                if chunk.waiting:
                    yield Notice("waiting", "waiting for the local model")
                    continue
                if chunk.text:
                    self._attempt_text.append(chunk.text)
                    yield from self._emit(seam.feed(chunk.text) if seam else chunk.text, provider)
                if chunk.finish_reason:
                    finish = chunk.finish_reason
                if chunk.usage:
                    self._attempt_reported = chunk.usage
            if self.cancelled:
                if seam:  # what the seam filter held back is part of the article
                    yield from self._emit(seam.flush(), provider)
                return None
            if finish is None:
                raise BrokenStream("the stream ended without a finish reason") if \
                    self._attempt_text else EmptyAnswer("the stream ended without any text")
            if finish == "stop" and not self._attempt_text and not so_far:
                raise EmptyAnswer("the answer was empty")
            if seam:
                yield from self._emit(seam.flush(), provider)
                self.discarded += seam.dropped
            self.finish_reason = finish
            self.failure = None
            if stream:
                with _stream_failures_lock:
                    _stream_failures[provider.name] = 0
            return None
        except Exception as exc:  # provider errors become a Failure, never a traceback
            if self.cancelled:
                return None
            failure = classify(exc, provider.base_url, provider.model)
            self._broke_mid_stream = bool(self._attempt_text)
            if not self._attempt_text and failure.kind not in {"stream", "empty"}:
                self._attempt_messages = []  # refused before generating: nothing was billed
            if seam:  # text held back at a seam is kept unless it repeats the tail
                yield from self._emit(seam.flush(), provider)
                self.discarded += seam.dropped
            if stream and (self._broke_mid_stream or failure.kind in {"stream", "empty"}):
                with _stream_failures_lock:
                    _stream_failures[provider.name] += 1
            self.failure = failure
            return failure
        finally:
            self._source = None
            source.close()  # also on GeneratorExit: the provider stops generating
            self._end_attempt()

    def _emit(self, text: str, provider: Provider) -> Iterator:
        if not text:
            return
        self.metrics.mark_text()
        self.parts.append(text)
        if not self.served_by or self.served_by[-1] != provider.name:
            self.served_by.append(provider.name)
        yield Delta(text)

    def _max_tokens_left(self) -> int:
        if not self.parts:
            return self.request.max_tokens
        return max(256, self.request.max_tokens - estimate_tokens(self.text))

    # -- usage per attempt: reported when the provider said, else estimated ----
    def _begin_attempt(self, messages: list[dict]) -> None:
        self._attempt_messages, self._attempt_text, self._attempt_reported = messages, [], None

    def _attempt_usage(self) -> Usage:
        if self._attempt_reported:
            return Usage(*self._attempt_reported, "reported")
        return Usage(estimate_message_tokens(self._attempt_messages),
                     estimate_tokens("".join(self._attempt_text)), "estimated")

    def _end_attempt(self) -> None:
        if self._attempt_messages:
            self._usage.append(self._attempt_usage())
            self._attempt_messages = []

    def _finished(self) -> Finished:
        reason = self.finish_reason
        if self.cancelled:
            status, error = "stopped", None
        elif self.failure is not None:
            status, error = "failed", self.failure.message
            if self.request.failover:
                error = f"every provider failed; last: {error}"
        else:
            status, error = FINISH_STATUS.get(reason or "stop", "completed"), None
            if reason == "content_filter":
                error = ("the provider's content filter stopped the answer; the partial text is "
                         "kept — rephrase the topic and try again")
            elif reason == "length":
                error = "the answer hit the max_tokens limit; use Continue to finish it"
        return Finished(status, reason, error, self.usage(), self.metrics, self.provider,
                        self.failure if status == "failed" else None, self.retries, self.resumes,
                        self.fallback, "→".join(self.served_by))


def stream(request: Request, **kwargs) -> Iterator:
    return Generation(request, **kwargs).events()


def reset_stream_failures() -> None:
    """Forget broken-stream counts (tests, or after changing provider settings)."""
    with _stream_failures_lock:
        _stream_failures.clear()
