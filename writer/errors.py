"""Provider failures as one-line messages that say what to do."""
from __future__ import annotations

from dataclasses import dataclass


class NotTheAPI(Exception):
    """The base URL answered 200 with something that is not the API (a web page)."""


class LocalModelError(RuntimeError):
    """The local model cannot be used; the message says how to fix it."""


class BrokenStream(Exception):
    """The stream stopped after some text without saying it had finished."""


class EmptyAnswer(Exception):
    """The stream ended cleanly but carried no text and no finish reason."""


@dataclass(frozen=True)
class Failure:
    kind: str  # auth, connect, timeout, html, model, quota, rate_limit, server, too_long, bad_request, stream, other
    message: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None


def _body_text(exc) -> str:
    response = getattr(exc, "response", None)
    try:
        return response.text if response is not None else ""
    except Exception:  # a streamed body that was never read
        return ""


def _error_code(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return str(inner.get("code") or inner.get("type") or "")
    return str(getattr(exc, "code", "") or "")


def classify(exc: BaseException, base_url: str | None, model: str) -> Failure:
    import openai

    where = base_url or "https://api.openai.com/v1"
    status = getattr(exc, "status_code", None)
    code = _error_code(exc).lower()
    text = _body_text(exc)
    lowered = (str(exc) + " " + text).lower()

    if isinstance(exc, LocalModelError):
        return Failure("local", str(exc), False)
    if isinstance(exc, BrokenStream):
        return Failure("stream", f"the stream from {where} broke off", True)
    if isinstance(exc, EmptyAnswer):
        return Failure("empty", f"{where} ended the answer without any text; check the model "
                       "name and try again", True)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", f"{where} did not answer in time; try again or raise "
                       "WRITER_REQUEST_TIMEOUT", True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connect", f"cannot connect to {where}; check OPENAI_BASE_URL and your "
                       "network or proxy", True)
    if isinstance(exc, NotTheAPI) or "<html" in text.lower() or "<!doctype" in text.lower():
        return Failure("html", f"{where} answered with a web page instead of the API; "
                       "OpenAI-compatible URLs usually end in /v1", False, status)
    if status in (401, 403):
        return Failure("auth", f"the API key was rejected by {where} (HTTP {status}); check "
                       "OPENAI_API_KEY", False, status)
    if status == 404:
        return Failure("model", f"model {model!r} was not found at {where} (HTTP 404); check "
                       "WRITER_MODEL or the base URL", False, status)
    if code == "insufficient_quota" or "insufficient_quota" in lowered or "insufficient balance" in lowered:
        return Failure("quota", f"the account at {where} has no quota or balance left; top it up "
                       "or switch provider", False, status)
    if code in {"context_length_exceeded", "string_above_max_length"} or "maximum context length" in lowered:
        return Failure("too_long", f"the prompt is too long for {model}; shorten the topic or "
                       "target length, or use a model with a longer context", False, status)
    if status == 429:
        return Failure("rate_limit", f"rate limited by {where} (HTTP 429)", True, status,
                       retry_after(getattr(exc, "response", None)))
    if status in (408, 409) or (status is not None and status >= 500):
        return Failure("server", f"{where} had a server error (HTTP {status}); try again later",
                       True, status, retry_after(getattr(exc, "response", None)))
    if status is not None:
        detail = getattr(exc, "message", "") or str(exc)
        return Failure("bad_request", f"{where} refused the request (HTTP {status}): "
                       f"{_one_line(detail)}", False, status)
    if isinstance(exc, (openai.APIError, ValueError, OSError)) or "json" in lowered:
        return Failure("stream", f"the stream from {where} broke: {_one_line(str(exc))}", True)
    return Failure("other", f"{type(exc).__name__}: {_one_line(str(exc))}", False)


def retry_after(response) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    if response is None:
        return None
    headers = response.headers
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    import email.utils
    import time

    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
