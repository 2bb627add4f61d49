"""What a generation (engine.py) yields:

    Delta(text)                 new text, in order, never repeated
    Notice(kind, message, ...)  something the reader should know (kinds.NoticeKind):
                                retrying (wait_s counts down), resuming, fallback,
                                failover, waiting, throttled, lengthen, section
    Outlined(outline)           a long article's plan, before its sections
    Finished(...)               always last: status, finish_reason, error, usage, metrics

Viewers (the Write page, the sidebar, the CLI printer) and runs (which save rows)
consume these; importing them never loads the SDK."""
from __future__ import annotations

from dataclasses import dataclass

from writer.generation.length import Outline
from writer.generation.metrics import Metrics, Usage
from writer.kinds import ErrorKind, LengthOutcome, NoticeKind, Status
from writer.providers.base import Provider
from writer.providers.failures import Failure

__all__ = ["Delta", "Finished", "Notice", "Outlined", "Usage", "ending"]

FINISH_STATUS = {"stop": Status.COMPLETED, "length": Status.TRUNCATED,
                 "content_filter": Status.FAILED}


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


def ending(finish_reason: str | None, *, cancelled: bool, failure: Failure | None,
           failover: bool) -> tuple[Status, str | None]:
    """The status a generation ends with, and the one-line error a reader sees."""
    if cancelled:
        return Status.STOPPED, None
    if failure is not None:
        if failover:
            return Status.FAILED, f"every provider failed; last: {failure.message}"
        return Status.FAILED, failure.message
    status = FINISH_STATUS.get(finish_reason or "stop", Status.COMPLETED)
    if finish_reason == "content_filter":
        return status, ("the provider's content filter stopped the answer; the partial text is "
                        "kept — rephrase the topic and try again")
    if finish_reason == "length":
        return status, "the answer hit the max_tokens limit; use Continue to finish it"
    return status, None
