"""What a provider is: its settings (`Provider`), the `Chunk`s every source yields,
and the names people know services by.

Nothing here talks to the network or imports the SDK: choosing a provider
(choice.py) and reading a history never load it. Where text comes from:
http.py (OpenAI-compatible endpoints, through the openai SDK) and local.py (the
bundled model), both opened through sources.py; the engine
(writer/generation/engine.py) is the only caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from writer.errors import UserError


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
    # Articles written at once through it (writer/runs/registry.py queues the rest).
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


class ProviderChoiceError(UserError, ValueError):
    """No provider can be chosen as asked (unknown name, a broken providers file, a
    server listing several models); the message says what to set."""

    key = "user_errors.provider_choice"

