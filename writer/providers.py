"""Where text comes from: provider settings and one cached client per provider.

A backend turns chat messages into a stream of `Chunk`s; the engine (engine.py)
is the only caller. Remote providers go through the openai SDK (no hand-written
SSE parsing).
"""
from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import openai  # imported up front so its ~0.3 s import never counts as time to first token

from .config import Settings
from .errors import NotTheAPI


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
    api_key: str = ""
    stream_usage: bool = True  # send stream_options={"include_usage": true}
    max_tokens_param: str = "max_tokens"
    timeout_s: float = 60.0
    idle_timeout_s: float = 30.0  # no byte for this long = a broken stream
    languages: tuple[str, ...] | None = None  # article languages it can write; None = any
    models: tuple[str, ...] = ()  # models a providers-file entry offers (empty = any)

    def label(self) -> str:
        return f"{self.name} · {self.model}"


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
    return Provider(name="local", model=LOCAL_MODEL_NAME, kind="local", languages=("en",))


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
        found.append(Provider(
            name=name, model=models[0] if models else settings.model, base_url=base_url,
            api_key=key, stream_usage=bool(entry.get("stream_options", settings.stream_usage)),
            max_tokens_param=entry.get("max_tokens_param", settings.max_tokens_param),
            timeout_s=settings.request_timeout_s, idle_timeout_s=settings.stream_idle_timeout_s,
            models=tuple(models)))
    return found


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
        if not other.models or first.model in other.models:
            other = replace(other, model=first.model)
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
            return provider if model is None or provider.kind == "local" else replace(provider, model=model)
    names = ", ".join(p.name for p in options)
    hint = "" if settings.has_api_key else " (set OPENAI_API_KEY to use a remote provider)"
    raise ProviderChoiceError(f"unknown provider {name!r}; available: {names}{hint}")


def provider_from_settings(settings: Settings, model: str | None = None) -> Provider:
    return Provider(
        name=provider_name(settings.base_url),
        model=model or settings.model,
        base_url=settings.base_url,
        api_key=settings.api_key,
        stream_usage=settings.stream_usage,
        max_tokens_param=settings.max_tokens_param,
        timeout_s=settings.request_timeout_s,
        idle_timeout_s=settings.stream_idle_timeout_s,
    )


@lru_cache(maxsize=16)
def openai_client(base_url: str | None, api_key: str, timeout_s: float, idle_timeout_s: float):
    """One client (and connection pool) per provider per process, not per click.
    The read timeout is the stream's idle timeout: no byte for that long = broken."""
    # Retries live in the engine, where they are visible to the user and the row.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "missing", max_retries=0,
                         timeout=openai.Timeout(timeout_s, connect=min(timeout_s, 15.0),
                                                read=idle_timeout_s))


class OpenAISource:
    """One chat completion from an OpenAI-compatible endpoint, as Chunks.

    `close()` ends it from the consuming thread; `abort()` may be called from any
    other thread (a Stop click while the stream is stalled) and shuts the socket
    down so the blocked read returns and the provider sees the disconnect."""

    def __init__(self, provider: Provider, messages: list[dict], max_tokens: int,
                 stream: bool = True):
        self.provider, self.messages, self.max_tokens, self.stream = (
            provider, messages, max_tokens, stream)
        self._response = None
        self._sdk_stream = None

    def __iter__(self) -> Iterator[Chunk]:
        p = self.provider
        client = openai_client(p.base_url, p.api_key, p.timeout_s, p.idle_timeout_s)
        kwargs = {p.max_tokens_param: self.max_tokens}
        if not self.stream:
            # A whole article in one response can take minutes: no idle timeout here.
            completion = client.chat.completions.create(
                model=p.model, messages=self.messages, stream=False,
                timeout=openai.Timeout(max(600.0, p.timeout_s), connect=15.0), **kwargs)
            if isinstance(completion, str) or not getattr(completion, "choices", None):
                raise NotTheAPI("the answer was not a chat completion")
            choice = completion.choices[0]
            usage = completion.usage
            yield Chunk(text=choice.message.content or "", finish_reason=choice.finish_reason,
                        usage=(usage.prompt_tokens, usage.completion_tokens) if usage else None)
            return
        if p.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        self._sdk_stream = client.chat.completions.create(
            model=p.model, messages=self.messages, stream=True, **kwargs)
        self._response = self._sdk_stream.response
        content_type = self._response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream") and "json" not in content_type:
            raise NotTheAPI(f"the answer was {content_type or 'of no content type'}")
        for event in self._sdk_stream:
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
            self._sdk_stream.close()

    def abort(self) -> None:
        response = self._response
        if response is None:
            return
        network_stream = response.extensions.get("network_stream")
        sock = network_stream.get_extra_info("socket") if network_stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class LocalSource:
    """The bundled model (local_model.py) behind the same interface."""

    def __init__(self, provider: Provider, messages: list[dict], max_tokens: int,
                 stream: bool = True):
        from . import local_model

        self._chunks = local_model.chunks(provider, messages, max_tokens)
        self.aborted = False

    def __iter__(self) -> Iterator[Chunk]:
        for chunk in self._chunks:
            if self.aborted:
                return
            yield chunk

    def close(self) -> None:
        self._chunks.close()

    def abort(self) -> None:
        self.aborted = True  # checked between tokens (≈10 ms apart)


def open_source(provider: Provider, messages: list[dict], max_tokens: int, stream: bool = True):
    cls = LocalSource if provider.kind == "local" else OpenAISource
    return cls(provider, messages, max_tokens, stream)
