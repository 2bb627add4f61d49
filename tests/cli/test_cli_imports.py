"""A command imports what it uses: reading the saved articles never loads the provider
SDK, a tokenizer, the local model, an HTTP client, a spreadsheet or Word library.

Checked by the modules a real `python -m writer ...` process has loaded when it exits
(no wall-clock bound; scripts/bench_cli.py measures the time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("openai", "tiktoken", "llama_cpp", "httpx2", "httpx", "pydantic", "openpyxl", "docx")

# Runs the CLI in this process, then prints the top-level names of the loaded modules.
PROBE = """
import json, sys
from writer.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}),
      file=sys.stderr)
"""


def _loaded(env: dict, *args: str) -> tuple[int, set[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT,
                            env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=60)
    found = json.loads(result.stderr.strip().splitlines()[-1])
    return found["code"], set(found["modules"])


def _article(env: dict) -> int:
    from writer.brief import Brief
    from writer.storage.store import Store

    store = Store(env["WRITER_DB"])
    return store.create_article(Brief(topic="read me", language="en"), provider="openai",
                                model="gpt-4o-mini", max_tokens=100)


@pytest.mark.parametrize("args", [
    ("history", "--limit", "1"),
    ("history", "--json", "--search", "read"),
    ("usage",),
    ("usage", "--by", "model", "--json"),
    ("show", "{id}"),
    ("show", "{id}", "--format", "json"),
    ("versions", "{id}"),
    ("brand", "list"),
    ("user", "list", "--json"),
    ("delete", "{id}", "--yes"),
])
def test_read_only_commands_load_no_heavy_module(env, args):
    article_id = _article(env)
    code, modules = _loaded(env, *(a.format(id=article_id) for a in args))
    assert code == 0
    assert "writer" in modules and "sqlite3" in modules  # the probe saw the command run
    assert not modules & set(HEAVY), f"{' '.join(args)} loaded {sorted(modules & set(HEAVY))}"


def test_a_refused_command_loads_no_heavy_module(env):
    code, modules = _loaded(env, "show", "999")
    assert code == 2
    assert not modules & set(HEAVY)


def test_building_the_parser_loads_no_command_module():
    code = ("import sys; from writer.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('writer.', 'sqlite_utils'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    loaded = set(eval(result.stdout))  # a printed list of str
    assert "writer.cli.main" in loaded
    assert not {m for m in loaded if m.startswith(("writer.storage", "writer.runs",
                                                    "writer.generation", "writer.providers",
                                                    "sqlite_utils"))}
    assert not loaded & {"writer.cli.write", "writer.cli.history", "writer.cli.batch",
                         "writer.cli.check", "writer.cli.brand", "writer.cli.user"}


def test_the_parser_s_copied_choices_match_their_sources():
    from writer.cli import main as cli
    from writer.io.export import FORMATS
    from writer.runs.batch import MAX_CONCURRENCY
    from writer.runs.check import DEFAULT_LEVELS
    from writer.runs.revisions import PRESETS
    from writer.storage.store import STATUSES
    from writer.storage.usage import GROUPS

    assert cli.STATUSES == STATUSES
    assert cli.EXPORT_FORMATS == FORMATS
    assert cli.USAGE_GROUPS == tuple(GROUPS)
    assert cli.BATCH_MAX_CONCURRENCY == MAX_CONCURRENCY
    assert cli.CHECK_LEVELS == DEFAULT_LEVELS
    assert cli.REVISION_PRESETS == PRESETS


def test_every_command_of_the_parser_has_a_module_that_defines_it():
    import importlib

    from writer.cli import main as cli

    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert set(sub.choices) == set(cli.COMMANDS)
    for run in cli.COMMANDS.values():
        assert callable(getattr(importlib.import_module(run.module), run.__name__))
