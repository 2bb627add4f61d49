"""Variants against the loopback provider: N versions of one brief, each written by a
normal Job, gathered into one article whose versions they are; costs summed once."""
import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.runs import variants
from writer.storage import versions
from writer.storage.store import Store
from writer.storage.usage import totals

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

TEXTS = ["春季上新：一杯好咖啡，从清晨开始。", "三十秒，一杯醇香浓缩。", "安静研磨，不吵醒家人。"]
USAGE = [(100, 20), (100, 30), (100, 40)]


def cost(usage) -> float:
    return (usage[0] * 0.15 + usage[1] * 0.60) / 1e6


def write_variants(env, fake, replies, count=3) -> tuple[Store, list[int]]:
    fake.queue(*replies)
    jobs = variants.jobs_for(Brief(topic="新品咖啡机", content_type="social_post", target_words=50),
                             load_settings(), count, length_control=False)
    ids = [job.queue() for job in jobs]
    store = Store(env["WRITER_DB"])
    variants.tag(store, ids)
    for job in jobs[:-1]:
        list(job.run())
        assert variants.gather(store, ids[0]) is None  # not while some are still to be written
    list(jobs[-1].run())
    return store, ids


def test_three_variants_become_versions_of_one_article_costed_once(env, fake):
    store, ids = write_variants(env, fake, [Reply(text=t, usage=u) for t, u in zip(TEXTS, USAGE)])
    spent_before = totals(store)
    assert variants.gather(store, ids[0]) == ids[0]
    assert variants.gather(store, ids[0]) is None  # once only
    article = store.get(ids[0])
    assert [store.get(i) for i in ids[1:]] == [None, None]  # gathered into the first
    listed = versions.listing(store, ids[0])
    assert [(v["number"], v["kind"], v["content"]) for v in listed] == [
        (1, "variant", TEXTS[0]), (2, "variant", TEXTS[1]), (3, "variant", TEXTS[2])]
    assert [v["cost"] for v in listed] == pytest.approx([cost(u) for u in USAGE])
    assert (article["input_tokens"], article["output_tokens"]) == (300, 90)
    assert article["cost"] == pytest.approx(sum(cost(u) for u in USAGE))
    assert (article["content"], article["current_version"]) == (TEXTS[0], 1)
    after = totals(store)  # Usage counts every variant exactly once, before and after
    assert after["cost"] == pytest.approx(spent_before["cost"])
    assert (after["articles"], after["output_tokens"]) == (1, spent_before["output_tokens"])
    versions.choose(store, ids[0], 3, actor=ADMIN)  # the user picks the third
    assert store.get(ids[0])["content"] == TEXTS[2]


def test_a_failed_first_variant_shows_one_that_was_written(env, fake):
    store, ids = write_variants(env, fake, [Reply(status=400, error_message="bad"),
                                            Reply(text=TEXTS[1], usage=USAGE[1])], count=2)
    assert variants.gather(store, ids[0]) == ids[0]
    article = store.get(ids[0])
    assert (article["status"], article["content"], article["current_version"]) == (
        "completed", TEXTS[1], 1)
    assert [v["content"] for v in versions.listing(store, ids[0])] == [TEXTS[1]]


def test_counts():
    assert variants.default_count("social_post") == variants.default_count("marketing_copy") == 3
    assert variants.default_count("blog") == 1
    with pytest.raises(ValueError, match="variants must be 1 to 3"):
        variants.jobs_for(Brief(topic="x"), load_settings(), 4)


def test_write_page_writes_three_variants_side_by_side_and_picks_one(env, fake):
    from streamlit.testing.v1 import AppTest

    from test_pages import ROOT, markdown_text

    fake.queue(*[Reply(text=t, usage=u, chunk_chars=4) for t, u in zip(TEXTS, USAGE)])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.selectbox(key="content_type").set_value("social_post").run()
    assert at.get("button_group")[0].value == 3  # social posts default to 3 variants
    at.text_input(key="topic").input("新品咖啡机")
    at.checkbox(key="length_control").set_value(False)
    at.button(key="generate").click().run()
    assert not at.exception
    at.run()  # the page after the variants were gathered
    store = Store(env["WRITER_DB"])
    (listed,) = store.recent(10)  # one article: the variants were gathered into it
    article = store.get(listed["id"])
    assert len(fake.requests) == 3 and article["current_version"] == 1
    assert [v["kind"] for v in versions.listing(store, article["id"])] == ["variant"] * 3
    text = markdown_text(at)
    assert all(t in text for t in TEXTS)  # side by side
    at.button(key=f"versions-{article['id']}-use-2").click().run()
    second = versions.get(store, article["id"], 2)["content"]  # (requests ran at once)
    assert second in TEXTS and store.get(article["id"])["content"] == second
    assert store.get(article["id"])["cost"] == pytest.approx(sum(cost(u) for u in USAGE))


def test_cli_write_variants_then_choose(env, fake):
    from test_cli import cli

    fake.queue(*[Reply(text=t, usage=u) for t, u in zip(TEXTS, USAGE)])
    done = cli("write", "--topic", "新品咖啡机", "--type", "social_post", "--length", "50",
               "--variants", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("--- variant 1 of 3 ---\n" + TEXTS[0])
    assert "--- variant 3 of 3 ---\n" + TEXTS[2] in done.stdout
    assert "3 variants kept as versions 1-3" in done.stderr
    store = Store(env["WRITER_DB"])
    (listed,) = store.recent(10)
    assert [v["content"] for v in versions.listing(store, listed["id"])] == TEXTS
    shown = cli("show", str(listed["id"]), "--format", "json", env=env)
    import json
    data = json.loads(shown.stdout)
    assert [v["number"] for v in data["versions"]] == [1, 2, 3]
    assert data["checks"]["passed"] is True and data["brand"] is None
    assert cli("choose", str(listed["id"]), "3", env=env).returncode == 0
    assert store.get(listed["id"])["content"] == TEXTS[2]
    bad = cli("write", "--topic", "x", "--variants", "5", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: variants must be 1 to 3, not 5"
