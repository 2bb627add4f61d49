"""Length control: articles land within 0.8–1.2× the target, end on a sentence, and
the seams between rounds are clean. Unit tests for the pieces in writer/generation/length.py,
then the engine end to end against the loopback provider scripted to stop early, to
ramble, to be cut at max_tokens, and to write a long article from an outline."""
from __future__ import annotations

import re

import pytest

from fake_openai import Reply
from scripted_writer import ScriptedWriter
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.counting import count_words
from writer.generation.events import Notice, Outlined
from writer.generation.length import (
    Budget,
    LengthPlan,
    budget_for,
    join_seam,
    outcome,
    parse_outline,
    sentence_end,
    sentence_ends,
)
from writer.generation.seam import repeated_at
from writer.kinds import LengthOutcome, NoticeKind, Status
from writer.runs.job import Job, can_continue
from writer.storage.store import Store

SENTENCE_MARKS = tuple("。！？.!?”\"）)")


# -- where an article may end --------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("第一句。第二句", "第一句。"),
    ("他说：“好。”然后", "他说：“好。”"),
    ("Is it? Yes", "Is it?"),
    ('He said "yes." Then', 'He said "yes."'),
    ("It costs 3.5 dollars. Next", "It costs 3.5 dollars."),
    ("- first item\n- second", "- first item"),
])
def test_first_sentence_end(text, expected):
    assert text[:sentence_end(text)] == expected


def test_no_end_inside_a_decimal_or_after_a_heading():
    assert sentence_end("Version 2.0 is") is None
    assert sentence_ends("# Title\n\n## Part one\n") == []
    text = "Done.\n\n## Next part\n\nMore"
    assert all(not text[:end].rstrip().endswith("part") for end in sentence_ends(text))


def test_a_blank_line_after_a_short_unpunctuated_line_is_a_heading_not_an_end():
    """Gemma ended a post on "2.用“小”号相机拍" (a blank line after it): a short line
    without an end mark is a heading; a long paragraph without one still ends."""
    text = "第一段。\n\n2.用“小”号相机拍\n\n拍的时候"
    assert [text[:end] for end in sentence_ends(text)] == ["第一段。"]
    paragraph = "这是一段很长的文字但是作者没有写句号所以只能靠空行来判断它已经结束"
    assert sentence_ends(paragraph + "\n\n下一段") == [len(paragraph)]
    assert sentence_ends("Why it matters\n\nBecause") == []


def test_a_latin_end_needs_the_next_character_unless_final():
    assert sentence_end("The end.") is None  # "The end.5" could still follow
    assert sentence_end("The end.", final=True) == len("The end.")


def test_join_seam_never_glues_words():
    assert join_seam("what we need", "The next part") == " The next part"
    assert join_seam("the end.", "Next") == " Next"
    assert join_seam("the end. ", "Next") == "Next"
    assert join_seam("第一段。", "第二段") == "第二段"
    assert join_seam("ends\n", "## Heading") == "## Heading"


def test_budget_is_measured_per_language_and_never_cuts_below_the_target():
    budget = Budget()
    zh, en = budget.tokens_per_word("zh"), budget.tokens_per_word("en")
    assert 0.8 < zh < 3 and 0.8 < en < 2.5 and zh != en
    for words, language in [(100, "en"), (3000, "zh"), (20000, "en")]:
        cap = 100_000
        assert budget.max_tokens(words, language, cap) >= words * budget.tokens_per_word(language)
    assert budget.max_tokens(20000, "zh", 8192) == 8192  # the cap still holds


def test_the_local_model_is_budgeted_with_its_own_tokenizer():
    local = budget_for("local")
    assert local.name == "local"
    assert local.tokens_per_word("en") != pytest.approx(Budget().tokens_per_word("en"), abs=1e-6)


def test_outline_parsing_rescales_budgets_to_the_target():
    outline = parse_outline("# 标题\n\n1. 开场（300字）\n2. 痛点：500\n3. **结语**\n", 2000)
    assert outline.title == "标题" and [h for h, _ in outline.sections] == ["开场", "痛点", "结语"]
    assert abs(sum(w for _, w in outline.sections) - 2000) <= 3
    assert parse_outline("just one line", 2000) is None


