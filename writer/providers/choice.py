"""Which provider serves: the configured one, the providers file's entries, the
bundled local model; the failover chain; the model a custom endpoint serves.

Reading settings and the providers file never loads the SDK; only `resolve_model`
(asking a server's /models) does, when it must.
"""
from __future__ import annotations

import tomllib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from writer.config import PROJECT_ROOT, Settings
from writer.providers.base import Provider, ProviderChoiceError, provider_name
from writer.providers.local import LOCAL_MODEL_NAME, ZH_MODEL_NAME

# The local model for each article language (local.py): SmolLM2 writes English, Gemma
# (a base model, prompted with the documents in prompts/local_zh/) writes Chinese.
LOCAL_MODELS = {"en": LOCAL_MODEL_NAME, "zh": ZH_MODEL_NAME}
LOCAL_PROMPTS = {ZH_MODEL_NAME: "local_zh"}  # a model's own prompt set under prompts/


def local_provider(language: str | None = None) -> Provider:
    """The bundled demo models (local.py): no key, no network; the model is the one for
    `language` (English's until a brief says otherwise: see `for_language`)."""
    return Provider(name="local", model=LOCAL_MODELS.get(language or "en", LOCAL_MODEL_NAME),
                    kind="local", languages=tuple(LOCAL_MODELS),
                    max_streams=1)  # one generation at a time on the CPU, whichever model


def for_language(provider: Provider, language: str) -> Provider:
    """The provider that writes a brief in `language`: the local provider switches to
    that language's model; any other provider is returned as it is."""
    if provider.kind != "local" or language not in LOCAL_MODELS:
        return provider
    return replace(provider, model=LOCAL_MODELS[language])


def prompts_dir(provider: Provider) -> Path:
    """The prompt set a provider's model is asked with: prompts/, or the model's own
    folder under it (a base model completes documents instead of following a brief)."""
    own = LOCAL_PROMPTS.get(provider.model) if provider.kind == "local" else None
    return PROJECT_ROOT / "prompts" / own if own else PROJECT_ROOT / "prompts"


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
        key = settings.env(key_env)  # the environment as the settings read it (.env too)
        if not key:
            continue
        discover = not models and not settings.model_set
        found.append(Provider(
            name=name, display_name=str(entry.get("display_name") or name),
            model=models[0] if models else "" if discover else settings.model,
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


@lru_cache(maxsize=16)
def _served_models(base_url: str | None, api_key: str, timeout_s: float) -> tuple[str, ...]:
    from writer.providers.http import openai_client  # the SDK: only when a server is asked

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

