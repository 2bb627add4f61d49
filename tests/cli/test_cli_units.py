"""Counts in the article's unit through `python -m writer` (issue 22): 字 for a Chinese
article, words for an English one, in every line a person reads (write / continue
figures, history, versions, batch progress and results, the JSON export)."""
from __future__ import annotations

import csv
import io
import json

from fake_openai import Reply
from test_cli import cli
from test_cli_batch import cli as batch_cli
from test_cli_batch import write as write_file

ZH_TEXT = "# 量子计算入门\n\n量子计算利用叠加和纠缠处理信息。它有望改变密码学和材料科学。\n"
EN_TEXT = "# Kettles\n\nA kettle boils water fast. It saves time every morning.\n"


def _figures(stderr: str) -> str:
    """The closing figures line (`#1 completed · …`)."""
    (line,) = [x for x in stderr.splitlines() if x.startswith("#") and " tokens " in x]
    return line


def test_a_chinese_article_is_counted_in_zi_in_every_cli_line(env, fake):
    fake.queue(Reply(text=ZH_TEXT, chunk_chars=5))
    result = cli("write", "--topic", "量子计算", "--language", "zh", "--length", "100", env=env)
    assert result.returncode == 0, result.stderr
    figures = _figures(result.stderr)
    assert "/100 字" in figures and "words" not in figures
    assert "target 100 字" in result.stderr and "words" not in result.stderr

    history = cli("history", env=env)
    assert history.returncode == 0, history.stderr
    (line,) = history.stdout.splitlines()
    assert "/100" in line and "字" in line and "words" not in line

    versions = cli("versions", "1", env=env)
    assert versions.returncode == 0, versions.stderr
    assert "字" in versions.stdout and "words" not in versions.stdout

    exported = json.loads(cli("show", "1", "--format", "json", env=env).stdout)
    assert exported["unit"] == "字" and exported["words"] > 0


def test_an_english_article_is_still_counted_in_words(env, fake):
    fake.queue(Reply(text=EN_TEXT, chunk_chars=5))
    result = cli("write", "--topic", "kettles", "--language", "en", "--length", "100", env=env)
    assert result.returncode == 0, result.stderr
    figures = _figures(result.stderr)
    assert "/100 words" in figures and "字" not in figures
    history = cli("history", env=env)
    assert "words" in history.stdout and "字" not in history.stdout
    exported = json.loads(cli("show", "1", "--format", "json", env=env).stdout)
    assert exported["unit"] == "words"


def test_history_lists_each_article_in_its_own_unit(env, fake):
    fake.queue(Reply(text=ZH_TEXT), Reply(text=EN_TEXT))
    assert cli("write", "--topic", "量子计算", "--language", "zh", env=env).returncode == 0
    assert cli("write", "--topic", "kettles", "--language", "en", env=env).returncode == 0
    history = cli("history", env=env)
    assert history.returncode == 0, history.stderr
    lines = {line.split()[0]: line for line in history.stdout.splitlines()}
    assert "字" in lines["#1"] and "words" not in lines["#1"]
    assert "words" in lines["#2"] and "字" not in lines["#2"]
    listed = [json.loads(line) for line in cli("history", "--json", env=env).stdout.splitlines()]
    assert {row["id"]: row["unit"] for row in listed} == {1: "字", 2: "words"}
    (version,) = [json.loads(line) for line in cli("versions", "1", "--json", env=env).stdout
                  .splitlines()]
    assert version["unit"] == "字"


def test_batch_progress_and_results_file_say_zi_for_chinese_rows(env, fake, tmp_path):
    fake.responder = lambda body: Reply(
        text=ZH_TEXT if "量子" in json.dumps(body, ensure_ascii=False) else EN_TEXT)
    data = "topic,language\n量子计算,中文\nKettles,English\n量子通信,zh\n"
    path = write_file(tmp_path, "mixed.csv", data.encode())
    out = tmp_path / "results.csv"
    result = batch_cli(path, "--yes", "--out", out, "--length", "60", "--concurrency", "1",
                       "--no-length-control", env=env)
    assert result.returncode == 0, result.stderr
    progress = {line.split(":")[0]: line for line in result.stderr.splitlines()
                if line.startswith("row ")}
    assert "/60 字" in progress["row 1"] and "words" not in progress["row 1"]
    assert "/60 words" in progress["row 2"]
    (summary,) = [line for line in result.stderr.splitlines() if " completed, " in line]
    assert "字" in summary and "words" in summary  # each unit totalled on its own
    header, *lines = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"),
                                                 newline="")))
    assert "words" in header and "target_words" in header and "unit" in header
    units = [line[header.index("unit")] for line in lines]
    assert units == ["字", "words", "字"]
