"""Delete: the text goes. After `delete` none of an article's text — its current text,
any draft, variant or revision, the search index — remains anywhere in the database:
on SQLite in none of its files (WAL included: secure_delete, the search index merged,
a checkpoint); on PostgreSQL in no live row of any table, search's `grams` included
(`stored` in tests/storage/conftest.py). PostgreSQL's files are another matter: the
old row versions stay in the table files until VACUUM reuses their space, and in the
WAL, backups and replicas (docs/schema.md). The row keeps its topic, tokens and cost
for Usage, and a save arriving after the delete writes no text."""
from pathlib import Path

import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Delta, Finished
from writer.runs import variants
from writer.runs.revisions import RevisionJob
from writer.storage import versions
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

MARKER = "QUOKKA-ZEBRA-7731-unique"
MARKER_ZH = "鹦鹉螺号潜艇的秘密航线图"


def texts(n: int) -> list[str]:
    """Texts that all carry the markers (the variants, the revision)."""
    return [f"# 第{i}稿\n\n{MARKER} 这是{MARKER_ZH}的第{i}个版本。{MARKER_ZH}。\n" for i in range(n)]


def assert_no_text(raw: bytes, topic: str) -> None:
    assert topic.encode() in raw  # what is read holds the rows: the deleted one keeps its topic
    assert MARKER.encode() not in raw
    assert MARKER[6:14].encode() not in raw  # "ZEBRA-77": a distinctive piece of it
    assert MARKER_ZH.encode() not in raw
    # every three characters of it: the trigram search index keeps text as such pieces
    pieces = [MARKER_ZH[i:i + 3] for i in range(len(MARKER_ZH) - 2)]
    assert [p for p in pieces if p.encode() in raw] == []
    # every two: the index of 1–2 character terms (m014) keeps text as such tokens
    pairs = [MARKER_ZH[i:i + 2] for i in range(len(MARKER_ZH) - 1)]
    assert [p for p in pairs if p.encode() in raw] == []


def write_with_versions(env, fake, stored) -> int:
    """An article of three variants, then a revision: five texts with the markers."""
    body = texts(4)
    fake.queue(*[Reply(text=t, chunk_chars=7, usage=(100, 20)) for t in body[:3]])
    jobs = variants.jobs_for(Brief(topic="海底旅行", content_type="social_post", target_words=60),
                             load_settings(), 3, length_control=False)
    ids = [job.queue() for job in jobs]
    store = Store(env["database"])
    try:
        variants.tag(store, ids)
        for job in jobs:
            assert isinstance(list(job.run())[-1], Finished)
        assert variants.gather(store, ids[0]) == ids[0]
    finally:
        store.close()
    fake.queue(Reply(text=body[3], chunk_chars=5, usage=(300, 30)))
    revision = RevisionJob(ids[0], load_settings(), length_control=False, instruction=MARKER_ZH, actor=ADMIN)
    list(revision.run())
    store = Store(env["database"])
    try:
        listed = versions.listing(store, ids[0])
        assert len(listed) == 4 and all(MARKER_ZH in v["content"] for v in listed)
        assert MARKER in store.get(ids[0])["content"]
    finally:
        store.close()
    assert MARKER_ZH.encode() in stored(env["database"])  # the test can see it
    return ids[0]


def test_delete_leaves_none_of_the_text_in_the_database_files(backend_env, fake, stored):
    env = backend_env
    article_id = write_with_versions(env, fake, stored)
    store = Store(env["database"])  # open throughout, like a server's: the WAL stays
    if store.dialect == "sqlite":  # freed space is zeroed whatever the SQLite build's default
        assert store.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    before = store.get(article_id)
    assert store.delete(article_id, actor=ADMIN) is True
    row = store.get(article_id, include_deleted=True)
    assert row["topic"] == "海底旅行" and row["content"] == "" and row["deleted_at"]
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (
        before["input_tokens"], before["output_tokens"], before["cost"])
    listed = versions.listing(store, article_id)
    assert len(listed) == 4  # the rows stay: their tokens and cost are still spent
    assert all(v["content"] == "" and not v["instruction"] for v in listed)
    assert sum(v["input_tokens"] for v in listed) == row["input_tokens"]
    assert_no_text(stored(env["database"]), "海底旅行")
    store.close()


