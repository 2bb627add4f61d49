"""Per-article stream metrics (issue 12): inter-token intervals and time to first text,
measured by the engine against the loopback provider scripted with known timing, and
saved on the article's row by a Job.

Tolerances allow for a loaded 2-core machine: a chunk read late makes the gap before it
longer and the one after it shorter, so lower bounds have a little slack and upper
bounds a lot; a time from the request to the first text can only grow.
"""
import sqlite3

import pytest

from fake_openai import Reply
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.engine import Generation, Request
from writer.generation.events import Finished
from writer.generation.metrics import StreamHealth, percentile, stream_health
from writer.generation.plan import PromptPlan
from writer.providers.base import Provider
from writer.runs.job import Job
from writer.storage.store import Store

MESSAGES = [{"role": "user", "content": "write"}]
ITL_COLUMNS = ("itl_mean_ms", "itl_p95_ms", "itl_cv", "max_gap_ms")


def words(n: int, start: int = 0) -> list[str]:
    """n content pieces, each a distinct word (no seam is mistaken for a repeat)."""
    return [f"w{i} " for i in range(start, start + n)]


def generate(fake, max_tokens: int = 200) -> Generation:
    provider = Provider(name="fake", model="gpt-4o-mini", base_url=fake.base_url, api_key="k")
    generation = Generation(Request(PromptPlan(MESSAGES, max_tokens), provider), health=StreamHealth())
    events = list(generation.events())
    assert isinstance(events[-1], Finished)
    return generation


def warm_up(fake) -> None:
    """One quick answer first, so the SDK's one-off set-up is not timed as the provider's."""
    fake.queue(Reply(text="warm"))
    assert generate(fake).attempts[0].finish_reason == "stop"


def run_job(env):
    job = Job(Brief(topic="stream metrics", language="en"), load_settings(), length_control=False)
    events = list(job.run())
    assert isinstance(events[-1], Finished)
    return job, Store(env["WRITER_DB"]).get(job.article_id)


def test_percentile_is_nearest_rank():
    values = [50, 10, 40, 20, 30]
    assert percentile(values, 50) == 30
    assert percentile(values, 95) == 50 and percentile(values, 100) == 50
    assert percentile(values, 0) == 10 and percentile(values, 20) == 10 and percentile(values, 21) == 20
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7.5], 95) == 7.5


def test_alternating_gaps_give_their_mean_cv_p95_and_longest_gap_on_the_row(env, fake):
    fake.queue(Reply(chunks=words(41), chunk_delays=[0.02, 0.06], usage=(40, 40)))
    job, row = run_job(env)
    assert row["status"] == "completed" and row["content"] == "".join(words(41))
    metrics = job.generation.metrics
    gaps_ms = [round(gap * 1000, 1) for gap in metrics.gaps_s]
    assert len(gaps_ms) == 40  # 41 text chunks, one stream
    # 20 gaps of 20 ms and 20 of 60 ms: mean 40, pstdev 20, CV 0.5, p95 60, longest 60.
    # (A chunk read late makes the gap before it longer and the one after it shorter:
    # hence slack on both sides.)
    assert 36 <= row["itl_mean_ms"] < 40 + 15, gaps_ms
    assert row["itl_cv"] == pytest.approx(0.5, abs=0.12), gaps_ms
    assert 55 <= row["itl_p95_ms"] < 60 + 40, gaps_ms
    assert 55 <= row["max_gap_ms"] < 60 + 150 and row["max_gap_ms"] >= row["itl_p95_ms"]
    ordered = sorted(gaps_ms)
    assert 15 <= ordered[10] < 45 and 55 <= ordered[30] < 90, gaps_ms  # the two halves
    # The row holds exactly what the engine measured.
    assert (row["itl_mean_ms"], row["itl_p95_ms"], row["itl_cv"], row["max_gap_ms"]) == (
        metrics.itl_mean_ms, metrics.itl_p95_ms, metrics.itl_cv, metrics.max_gap_ms)
    assert row["tokens_per_s"] == pytest.approx(40 / 1.6, rel=0.25)  # 40 tokens over ~1.6 s
    # They are real columns of `articles` (migration m010), not computed on read.
    conn = sqlite3.connect(env["WRITER_DB"])
    columns = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(articles)")}
    conn.close()
    assert all(columns.get(name) in ("FLOAT", "REAL") for name in ITL_COLUMNS), columns


