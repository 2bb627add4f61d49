"""Benchmark: the app's streaming path vs raw llama.cpp on the bundled local model.

Same prompt, same sampling, same max_tokens, one process, runs interleaved so
machine noise hits both sides alike. Prints tokens/s per path and the ratios
(target: app >= 0.9x raw).

    .venv/bin/python scripts/bench_local.py [--runs 5] [--max-tokens 256]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from writer.brief import Brief  # noqa: E402
from writer.config import load_settings  # noqa: E402
from writer.generation.engine import Request, stream  # noqa: E402
from writer.generation.events import Delta, Finished  # noqa: E402
from writer.generation.plan import PromptPlan  # noqa: E402
from writer.generation.prompts import default_prompts  # noqa: E402
from writer.providers import local as local_model  # noqa: E402
from writer.providers.choice import local_provider  # noqa: E402
from writer.runs.job import Job  # noqa: E402

BRIEF = Brief(topic="why streaming output matters for AI writing tools", language="en",
              target_words=2000)


def raw(messages, max_tokens):
    llm = local_model.load()
    start = time.perf_counter()
    first = None
    for part in llm.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens,
                                           **local_model.SAMPLING):
        if part["choices"][0]["delta"].get("content") and first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    tokens = llm.n_tokens - local_model.prompt_tokens(messages)
    return tokens, first - start, end - start


def engine(messages, max_tokens):
    start = time.perf_counter()
    first = None
    for event in stream(Request(PromptPlan(messages, max_tokens), local_provider())):
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()
        if isinstance(event, Finished):
            tokens = event.usage.output_tokens
    return tokens, first - start, time.perf_counter() - start


def job(messages, max_tokens, settings):
    # The whole app path: prompt, engine, word counting, draft saves, final row; free-form,
    # so it asks for exactly the same completion as the other two paths.
    j = Job(BRIEF, settings, provider=local_provider(), length_control=False)
    j.plan = PromptPlan(messages, max_tokens)
    j.max_tokens = max_tokens
    start = time.perf_counter()
    first = None
    for event in j.run():
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()
        if isinstance(event, Finished):
            tokens = event.usage.output_tokens
    return tokens, first - start, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    import os

    tmp = tempfile.mkdtemp()
    os.environ.update(WRITER_DB=f"{tmp}/bench.db", WRITER_NO_DOTENV="1")
    settings = load_settings()
    messages = default_prompts().render(BRIEF)
    local_model.load()
    raw(messages, 16)  # warm-up: page in the weights
    paths = {"raw llama.cpp": raw, "app engine": engine,
             "app job (engine + store)": lambda m, n: job(m, n, settings)}
    results = {name: [] for name in paths}
    for _ in range(args.runs):
        for name, fn in paths.items():
            tokens, ttft, total = fn(messages, args.max_tokens)
            results[name].append((tokens / total, ttft, tokens))
    base = statistics.median(r[0] for r in results["raw llama.cpp"])
    print(f"model {local_model.model_path().name}, {args.runs} interleaved runs, "
          f"max_tokens {args.max_tokens}, medians:")
    for name, rows in results.items():
        rate = statistics.median(r[0] for r in rows)
        ttft = statistics.median(r[1] for r in rows) * 1000
        tokens = statistics.median(r[2] for r in rows)
        print(f"  {name:26} {rate:7.1f} tokens/s  first token {ttft:6.0f} ms  "
              f"{tokens:.0f} tokens  ratio {rate / base:.2f}x")


if __name__ == "__main__":
    main()
