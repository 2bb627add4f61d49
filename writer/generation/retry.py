"""How hard to try: retries before the first token (exponential backoff with jitter
that only lengthens it; a server's Retry-After can lengthen a wait, never shorten it),
within a count and a total wait cap; the caps on 429s waited out behind a batch's
shared backoff (providers/backoff.py); resumes after text has arrived; and when a
provider's broken streams make the engine stop streaming."""
from __future__ import annotations

from dataclasses import dataclass, replace

from writer.kinds import ErrorKind
from writer.providers.backoff import backoff_s
from writer.providers.failures import Failure

# Failures after which the text so far is continued rather than the request repeated.
RESUMABLE = {ErrorKind.STREAM, ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.SERVER,
             ErrorKind.RATE_LIMIT, ErrorKind.EMPTY}


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    max_total_wait_s: float = 60.0
    base_s: float = 0.5
    cap_s: float = 20.0
    max_resumes: int = 3
    fallback_after: int = 2
    fallback_window_s: float = 300.0
    # 429s one article waits out behind a batch's shared backoff, and the time it
    # waits there in all (they do not spend `max_retries`): then it fails.
    throttle_max_retries: int = 10
    throttle_max_wait_s: float = 900.0

    @classmethod
    def from_settings(cls, settings) -> "RetryPolicy":
        return cls(max_retries=settings.max_retries, max_total_wait_s=settings.retry_max_wait_s,
                   max_resumes=settings.max_resumes, fallback_after=settings.fallback_after,
                   fallback_window_s=settings.fallback_window_s,
                   throttle_max_retries=settings.throttle_max_retries,
                   throttle_max_wait_s=settings.throttle_max_wait_s)

    def backoff(self, attempt: int, hinted: float | None) -> float:
        """base·2^(attempt-1) capped at cap_s, up to a quarter more of jitter; a server's
        Retry-After wins only when it is longer (`Retry-After: 0` is not "retry now")."""
        return backoff_s(attempt, self.base_s, self.cap_s, hinted)

    def throttled_out(self, throttles: int, waited_s: float) -> bool:
        """Behind a shared backoff: this article has waited out all the 429s it may
        (`throttles` so far), or would wait past its time cap (`waited_s` with the next)."""
        return throttles >= self.throttle_max_retries or waited_s > self.throttle_max_wait_s


def given_up(failure: Failure, retries: int, waited_s: float) -> Failure:
    """The failure an article ends with when no retry is left on this provider: a rate
    limit says it gave up, after how many retries and how long."""
    if failure.kind != ErrorKind.RATE_LIMIT or not failure.retryable:
        return failure
    if not retries:  # asked to wait longer than the caps allow
        return replace(failure, message=f"{failure.message}; gave up: try again later")
    tries = "retry" if retries == 1 else "retries"
    return replace(failure, message=f"{failure.message}; gave up after {retries} {tries} and "
                   f"{waited_s:.0f} s of waiting: try again later")
