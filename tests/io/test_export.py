"""Exporting a saved article: md, txt, html, docx and json."""
from __future__ import annotations

import json
import re
from io import BytesIO

import docx
import pytest

from writer.io.export import (
    FORMATS,
    MIME_TYPES,
    export,
    slugify,
    to_docx,
    to_html,
    to_json,
    to_markdown,
    to_text,
)

TOPIC = "远程办公效率指南：Remote <Work> & Tips"

ARTICLE = """\
# 远程办公效率指南

远程办公已经成为**新常态**。本文介绍几个*实用*技巧，并附上 `pomodoro` 工具的用法。

## 核心原则

- 固定工作时间，保持 **routine**。
- 使用 [Notion](https://www.notion.so) 记录任务。
- 减少不必要的会议。

## 操作步骤

1. 设置专用工作区。
2. 每天早上列出三件最重要的事。
3. 下班后关闭通知。

> 自律给我自由。Discipline equals freedom.

```python
def focus(minutes: int = 25) -> str:
    return f"专注 {minutes} 分钟"
```

注意：不要在文章里写 <script>alert(1)</script> 这样的代码。
"""

SENTENCES = [
    "远程办公效率指南",
    "远程办公已经成为新常态。本文介绍几个实用技巧，并附上 pomodoro 工具的用法。",
    "核心原则",
    "操作步骤",
    "自律给我自由。Discipline equals freedom.",
    "注意：不要在文章里写 <script>alert(1)</script> 这样的代码。",
]
BULLETS = ["固定工作时间，保持 routine。", "使用 Notion (https://www.notion.so) 记录任务。", "减少不必要的会议。"]
STEPS = ["设置专用工作区。", "每天早上列出三件最重要的事。", "下班后关闭通知。"]


@pytest.fixture
def row() -> dict:
    return {
        "id": 42, "topic": TOPIC, "content": ARTICLE, "content_type": "blog", "language": "zh",
        "created_at": "2024-05-01T08:00:00.000Z", "words": 120, "target_words": 800,
        "model": "gpt-4o-mini", "provider": "openai", "status": "completed", "cost": None,
    }


def open_docx(data: bytes) -> docx.document.Document:
    return docx.Document(BytesIO(data))


def test_markdown_round_trips_and_ends_with_newline(row):
    assert to_markdown(row) == ARTICLE
    row["content"] = ARTICLE.rstrip("\n")
    assert to_markdown(row) == ARTICLE


def test_text_drops_markdown_markers(row):
    text = to_text(row)
    for marker in ("**", "#", "`", "](", "```"):
        assert marker not in text
    assert not re.search(r"(?<!\w)\*\w", text)  # no *italic* markers left


def test_text_keeps_every_sentence_and_list_item(row):
    lines = to_text(row).splitlines()
    for sentence in SENTENCES:
        assert any(sentence in line for line in lines), sentence
    assert [f"- {item}" for item in BULLETS] == [line for line in lines if line.startswith("- ")]
    assert [f"{n}. {item}" for n, item in enumerate(STEPS, 1)] == [
        line for line in lines if re.match(r"\d\. ", line)]


def test_text_keeps_code_verbatim_and_separates_paragraphs(row):
    text = to_text(row)
    assert 'def focus(minutes: int = 25) -> str:\n    return f"专注 {minutes} 分钟"' in text
    assert "远程办公效率指南\n\n远程办公已经成为" in text
    assert "\n".join(f"- {item}" for item in BULLETS) in text  # tight list: one item per line
    assert text.endswith("代码。\n")


