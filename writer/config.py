"""Settings from the environment or a `.env` file, read in one place into one object.

Every setting is documented in `.env.example`. `load_settings()` is cheap and is
called on every page run (and once by a CLI command), so a changed environment takes
effect without restart; `current_settings()` is the last one read in this process.
This module is the only code in `writer/` that reads `os.environ`: what else needs the
environment (a provider's key variable, the secret values logs redact) reads the
snapshot `Settings.environ`.
"""
from __future__ import annotations

import getpass
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import load_dotenv

from writer import logs
from writer.access import AccountError, check_name
from writer.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "gpt-4o-mini"  # OpenAI's; a custom OPENAI_BASE_URL without WRITER_MODEL asks /models
DEFAULT_HEARTBEAT_S = 5.0
# Environment variables whose values are secrets (DEEPSEEK_API_KEY, DASHSCOPE_API_KEY…).
SECRET_NAME = re.compile(r"(?:_KEY|_SECRET|_TOKEN|_PASSWORD)$|^OPENAI_API_KEY$", re.IGNORECASE)
MIN_SECRET_CHARS = 8
AUTH_MODES = ("none", "accounts", "oidc")  # WRITER_AUTH (docs/settings.md#people-and-sign-in)
HISTORY_SCOPES = ("own", "team")          # WRITER_HISTORY_SCOPE
OIDC_DEFAULT_ROLES = ("writer", "none")   # WRITER_OIDC_DEFAULT_ROLE
DEFAULT_USER = "local"  # WRITER_USER when the OS login name cannot be an account's name
MAX_SESSION_HOURS = 24 * 366

_dotenv_read: set[str] = set()  # .env files already read into the environment
_lock = threading.Lock()
_current: "Settings | None" = None


class SettingsError(UserError, ValueError):
    """A setting has a value that cannot be used; the message says which and why."""

    key = "user_errors.settings"


