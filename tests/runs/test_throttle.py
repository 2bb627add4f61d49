"""A relay that answers every request `429` with `Retry-After: 0` (LiteLLM's proxy passes
an upstream 429 on this way): a batch, the provider check and its connection test all
end, after a bounded number of requests, with the row failed (or the batch paused) as
rate limited, never in an endless stream of requests. A single article: see
tests/generation/test_engine.py; the shared backoff itself: tests/providers/test_backoff.py."""
from __future__ import annotations

import functools
import threading

import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.config import load_settings
from writer.io.sheet import briefs, read_table
from writer.kinds import BatchStatus, ErrorKind, Status
from writer.providers.backoff import SharedBackoff
from writer.providers.choice import choose_provider
from writer.runs import batch
from writer.runs import check as checks
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

THROTTLE_RETRIES = 3


class Relay:
    """429 `Retry-After: 0` to everything. The code as it was never stopped asking: after
    `give_in` requests the relay answers, so such a run ends (and the test fails) instead
    of hanging."""

    def __init__(self, fake, give_in: int = 200):
        self.count = 0
        self.give_in = give_in
        self.lock = threading.Lock()
        fake.responder = self

    def __call__(self, body: dict) -> Reply:
        with self.lock:
            self.count += 1
            count = self.count
        if count > self.give_in:
            return Reply(text="The relay gave in. " * 20)
        return Reply(status=429, headers={"Retry-After": "0"}, error_message="slow down")


@pytest.fixture
def quick_gate(monkeypatch):
    """The batch's shared backoff with millisecond waits, so its exponential growth
    costs no real time here (the waits themselves are tested on a fake clock)."""
    monkeypatch.setattr(batch, "SharedBackoff",
                        functools.partial(SharedBackoff, base_s=0.001, cap_s=0.004))
    monkeypatch.setenv("WRITER_THROTTLE_MAX_RETRIES", str(THROTTLE_RETRIES))


def test_a_batch_against_a_relay_saying_retry_now_forever_ends_paused(env, fake, registry,
                                                                       quick_gate):
    relay = Relay(fake)
    settings = load_settings()
    data = b"topic,length,language\nkettles,100,English\nteapots,100,English\n"
    table = read_table(data, "relay.csv")
    store = Store(env["WRITER_DB"])
    try:
        batch_id = batch.create(store, file_name="relay.csv", table=table, rows=briefs(table),
                                provider=choose_provider(settings), concurrency=1)
        run = batch.BatchRun(settings, batch_id, registry, choose_provider(settings), actor=ADMIN)
        run.start()
        assert run.done.wait(60), "the batch did not end"
        assert run.error is None, run.error
        rows = {r["row_no"]: r for r in batch.rows(store, batch_id)}
        saved = batch.get(store, batch_id)
    finally:
        store.close()
    assert relay.count == 1 + THROTTLE_RETRIES, relay.count  # bounded, then no more
    first = rows[1]
    assert first["state"] == Status.FAILED and first["error_kind"] == ErrorKind.RATE_LIMIT, first
    assert "rate limited" in first["error"] and "gave up after" in first["error"]
    # The batch pauses saying why, rather than making every other row wait it out too.
    assert rows[2]["state"] == "pending"
    assert saved["status"] == BatchStatus.PAUSED
    assert saved["note"].startswith("rate_limited [rate_limit]: ") and "gave up" in saved["note"]
    assert run.note == saved["note"]


def test_the_provider_check_ends_each_throttled_request_as_failed(env, fake):
    relay = Relay(fake)
    settings = load_settings()
    plan = checks.Plan(runs=2, levels=(3,))
    check = checks.Check(settings, choose_provider(settings), plan)
    report = check.run()
    assert report["status"] == "failed"
    assert relay.count == plan.runs + 1 + 3  # one request per measurement, none repeated
    assert all("rate limited" in error for error in report["errors"] if "connect" not in error)
    assert report["concurrency"]["3"]["errors"] == {ErrorKind.RATE_LIMIT: 3}
    result = checks.connection_test(settings, choose_provider(settings))
    assert not result["ok"] and result["error_kind"] == ErrorKind.RATE_LIMIT
    assert relay.count == plan.runs + 1 + 3 + 1