def test_outcome_bands():
    plan = LengthPlan.for_target(500, "en")
    assert (plan.low, plan.high) == (400, 600)
    assert outcome(399, 500) == LengthOutcome.SHORT and outcome(400, 500) == LengthOutcome.ON_TARGET
    assert outcome(600, 500) == LengthOutcome.ON_TARGET and outcome(601, 500) == LengthOutcome.LONG
    assert LengthPlan.for_target(1500, "zh").long_form and not LengthPlan.for_target(1499, "zh").long_form


# -- the engine keeps the promise ------------------------------------------------------

def write(env, fake, writer, target, language="en", content_type="blog", **kwargs):
    fake.responder = writer
    job = Job(Brief(topic="length control", content_type=content_type, target_words=target,
                    language=language), load_settings(), **kwargs)
    events = list(job.run())
    row = Store(env["WRITER_DB"]).get(job.article_id)
    return job, events, row


def assert_on_target(row, target):
    words = count_words(row["content"])
    assert row["words"] == words
    assert 0.8 * target <= words <= 1.2 * target, (words, target)
    assert row["length_outcome"] == LengthOutcome.ON_TARGET
    assert row["content"].rstrip().endswith(SENTENCE_MARKS), row["content"][-80:]


def assert_no_glued_words(text):
    # "needThe": a lower-case letter straight before an upper-case one is never a seam.
    assert not re.search(r"[a-z][A-Z][a-z]", text), re.search(r".{20}[a-z][A-Z][a-z].{20}", text)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_rambling_model_is_stopped_on_a_sentence_past_the_target(env, fake, language):
    writer = ScriptedWriter("ramble", chunk_delay=0.003)  # paced, so a close is noticed
    job, events, row = write(env, fake, writer, 300, language)
    assert row["status"] == Status.COMPLETED
    assert_on_target(row, 300)
    assert row["words"] >= 300  # it ended at the first sentence end past the target
    assert row["length_rounds"] == 1 and writer.asked == ["article"]
    # The stream was closed there: the rest was never sent (or paid for).
    assert fake.disconnects and fake.chunks_sent[0] < len(writer.replies[0].pieces())
    assert job.generation.trimmed  # text received after the end is not in the article


@pytest.mark.parametrize("language", ["en", "zh"])
def test_an_early_stop_is_topped_up_without_seams(env, fake, language):
    writer = ScriptedWriter("early")
    job, events, row = write(env, fake, writer, 400, language)
    assert row["status"] == Status.COMPLETED
    assert_on_target(row, 400)
    assert writer.asked[0] == "article" and set(writer.asked[1:]) == {"lengthen"}
    assert row["length_rounds"] == len(writer.asked) >= 2
    assert job.generation.discarded  # the repeated words at each seam were dropped
    assert len(job.generation.seams) == row["length_rounds"] - 1
    assert repeated_at(row["content"], job.generation.seams) is None
    assert_no_glued_words(row["content"])
    rounds = [e for e in events if isinstance(e, Notice) and e.kind == NoticeKind.LENGTHEN]
    assert len(rounds) == row["length_rounds"] - 1
    # Each top-up asked for the rest of the target, with the text so far.
    lengthen = [r for r in fake.requests if "more" in str(r["messages"][-1]["content"])]
    assert lengthen and all(r["messages"][-2]["role"] == "assistant" for r in lengthen)


def test_an_answer_cut_at_max_tokens_is_continued_into_range(env, fake):
    first = "# Cut short\n\n" + " ".join(["This sentence is complete."] * 20) + " And this one is cut"
    fake.queue(Reply(text=first, finish_reason="length", usage=None))
    writer = ScriptedWriter("exact")
    job, events, row = write(env, fake, writer, 200)
    assert row["status"] == Status.COMPLETED and row["finish_reason"] == "stop"
    assert_on_target(row, 200)
    # Cut mid-sentence by max_tokens: the next request resumes exactly there (the
    # model finishes the sentence) instead of asking for new material after it.
    assert writer.asked[0] == "continue"
    assert "exactly where it stopped" in fake.requests[1]["messages"][-1]["content"]
    assert fake.requests[1]["messages"][-2]["content"] == first


