"""Open a source of `Chunk`s for one request: the bundled model or an
OpenAI-compatible endpoint. The engine (writer/generation/engine.py) is the only caller."""
from __future__ import annotations

from writer.providers.base import Provider
from writer.providers.http import OpenAISource
from writer.providers.local import LocalSource


def open_source(provider: Provider, messages: list[dict], max_tokens: int, stream: bool = True,
                keep_going: bool = False):
    """`keep_going`: length control is on. The local model is then not allowed to end its
    turn early (the engine ends the article on a sentence at its target); remote
    providers are asked for the rest instead (their token ids for "end" differ)."""
    if provider.kind == "local":
        return LocalSource(provider, messages, max_tokens, stream, keep_going)
    return OpenAISource(provider, messages, max_tokens, stream)
