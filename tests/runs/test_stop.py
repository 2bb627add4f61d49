"""Stop works in every state of a request, from another thread (the Stop button,
a delete, server shutdown): connecting, waiting for the response headers,
streaming (stalled), a non-streamed request (the fallback), waiting to retry.

Each test runs a real Job against a real loopback server, stops it from the test
thread and waits for the provider to see the disconnect (where there is a connection)
and for the partial article to be saved as `stopped`. The provider holds every state
for HOLD_S (30 s) and the waits give up after STOP_WAIT_S (5 s): a stop that is seen
at all was caused by the Stop, not by the hold ending. How long it took is printed.
"""
from __future__ import annotations

import threading
import time

from fake_openai import Reply
from netfaults import connecting_to, unanswered_port
from writer.brief import Brief
from writer.config import load_settings
from writer.generation.events import Notice
from writer.generation.metrics import stream_health
from writer.kinds import NoticeKind, Status
from writer.providers import base as providers
from writer.runs.job import Job
from writer.storage.store import Store

HOLD_S = 30  # how long the provider holds each state
STOP_WAIT_S = 5.0  # the waits for the disconnect and the save: well under HOLD_S


def wait_for(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Runner:
    """Consumes a job's events on its own thread, as the Write page or a worker does."""

    def __init__(self, job: Job):
        self.job = job
        self.events: list = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.job.run():
                self.events.append(event)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def saw(self, kind: NoticeKind) -> bool:
        return any(isinstance(e, Notice) and e.kind == kind for e in self.events)

    def stop(self, fake=None) -> dict:
        """Stop now; returns seconds until disconnect (if a fake is given) and save."""
        before = len(fake.disconnects) if fake else 0
        clicked = time.monotonic()
        self.job.cancel(wait_s=0)
        result = {}
        if fake is not None:
            wait_for(lambda: len(fake.disconnects) > before, STOP_WAIT_S,
                     "the provider to see a disconnect")
            result["disconnect_s"] = fake.disconnects[-1] - clicked
        assert self.job.saved.wait(STOP_WAIT_S), "the stopped article was never saved"
        result["saved_s"] = time.monotonic() - clicked
        self.thread.join(5)
        assert self.error is None, repr(self.error)
        return result


def start(brief_topic="stop me") -> Runner:
    return Runner(Job(Brief(topic=brief_topic, language="en", target_words=200), load_settings()))


def stopped_row(env, job):
    row = Store(env["WRITER_DB"]).get(job.article_id)
    assert row["status"] == Status.STOPPED
    return row


def report(capsys, state, figures):
    with capsys.disabled():
        shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in figures.items())
        print(f"\n[stop] {state}: {shown}")


def test_stop_while_connecting(env, monkeypatch, capsys):
    with unanswered_port() as (port, fillers):
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        monkeypatch.setenv("WRITER_REQUEST_TIMEOUT", str(HOLD_S))
        runner = start()
        wait_for(lambda: connecting_to(port, fillers), what="a TCP connect in SYN_SENT")
        figures = runner.stop()
        assert not connecting_to(port, fillers)  # the half-open socket was closed
    row = stopped_row(env, runner.job)
    assert row["content"] == "" and row["retries"] == 0
    report(capsys, "connecting", figures)


def test_stop_while_waiting_for_the_headers(env, fake, capsys):
    fake.queue(Reply(text="never sent", header_delay=HOLD_S))
    runner = start()
    wait_for(lambda: len(fake.requests) == 1, what="the request to reach the provider")
    figures = runner.stop(fake)
    stopped_row(env, runner.job)
    report(capsys, "waiting for headers", figures)


def test_stop_while_waiting_for_the_first_token(env, fake, capsys):
    fake.queue(Reply(text="never sent", first_delay=HOLD_S))
    runner = start()
    wait_for(lambda: len(fake.requests) == 1, what="the request to reach the provider")
    figures = runner.stop(fake)
    report(capsys, "waiting for the first token", figures)


def test_stop_while_the_stream_is_stalled(env, fake, capsys):
    fake.queue(Reply(text="abcdef " * 40, chunk_chars=7, stall_after=3, stall_seconds=HOLD_S))
    runner = start()
    wait_for(lambda: fake.chunks_sent and fake.chunks_sent[0] == 3 and
             runner.job.text == "abcdef " * 3, what="three chunks to arrive")
    figures = runner.stop(fake)
    assert stopped_row(env, runner.job)["content"] == "abcdef " * 3
    report(capsys, "streaming (stalled)", figures)


def test_stop_during_a_non_streamed_request(env, fake, capsys):
    """After broken streams the engine asks without streaming: Stop must still
    close that request (it used to run on for ~40 s with the row `streaming`)."""
    name = load_settings().base_url and providers.provider_name(load_settings().base_url)
    stream_health.broken(name)
    stream_health.broken(name)
    fake.queue(Reply(text="the whole answer at once", first_delay=HOLD_S))
    runner = start()
    wait_for(lambda: len(fake.requests) == 1, what="the request to reach the provider")
    assert fake.requests[0].get("stream") is not True
    figures = runner.stop(fake)
    row = stopped_row(env, runner.job)
    assert row["fallback"] == 1
    report(capsys, "non-streamed request", figures)


def test_stop_while_waiting_to_retry(env, fake, monkeypatch, capsys):
    monkeypatch.setenv("WRITER_RETRY_MAX_WAIT", "60")
    fake.queue(Reply(status=429, headers={"Retry-After": str(HOLD_S)}), Reply(text="too late"))
    runner = start()
    wait_for(lambda: runner.saw(NoticeKind.RETRYING), what="the retry countdown")
    figures = runner.stop()
    assert len(fake.requests) == 1  # the retry was never sent
    assert stopped_row(env, runner.job)["retries"] == 1
    report(capsys, "waiting to retry", figures)


def test_stop_before_the_job_starts_sends_nothing(env, fake):
    job = Job(Brief(topic="never", language="en"), load_settings())
    job.cancel()
    events = list(job.run())
    assert events[-1].status == Status.STOPPED and fake.requests == []
