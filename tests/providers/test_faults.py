"""Every fault the loopback provider can inject ends in a complete article or the
right one-line message, and no character the provider sent is lost: each is in the
saved row or was deliberately discarded as a duplicated seam."""
import dataclasses
import email.utils
import time

import pytest

from fake_openai import FakeOpenAI, Reply
from writer.access import Actor
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Finished, Notice
from writer.generation.retry import RetryPolicy
from writer.runs.job import Job
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")

PART1 = "# 流式输出\n\n第一段：读者看到第一个字就安心了。Streaming keeps people reading. "
PART2 = "第二段：断线之后，我们从断点继续写，不丢一个字。Nothing is lost at the seam.\n"


@pytest.fixture
def fast(env, monkeypatch):
    """Short waits so fault scenarios run in well under a second each."""
    monkeypatch.setenv("WRITER_STREAM_IDLE_TIMEOUT", "0.5")
    monkeypatch.setenv("WRITER_RETRY_MAX_WAIT", "5")
    real = RetryPolicy.from_settings.__func__
    monkeypatch.setattr(RetryPolicy, "from_settings", classmethod(
        lambda cls, settings: dataclasses.replace(real(cls, settings), base_s=0.01, cap_s=0.05)))
    return env


def run_job(env, brief=None):
    job = Job(brief or Brief(topic="流式输出", target_words=200), load_settings(), length_control=False)
    events = list(job.run())
    assert isinstance(events[-1], Finished)
    return job, events, Store(env["WRITER_DB"]).get(job.article_id)


def sent_text(fake: FakeOpenAI, replies: list[Reply]) -> str:
    """Every content character the provider actually put on the wire."""
    return "".join("".join(r.pieces()[:n]) for r, n in zip(replies, fake.chunks_sent))


def assert_nothing_lost(job, row, fake, replies):
    sent = sent_text(fake, replies)
    discarded = job.generation.discarded
    assert len(row["content"]) + len(discarded) == len(sent)
    if discarded:  # the discarded seam was a repeat of what is already in the row
        assert discarded in row["content"]
    else:
        assert row["content"] == sent


def notices(events, kind):
    return [e for e in events if isinstance(e, Notice) and e.kind == kind]


def test_429_with_retry_after_then_success(fast, fake):
    replies = [Reply(status=429, headers={"Retry-After": "1"}), Reply(text=PART1 + PART2)]
    fake.queue(*replies)
    start = time.monotonic()
    job, events, row = run_job(fast)
    assert time.monotonic() - start >= 0.95  # honoured the server's 1 s
    (first, *_) = notices(events, "retrying")
    assert "rate limited" in first.message and first.attempt == 1 and first.max_attempts == 4
    assert row["status"] == "completed" and row["content"] == PART1 + PART2
    assert row["retries"] == 1 and row["resumes"] == 0
    # Only the answered request is counted: the refused one generated nothing.
    assert (row["input_tokens"], row["output_tokens"], row["usage_source"]) == (11, 22, "reported")


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after-ms": "300"}, 0.3),
    ({"Retry-After": "0.2"}, 0.2),
])
def test_retry_after_ms_and_seconds(fast, fake, headers, expected):
    fake.queue(Reply(status=429, headers=headers), Reply(text="ok then"))
    job, events, row = run_job(fast)
    assert notices(events, "retrying")[0].wait_s == pytest.approx(expected)
    assert row["status"] == "completed"


def test_retry_after_as_http_date(fast, fake):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    fake.queue(Reply(status=503, headers={"Retry-After": when}), Reply(text="ok then"))
    job, events, row = run_job(fast)
    assert 0.5 < notices(events, "retrying")[0].wait_s <= 2.0
    assert row["status"] == "completed" and row["retries"] == 1


def test_insufficient_quota_is_not_retried(fast, fake):
    fake.queue(Reply(status=429, error_code="insufficient_quota", error_message="You exceeded your quota"))
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and "no quota or balance" in row["error"]
    assert len(fake.requests) == 1 and not notices(events, "retrying")


@pytest.mark.parametrize("status", [500, 502, 408, 409])
def test_transient_errors_then_success(fast, fake, status):
    fake.queue(Reply(status=status), Reply(text=PART1))
    job, events, row = run_job(fast)
    assert row["status"] == "completed" and row["content"] == PART1 and row["retries"] == 1


def test_503_every_time_gives_up_with_a_message(fast, fake):
    fake.queue(*[Reply(status=503)] * 10)
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and "server error (HTTP 503)" in row["error"]
    assert len(fake.requests) == 5  # 1 + WRITER_MAX_RETRIES (4)
    assert row["retries"] == 4


