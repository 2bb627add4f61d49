"""Where text comes from: provider settings and one cached client per provider.

A backend turns chat messages into a stream of `Chunk`s; the engine (engine.py)
is the only caller. Remote providers go through the openai SDK (no hand-written
SSE parsing).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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
    languages: tuple[str, ...] | None = None  # article languages it can write; None = any

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


def available_providers(settings: Settings, model: str | None = None) -> list[Provider]:
    """What the user can pick, the default first: the configured provider when a
    key is set, and always the local model."""
    found = [provider_from_settings(settings, model)] if settings.has_api_key else []
    return found + [local_provider()]


def choose_provider(settings: Settings, name: str | None = None,
                    model: str | None = None) -> Provider:
    """By name, or the default: the configured provider if it has a key, else local."""
    options = available_providers(settings, model)
    if not name:
        return options[0]
    for provider in options:
        if provider.name == name:
            return provider
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
    )


@lru_cache(maxsize=16)
def openai_client(base_url: str | None, api_key: str, timeout_s: float):
    """One client (and connection pool) per provider per process, not per click."""
    # Retries live in the engine, where they are visible to the user and the row.
    return openai.OpenAI(base_url=base_url, api_key=api_key or "missing", timeout=timeout_s,
                         max_retries=0)


def openai_chunks(provider: Provider, messages: list[dict], max_tokens: int) -> Iterator[Chunk]:
    """Stream one chat completion as Chunks. Closing the generator closes the HTTP
    response, which tells the provider to stop generating (and billing)."""
    client = openai_client(provider.base_url, provider.api_key, provider.timeout_s)
    kwargs = {provider.max_tokens_param: max_tokens}
    if provider.stream_usage:
        kwargs["stream_options"] = {"include_usage": True}
    stream = client.chat.completions.create(
        model=provider.model, messages=messages, stream=True, **kwargs
    )
    try:
        content_type = stream.response.headers.get("content-type", "")
        if not content_type.startswith("text/event-stream") and "json" not in content_type:
            raise NotTheAPI(f"the answer was {content_type or 'of no content type'}")
        for event in stream:
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
    finally:
        stream.close()


def open_chunks(provider: Provider, messages: list[dict], max_tokens: int) -> Iterator[Chunk]:
    if provider.kind == "local":
        from . import local_model

        return local_model.chunks(provider, messages, max_tokens)
    return openai_chunks(provider, messages, max_tokens)
