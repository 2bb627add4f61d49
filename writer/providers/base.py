"""Where text comes from: provider settings and one cached client per provider.

A backend turns chat messages into a stream of `Chunk`s; the engine (engine.py)
is the only caller. Remote providers go through the openai SDK (no hand-written
SSE parsing).
"""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import threading
import time
import tomllib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import httpcore2
import openai  # imported up front so its ~0.3 s import never counts as time to first token
from httpcore2._backends.sync import SyncStream

from writer.config import Settings
from writer.providers.failures import NotTheAPI


@dataclass(frozen=True)
class Chunk:
    text: str = ""
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None  # (input_tokens, output_tokens) as reported
    waiting: bool = False  # queued behind another generation (the local model)


@dataclass(frozen=True)
class Provider:
    name: str
    model: str
    kind: str = "openai"  # "openai" (any OpenAI-compatible endpoint) or "local"
    base_url: str | None = None
    api_key: str = field(default="", repr=False)  # never in a repr, a log line or a row
    stream_usage: bool = True  # send stream_options={"include_usage": true}
    max_tokens_param: str = "max_tokens"
    timeout_s: float = 60.0
    idle_timeout_s: float = 30.0  # no byte for this long = a broken stream
    languages: tuple[str, ...] | None = None  # article languages it can write; None = any
    models: tuple[str, ...] = ()  # models a providers-file entry offers (empty = any)
    # No model was configured for a custom base URL: ask its /models once (resolve_model).
    discover_model: bool = False
    # Articles written at once through it (writer/runs/workers.py queues the rest).
    max_streams: int = 32
    display_name: str = ""  # what people call it (WRITER_PROVIDER_NAME); `name` is the key

    @property
    def title(self) -> str:
        """The provider as people call it: the configured display name, a known
        service's name (DeepSeek, OpenAI …), else the address's host (and port)."""
        if self.display_name:
            return self.display_name
        if self.base_url:
            parsed = urlparse(self.base_url)
            host = (parsed.hostname or "").lower()
            for suffix, known in KNOWN_SERVICES.items():
                if host == suffix or host.endswith("." + suffix):
                    return known
            return f"{host}:{parsed.port}" if parsed.port else host or self.name
        return KNOWN_SERVICES.get(self.name, self.name)

    def label(self) -> str:
        return f"{self.title} · {self.model or '?'}"


# Hosts of well-known OpenAI-compatible services, by the name their users know.
KNOWN_SERVICES = {
    "openai": "OpenAI", "api.openai.com": "OpenAI", "deepseek.com": "DeepSeek",
    "dashscope.aliyuncs.com": "Qwen (DashScope)", "bigmodel.cn": "Zhipu GLM",
    "moonshot.cn": "Moonshot (Kimi)", "volces.com": "Doubao (Volcengine Ark)",
    "siliconflow.cn": "SiliconFlow", "openrouter.ai": "OpenRouter",
    "hunyuan.cloud.tencent.com": "Tencent Hunyuan", "baichuan-ai.com": "Baichuan",
    "minimax.chat": "MiniMax", "minimaxi.com": "MiniMax", "groq.com": "Groq",
    "together.xyz": "Together AI", "mistral.ai": "Mistral",
}


def provider_name(base_url: str | None) -> str:
    if not base_url:
        return "openai"
    host = urlparse(base_url).hostname or base_url
    return host.removeprefix("api.")


LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"


class ProviderChoiceError(ValueError):
    pass


def local_provider() -> Provider:
    """The bundled demo model (local_model.py): English only, no key, no network."""
    return Provider(name="local", model=LOCAL_MODEL_NAME, kind="local", languages=("en",),
                    max_streams=1)  # one generation at a time on the CPU