def test_total_wait_cap_is_respected(fast, fake, monkeypatch):
    monkeypatch.setenv("WRITER_RETRY_MAX_WAIT", "1")
    fake.queue(Reply(status=429, headers={"Retry-After": "5"}), Reply(text="never asked"))
    start = time.monotonic()
    job, events, row = run_job(fast)
    assert time.monotonic() - start < 1.5
    assert row["status"] == "failed" and "rate limited" in row["error"]
    assert len(fake.requests) == 1


def test_connection_refused(fast, monkeypatch):
    dead = FakeOpenAI().start()
    dead.stop()
    monkeypatch.setenv("OPENAI_BASE_URL", dead.base_url)
    monkeypatch.setenv("WRITER_MAX_RETRIES", "1")
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and "cannot connect" in row["error"]
    assert "OPENAI_BASE_URL" in row["error"]


@pytest.mark.parametrize("fault", [
    {"drop_after": 3},
    {"stall_after": 3, "stall_seconds": 5},
    {"malformed_after": 3},
])
def test_broken_stream_is_resumed_into_the_same_article(fast, fake, fault):
    first = Reply(text=PART1, chunk_chars=6, usage=None, **fault)
    so_far = "".join(first.pieces()[:3])
    # The continuation repeats the last words before going on, as models do.
    second = Reply(text=so_far[-8:] + PART1[len(so_far):] + PART2, chunk_chars=6)
    replies = [first, second]
    fake.queue(*replies)
    job, events, row = run_job(fast)
    assert row["status"] == "completed"
    assert row["content"] == PART1 + PART2  # no duplicated seam, nothing missing
    assert job.generation.discarded == so_far[-8:]
    assert row["resumes"] == 1 and row["retries"] == 0
    assert notices(events, "resuming")[0].message == "connection lost, resuming…"
    continuation = fake.requests[1]["messages"]
    assert continuation[-2] == {"role": "assistant", "content": so_far}
    assert "Continue it exactly where it stopped" in continuation[-1]["content"]
    assert_nothing_lost(job, row, fake, replies)


def test_stream_that_ends_without_finish_reason_is_resumed(fast, fake):
    first = Reply(chunks=["Half of it, ", "then silence"], finish_reason=None, usage=None)
    fake.queue(first, Reply(text=" and the rest."))
    job, events, row = run_job(fast, Brief(topic="x", language="en"))
    assert row["content"] == "Half of it, then silence and the rest." and row["resumes"] == 1


def test_split_utf8_characters_arrive_intact(fast, fake):
    text = "中文与表情😀混排：每个字都完整。Ünïcödé ✓"
    replies = [Reply(text=text, chunk_chars=3, split_utf8=True)]
    fake.queue(*replies)
    job, events, row = run_job(fast)
    assert row["content"] == text and row["status"] == "completed"
    assert_nothing_lost(job, row, fake, replies)


def test_content_filter_keeps_the_partial_text_as_failed(fast, fake):
    fake.queue(Reply(text=PART1, finish_reason="content_filter"))
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and row["content"] == PART1
    assert "content filter" in row["error"] and row["finish_reason"] == "content_filter"


def test_length_is_truncated_and_can_be_continued(fast, fake):
    fake.queue(Reply(text=PART1, finish_reason="length", usage=(100, 50)),
               Reply(text=PART2, usage=(180, 40)))
    job, events, row = run_job(fast)
    assert row["status"] == "truncated" and "Continue" in row["error"]
    more = Job.continuing(row["id"], load_settings(), actor=ADMIN)
    list(more.run())
    row = Store(fast["WRITER_DB"]).get(row["id"])
    assert row["status"] == "completed" and row["content"] == PART1 + PART2
    assert (row["input_tokens"], row["output_tokens"]) == (280, 90)  # both requests counted
    assert fake.requests[1]["messages"][-2] == {"role": "assistant", "content": PART1}


def test_an_article_saved_with_more_keywords_than_allowed_now_can_still_be_continued(fast, fake):
    """Keywords were unlimited before issue 21: such an article continues with the
    keywords a new brief may carry instead of being refused."""
    import json
    import sqlite3

    fake.queue(Reply(text=PART1, finish_reason="length"), Reply(text=PART2))
    job, events, row = run_job(fast)
    with sqlite3.connect(fast["WRITER_DB"]) as conn:
        conn.execute("UPDATE articles SET keywords = ? WHERE id = ?",
                     [json.dumps([f"k{n}" for n in range(30)]), row["id"]])
    more = Job.continuing(row["id"], load_settings(), actor=ADMIN)
    list(more.run())
    row = Store(fast["WRITER_DB"]).get(row["id"])
    assert row["status"] == "completed" and row["content"] == PART1 + PART2
    assert len(more.brief.keywords) == 20