def test_fixed_first_token_delay_is_the_ttft(env, fake):
    warm_up(fake)
    fake.queue(Reply(chunks=words(5), first_delay=0.3, chunk_delay=0.01))
    job, row = run_job(env)
    assert row["status"] == "completed"
    assert 300 <= row["ttft_ms"] < 300 + 150
    assert row["duration_ms"] >= row["ttft_ms"]
    # The first-token wait is not an inter-token interval.
    assert row["max_gap_ms"] < 150


def test_the_role_only_first_chunk_and_empty_text_do_not_count_as_first_text(fake):
    """The first bytes (the role chunk, then a chunk with empty content) come at once;
    the first visible text 300 ms later. TTFT is to the text, not the first byte."""
    warm_up(fake)
    reply = Reply(chunks=["", "Visible", " text."], chunk_delays=[0.3, 0.01])
    assert reply.role_chunk  # {"role": "assistant", "content": ""} goes first
    fake.queue(reply)
    generation = generate(fake)
    assert generation.text == "Visible text."
    attempt = generation.attempts[-1]
    assert attempt.received == ["Visible", " text."]  # empty pieces are not text
    assert len(attempt.arrivals) == 2
    assert 300 <= generation.metrics.ttft_ms < 300 + 150
    assert generation.metrics.first_text_at >= attempt.arrivals[0]
    assert len(generation.metrics.gaps_s) == 1 and generation.metrics.gaps_s[0] < 0.15


def test_too_few_chunks_have_no_inter_token_figures(fake):
    fake.queue(Reply(chunks=["All at once."]))
    one = generate(fake).metrics
    assert one.gaps_s == [] and one.ttft_ms is not None
    assert (one.itl_mean_ms, one.itl_p95_ms, one.itl_cv, one.max_gap_ms) == (None,) * 4
    fake.queue(Reply(chunks=["Two ", "pieces."], chunk_delay=0.02))
    two = generate(fake).metrics
    assert len(two.gaps_s) == 1 and two.itl_mean_ms >= 15 and two.max_gap_ms >= 15  # ~20 ms
    assert two.itl_cv is None  # one interval has no spread to speak of


def test_a_non_streamed_answer_has_null_inter_token_figures(env, fake):
    # Two recent broken streams on this provider: the engine asks it without streaming.
    for _ in range(load_settings().fallback_after):
        stream_health.broken("127.0.0.1")
    fake.queue(Reply(chunks=words(12), chunk_delay=0.02))  # chunks are irrelevant unstreamed
    job, row = run_job(env)
    assert [r.get("stream", False) for r in fake.requests] == [False]
    assert row["status"] == "completed" and row["fallback"] == 1
    assert row["content"] == "".join(words(12))
    assert job.generation.metrics.gaps_s == []
    conn = sqlite3.connect(env["WRITER_DB"])
    stored = conn.execute(f"SELECT {', '.join(ITL_COLUMNS)}, ttft_ms, tokens_per_s, "
                          f"typeof(itl_mean_ms) FROM articles WHERE id = ?",
                          [job.article_id]).fetchone()
    conn.close()
    assert stored == (None,) * 6 + ("null",)  # NULL, not 0
    assert all(row[name] is None for name in ITL_COLUMNS)


def test_a_resumed_stream_does_not_count_the_gap_between_attempts(env, fake):
    first = Reply(chunks=words(8), chunk_delay=0.02, drop_after=4, usage=None)
    second = Reply(chunks=words(4, start=4), first_delay=0.6, chunk_delay=0.02)
    fake.queue(first, second)
    job, row = run_job(env)
    assert row["status"] == "completed" and row["resumes"] == 1
    assert row["content"] == "".join(words(8))
    before, after = job.generation.attempts
    assert len(before.arrivals) == 4 and len(after.arrivals) == 4
    assert after.arrivals[0] - before.arrivals[-1] >= 0.6  # the pause was really there
    gaps = job.generation.metrics.gaps_s
    assert len(gaps) == 6  # 3 within each stream, none across them
    assert all(gap < 0.3 for gap in gaps), gaps
    assert row["max_gap_ms"] < 300 and 15 <= row["itl_mean_ms"] < 20 + 60
