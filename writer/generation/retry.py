"""How hard to try: retries before the first token (exponential backoff with full
jitter, a server's Retry-After first, within a total wait cap), resumes after text
has arrived, and when a provider's broken streams make the engine stop streaming."""
from __future__ import annotations

import random
from dataclasses import dataclass

from writer.kinds import ErrorKind

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