def _file_providers(settings: Settings) -> list[Provider]:
    """Providers from WRITER_PROVIDERS_FILE, in order; those whose key variable is
    unset are left out (a key-less provider cannot serve)."""
    path = settings.providers_file
    if path is None:
        return []
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProviderChoiceError(f"providers file {path}: {exc}") from None
    found = []
    for i, entry in enumerate(data.get("providers") or []):
        try:
            name, base_url, key_env = entry["name"], entry["base_url"], entry["api_key_env"]
        except (KeyError, TypeError):
            raise ProviderChoiceError(f"providers file {path}: entry {i + 1} needs name, base_url "
                                      "and api_key_env") from None
        models = list(entry.get("models") or [])
        key = os.environ.get(key_env, "").strip()
        if not key:
            continue
        discover = not models and not settings.model_set
        found.append(Provider(
            name=name, display_name=str(entry.get("display_name") or name), model=models[0] if models else "" if discover else settings.model,
            discover_model=discover, base_url=base_url,
            api_key=key, stream_usage=bool(entry.get("stream_options", settings.stream_usage)),
            max_tokens_param=entry.get("max_tokens_param", settings.max_tokens_param),
            timeout_s=settings.request_timeout_s, idle_timeout_s=settings.stream_idle_timeout_s,
            models=tuple(models), max_streams=_max_streams(entry, settings, path)))
    return found


def _max_streams(entry: dict, settings: Settings, path) -> int:
    value = entry.get("max_streams", settings.max_streams)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProviderChoiceError(f"providers file {path}: {entry['name']}: max_streams must be "
                                  f"a whole number of at least 1, not {value!r}")
    return value


def failover_chain(settings: Settings, first: Provider) -> list[Provider]:
    """`first`, then every other configured remote provider in order, each asked
    for the same model when it lists it (or lists none), else its own first model.
    The local model is never a silent stand-in for a remote one."""
    if first.kind == "local":
        return [first]
    chain = [first]
    for other in ([provider_from_settings(settings)] if settings.has_api_key else []) + \
            _file_providers(settings):
        if other.name == first.name or any(p.name == other.name for p in chain):
            continue
        if first.model and (not other.models or first.model in other.models):
            other = replace(other, model=first.model, discover_model=False)
        chain.append(other)
    return chain


def available_providers(settings: Settings, model: str | None = None) -> list[Provider]:
    """What the user can pick, the default first: the configured provider when a
    key is set, the providers file's entries that have keys, and the local model."""
    found = [provider_from_settings(settings, model)] if settings.has_api_key else []
    found += [p for p in _file_providers(settings) if all(p.name != f.name for f in found)]
    return found + [local_provider()]


def choose_provider(settings: Settings, name: str | None = None,
                    model: str | None = None) -> Provider:
    """By name, or the default: the configured provider if it has a key, else local."""
    options = available_providers(settings, model)
    if not name:
        return options[0]
    for provider in options:
        if provider.name == name:
            if model is None or provider.kind == "local":
                return provider
            return replace(provider, model=model, discover_model=False)
    names = ", ".join(p.name for p in options)
    hint = "" if settings.has_api_key else " (set OPENAI_API_KEY to use a remote provider)"
    raise ProviderChoiceError(f"unknown provider {name!r}; available: {names}{hint}")


def provider_from_settings(settings: Settings, model: str | None = None) -> Provider:
    # A custom base URL without WRITER_MODEL is not OpenAI: never record and price its
    # answers as the default model; ask the server which model it serves instead.
    discover = not model and not settings.model_set and bool(settings.base_url)
    return Provider(
        name=provider_name(settings.base_url),
        display_name=settings.provider_display_name,
        model="" if discover else model or settings.model,
        discover_model=discover,
        base_url=settings.base_url,
        api_key=settings.api_key,
        stream_usage=settings.stream_usage,
        max_tokens_param=settings.max_tokens_param,
        timeout_s=settings.request_timeout_s,
        idle_timeout_s=settings.stream_idle_timeout_s,
        max_streams=settings.max_streams,
    )


# -- Stop that works in every state ----------------------------------------------------
# A Stop arrives on another thread while the request's thread is blocked somewhere in
# the HTTP stack: resolving, connecting, sending, waiting for headers, reading a
# stream, or reading a whole non-streamed answer. The client's network backend tracks
# the sockets each request uses, so `StopSwitch.trip()` can shut them down from any
# thread: the blocked call returns at once and the provider sees the disconnect.

