"""Versions and revisions end to end against the loopback provider: every text is a
version, a revision (whole or one section) streams as a new version through the one
engine, an older version can be made current again, and every run's tokens and cost
are summed on the article."""
import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Finished
from writer.runs.job import Job, JobError
from writer.runs.revisions import RevisionJob, instruction_for, sections, target_for
from writer.storage import versions
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

DRAFT = ("# 新品咖啡机上市\n\n清晨的第一杯咖啡，只需三十秒。\n\n"
         "## 一键萃取\n\n按下按钮，浓缩咖啡就好了。\n\n"
         "## 静音研磨\n\n研磨时几乎听不到声音，不会吵醒家人。\n")
NEW_SECTION = "## 一键萃取\n\n轻轻一按，三十秒后就是一杯醇厚的浓缩咖啡，连清洗都是自动的。"
PRICE = (0.15, 0.60)  # gpt-4o-mini per 1M tokens


def cost(usage: tuple[int, int]) -> float:
    return (usage[0] * PRICE[0] + usage[1] * PRICE[1]) / 1e6


def write_draft(fake, usage=(100, 50)) -> int:
    fake.queue(Reply(text=DRAFT, chunk_chars=6, usage=usage))
    job = Job(Brief(topic="新品咖啡机", target_words=60, keywords=("咖啡", "静音", "保修")),
              load_settings(), length_control=False)
    assert isinstance(list(job.run())[-1], Finished)
    return job.article_id


def revise(article_id: int, **options) -> RevisionJob:
    job = RevisionJob(article_id, load_settings(), length_control=False, **options, actor=ADMIN)
    list(job.run())
    return job


def test_sections_are_the_headings_or_else_the_paragraphs():
    parts = sections(DRAFT)
    assert [p.title for p in parts] == ["新品咖啡机上市", "一键萃取", "静音研磨"]
    assert parts[1].text(DRAFT) == "## 一键萃取\n\n按下按钮，浓缩咖啡就好了。"
    plain = "First paragraph here.\n\nSecond one.\n\n\nThird, last."
    assert [p.text(plain) for p in sections(plain)] == ["First paragraph here.", "Second one.",
                                                       "Third, last."]


def test_a_draft_is_version_one_with_its_cost_and_checks(env, fake):
    article_id = write_draft(fake)
    store = Store(env["WRITER_DB"])
    (draft,) = versions.listing(store, article_id)
    article = store.get(article_id)
    assert (draft["number"], draft["kind"], draft["status"]) == (1, "draft", "completed")
    assert draft["content"] == DRAFT == article["content"] and article["current_version"] == 1
    assert (draft["input_tokens"], draft["output_tokens"]) == (100, 50)
    assert draft["cost"] == pytest.approx(cost((100, 50))) == pytest.approx(article["cost"])
    assert article["checks"]["keywords_missing"] == ["保修"]  # 咖啡 and 静音 are in it


def test_a_section_revision_is_a_new_current_version_and_costs_add_up(env, fake):
    article_id = write_draft(fake)
    fake.queue(Reply(text=NEW_SECTION, chunk_chars=5, usage=(400, 60)))
    job = revise(article_id, preset="longer", instruction="提到自动清洗", section=2)
    store = Store(env["WRITER_DB"])
    article = store.get(article_id)
    expected = DRAFT.replace("## 一键萃取\n\n按下按钮，浓缩咖啡就好了。", NEW_SECTION)
    assert article["content"] == expected and article["current_version"] == 2
    one, two = versions.listing(store, article_id)
    assert (two["kind"], two["section"], two["status"]) == ("revision", 2, "completed")
    assert two["instruction"] == "[longer] 提到自动清洗"  # kept as chosen, shown as a label
    assert "more detailed" in job.instruction and "提到自动清洗" in job.instruction  # as sent
    assert two["content"] == expected and one["content"] == DRAFT  # the draft is kept
    # the article costs the draft plus the revision
    assert (article["input_tokens"], article["output_tokens"]) == (500, 110)
    assert article["cost"] == pytest.approx(cost((100, 50)) + cost((400, 60)))
    assert two["cost"] == pytest.approx(cost((400, 60)))
    # the request asked for that section only, with the article as context
    prompt = fake.requests[-1]["messages"][1]["content"]
    assert "part 2 of 3" in prompt and "按下按钮" in prompt and "静音研磨" in prompt
    assert job.brief.target_words == target_for(20, "longer", "zh", "zh")


