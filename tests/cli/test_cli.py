"""`python -m writer` through a real subprocess, against the loopback provider."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import Reply

ROOT = Path(__file__).resolve().parents[2]


# These tests drive the CLI's plumbing with short scripted answers, so `write` runs
# free-form (--no-length-control); length control has its own tests (test_length.py).
FREE_FORM = "--no-length-control"


def _free_form(args):
    args = list(args)
    if args[:1] == ["write"] and FREE_FORM not in args:
        args.append(FREE_FORM)
    return args


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "writer", *_free_form(args)], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def rows(env):
    db = Path(env["WRITER_DB"])
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("select * from articles")]


def test_write_streams_to_stdout_and_saves_the_row(env, fake):
    article = "# Why streaming matters\n\nPeople see the first words at once.\n"
    fake.queue(Reply(text=article, chunk_chars=7, usage=(90, 15)))
    result = cli("write", "--topic", "why streaming matters", "--type", "blog", "--language", "en",
                 "--length", "150", "--style", "casual", "--keywords", "speed,trust", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == article.strip()
    assert "completed" in result.stderr and "tokens 90 in / 15 out (reported)" in result.stderr
    assert "Traceback" not in result.stderr
    (row,) = rows(env)
    assert row["status"] == "completed" and row["content"] == article
    assert row["language"] == "en" and row["style"] == "casual" and row["target_words"] == 150
    assert row["cost"] > 0 and row["currency"] == "USD"
    assert fake.requests[0]["model"] == "gpt-4o-mini"


def test_model_flag_overrides_setting(env, fake):
    fake.queue(Reply(text="ok"))
    result = cli("write", "--topic", "t", "--model", "deepseek-chat", env=env)
    assert result.returncode == 0, result.stderr
    assert fake.requests[0]["model"] == "deepseek-chat"
    assert rows(env)[0]["currency"] == "CNY"


@pytest.mark.parametrize("args, message", [
    (["--topic", ""], "topic is empty"),
    (["--topic", "x", "--length", "49"], "out of range"),
    (["--topic", "x", "--length", "20001"], "out of range"),
    (["--topic", "x", "--length", "many"], "invalid int value"),
    (["--topic", "x", "--type", "poem"], "unknown content type"),
    (["--topic", "x", "--language", "fr"], "unknown language"),
    ([], "required: --topic"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(env, fake, args, message):
    result = cli("write", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert rows(env) == [] and fake.requests == []


def test_provider_failure_exits_nonzero_with_actionable_line(env, fake):
    fake.queue(Reply(status=401))
    result = cli("write", "--topic", "x", env=env)
    assert result.returncode == 1
    assert "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr
    assert rows(env)[0]["status"] == "failed"


def test_truncated_exits_3(env, fake):
    fake.queue(Reply(text="cut off mid", finish_reason="length"))
    result = cli("write", "--topic", "x", env=env)
    assert result.returncode == 3
    assert rows(env)[0]["status"] == "truncated"


def _wait_for(condition, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "writer", *_free_form(args)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigint_closes_the_provider_connection_and_saves_a_stopped_row(env, fake):
    import signal
    import time

    text = "Streaming words arrive one by one. " * 20
    fake.queue(Reply(text=text, chunk_chars=7, stall_after=5, stall_seconds=30))
    proc = _start(["write", "--topic", "stop me", "--language", "en"], env)
    try:
        assert _wait_for(lambda: fake.chunks_sent and fake.chunks_sent[0] >= 5, 20)
        time.sleep(0.2)  # the stall has begun: the client is blocked reading
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert _wait_for(lambda: fake.disconnects, 5), "provider never saw the disconnect"
        assert fake.disconnects[0] - sent_at < 1.0
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: partial article saved as #1" in err and "Traceback" not in err
    (row,) = rows(env)
    assert row["status"] == "stopped" and row["content"] == text[:35]
    assert out.startswith(text[:35])


def test_kill_9_loses_at_most_the_last_two_seconds(env, fake, monkeypatch):
    import signal
    import time

    from writer.storage import liveness
    from writer.storage.store import Store

    # Beat every 0.2 s (here and in the child): the dead writer's row is stale after 0.6 s.
    monkeypatch.setattr(liveness, "HEARTBEAT_S", 0.2)
    monkeypatch.setenv("WRITER_HEARTBEAT_S", "0.2")

    text = "".join(f"Sentence number {i} keeps the draft growing. " for i in range(400))
    fake.queue(Reply(text=text, chunk_chars=10, chunk_delay=0.01))
    proc = _start(["write", "--topic", "kill me", "--language", "en", "--length", "5000"], env)
    try:
        assert _wait_for(lambda: fake.chunks_sent and fake.chunks_sent[0] >= 250, 30)
        sent_before_kill = fake.chunks_sent[0] * 10
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)  # reaped: its pid is gone
        killed_at = time.monotonic()
    finally:
        proc.kill()
    # Every open recovers rows whose heartbeat went stale.
    assert _wait_for(lambda: Store(env["WRITER_DB"]).get(1)["status"] == "stopped", 10)
    row = Store(env["WRITER_DB"]).get(1)
    assert row["status"] == "stopped" and row["error"] == "interrupted"
    assert text.startswith(row["content"]) and row["content"]
    # At 10 chunks of 10 chars per ~0.1 s, 2 s is at most ~2,000 characters (+ slack).
    assert sent_before_kill - len(row["content"]) <= 2600, (sent_before_kill, len(row["content"]))
    assert killed_at  # the row was recovered after the kill, not before


def test_continue_appends_to_the_same_row(env, fake):
    fake.queue(Reply(text="First half, cut", finish_reason="length"),
               Reply(text="First half, cut off here and the rest."))
    assert cli("write", "--topic", "x", "--language", "en", env=env).returncode == 3
    result = cli("continue", "1", env=env)
    assert result.returncode == 0, result.stderr
    (row,) = rows(env)
    # The model repeated "First half, cut"; the seam is removed.
    assert row["content"] == "First half, cut off here and the rest."
    assert result.stdout.strip() == "off here and the rest."
    assert row["status"] == "completed"


@pytest.mark.parametrize("args, message", [
    (["continue", "99"], "there is no article #99"),
    (["continue", "abc"], "invalid int value"),
])
def test_continue_bad_input(env, fake, args, message):
    result = cli(*args, env=env)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_completed_article_cannot_be_continued(env, fake):
    fake.queue(Reply(text="done."))
    cli("write", "--topic", "x", env=env)
    result = cli("continue", "1", env=env)
    assert result.returncode == 2 and "is completed" in result.stderr


def test_history_show_and_usage_commands(env, fake):
    import json

    fake.queue(Reply(text="# 咖啡机\n\n这台咖啡机的**流式萃取**很稳定。", usage=(100, 200)),
               Reply(text="# Streaming\n\nStreaming keeps readers.", usage=(50, 60)))
    cli("write", "--topic", "咖啡机评测", env=env)
    cli("write", "--topic", "Streaming guide", "--language", "en", env=env)

    listed = cli("history", env=env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert "Streaming guide" in lines[0] and "咖啡机评测" in lines[1]  # newest first
    found = cli("history", "--search", "流式萃取", "--json", env=env)
    (row,) = [json.loads(line) for line in found.stdout.splitlines()]
    assert row["id"] == 1 and row["cost"] > 0
    assert cli("history", "--status", "failed", env=env).stdout == ""

    assert cli("show", "1", env=env).stdout.startswith("# 咖啡机")
    text = cli("show", "1", "--format", "txt", env=env).stdout
    assert "流式萃取" in text and "**" not in text and "#" not in text
    html = cli("show", "2", "--format", "html", env=env).stdout
    assert html.lower().startswith("<!doctype html>") and "<h1>Streaming</h1>" in html
    assert json.loads(cli("show", "2", "--format", "json", env=env).stdout)["topic"] == "Streaming guide"
    missing = cli("show", "9", env=env)
    assert missing.returncode == 2 and "there is no article #9" in missing.stderr

    by_model = json.loads(cli("usage", "--by", "model", "--json", env=env).stdout)
    assert [(r["group"], r["currency"], r["articles"]) for r in by_model] == [("gpt-4o-mini", "USD", 2)]
    assert by_model[0]["input_tokens"] == 150 and by_model[0]["output_tokens"] == 260
    table = cli("usage", "--by", "type", env=env).stdout
    assert table.splitlines()[0].startswith("type") and "blog" in table
    future = json.loads(cli("usage", "--since", "2999-01-01", "--json", env=env).stdout)
    assert future == []
    bad = cli("usage", "--since", "yesterday", env=env)
    assert bad.returncode == 2 and "not a date" in bad.stderr


def _two_articles(env, fake):
    fake.queue(Reply(text="# 咖啡机\n\n这台咖啡机的**流式萃取**很稳定。", usage=(100, 200)),
               Reply(text="# Streaming\n\nStreaming keeps readers.", usage=(50, 60)))
    assert cli("write", "--topic", "咖啡机评测", env=env).returncode == 0
    assert cli("write", "--topic", "Streaming guide", "--language", "en", env=env).returncode == 0


def test_show_out_writes_every_format_and_docx_needs_out(env, fake, tmp_path):
    import json
    from io import BytesIO

    import docx

    _two_articles(env, fake)
    for fmt in ("md", "txt", "html", "json", "docx"):
        out = tmp_path / f"a.{fmt}"
        result = cli("show", "1", "--format", fmt, "--out", str(out), env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "" and result.stderr.strip() == f"saved #1 as {out}"
        assert out.read_bytes()
    assert (tmp_path / "a.md").read_text(encoding="utf-8").startswith("# 咖啡机")
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["id"] == 1
    document = docx.Document(BytesIO((tmp_path / "a.docx").read_bytes()))
    assert document.paragraphs[0].text == "咖啡机"
    assert document.core_properties.title == "咖啡机"
    assert document.core_properties.author == "AI Writing Assistant"
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, no temporary left

    inferred = tmp_path / "guide.docx"  # no --format: the extension decides
    assert cli("show", "2", "--out", str(inferred), env=env).returncode == 0
    assert inferred.read_bytes()[:2] == b"PK"

    refused = cli("show", "1", "--format", "docx", env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == "error: docx is binary: add --out FILE"

    nowhere = cli("show", "1", "--out", str(tmp_path / "missing" / "a.md"), env=env)
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr
    assert len(nowhere.stderr.strip().splitlines()) == 1
    missing = cli("show", "9", "--out", str(tmp_path / "nine.md"), env=env)
    assert missing.returncode == 2 and "there is no article #9" in missing.stderr
    assert not (tmp_path / "nine.md").exists()


def test_show_prints_control_characters_free_text(env, fake):
    fake.queue(Reply(text="# Title\x00\x1b[31m\n\nBody\x01 text.\n"))
    assert cli("write", "--topic", "ctl", "--language", "en", env=env).returncode == 0
    for fmt in ("md", "txt", "html", "json"):
        result = cli("show", "1", "--format", fmt, env=env)
        assert result.returncode == 0, result.stderr
        assert "\x00" not in result.stdout and "\x1b" not in result.stdout
        assert "Body text." in result.stdout


def _store(env):
    from writer.storage.store import Store

    return Store(env["WRITER_DB"])


def test_delete_with_yes(env, fake):
    _two_articles(env, fake)
    result = cli("delete", "1", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().startswith("deleted #1 «咖啡机评测»")
    assert _store(env).get(1) is None and _store(env).get(2) is not None
    assert cli("show", "1", env=env).returncode == 2
    again = cli("delete", "1", "--yes", env=env)
    assert again.returncode == 2 and again.stderr.strip() == "error: there is no article #1"
    bad = cli("delete", "abc", "--yes", env=env)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr


def test_delete_keeps_tokens_and_cost_in_usage(env, fake):
    """Needs the soft delete of writer/storage/store.py (Store.delete keeps the row's usage)."""
    import json

    _two_articles(env, fake)
    before = json.loads(cli("usage", "--by", "model", "--json", env=env).stdout)
    assert cli("delete", "1", "--yes", env=env).returncode == 0
    after = json.loads(cli("usage", "--by", "model", "--json", env=env).stdout)
    assert sum(r["input_tokens"] for r in after) == sum(r["input_tokens"] for r in before) == 150
    assert sum(r["cost"] for r in after) == pytest.approx(sum(r["cost"] for r in before))


def test_delete_without_yes_and_no_terminal_is_refused(env, fake):
    _two_articles(env, fake)
    result = subprocess.run([sys.executable, "-m", "writer", "delete", "1"], cwd=ROOT,
                            env={**os.environ, **env}, input="y\n", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: not deleting #1 without confirmation: add --yes"
    assert _store(env).get(1) is not None


def _delete_on_a_terminal(env, answer: bytes):
    """Run `delete 1` with a pseudo-terminal as stdin; `answer` is typed in advance
    (the terminal buffers it until the prompt reads a line)."""
    import pty

    master, slave = pty.openpty()
    try:
        os.write(master, answer)
        result = subprocess.run([sys.executable, "-m", "writer", "delete", "1"], cwd=ROOT,
                                env={**os.environ, **env}, stdin=slave, capture_output=True,
                                text=True, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    return result


def test_delete_asks_on_a_terminal(env, fake):
    _two_articles(env, fake)
    kept = _delete_on_a_terminal(env, b"n\n")
    assert kept.returncode == 1
    assert kept.stderr.startswith("delete #1 «咖啡机评测»? [y/N] ")
    assert "kept #1" in kept.stderr and _store(env).get(1) is not None
    deleted = _delete_on_a_terminal(env, b"y\n")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted #1" in deleted.stderr and _store(env).get(1) is None


def test_delete_while_streaming_warns_and_deletes(env, fake):
    from writer.brief import Brief

    store = _store(env)
    # worker_pid is this (live) test process: the row stays `streaming` for the CLI.
    article_id = store.create_article(Brief(topic="still writing", language="en"),
                                      provider="openai", model="gpt-4o-mini", max_tokens=100)
    result = cli("delete", str(article_id), "--yes", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "still being written" in lines[0] and "stops within a few seconds" in lines[0]
    assert lines[1].startswith(f"deleted #{article_id}")
    assert _store(env).get(article_id) is None


def test_unexpected_errors_are_one_line_and_logged_without_the_key(env, fake, monkeypatch, capsys):
    from writer import logs
    from writer.cli import main as cli_module

    def broken(args):
        raise ValueError(f"bug while talking to the provider with {env['OPENAI_API_KEY']}")

    monkeypatch.setitem(cli_module.COMMANDS, "history", broken)
    try:
        code = cli_module.main(["history"])
        log = Path(env["WRITER_DB"]).parent / "writer.log"
        err = capsys.readouterr().err
        assert code == 1
        assert err == f"error: unexpected ValueError; details in {log}\n"
        text = log.read_text(encoding="utf-8")
        assert "Traceback" in text and "python -m writer history failed" in text
        assert env["OPENAI_API_KEY"] not in text and "[redacted]" in text
    finally:
        logs.close()


def test_storage_errors_are_one_line(env, fake, monkeypatch, capsys):
    from writer import logs
    from writer.cli import main as cli_module
    from writer.storage.store import StorageError

    def broken(args):
        raise StorageError("cannot write the database data/writer.db: disk is full")

    monkeypatch.setitem(cli_module.COMMANDS, "history", broken)
    try:
        assert cli_module.main(["history"]) == 1
        assert capsys.readouterr().err == (
            "error: cannot write the database data/writer.db: disk is full\n")
    finally:
        logs.close()


def test_a_corrupt_database_is_one_line_not_a_traceback(env, fake):
    Path(env["WRITER_DB"]).write_bytes(b"this is not a sqlite database" * 100)
    result = cli("history", env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")


def _user_errors() -> dict[str, type]:
    """Every UserError class in writer/, by name (wherever it lives)."""
    import importlib
    import pkgutil

    import writer
    from writer.errors import UserError

    for module in pkgutil.walk_packages(writer.__path__, "writer."):
        if module.name != "writer.__main__":
            importlib.import_module(module.name)
    found, todo = {}, [UserError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


# The refusals the CLI caught one by one before UserError: exit 2, StorageError 1.
REFUSALS = {"BriefError": 2, "SettingsError": 2, "PromptError": 2, "PriceFileError": 2,
            "ProviderChoiceError": 2, "LocalModelError": 2, "JobError": 2, "BatchError": 2,
            "SheetError": 2, "CheckError": 2, "BrandError": 2, "CliError": 2, "StorageError": 1}


def test_every_refusal_is_one_line_with_its_exit_code(env, monkeypatch, capsys):
    from writer import logs
    from writer.cli import main as cli_module

    family = _user_errors()
    assert set(REFUSALS) <= set(family)
    try:
        for name, cls in family.items():
            def broken(args, cls=cls):
                raise cls("the one line a person reads")

            monkeypatch.setitem(cli_module.COMMANDS, "history", broken)
            code = cli_module.main(["history"])
            assert capsys.readouterr().err == "error: the one line a person reads\n", name
            assert code == REFUSALS.get(name, cls.exit_code), name
            assert code in (1, 2), name
    finally:
        logs.close()