def test_no_usage_chunk_means_estimated_tokens(fast, fake):
    fake.queue(Reply(text=PART1, usage=None))
    job, events, row = run_job(fast)
    assert row["usage_source"] == "estimated" and row["output_tokens"] > 10


def test_slow_first_token_is_waited_for_and_measured(fast, fake):
    fake.queue(Reply(text=PART1, first_delay=0.3))
    job, events, row = run_job(fast)
    assert row["status"] == "completed" and row["ttft_ms"] >= 300


@pytest.mark.parametrize("reply, words", [
    (Reply(status=401), "API key was rejected"),
    (Reply(status=403), "API key was rejected"),
    (Reply(status=404, error_message="The model `x` does not exist"), "was not found"),
    (Reply(status=200, body="<!doctype html><html><title>Home</title></html>",
           content_type="text/html"), "web page instead of the API"),
    (Reply(status=400, error_code="context_length_exceeded",
           error_message="This model's maximum context length is 8192 tokens"), "prompt is too long"),
])
def test_clear_messages(fast, fake, reply, words):
    fake.queue(reply)
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and words in row["error"]
    assert "\n" not in row["error"] and "Traceback" not in row["error"]
    assert len(fake.requests) == 1


def test_fallback_to_non_streaming_after_repeated_stream_failures(fast, fake, monkeypatch):
    monkeypatch.setenv("WRITER_FALLBACK_AFTER", "2")
    whole = PART1 + PART2
    first = Reply(text=whole, chunk_chars=10, drop_after=2)
    second = Reply(text=whole[20:], chunk_chars=10, drop_after=2)
    third = Reply(text=whole[40:])  # asked without streaming
    fake.queue(first, second, third)
    job, events, row = run_job(fast)
    assert [r.get("stream", False) for r in fake.requests] == [True, True, False]
    assert row["status"] == "completed" and row["content"] == whole
    assert row["fallback"] == 1 and row["resumes"] == 2
    assert notices(events, "fallback")


@pytest.fixture
def backup(tmp_path, monkeypatch):
    """A second loopback provider, listed in WRITER_PROVIDERS_FILE after the main one."""
    server = FakeOpenAI().start()

    def configure(models: str = ""):
        providers = tmp_path / "providers.toml"
        providers.write_text(f'[[providers]]\nname = "backup"\nbase_url = "{server.base_url}"\n'
                             f'api_key_env = "BACKUP_KEY"\n{models}')
        monkeypatch.setenv("WRITER_PROVIDERS_FILE", str(providers))
        monkeypatch.setenv("BACKUP_KEY", "sk-backup")
        return server

    yield configure
    server.stop()


def test_failover_to_the_next_provider(fast, fake, backup):
    server = backup('models = ["deepseek-chat"]\n')
    fake.queue(*[Reply(status=503)] * 5)
    server.queue(Reply(text=PART1, usage=(10, 20)))
    job, events, row = run_job(fast)
    assert row["status"] == "completed" and row["content"] == PART1
    assert row["served_by"] == "backup" and row["model"] == "deepseek-chat"
    assert row["currency"] == "CNY"  # priced as what actually served it
    assert server.requests[0]["model"] == "deepseek-chat"
    assert server.requests[0]["_headers"]["authorization"] == "Bearer sk-backup"
    assert notices(events, "failover")


def test_failover_continues_a_broken_article_on_the_next_provider(fast, fake, backup,
                                                                   monkeypatch):
    server = backup()
    monkeypatch.setenv("WRITER_MAX_RESUMES", "0")
    fake.queue(Reply(text=PART1 + PART2, chunk_chars=len(PART1), drop_after=1))
    server.queue(Reply(text=PART2))
    job, events, row = run_job(fast)
    assert row["content"] == PART1 + PART2 and row["served_by"] == "127.0.0.1→backup"
    assert server.requests[0]["messages"][-2]["content"] == PART1


def test_no_retry_after_text_for_non_resumable_failure(fast, fake):
    fake.queue(Reply(text=PART1, chunk_chars=5, drop_after=2), Reply(status=401))
    job, events, row = run_job(fast)
    assert row["status"] == "failed" and row["content"] == PART1[:10]
    assert "API key was rejected" in row["error"]
