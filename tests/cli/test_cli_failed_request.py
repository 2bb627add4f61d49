"""A request the provider refuses before any text: the CLI prints the error and what to
do, as the Write page does, and no figures of an article that was never written (no
"0/100 words", tokens, cost or "length: short")."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import Reply

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "writer", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("control", [[], ["--no-length-control"]])
def test_a_refused_request_prints_only_the_error_and_what_to_do(env, fake, control):
    fake.default = Reply(status=401, error_message="invalid api key")
    result = cli("write", "--topic", "kettles", "--length", "100", "--language", "en", *control,
                 env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout.strip() == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "OPENAI_API_KEY" in errors[0], result.stderr
    for figure in ("tokens", "cost", "length:", "words ·", "first token"):
        assert figure not in result.stderr, (figure, result.stderr)
