"""The second, independent provider: llama-cpp-python's own OpenAI-compatible server
(`python -m llama_cpp.server`) on 127.0.0.1, serving the bundled GGUF model.

It behaves unlike the scripted fake in ways that matter: it ignores `stream_options`
(no usage chunk), its first chunk carries only the role, its `/v1/models` lists the
model by file path, and by default it ends a running stream with `[DONE]` and no
finish reason when another request arrives (`--interrupt_requests False` queues).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serving import NotServing, stop, wait_until_serving
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.counting import count_words
from writer.generation.events import Delta
from writer.kinds import LengthOutcome, Status
from writer.runs.job import Job
from writer.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
    from writer.providers import local as local_model

    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(local_model.model_path()),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
             "--interrupt_requests", "False"],  # queue concurrent requests (see the docstring)
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        try:
            wait_until_serving(proc, f"{base_url}/models", timeout_s=60, log=log.read_text,
                               name="llama_cpp.server")
        except NotServing as exc:
            pytest.fail(str(exc), pytrace=False)
        yield base_url
    finally:
        stop(proc)


@pytest.fixture
def server_env(env, llama_server, monkeypatch):
    from writer.providers import choice as providers

    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    monkeypatch.delenv("WRITER_MODEL")  # asked from the server's /models
    providers._served_models.cache_clear()
    return {**{k: v for k, v in env.items() if k != "WRITER_MODEL"},
            "OPENAI_BASE_URL": llama_server}


def _cli(env, topic, length):
    return subprocess.Popen(
        [sys.executable, "-m", "writer", "write", "--topic", topic, "--language", "en",
         "--length", str(length)], cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "WRITER_MODEL"}, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_article_from_the_llama_cpp_server_is_held_to_its_target(server_env):
    proc = _cli(server_env, "why streaming output matters", 120)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    row = Store(server_env["WRITER_DB"]).get(1)
    assert row["model"].endswith(".gguf")  # its only model, from /models: not gpt-4o-mini
    assert row["status"] == Status.COMPLETED and row["length_outcome"] == LengthOutcome.ON_TARGET
    assert 96 <= count_words(row["content"]) <= 144
    assert row["usage_source"] == "estimated"  # it sends no usage chunk
    assert row["cost"] is None and "Traceback" not in err


def test_two_writers_at_once_on_a_queueing_server(server_env):
    procs = [_cli(server_env, f"article {n} about coffee machines", 150) for n in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    rows = Store(server_env["WRITER_DB"]).recent()
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == Status.COMPLETED and 120 <= row["words"] <= 180


def test_stop_mid_stream_and_the_server_still_answers(server_env):
    job = Job(Brief(topic="stop me", language="en", target_words=600), load_settings())
    events = job.run()
    seen = []
    for event in events:
        if isinstance(event, Delta):
            seen.append(event.text)
            if len(seen) == 5:
                break
    stopper = threading.Thread(target=job.cancel, kwargs={"wait_s": 0})
    started = time.monotonic()
    stopper.start()
    events.close()
    stopper.join(5)
    assert job.saved.wait(5) and time.monotonic() - started < 1.0
    row = Store(server_env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == Status.STOPPED and row["content"] == "".join(seen)
    # The server was not left generating for a client that has gone.
    again = Job(Brief(topic="after a stop", language="en", target_words=60), load_settings())
    finished = list(again.run())[-1]
    assert finished.status == Status.COMPLETED