def _env(name: str, default: str = "") -> str:
    # An empty value counts as unset (the openai SDK would use "" as a base URL).
    value = os.environ.get(name, "").strip()
    return value or default


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def _env_number(name: str, default: float, *, kind=float, minimum: float = 0):
    raw = _env(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    api_key: str = field(repr=False)  # never in a repr, a log line or a row
    base_url: str | None
    model: str
    db_path: Path  # WRITER_DB: the SQLite file; its folder holds writer.log and unsaved/
    ui_language: str
    stream_usage: bool
    prices_file: Path | None
    request_timeout_s: float
    max_tokens_param: str
    max_output_tokens: int
    max_retries: int
    retry_max_wait_s: float
    stream_idle_timeout_s: float
    max_resumes: int
    fallback_after: int
    providers_file: Path | None
    model_set: bool = True  # WRITER_MODEL was given (else a custom base URL is asked)
    fallback_window_s: float = 300.0
    max_streams: int = 32  # articles written at once per provider (the local model: 1)
    timezone: str = ""  # IANA name; pages use the browser's zone first (writer/io/timezones.py)
    provider_display_name: str = ""  # WRITER_PROVIDER_NAME: the configured provider's name
    heartbeat_s: float = DEFAULT_HEARTBEAT_S  # WRITER_HEARTBEAT_S: a running row's beat
    local_model_path: Path | None = None  # WRITER_LOCAL_MODEL_PATH: another GGUF file
    # A batch's 429s (shared backoff): how many one row waits out, and for how long in all.
    throttle_max_retries: int = 10  # WRITER_THROTTLE_MAX_RETRIES
    throttle_max_wait_s: float = 900.0  # WRITER_THROTTLE_MAX_WAIT
    # People (writer/access.py): who may sign in and how, and who the CLI acts as.
    auth: str = "none"  # WRITER_AUTH: none (loopback only) | accounts | oidc
    user: str = DEFAULT_USER  # WRITER_USER: the CLI's actor; the author with WRITER_AUTH=none
    history_scope: str = "own"  # WRITER_HISTORY_SCOPE: what a writer's History shows
    session_hours: float = 12.0  # WRITER_SESSION_HOURS: a sign-in lasts this long
    oidc_default_role: str = "writer"  # WRITER_OIDC_DEFAULT_ROLE: an OIDC person with no account
    # WRITER_DATABASE_URL: postgresql://… puts everything there instead of WRITER_DB.
    database_url: str = field(default="", repr=False)  # may hold a password
    # The environment as read (with `.env`), for what names a variable at run time (a
    # providers file's api_key_env). Never in a repr: it holds keys.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def database(self) -> str | Path:
        """Where the data is: the PostgreSQL URL (WRITER_DATABASE_URL) when set, else the
        SQLite file (WRITER_DB). What `Store(...)` and the registry of live runs take."""
        return self.database_url or self.db_path

    @property
    def database_shown(self) -> str:
        """`database` as a page may show it: a URL without its password."""
        return logs.redact_url(self.database_url) if self.database_url else str(self.db_path)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    def env(self, name: str) -> str:
        """A variable of the environment read with these settings ("" when unset)."""
        return (self.environ.get(name) or "").strip()

    def secret_values(self) -> tuple[str, ...]:
        """Values of variables named like secrets (`*_KEY`, `*_TOKEN`…), for redaction."""
        return tuple(sorted({value.strip() for name, value in self.environ.items()
                             if SECRET_NAME.search(name)
                             and len(value.strip()) >= MIN_SECRET_CHARS}))


def _read_dotenv(dotenv_path: Path | None) -> None:
    """`.env` (the given file, else the working directory's, else the project's) fills
    gaps in the environment but never overrides it; each file is read once."""
    if os.environ.get("WRITER_NO_DOTENV") and dotenv_path is None:
        return
    for candidate in [dotenv_path, Path.cwd() / ".env", PROJECT_ROOT / ".env"]:
        if candidate and Path(candidate).is_file():
            key = str(Path(candidate).resolve())
            with _lock:
                if key not in _dotenv_read:
                    load_dotenv(candidate, override=False)
                    _dotenv_read.add(key)
            return


def current_settings() -> Settings:
    """The settings last read in this process (read now if none were)."""
    return _current or load_settings()


def load_settings(dotenv_path: Path | None = None) -> Settings:
    """Read settings; `.env` in the working directory (or project root) fills gaps
    but never overrides the real environment. A `dotenv_path` given is read even
    with WRITER_NO_DOTENV set."""
    global _current
    _read_dotenv(dotenv_path)

    ui_language = _env("WRITER_UI_LANGUAGE", "zh").lower()
    if ui_language not in {"zh", "en"}:
        raise SettingsError(f"WRITER_UI_LANGUAGE={ui_language!r}: use zh or en")
    max_tokens_param = _env("WRITER_MAX_TOKENS_PARAM", "max_tokens")
    if max_tokens_param not in {"max_tokens", "max_completion_tokens"}:
        raise SettingsError(
            f"WRITER_MAX_TOKENS_PARAM={max_tokens_param!r}: use max_tokens or max_completion_tokens"
        )
    timezone = _env("WRITER_TIMEZONE")
    if timezone and not _is_zone(timezone):
        raise SettingsError(f"WRITER_TIMEZONE={timezone!r} is not a time zone; use a name "
                            "such as Asia/Shanghai or UTC")
    prices = _env("WRITER_PRICES_FILE")
    providers_file = _env("WRITER_PROVIDERS_FILE")
    local_model = _env("WRITER_LOCAL_MODEL_PATH")
    settings = Settings(
        api_key=_env("OPENAI_API_KEY"),
        base_url=_env("OPENAI_BASE_URL") or None,
        model=_env("WRITER_MODEL", DEFAULT_MODEL),
        model_set=bool(_env("WRITER_MODEL")),
        db_path=Path(_env("WRITER_DB", "data/writer.db")),
        database_url=_database_url(),
        ui_language=ui_language,
        stream_usage=_env_bool("WRITER_STREAM_USAGE", True),
        prices_file=Path(prices) if prices else None,
        request_timeout_s=_env_number("WRITER_REQUEST_TIMEOUT", 60.0, minimum=1),
        max_tokens_param=max_tokens_param,
        max_output_tokens=_env_number("WRITER_MAX_OUTPUT_TOKENS", 8192, kind=int, minimum=64),
        max_retries=_env_number("WRITER_MAX_RETRIES", 4, kind=int),
        retry_max_wait_s=_env_number("WRITER_RETRY_MAX_WAIT", 60.0),
        throttle_max_retries=_env_number("WRITER_THROTTLE_MAX_RETRIES", 10, kind=int),
        throttle_max_wait_s=_env_number("WRITER_THROTTLE_MAX_WAIT", 900.0),
        stream_idle_timeout_s=_env_number("WRITER_STREAM_IDLE_TIMEOUT", 30.0, minimum=0.1),
        max_resumes=_env_number("WRITER_MAX_RESUMES", 3, kind=int),
        fallback_after=_env_number("WRITER_FALLBACK_AFTER", 2, kind=int, minimum=1),
        fallback_window_s=_env_number("WRITER_FALLBACK_WINDOW", 300.0),
        providers_file=Path(providers_file) if providers_file else None,
        max_streams=_env_number("WRITER_MAX_STREAMS", 32, kind=int, minimum=1),
        timezone=timezone,
        provider_display_name=_env("WRITER_PROVIDER_NAME"),
        heartbeat_s=_env_number("WRITER_HEARTBEAT_S", DEFAULT_HEARTBEAT_S, minimum=0.01),
        local_model_path=Path(local_model) if local_model else None,
        auth=_env_choice("WRITER_AUTH", AUTH_MODES),
        user=_user(),
        history_scope=_env_choice("WRITER_HISTORY_SCOPE", HISTORY_SCOPES),
        session_hours=_session_hours(),
        oidc_default_role=_env_choice("WRITER_OIDC_DEFAULT_ROLE", OIDC_DEFAULT_ROLES),
        environ=MappingProxyType(dict(os.environ)),
    )
    # Known to every redaction from now on (writer/logs.py): keys and the URL's credentials.
    logs.remember_secrets([*settings.secret_values(), *logs.url_secrets(settings.base_url)])
    _current = settings
    return settings


def _database_url() -> str:
    url = _env("WRITER_DATABASE_URL")
    if url and url.split(":", 1)[0] not in ("postgresql", "postgres"):
        raise SettingsError("WRITER_DATABASE_URL must be a PostgreSQL URL such as "
                            "postgresql://writer:PASSWORD@db.example.com:5432/writer; leave it "
                            "unset to keep the data in the SQLite file WRITER_DB")
    return url


def _env_choice(name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (any case); the first when unset."""
    value = _env(name, choices[0]).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: use {' or '.join(choices)}")
    return value


def _user() -> str:
    """WRITER_USER, else the OS login name, else "local" (a login name that cannot be an
    account's name, e.g. with a space, falls back too; a WRITER_USER that cannot is refused)."""
    name = _env("WRITER_USER")
    if name:
        try:
            return check_name(name)
        except AccountError as exc:
            raise SettingsError(f"WRITER_USER: {exc}") from None
    try:
        return check_name(getpass.getuser())
    except (AccountError, OSError, KeyError, ImportError):  # no login name in a container
        return DEFAULT_USER


def _session_hours() -> float:
    hours = _env_number("WRITER_SESSION_HOURS", 12.0)
    if not 0 < hours <= MAX_SESSION_HOURS:
        raise SettingsError(f"WRITER_SESSION_HOURS={hours:g}: use more than 0 and at most "
                            f"{MAX_SESSION_HOURS} (a year)")
    return hours


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