def test_choosing_an_older_version_makes_it_current_again(env, fake):
    article_id = write_draft(fake)
    fake.queue(Reply(text="# Short\n\nShorter now.", usage=(300, 10)))
    revise(article_id, preset="shorter")
    store = Store(env["WRITER_DB"])
    assert store.get(article_id)["current_version"] == 2
    before = store.get(article_id)["cost"]
    versions.choose(store, article_id, 1, actor=ADMIN)
    article = store.get(article_id)
    assert (article["content"], article["current_version"]) == (DRAFT, 1)
    assert article["cost"] == before  # choosing costs nothing
    with pytest.raises(versions.VersionError, match="has no version 7; it has 1, 2"):
        versions.choose(store, article_id, 7, actor=ADMIN)


def test_a_stopped_revision_keeps_the_current_text_and_its_partial_version(env, fake):
    article_id = write_draft(fake)
    fake.queue(Reply(text="Rewritten " * 40, chunk_chars=10, stall_after=3, stall_seconds=10))
    job = RevisionJob(article_id, load_settings(), length_control=False, instruction="rewrite", actor=ADMIN)
    events = job.run()
    for _ in range(3):
        next(events)
    events.close()  # Stop
    store = Store(env["WRITER_DB"])
    article = store.get(article_id)
    assert (article["content"], article["current_version"]) == (DRAFT, 1)
    two = versions.get(store, article_id, 2)
    assert two["status"] == "stopped" and two["content"].startswith("Rewritten Rewritten")
    assert article["output_tokens"] > 50  # its (estimated) tokens still count


def test_translate_flips_the_language_and_converts_the_length(env, fake):
    article_id = write_draft(fake)
    fake.queue(Reply(text="# New espresso machine\n\nThirty seconds to coffee."))
    job = revise(article_id, preset="translate")
    assert job.brief.language == "en" and "English" in job.instruction
    assert Store(env["WRITER_DB"]).get(article_id)["language"] == "en"


def test_refusals(env, fake):
    article_id = write_draft(fake)
    with pytest.raises(JobError, match="has 3 sections; choose 1 to 3, not 4"):
        RevisionJob(article_id, load_settings(), instruction="x", section=4, actor=ADMIN)
    with pytest.raises(JobError, match="say what to change"):
        instruction_for(None, "  ", "zh")
    with pytest.raises(JobError, match="there is no article #99"):
        RevisionJob(99, load_settings(), instruction="x", actor=ADMIN)


# ---- the CLI: revise, versions, choose (real subprocesses) -----------------------------

