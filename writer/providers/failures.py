"""Provider failures as one-line messages that say what to do."""
from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlparse

from writer import logs
from writer.errors import UserError
from writer.kinds import ErrorKind


class NotTheAPI(Exception):
    """The base URL answered 200 with something that is not the API (a web page)."""


class LocalModelError(UserError, RuntimeError):
    """The local model cannot be used; the message says how to fix it."""

    key = "user_errors.local_model"


class BrokenStream(Exception):
    """The stream stopped after some text without saying it had finished."""


class EmptyAnswer(Exception):
    """The stream ended cleanly but carried no text and no finish reason."""

    def __init__(self, message: str, *, continuing: bool = False):
        super().__init__(message)
        self.continuing = continuing  # asked to continue an interrupted article


@dataclass(frozen=True)
class Failure:
    kind: ErrorKind
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


def _is_api_error_body(exc) -> bool:
    """An OpenAI-style error object ({"error": {...}}), as opposed to a web server's
    own 404 such as FastAPI's {"detail": "Not Found"} at a URL that is not the API."""
    body = getattr(exc, "body", None)  # the SDK keeps the inner "error" object here
    return isinstance(body, dict) and ("error" in body or "message" in body)


def _ends_in_v1(base_url: str | None) -> bool:
    if not base_url:
        return True  # the SDK's default, https://api.openai.com/v1
    return urlparse(base_url).path.rstrip("/").endswith("/v1")


def classify(exc: BaseException, base_url: str | None, model: str) -> Failure:
    """What went wrong, as a Failure whose message says what to do. Unexpected
    exceptions come back as ErrorKind.OTHER with only the exception's type: their
    detail belongs in the log file (writer/logs.py), not in the row or the UI.

    The message is redacted (`logs.redact`): the address is shown without its user,
    password or token, and a provider's text that echoes the request's key or
    Authorization header (relays do) never reaches a row, a report or a screen."""
    failure = _classify(exc, base_url, model)
    return replace(failure, message=logs.redact(failure.message))


def _classify(exc: BaseException, base_url: str | None, model: str) -> Failure:
    import openai

    where = base_url or "https://api.openai.com/v1"
    status = getattr(exc, "status_code", None)
    code = _error_code(exc).lower()
    text = _body_text(exc)
    lowered = f"{exc} {text} {getattr(exc, 'body', '') or ''}".lower()
    url_hint = "" if _ends_in_v1(base_url) else "; OpenAI-compatible URLs usually end in /v1"

    if isinstance(exc, LocalModelError):
        return Failure(ErrorKind.LOCAL, str(exc), False)
    if isinstance(exc, BrokenStream):
        return Failure(ErrorKind.STREAM, f"the stream from {where} broke off", True)
    if isinstance(exc, EmptyAnswer):
        if exc.continuing:
            return Failure(ErrorKind.STREAM, f"{where} stopped sending before the article was "
                           "finished", True)
        return Failure(ErrorKind.EMPTY, f"{where} ended the answer without any text; check the "
                       "model name and try again", True)
    if isinstance(exc, openai.APITimeoutError):
        return Failure(ErrorKind.TIMEOUT, f"{where} did not answer in time; try again or raise "
                       "WRITER_REQUEST_TIMEOUT", True)
    if isinstance(exc, openai.APIConnectionError):
        return Failure(ErrorKind.CONNECT, f"cannot connect to {where}; check OPENAI_BASE_URL and "
                       "your network or proxy", True)
    if isinstance(exc, NotTheAPI) or "<html" in text.lower() or "<!doctype" in text.lower():
        advice = url_hint or "; check that it is the provider's API address"
        return Failure(ErrorKind.HTML, f"{where} answered with a web page instead of the API"
                       f"{advice}", False, status)
    if status in (401, 403):
        return Failure(ErrorKind.AUTH, f"the API key was rejected by {where} (HTTP {status}); "
                       "check OPENAI_API_KEY", False, status)
    if status == 404 and (not _is_api_error_body(exc) or
                          ("invalid url" in lowered and "model" not in lowered)):
        # Not the API's own "model not found" (a web server's 404, or OpenAI's
        # "Invalid URL (POST /chat/completions)"): the URL itself leads nowhere.
        advice = url_hint or "; check OPENAI_BASE_URL"
        return Failure(ErrorKind.URL, f"{where} has no chat completions API (HTTP 404){advice}",
                       False, status)
    if status == 404:
        return Failure(ErrorKind.MODEL, f"model {model!r} was not found at {where} (HTTP 404); "
                       "check WRITER_MODEL or the base URL", False, status)
    if code == "insufficient_quota" or "insufficient_quota" in lowered or "insufficient balance" in lowered:
        return Failure(ErrorKind.QUOTA, f"the account at {where} has no quota or balance left; "
                       "top it up or switch provider", False, status)
    if code in {"context_length_exceeded", "string_above_max_length"} or "maximum context length" in lowered:
        return Failure(ErrorKind.TOO_LONG, f"the prompt is too long for {model}; shorten the topic "
                       "or target length, or use a model with a longer context", False, status)
    if status == 429:
        return Failure(ErrorKind.RATE_LIMIT, f"rate limited by {where} (HTTP 429)", True, status,
                       retry_after(getattr(exc, "response", None)))
    if status in (408, 409) or (status is not None and status >= 500):
        return Failure(ErrorKind.SERVER, f"{where} had a server error (HTTP {status}); try again "
                       "later", True, status, retry_after(getattr(exc, "response", None)))
    if status is not None:
        detail = getattr(exc, "message", "") or str(exc)
        return Failure(ErrorKind.BAD_REQUEST, f"{where} refused the request (HTTP {status}): "
                       f"{_one_line(detail)}", False, status)
    if isinstance(exc, (openai.APIError, ValueError, OSError)) or "json" in lowered:
        return Failure(ErrorKind.STREAM, f"the stream from {where} broke: {_one_line(str(exc))}",
                       True)
    return Failure(ErrorKind.OTHER, f"unexpected {type(exc).__name__}", False)


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