class StopSwitch:
    """The sockets one request is using, and whether it has been stopped."""

    def __init__(self):
        self.tripped = False
        self._lock = threading.Lock()
        self._streams: set[_TrackedStream] = set()

    def track(self, stream: "_TrackedStream") -> None:
        with self._lock:
            self._streams.add(stream)
            tripped = self.tripped
        if tripped:
            stream.shutdown()

    def untrack(self, stream: "_TrackedStream") -> None:
        with self._lock:
            self._streams.discard(stream)

    def trip(self) -> None:
        with self._lock:
            self.tripped = True
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()

    def run(self, fn, *args):
        """Call `fn` with this switch owning the connections it uses on this thread."""
        previous = getattr(_current, "switch", None)
        _current.switch = self
        try:
            return fn(*args)
        finally:
            _current.switch = previous


_current = threading.local()  # the StopSwitch of the request this thread is making
_POLL_S = 0.05


def _stopped() -> bool:
    switch = getattr(_current, "switch", None)
    return switch is not None and switch.tripped


class _TrackedStream(httpcore2.NetworkStream):
    """httpcore's socket stream, owned by whichever request last used it."""

    def __init__(self, inner, fd: int):
        self._inner, self._fd = inner, fd
        self._owner: StopSwitch | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._claim()

    def _claim(self) -> None:
        # A pooled keep-alive connection is reused by later requests: each write/read
        # hands it to the request running on this thread.
        switch = getattr(_current, "switch", None)
        if switch is not None and switch is not self._owner:
            if self._owner is not None:
                self._owner.untrack(self)
            self._owner = switch
            switch.track(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._claim()
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._claim()
        self._inner.write(buffer, timeout)

    def _retire(self) -> None:
        with self._lock:
            self._closed = True
        if self._owner is not None:
            self._owner.untrack(self)

    def close(self) -> None:
        self._retire()
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        self._retire()  # the TLS stream owns the same descriptor from now on
        return _TrackedStream(tls, self._fd)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        """From any thread: end the connection so a blocked read or write returns."""
        with self._lock:  # never touch a descriptor after close() released it
            if self._closed:
                return
            sock = socket.socket(fileno=self._fd)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected yet, or already gone
            finally:
                sock.detach()


class _StoppableBackend(httpcore2.SyncBackend):
    """Connects without blocking for longer than `_POLL_S` at a time, so a Stop during
    DNS resolution or a TCP connect that hangs is honoured at once."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        last_error: OSError | None = None
        for family, kind, proto, _, address in _resolve(host, port, deadline):
            sock = socket.socket(family, kind, proto)
            try:
                if local_address:
                    sock.bind((local_address, 0))
                sock.setblocking(False)
                error = sock.connect_ex(address)
                while error in (115, 36, 11) and not _stopped():  # EINPROGRESS/EALREADY/EAGAIN
                    wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
                    if wait <= 0:
                        raise httpcore2.ConnectTimeout(f"connecting to {host}:{port} timed out")
                    if select.select([], [sock], [], wait)[1]:
                        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if _stopped():
                    raise httpcore2.ConnectError("stopped while connecting")
                if error:
                    raise OSError(error, os.strerror(error))
                sock.setblocking(True)
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except httpcore2.ConnectError:
                sock.close()
                raise
            except httpcore2.ConnectTimeout:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            return _TrackedStream(SyncStream(sock), sock.fileno())
        raise httpcore2.ConnectError(str(last_error or f"cannot connect to {host}:{port}"))


def _resolve(host: str, port: int, deadline: float | None) -> list:
    """getaddrinfo cannot be interrupted: run it aside and wait for it in short slices."""
    try:
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError:
        pass
    found: dict = {}

    def lookup():
        try:
            found["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    worker = threading.Thread(target=lookup, name="writer-dns", daemon=True)
    worker.start()
    while worker.is_alive():
        if _stopped():
            raise httpcore2.ConnectError("stopped while resolving")
        if deadline is not None and time.monotonic() > deadline:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out")
        worker.join(_POLL_S)
    if "error" in found:
        raise httpcore2.ConnectError(f"cannot resolve {host}: {found['error']}")
    return found["infos"]


def _http_client(timeout):
    """The SDK's default HTTP client (proxies from the environment included), with
    every connection pool opening its connections through `_StoppableBackend`."""
    http = openai.DefaultHttpxClient(timeout=timeout)
    # httpx2 builds its httpcore pools without a way to pass a network backend; the
    # pools create each connection with the backend they hold, so swapping it here
    # covers every later connection (tests/runs/test_stop.py fails if an upgrade of the
    # pinned httpx2/httpcore2 changes this).
    backend = _StoppableBackend()
    for transport in [http._transport, *http._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        if pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = backend
    return http


@lru_cache(maxsize=16)
def _served_models(base_url: str | None, api_key: str, timeout_s: float) -> tuple[str, ...]:
    client = openai_client(base_url, api_key, timeout_s, timeout_s)
    return tuple(sorted(model.id for model in client.models.list()))


def resolve_model(provider: Provider) -> Provider:
    """The provider with a model to ask for: its own, or, when none was configured for a
    custom base URL, the only model its `/models` lists (asked once per process)."""
    if not provider.discover_model:
        return provider
    where = provider.base_url or "the provider"
    try:
        models = _served_models(provider.base_url, provider.api_key, min(provider.timeout_s, 15.0))
    except Exception as exc:  # any failure here means: we cannot tell, so say what to set
        detail = " ".join(str(exc).split())[:160]
        raise ProviderChoiceError(f"WRITER_MODEL is not set and the model list at {where}/models "
                                  f"could not be read ({type(exc).__name__}: {detail}); set "
                                  "WRITER_MODEL to the model to use") from None
    if len(models) == 1:
        return replace(provider, model=models[0], discover_model=False)
    if not models:
        raise ProviderChoiceError(f"WRITER_MODEL is not set and {where} lists no models; set "
                                  "WRITER_MODEL to the model to use")
    shown = ", ".join(models[:6]) + (", …" if len(models) > 6 else "")
    raise ProviderChoiceError(f"WRITER_MODEL is not set and {where} serves {len(models)} models "
                              f"({shown}); set WRITER_MODEL to one of them")


@lru_cache(maxsize=1)
def _build_response_models() -> None:
    """The SDK's response models build their pydantic validators lazily, on the first
    chunk of the first answer: build them once with the client instead (≈10 ms), off
    the streaming path, where a Ctrl-C landing mid-build also surfaced as a pydantic
    SchemaError instead of an interrupt."""
    from openai.types import model as model_types
    from openai.types.chat import chat_completion, chat_completion_chunk

    for module in (chat_completion_chunk, chat_completion, model_types):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, openai.BaseModel) and \
                    obj is not openai.BaseModel and not obj.__pydantic_complete__:
                obj.model_rebuild()


@lru_cache(maxsize=16)
def openai_client(base_url: str | None, api_key: str, timeout_s: float, idle_timeout_s: float):
    """One client (and connection pool) per provider per process, not per click.
    The read timeout is the stream's idle timeout: no byte for that long = broken."""
    _build_response_models()
    timeout = openai.Timeout(timeout_s, connect=min(timeout_s, 15.0), read=idle_timeout_s)
    # Retries live in the engine, where they are visible to the user and the row.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "missing", max_retries=0,
                         timeout=timeout, http_client=_http_client(timeout))