def test_a_long_article_is_outlined_then_written_section_by_section(env, fake):
    writer = ScriptedWriter("exact")
    job, events, row = write(env, fake, writer, 2000)
    assert row["status"] == Status.COMPLETED
    assert_on_target(row, 2000)
    (outlined,) = [e for e in events if isinstance(e, Outlined)]
    sections = outlined.outline.sections
    assert 3 <= len(sections) <= 8 and writer.asked[0] == "outline"
    assert row["outline"] == outlined.outline.as_markdown()
    for heading, _ in sections:
        assert row["content"].count(f"## {heading}") == 1
    assert row["content"].startswith("# A long article\n\n## Part 1")
    progress = [(e.attempt, e.max_attempts) for e in events
                if isinstance(e, Notice) and e.kind == NoticeKind.SECTION]
    assert progress == [(i, len(sections)) for i in range(1, len(sections) + 1)]
    assert row["length_rounds"] >= len(sections)


def test_a_fixed_outline_writes_sections_under_the_prompt_sets_headings(env, fake):
    """prompts/local_zh (Gemma, a base model) plans long articles itself: from 500 字,
    fixed headings, about 300 字 each, no outline request; the heading the prompt ends
    with is put into the article by the engine."""
    from writer.config import PROJECT_ROOT
    from writer.generation.prompts import load_prompts

    prompts = load_prompts(PROJECT_ROOT / "prompts" / "local_zh")
    asked = []

    def responder(request):
        asked.append(request["messages"][-1]["content"])
        return Reply(text="春天的公园里花开得正好，适合散步。" * 30)

    fake.responder = responder
    job = Job(Brief(topic="春天的公园", content_type="blog", target_words=900, language="zh"),
              load_settings(), prompts=prompts)
    events = list(job.run())
    row = Store(env["WRITER_DB"]).get(job.article_id)
    (outlined,) = [e for e in events if isinstance(e, Outlined)]
    headings = [heading for heading, _ in outlined.outline.sections]
    assert headings == ["为什么值得关注", "先弄清几个基本问题", "具体怎么做"]  # 900 / 300
    assert len(asked) >= 3 and not any("提纲" in a for a in asked)  # no outline request
    assert all(a.endswith(f"## {h}") for a, h in zip(asked, headings))
    assert row["content"].startswith("# 春天的公园\n\n## 为什么值得关注\n\n春天")
    for heading in headings:
        assert row["content"].count(f"## {heading}") == 1
    assert_on_target(row, 900)
    assert prompts.long_form_words == 500 and prompts.heading_in_text
    assert load_prompts().long_form_words is None and not load_prompts().heading_in_text
    assert load_prompts().fixed_outline({"topic": "x"}, "blog", 3000) is None


def test_a_long_rambling_article_stays_in_range(env, fake):
    job, events, row = write(env, fake, ScriptedWriter("ramble", chunk_delay=0.002), 1800, "zh")
    assert_on_target(row, 1800)
    assert len(fake.disconnects) >= 3  # each section was cut off at its budget


def test_without_length_control_the_answer_is_kept_whole(env, fake):
    writer = ScriptedWriter("ramble")
    job, events, row = write(env, fake, writer, 200, length_control=False)
    assert row["length_control"] == 0 and row["length_outcome"] is None
    assert row["content"] == writer.replies[0].text  # every word the model sent
    assert row["words"] >= 3 * 200 and not fake.disconnects


def test_continue_is_offered_only_below_the_target(env, fake):
    fake.queue(Reply(text="# T\n\n" + "Complete sentence here. " * 40, finish_reason="stop"))
    writer = ScriptedWriter("exact")
    job, events, row = write(env, fake, writer, 100)
    assert row["words"] >= 100 and not can_continue(row)  # completed
    stopped = {**row, "status": Status.STOPPED}
    assert not can_continue(stopped)  # already past its target
    assert can_continue({**stopped, "words": 50})
    assert can_continue({**stopped, "length_control": 0})  # free-form: its own rules


def test_cli_flag_turns_length_control_off(env, fake):
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake.responder = ScriptedWriter("ramble")
    result = subprocess.run(
        [sys.executable, "-m", "writer", "write", "--topic", "free", "--language", "en",
         "--length", "100", "--no-length-control"], cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "free-form" in result.stderr and count_words(result.stdout) > 250
    held = subprocess.run(
        [sys.executable, "-m", "writer", "write", "--topic", "held", "--language", "en",
         "--length", "100"], cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert held.returncode == 0, held.stderr
    assert 80 <= count_words(held.stdout) <= 120 and "length: on target" in held.stderr
