"""OpenAI-compatible endpoints through the openai SDK (no hand-written SSE parsing):
one cached client per provider, and a Stop that closes the request's socket at once
in every state.

The stoppable transport reaches into httpx2/httpcore2 internals (the pool's network
backend, httpcore2's socket stream): requirements.txt pins both packages, and
tests/runs/test_stop.py fails if an upgrade changes what this relies on.
"""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import threading
import time
from functools import lru_cache
from typing import Iterator
from urllib.parse import parse_qsl

import httpcore2
import openai  # imported up front so its ~0.3 s import never counts as time to first token
from httpcore2._backends.sync import SyncStream

from writer.providers.base import Chunk, Provider
from writer.providers.failures import NotTheAPI

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
    # A relay that takes its token in the query (`…/v1?token=…`): the SDK would append the
    # path after the query, so the query goes with every request instead.
    query = None
    if base_url and "?" in base_url:
        base_url, _, raw_query = base_url.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True)) or None
    # Retries live in the engine, where they are visible to the user and the row.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "missing", max_retries=0,
                         timeout=timeout, http_client=_http_client(timeout), default_query=query)


def _warm_request_path(provider: Provider) -> None:
    """Build the client, then everything its first chat request would otherwise do once
    per process on the first click (≈25 ms, more on a busy machine): import the SDK's
    chat resources (`client.chat` is lazy) and the IDNA codec, fill the SDK's
    parameter-transform caches and build (never send) one request."""
    client = openai_client(provider.base_url, provider.api_key, provider.timeout_s,
                           provider.idle_timeout_s)
    completions = client.chat.completions
    "localhost".encode("idna")  # the codec the address lookup loads on first use
    try:  # the SDK's internals: a warm-up only, so a change there must not break the app
        from openai._models import FinalRequestOptions
        from openai._utils import maybe_transform
        from openai.types.chat import completion_create_params

        body = maybe_transform(
            {"model": provider.model or "m", "messages": [{"role": "user", "content": "."}],
             "stream": True, provider.max_tokens_param: 1,
             "stream_options": {"include_usage": True}},
            completion_create_params.CompletionCreateParamsStreaming)
        completions._client._build_request(
            FinalRequestOptions.construct(method="post", url="/chat/completions", json_data=body))
    except Exception:  # noqa: BLE001
        pass


@lru_cache(maxsize=16)
def warm_client(provider: Provider) -> threading.Thread | None:
    """Build the provider's client (SSL context, pool, the SDK's response models and
    request path: ≈110 ms) on a background thread when the app opens, not on the
    first click. Returns that thread (None for the local model)."""
    if provider.kind != "openai":
        return None
    thread = threading.Thread(target=_warm_request_path, name="warm-client", daemon=True,
                              args=(provider,))
    thread.start()
    return thread


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