@lru_cache(maxsize=16)
def warm_client(provider: Provider) -> None:
    """Build the provider's client (SSL context, pool, the SDK's response models:
    ≈90 ms) on a background thread when the app opens, not on the first click."""
    if provider.kind != "openai":
        return
    threading.Thread(target=openai_client, name="warm-client", daemon=True,
                     args=(provider.base_url, provider.api_key, provider.timeout_s,
                           provider.idle_timeout_s)).start()


class OpenAISource:
    """One chat completion from an OpenAI-compatible endpoint, as Chunks.

    `close()` ends it from the consuming thread; `abort()` may be called from any
    other thread (Stop) and shuts down the request's sockets in whatever state it is
    (connecting, waiting for headers, streaming, reading a non-streamed answer), so
    the blocked call returns at once and the provider sees the disconnect."""

    def __init__(self, provider: Provider, messages: list[dict], max_tokens: int,
                 stream: bool = True):
        self.provider, self.messages, self.max_tokens, self.stream = (
            provider, messages, max_tokens, stream)
        self.switch = StopSwitch()
        self._sdk_stream = None

    def __iter__(self) -> Iterator[Chunk]:
        p, run = self.provider, self.switch.run
        client = openai_client(p.base_url, p.api_key, p.timeout_s, p.idle_timeout_s)
        kwargs = {p.max_tokens_param: self.max_tokens}
        if not self.stream:
            # A whole article in one response can take minutes: no idle timeout here.
            completion = run(lambda: client.chat.completions.create(
                model=p.model, messages=self.messages, stream=False,
                timeout=openai.Timeout(max(600.0, p.timeout_s), connect=15.0), **kwargs))
            if isinstance(completion, str) or not getattr(completion, "choices", None):
                raise NotTheAPI("the answer was not a chat completion")
            choice = completion.choices[0]
            usage = completion.usage
            yield Chunk(text=choice.message.content or "", finish_reason=choice.finish_reason,
                        usage=(usage.prompt_tokens, usage.completion_tokens) if usage else None)
            return
        if p.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        self._sdk_stream = run(lambda: client.chat.completions.create(
            model=p.model, messages=self.messages, stream=True, **kwargs))
        content_type = self._sdk_stream.response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream") and "json" not in content_type:
            raise NotTheAPI(f"the answer was {content_type or 'of no content type'}")
        events = iter(self._sdk_stream)
        while (event := run(next, events, None)) is not None:
            usage = None
            if getattr(event, "usage", None) is not None:
                usage = (event.usage.prompt_tokens or 0, event.usage.completion_tokens or 0)
            if not event.choices:  # the usage chunk has choices == []
                if usage:
                    yield Chunk(usage=usage)
                continue
            choice = event.choices[0]
            text = (choice.delta.content or "") if choice.delta else ""
            if text or choice.finish_reason or usage:
                yield Chunk(text=text, finish_reason=choice.finish_reason, usage=usage)

    def close(self) -> None:
        if self._sdk_stream is not None:
            self.switch.run(self._sdk_stream.close)

    def abort(self) -> None:
        self.switch.trip()


class LocalSource:
    """The bundled model (local_model.py) behind the same interface."""

    def __init__(self, provider: Provider, messages: list[dict], max_tokens: int,
                 stream: bool = True, keep_going: bool = False):
        from writer.providers import local as local_model

        self._usage: dict = {}
        self._chunks = local_model.chunks(provider, messages, max_tokens, self._usage, keep_going)
        self.aborted = False

    def usage(self) -> tuple[int, int] | None:
        """Tokens used so far, by the model's own tokenizer (also after an early close)."""
        return self._usage.get("tokens")

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self._chunks:
            if self.aborted:
                return
            yield chunk

    def close(self) -> None:
        self._chunks.close()

    def abort(self) -> None:
        self.aborted = True  # checked between tokens (≈10 ms apart)


def open_source(provider: Provider, messages: list[dict], max_tokens: int, stream: bool = True,
                keep_going: bool = False):
    """`keep_going`: length control is on. The local model is then not allowed to end its
    turn early (the engine ends the article on a sentence at its target); remote
    providers are asked for the rest instead (their token ids for "end" differ)."""
    if provider.kind == "local":
        return LocalSource(provider, messages, max_tokens, stream, keep_going)
    return OpenAISource(provider, messages, max_tokens, stream)