def test_html_is_a_standalone_document(row):
    page = to_html(row)
    assert page.startswith("<!doctype html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    assert "<title>远程办公效率指南：Remote &lt;Work&gt; &amp; Tips</title>" in page
    assert "Microsoft YaHei" in page and "<style>" in page
    assert "<h1>远程办公效率指南</h1>" in page and "<h2>核心原则</h2>" in page
    assert page.count("<li>") == len(BULLETS) + len(STEPS)
    assert "<strong>新常态</strong>" in page and '<a href="https://www.notion.so">Notion</a>' in page
    assert "<blockquote>" in page and '<code class="language-python">' in page
    assert page.rstrip().endswith("</html>")


def test_html_escapes_raw_html_and_javascript_links(row):
    row["content"] += "\n[点我](javascript:alert(2))\n\n<img src=x onerror=alert(3)>\n"
    page = to_html(row)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript' not in page and "<p>[点我](javascript:alert(2))</p>" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(3)&gt;" in page


def test_html_language_follows_row(row):
    row["language"] = "en"
    assert '<html lang="en">' in to_html(row)


def test_docx_structure(row):
    doc = open_docx(to_docx(row))
    styled = [(p.style.name, p.text) for p in doc.paragraphs]
    assert styled[0] == ("Heading 1", "远程办公效率指南")
    assert ("Heading 2", "核心原则") in styled and ("Heading 2", "操作步骤") in styled
    assert [text for style, text in styled if style == "List Bullet"] == BULLETS
    assert [text for style, text in styled if style == "List Number"] == STEPS
    assert ("Quote", "自律给我自由。Discipline equals freedom.") in styled
    assert SENTENCES[-1] in [text for _, text in styled]  # raw HTML kept as literal text


def test_docx_runs_and_fonts(row):
    doc = open_docx(to_docx(row))
    runs = [run for p in doc.paragraphs for run in p.runs]
    assert any(run.bold and run.text == "新常态" for run in runs)
    assert any(run.italic and run.text == "实用" for run in runs)
    assert any(run.font.name == "Consolas" and run.text == "pomodoro" for run in runs)
    code = next(run for run in runs if "def focus" in run.text)
    assert code.font.name == "Consolas" and 'return f"专注 {minutes} 分钟"' in code.text
    east_asia = runs[0]._element.rPr.rFonts.get(docx.oxml.ns.qn("w:eastAsia"))
    assert east_asia == "Microsoft YaHei"


def test_docx_keeps_chinese_and_core_properties(row):
    doc = open_docx(to_docx(row))
    body = "\n".join(p.text for p in doc.paragraphs)
    for sentence in SENTENCES + STEPS:
        assert sentence in body
    props = doc.core_properties
    assert props.title == "远程办公效率指南"  # the article's first heading
    assert props.subject == TOPIC
    assert props.author == props.last_modified_by == "AI Writing Assistant"
    assert "python-docx" not in (props.comments or "")
    assert props.language == "zh-CN"
    assert props.created.isoformat().startswith("2024-05-01T08:00:00")


def test_docx_title_falls_back_to_the_topic(row):
    row["content"] = "No heading here, just **text**.\n\n## Later heading\n"
    assert open_docx(to_docx(row)).core_properties.title == "Later heading"
    row["content"] = "No heading at all.\n"
    row["language"] = "en"
    props = open_docx(to_docx(row)).core_properties
    assert props.title == TOPIC and props.language == "en"
    row["topic"], row["content"] = "长" * 300, ""
    assert len(open_docx(to_docx(row)).core_properties.title) <= 255


def test_docx_numbered_lists_restart(row):
    row["content"] = "1. 甲\n2. 乙\n\n段落\n\n1. 丙\n2. 丁\n"
    doc = open_docx(to_docx(row))
    items = [p for p in doc.paragraphs if p.style.name == "List Number"]
    num_ids = [p._p.pPr.numPr.numId.val for p in items]
    assert [p.text for p in items] == ["甲", "乙", "丙", "丁"]
    assert num_ids[0] == num_ids[1] != num_ids[2] == num_ids[3]


def test_json_parses_back_to_the_row(row):
    text = to_json(row)
    assert json.loads(text) == {**row, "unit": "字"}  # what `words` counts (a zh article)
    assert TOPIC in text  # ensure_ascii=False: Chinese stays readable


@pytest.mark.parametrize("fmt, mime", [
    ("md", "text/markdown"), ("txt", "text/plain"), ("html", "text/html"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("json", "application/json"),
])
def test_export_names_and_mime_types(row, fmt, mime):
    data, mime_type, name = export(row, fmt)
    assert isinstance(data, bytes) and data
    assert mime_type.split(";")[0] == mime and MIME_TYPES[fmt] == mime_type
    assert name == f"42-远程办公效率指南-remote-work-tips.{fmt}"


def test_export_bytes_match_renderers(row):
    assert export(row, "md")[0] == to_markdown(row).encode("utf-8")
    assert export(row, "txt")[0].decode("utf-8") == to_text(row)
    assert export(row, "docx")[0][:2] == b"PK"  # a zip container
    assert set(FORMATS) == {"md", "txt", "html", "docx", "json"}


def test_slug_rules():
    assert slugify("Hello, World! 你好——世界") == "hello-world-你好-世界"
    assert slugify("!!!") == "article"
    assert slugify("") == "article"
    long = slugify("a" * 30 + " " + "b" * 30)
    assert len(long) <= 40 and not long.endswith("-")


def test_export_unknown_format_raises_one_line(row):
    with pytest.raises(ValueError) as error:
        export(row, "pdf")
    message = str(error.value)
    assert "pdf" in message and "\n" not in message
    assert all(fmt in message for fmt in FORMATS)


# NUL, SOH, vertical tab, ESC, U+FFFE and a lone surrogate: what a model can emit.
BAD = "\x00\x01\x0b\x1b\ufffe\ud800"
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@pytest.fixture
def dirty(row) -> dict:
    row["topic"] = f"Bad{BAD} topic"
    row["content"] = (f"# Title{BAD} here\n\nA para{BAD}graph with\ttab.\n\n- item{BAD}\n\n"
                      f"| a{BAD} | b |\n|---|---|\n| c | d{BAD} |\n\n```\ncode{BAD}\n```\n")
    row["keywords"] = [f"k{BAD}1", "k2"]
    row["error"] = f"provider said {BAD}"
    return row


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_survives_control_characters(dirty, fmt):
    data, _, name = export(dirty, fmt)
    assert data and "\x00" not in name
    if fmt == "docx":
        doc = open_docx(data)
        text = "\n".join(p.text for p in doc.paragraphs)
        text += "\n".join(cell.text for table in doc.tables for row in table.rows for cell in row.cells)
        assert "Title here" in text and "A paragraph with\ttab." in text and "code" in text
        assert "d" in text and not CONTROL.search(text)
        props = doc.core_properties
        assert props.title == "Title here" and props.subject == "Bad topic"
        assert props.author == "AI Writing Assistant" and props.keywords == "k1, k2"
    else:
        text = data.decode("utf-8")  # a lone surrogate would not even encode
        assert not CONTROL.search(text)
        assert "Title here" in text
        assert "A paragraph with" + ("\\t" if fmt == "json" else "\t") + "tab." in text
        if fmt == "json":
            parsed = json.loads(text)
            assert parsed["topic"] == "Bad topic" and parsed["keywords"] == ["k1", "k2"]
            assert parsed["error"] == "provider said "
        if fmt == "html":
            assert "<title>Bad topic</title>" in text


def test_renderers_called_directly_are_safe_too(dirty):
    original = dict(dirty)
    for render in (to_markdown, to_text, to_html, to_json):
        assert not CONTROL.search(render(dirty))
    assert open_docx(to_docx(dirty)).core_properties.title == "Title here"
    assert dirty == original  # the caller's row is not modified


def test_xml_safe_keeps_what_xml_allows():
    from writer.io.export import xml_safe

    kept = "tab\tnl\ncr\r 中文 emoji 😀 \x7f \ufffd \U0001f600"
    assert xml_safe(kept) == kept
    assert xml_safe("a\x00b\x1fc\uffffd\udfffe") == "abcde"
    assert xml_safe("\ud83d\ude00") == "😀"  # a pair split in two code points is joined


@pytest.mark.parametrize("language, counted", [("zh", "字"), ("en", "words"), (None, "words")])
def test_json_export_says_what_its_words_count(language, counted):
    """A Chinese article's `words` are characters: the JSON names the unit (issue 22)."""
    data = json.loads(to_json({"id": 1, "topic": "量子", "language": language, "words": 120,
                               "target_words": 100, "content": "量子"}))
    assert data["unit"] == counted and data["words"] == 120