def test_the_cli_delete_leaves_none_of_the_text(backend_env, fake, stored):
    from test_cli import cli

    env = backend_env
    article_id = write_with_versions(env, fake, stored)
    server = Store(env["database"])  # the app keeps the database open meanwhile
    try:
        if server.dialect == "sqlite":
            assert Path(env["WRITER_DB"] + "-wal").exists()
        done = cli("delete", str(article_id), "--yes", env=env)
        assert done.returncode == 0, done.stderr
        assert_no_text(stored(env["database"]), "海底旅行")
        assert server.get(article_id) is None
    finally:
        server.close()


def test_a_revision_saved_after_the_delete_writes_no_text(backend_env, fake, stored):
    fake.queue(Reply(text="# 草稿\n\n普通的第一稿，没有标记。\n", usage=(100, 20)))
    from writer.runs.job import Job

    job = Job(Brief(topic="迟到的保存", target_words=60), load_settings(), length_control=False)
    list(job.run())
    article_id = job.article_id
    fake.queue(Reply(text=texts(1)[0] * 3, chunk_chars=4, usage=(300, 30)))
    revision = RevisionJob(article_id, load_settings(), length_control=False, instruction="x",
                           draft_interval_s=0.0, actor=ADMIN)
    events = revision.run()
    for event in events:  # a few drafts of the revision are saved
        if isinstance(event, Delta) and MARKER_ZH in revision.composed:
            break
    store = Store(backend_env["database"])
    assert store.delete(article_id, actor=ADMIN)  # another process deletes it while it streams
    list(events)  # the revision goes on to its final save
    assert revision.saved.is_set()
    assert all(v["content"] == "" for v in versions.listing(store, article_id))
    row = store.get(article_id, include_deleted=True)
    assert row["content"] == "" and row["output_tokens"] == 20 + 30  # still charged
    store.close()
    assert_no_text(stored(backend_env["database"]), "迟到的保存")


def test_a_continue_saved_after_the_delete_writes_no_text(backend_env, fake, stored):
    from writer.runs.job import Job

    fake.queue(Reply(text="# 草稿\n\n第一段。", usage=(100, 20), finish_reason="length"))
    first = Job(Brief(topic="续写", target_words=600), load_settings(), length_control=False)
    list(first.run())
    fake.queue(Reply(text=texts(1)[0] * 3, chunk_chars=4, usage=(300, 30)))
    job = Job.continuing(first.article_id, load_settings(), draft_interval_s=0.0, actor=ADMIN)
    events = job.run()
    for event in events:
        if isinstance(event, Delta) and MARKER_ZH in job.text:
            break
    store = Store(backend_env["database"])
    assert store.delete(first.article_id, actor=ADMIN)
    list(events)
    assert all(v["content"] == "" for v in versions.listing(store, first.article_id))
    assert store.get(first.article_id, include_deleted=True)["output_tokens"] == 50
    store.close()
    assert_no_text(stored(backend_env["database"]), "续写")


@pytest.mark.parametrize("late", ["choose", "use_title", "open_version"])
def test_nothing_writes_text_to_a_deleted_article(backend_env, fake, stored, late):
    from writer.runs import titles

    fake.queue(Reply(text=texts(1)[0], usage=(100, 20)))
    from writer.runs.job import Job

    job = Job(Brief(topic="删掉", target_words=60), load_settings(), length_control=False)
    list(job.run())
    store = Store(backend_env["database"])
    assert store.delete(job.article_id, actor=ADMIN)
    with pytest.raises(versions.VersionError, match="no article"):
        if late == "choose":
            versions.choose(store, job.article_id, 1, actor=ADMIN)
        elif late == "use_title":
            titles.use_title(store, job.article_id, MARKER_ZH, actor=ADMIN)
        else:
            versions.open_version(store, job.article_id, kind="revision", status="completed",
                                  content=MARKER_ZH, actor=ADMIN)
    store.close()
    assert_no_text(stored(backend_env["database"]), "删掉")
