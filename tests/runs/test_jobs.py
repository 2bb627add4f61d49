"""A generation end to end: the articles row through its life."""
import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Delta, Finished
from writer.runs.job import Job
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ARTICLE = "# 为什么流式输出很重要\n\n第一个字出现得越早，用户越安心。Streaming keeps people reading.\n"


def test_completed_article_row_has_usage_cost_and_metrics(env, fake):
    fake.queue(Reply(text=ARTICLE, chunk_chars=4, usage=(120, 80)))
    job = Job(Brief(topic="流式输出", target_words=300), load_settings(), length_control=False)
    events = list(job.run())
    assert isinstance(events[-1], Finished)
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == "completed" and row["content"] == ARTICLE
    assert row["words"] == job.words == 28  # 10 + 14 Han characters + 4 English words
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (120, 80, "reported")
    # gpt-4o-mini: 0.15 in / 0.60 out per 1M tokens
    assert row["cost"] == pytest.approx((120 * 0.15 + 80 * 0.60) / 1e6)
    assert row["currency"] == "USD" and row["price_output_per_1m"] == 0.60
    assert row["provider"] == "127.0.0.1" and row["model"] == "gpt-4o-mini"
    assert row["ttft_ms"] > 0 and row["duration_ms"] >= row["ttft_ms"]
    assert row["tokens_per_s"] > 0 and row["finish_reason"] == "stop"
    assert row["max_tokens"] == fake.requests[0]["max_tokens"]


def test_unknown_model_is_stored_unpriced(env, fake, monkeypatch):
    monkeypatch.setenv("WRITER_MODEL", "my-local-llama")
    fake.queue(Reply(text="Hello there."))
    job = Job(Brief(topic="x", language="en"), load_settings(), length_control=False)
    list(job.run())
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == "completed" and row["cost"] is None and row["currency"] is None


def test_closing_mid_stream_saves_a_stopped_partial_and_disconnects(env, fake):
    fake.queue(Reply(text="abcde " * 50, chunk_chars=6, stall_after=4, stall_seconds=10))
    job = Job(Brief(topic="stop me", language="en"), load_settings(), length_control=False)
    events = job.run()
    deltas = [next(events) for _ in range(4)]
    assert all(isinstance(e, Delta) for e in deltas)
    events.close()
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == "stopped" and row["content"] == "abcde " * 4
    assert row["usage_source"] == "estimated" and row["output_tokens"] > 0
    import time

    deadline = time.monotonic() + 2
    while not fake.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnects


def test_drafts_are_saved_while_streaming(env, fake):
    fake.queue(Reply(text="word " * 40, chunk_chars=5, chunk_delay=0.01))
    job = Job(Brief(topic="drafts", language="en"), load_settings(), draft_interval_s=0.05,
              length_control=False)
    store = Store(env["WRITER_DB"])
    seen = []
    for event in job.run():
        if isinstance(event, Delta):
            row = store.get(job.article_id)
            seen.append((row["status"], len(row["content"])))
    drafts = [n for status, n in seen if status == "streaming" and n > 0]
    assert len(set(drafts)) >= 2 and min(drafts) < len("word " * 40)  # it grew while streaming
    assert store.get(job.article_id)["status"] == "completed"


def test_edited_price_is_charged_and_kept_with_the_article(env, fake):
    store = Store(env["WRITER_DB"])
    store.set_price(provider="*", model="gpt-4o-mini", input_per_1m=10, output_per_1m=20,
                    currency="USD", actor=ADMIN)
    fake.queue(Reply(text="priced", usage=(1000, 1000)))
    job = Job(Brief(topic="edited price", language="en"), load_settings(), length_control=False)
    list(job.run())
    row = store.get(job.article_id)
    assert row["cost"] == pytest.approx(0.03)
    assert (row["price_input_per_1m"], row["price_output_per_1m"]) == (10, 20)
    store.set_price(provider="*", model="gpt-4o-mini", input_per_1m=1, output_per_1m=1,
                    currency="USD", actor=ADMIN)
    assert store.get(job.article_id)["cost"] == pytest.approx(0.03)  # history is not rewritten


def test_cancel_from_another_thread_stops_a_stalled_stream(env, fake):
    import threading
    import time

    fake.queue(Reply(text="abcdef " * 30, chunk_chars=7, stall_after=3, stall_seconds=20))
    job = Job(Brief(topic="cancel me", language="en"), load_settings(), length_control=False)
    events = []
    worker = threading.Thread(target=lambda: events.extend(job.run()))
    worker.start()
    deadline = time.monotonic() + 5
    # All three chunks read: the reader is now blocked on the stalled socket (for 20 s).
    # The fake counts a chunk just after writing it: the job may read the third first.
    while ((job.text != "abcdef " * 3 or fake.chunks_sent != [3])
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert fake.chunks_sent == [3] and job.text == "abcdef " * 3
    # Saved within 2 s of a 20 s stall: the cancel, not the stream, ended it.
    assert job.cancel(wait_s=2.0), "the partial article was not saved"
    worker.join(timeout=2)
    assert isinstance(events[-1], Finished) and events[-1].status == "stopped"
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == "stopped" and row["content"] == "abcdef " * 3
    assert fake.disconnects


def test_cancel_before_the_job_starts_stops_it_at_once(env, fake):
    fake.queue(Reply(text="never streamed"))
    job = Job(Brief(topic="cancel early", language="en"), load_settings(), length_control=False)
    assert job.cancel() is False  # nothing to wait for
    events = list(job.run())
    assert events[-1].status == "stopped"
    assert Store(env["WRITER_DB"]).get(job.article_id)["content"] == ""
    assert fake.requests == []  # no request was sent, so nothing was billed


def _providers_file(tmp_path, monkeypatch):
    """A valid providers file (a backup provider) for building the job."""
    path = tmp_path / "providers.toml"
    path.write_text('[[providers]]\nname = "backup"\nbase_url = "http://127.0.0.1:9/v1"\n'
                    'api_key_env = "BACKUP_KEY"\nmodels = ["gpt-4o-mini"]\n')
    monkeypatch.setenv("WRITER_PROVIDERS_FILE", str(path))
    monkeypatch.setenv("BACKUP_KEY", "sk-backup-secret")
    return path


def test_a_providers_file_broken_after_the_job_was_built_ends_the_row_failed(
        env, fake, tmp_path, monkeypatch):
    """The failover chain is read once the row is streaming: a broken file there must
    end the row (failed, saying why) and take it out of the registry, not leave it
    `streaming` and beating until the process restarts."""
    from writer.kinds import Status
    from writer.runs.registry import shared

    path = _providers_file(tmp_path, monkeypatch)
    settings = load_settings()
    job = Job(Brief(topic="broken providers file", language="en"), settings,
              length_control=False)
    path.write_text("[[providers]\nname = ")  # broken after the job was built
    events = list(job.run())
    assert isinstance(events[-1], Finished) and events[-1].status == Status.FAILED
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == Status.FAILED and "providers file" in row["error"]
    assert job.article_id not in shared(settings.db_path).tracked()  # no longer beating
    assert shared(settings.db_path).job(job.article_id) is None
    assert fake.requests == []
