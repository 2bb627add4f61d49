"""The first Generate click of a fresh server does no one-time SDK work: `warm_client`
(app start, on a background thread) leaves nothing for the first request to import or
build (the SDK's chat resources, its request-parameter transform, the request builder)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter: the app's process at start, before anyone has clicked.
SCRIPT = r"""
import json, sys, threading
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from fake_openai import FakeOpenAI, Reply
from writer.providers.base import Provider
from writer.providers.http import OpenAISource, warm_client

with FakeOpenAI() as fake:
    fake.queue(Reply(text="Hello warm world", chunk_chars=5))
    provider = Provider(name="fake", model="fake-model", base_url=fake.base_url, api_key="sk-x")
    warm_client(provider)
    for thread in threading.enumerate():  # the warm-up runs in the background
        if thread.name == "warm-client":
            thread.join()
    before = set(sys.modules)
    text = "".join(c.text for c in OpenAISource(provider, [{"role": "user", "content": "hi"}], 50))
    late = sorted(m for m in set(sys.modules) - before if m.startswith(("openai", "pydantic", "encodings")))
    print(json.dumps({"text": text, "late": late}))
"""


def test_first_request_after_warm_client_imports_nothing_from_the_sdk():
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["text"] == "Hello warm world"
    assert result["late"] == []  # e.g. openai.resources.chat.completions (~30 ms cold)


def test_warm_client_does_nothing_for_the_local_model():
    from writer.providers.base import Provider
    from writer.providers.http import warm_client

    assert warm_client(Provider(name="local", model="m", kind="local")) is None