def test_cli_revise_versions_choose(env, fake):
    from test_cli import cli

    article_id = write_draft(fake)
    fake.queue(Reply(text=NEW_SECTION, chunk_chars=5, usage=(400, 60)))
    done = cli("revise", str(article_id), "--section", "2", "--instruction", "提到自动清洗",
               "--no-length-control", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == NEW_SECTION  # the new version streams to stdout
    assert "version 2 is now current" in done.stderr
    listed = cli("versions", str(article_id), env=env)
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("   1  draft") and lines[1].startswith("*  2  revision §2")
    assert "提到自动清洗" in lines[1]
    parts = cli("versions", str(article_id), "--sections", env=env).stdout.splitlines()
    assert parts == ["1\t新品咖啡机上市", "2\t一键萃取", "3\t静音研磨"]
    back = cli("choose", str(article_id), "1", env=env)
    assert back.returncode == 0 and "version 1 is now current" in back.stderr
    assert Store(env["WRITER_DB"]).get(article_id)["content"] == DRAFT
    bad = cli("choose", str(article_id), "9", env=env)
    assert bad.returncode == 1 and bad.stderr.strip() == \
        f"error: article #{article_id} has no version 9; it has 1, 2"
    bad = cli("revise", str(article_id), env=env)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "say what to change" in bad.stderr


# ---- the Write page (AppTest) ---------------------------------------------------------

def test_write_page_revise_compare_and_choose(env, fake):
    from streamlit.testing.v1 import AppTest

    from test_pages import ROOT as APP_ROOT
    from test_pages import fill_and_generate, markdown_text

    fake.queue(Reply(text=DRAFT, chunk_chars=6, usage=(100, 50)))
    at = fill_and_generate(AppTest.from_file(str(APP_ROOT / "app.py"), default_timeout=30).run(),
                           topic="新品咖啡机", target_words=60)
    assert not at.exception
    key = "revise-1"
    assert at.selectbox(key=f"{key}-scope").options == ["The whole article", "1. 新品咖啡机上市",
                                                        "2. 一键萃取", "3. 静音研磨"]
    fake.queue(Reply(text=NEW_SECTION, chunk_chars=5, usage=(400, 60)))
    at.selectbox(key=f"{key}-scope").set_value(2)
    at.text_input(key=f"{key}-text").input("提到自动清洗")
    at.button(key=f"{key}-run").click().run()
    assert not at.exception
    assert "轻轻一按" in markdown_text(at)  # the new version is the article now
    store = Store(env["WRITER_DB"])
    assert store.get(1)["current_version"] == 2
    assert "提到自动清洗" in fake.requests[-1]["messages"][1]["content"]
    at.run()  # the finished page: versions listed and compared
    table = at.dataframe[0].value
    assert list(table["Version"]) == ["1", "2 ✓"] and list(table["Kind"]) == ["draft", "revision §2"]
    diffs = [el.proto.body for el in at.main if el.type == "html" and "writer-diff" in el.proto.body]
    assert any("<del>" in d and "下按钮" in d for d in diffs)  # the draft, what went
    assert any("<ins>" in d and "轻轻一" in d for d in diffs)  # the revision, what came
    at.button(key="versions-1-choose-1-True").click().run()
    assert store.get(1)["current_version"] == 1 and store.get(1)["content"] == DRAFT
    assert at.text_input(key=f"{key}-text").value == ""  # the box is ready for the next one


# ---- title suggestions ------------------------------------------------------------------

def test_five_titles_in_one_request_costed_and_one_used_as_a_version(env, fake):
    from writer.runs import titles as headlines

    article_id = write_draft(fake)
    fake.queue(Reply(text="1. 清晨三十秒\n2. 静音的早晨\n3. 一键好咖啡\n4. 为什么要换咖啡机？\n"
                          "5. 「早鸟价」来了\n", usage=(300, 40)))
    titles = headlines.suggest(article_id, load_settings(), actor=ADMIN)
    assert titles == ["清晨三十秒", "静音的早晨", "一键好咖啡", "为什么要换咖啡机？", "「早鸟价」来了"]
    assert headlines.parse('- "Quiet mornings"\n《静音》\n') == ["Quiet mornings", "静音"]
    assert len(fake.requests) == 2 and "5 different titles" in fake.requests[1]["messages"][1]["content"]
    store = Store(env["WRITER_DB"])
    article = store.get(article_id)
    assert (article["input_tokens"], article["output_tokens"]) == (400, 90)  # draft + titles
    assert article["cost"] == pytest.approx(cost((100, 50)) + cost((300, 40)))
    number = headlines.use_title(store, article_id, "静音的早晨", actor=ADMIN)
    article = store.get(article_id)
    assert article["current_version"] == number == 2
    assert article["content"].startswith("# 静音的早晨\n\n清晨的第一杯咖啡")
    assert versions.get(store, article_id, 1)["content"] == DRAFT


def test_history_revises_and_the_write_page_shows_the_new_version(env, fake):
    from streamlit.testing.v1 import AppTest

    from test_pages import ROOT as APP_ROOT

    article_id = write_draft(fake)
    at = AppTest.from_file(str(APP_ROOT / "app.py"), default_timeout=30).run()
    at.switch_page("views/history.py").run()
    key = f"revise-{article_id}"
    at.session_state[f"{key}-preset"] = "shorter"
    fake.queue(Reply(text="# 新品咖啡机\n\n三十秒，一杯咖啡。", usage=(200, 20)))
    at.button(key=f"history-{key}-run").click().run()
    assert not at.exception
    assert at.title[0].value == "Write"  # moved to the Write page to watch it
    store = Store(env["WRITER_DB"])
    assert store.get(article_id)["current_version"] == 2
    assert "shorter" in versions.get(store, article_id, 2)["instruction"]


def test_a_revision_whose_process_died_is_recovered_as_stopped(env, fake):
    article_id = write_draft(fake)
    store = Store(env["WRITER_DB"])
    number = versions.open_version(store, article_id, kind="revision", status="streaming",
                                   instruction="x", content="half a revi", actor=ADMIN)
    with store.transaction() as conn:  # its process stopped beating long ago
        conn.execute("UPDATE versions SET updated_at = '2026-01-01T00:00:00.000Z' "
                     "WHERE number = ?", [number])
    Store(env["WRITER_DB"])  # any process opening the database recovers it
    version = versions.get(store, article_id, number)
    assert (version["status"], version["error_kind"]) == ("stopped", "interrupted")
    assert version["content"] == "half a revi" and store.get(article_id)["current_version"] == 1


def test_a_kept_instruction_is_shown_with_the_presets_label():
    from views.versions_view import instruction_text
    from writer.io.i18n import Translator

    zh = Translator("zh")
    assert instruction_text("[cta] 提到早鸟价", zh) == "加入行动号召 · 提到早鸟价"
    assert instruction_text("[shorter]", Translator("en")) == "Shorter"
    assert instruction_text("把第二段写得更生动", zh) == "把第二段写得更生动"
    assert instruction_text("# 静音的早晨", zh) == "# 静音的早晨" and instruction_text(None, zh) == "–"
