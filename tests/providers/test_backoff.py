"""The backoff a batch shares (writer/providers/backoff.py): on a fake clock, then in the engine
against the loopback provider."""
from __future__ import annotations

import threading
import time

import pytest

from fake_openai import Reply
from writer.generation.engine import Generation, Request
from writer.generation.events import Delta, Finished, Notice
from writer.generation.plan import PromptPlan
from writer.generation.retry import RetryPolicy
from writer.kinds import NoticeKind, Status
from writer.providers.backoff import SharedBackoff
from writer.providers.base import Provider


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def test_retry_after_closes_the_gate_for_exactly_that_long(clock):
    shared = SharedBackoff(4, clock=clock)
    assert shared.wait_s() == 0
    assert shared.hit(2.5) == 2.5
    assert shared.wait_s() == pytest.approx(2.5)
    clock.advance(1.0)
    assert shared.wait_s() == pytest.approx(1.5)
    clock.advance(1.5)
    assert shared.wait_s() == 0
    assert shared.hits == 1


def test_a_huge_retry_after_is_capped(clock):
    shared = SharedBackoff(2, cap_s=10, clock=clock)
    assert shared.hit(3600) == 50  # cap_s * 5
    assert shared.wait_s() == pytest.approx(50)


def test_without_retry_after_the_wait_grows_exponentially_with_jitter(clock):
    shared = SharedBackoff(8, base_s=1.0, cap_s=6.0, clock=clock)
    waits = []
    for _ in range(5):
        waits.append(shared.hit(None))
        clock.advance(waits[-1])  # the gate opened again; the next request got a 429 too
    for strike, wait in enumerate(waits):
        nominal = min(6.0, 2 ** strike)
        assert nominal <= wait <= nominal * 1.25, (strike, wait)  # jitter only lengthens
    shared.passed()  # a request got through: the strikes are forgotten
    assert 1.0 <= shared.hit(None) <= 1.25


def test_the_limit_halves_once_per_burst_not_once_per_429(clock):
    shared = SharedBackoff(8, clock=clock)
    shared.hit(2.0)
    assert (shared.limit, shared.cuts) == (4, 1)
    clock.advance(0.5)
    shared.hit(1.0)  # the same burst: the gate is still closed
    shared.hit(3.0)  # … and this one holds it closed longer
    assert (shared.limit, shared.cuts, shared.hits) == (4, 1, 3)
    assert shared.wait_s() == pytest.approx(3.0)
    clock.advance(3.0)
    shared.hit(1.0)  # the gate had opened: a new burst
    assert (shared.limit, shared.cuts) == (2, 2)
    for _ in range(3):
        clock.advance(shared.wait_s())
        shared.hit(1.0)
    assert shared.limit == 1  # never below one
    assert shared.cuts == 5


def test_the_limit_grows_back_by_one_after_limit_passes(clock):
    shared = SharedBackoff(8, clock=clock)
    shared.hit(1.0)
    clock.advance(shared.wait_s())
    shared.hit(1.0)
    assert shared.limit == 2
    clock.advance(shared.wait_s())
    limits = []
    for _ in range(2 + 3 + 4 + 5 + 6 + 7 + 10):
        shared.passed()
        limits.append(shared.limit)
    assert limits[:2] == [2, 3]  # two passes at limit 2 make it 3
    assert limits[2:5] == [3, 3, 4]  # then three at 3 make it 4 …
    assert limits[5:9] == [4, 4, 4, 5]
    assert max(limits) == 8 and limits[-1] == 8  # … up to what was asked, never more


def test_set_limit_caps_a_throttled_limit_and_resets_an_untouched_one(clock):
    shared = SharedBackoff(4, clock=clock)
    shared.set_limit(6)
    assert (shared.limit, shared.max_limit) == (6, 6)  # never throttled: take it at once
    shared.hit(1.0)
    assert shared.limit == 3
    shared.set_limit(2)
    assert (shared.limit, shared.max_limit) == (2, 2)
    shared.set_limit(8)
    assert shared.limit == 2  # throttled: grows back on passes, not at once


def test_a_retry_after_of_zero_never_shortens_the_backoff(clock):
    """A relay answering `Retry-After: 0` to every request: the gate still closes for
    the exponential backoff (1, 2, 4 … capped), so the waits grow instead of the
    requests piling up; a longer Retry-After than the backoff is still honoured."""
    shared = SharedBackoff(1, base_s=1.0, cap_s=8.0, clock=clock)
    for strike in range(6):
        wait = shared.hit(0.0)
        nominal = min(8.0, 2 ** strike)
        assert nominal <= wait <= nominal * 1.25, (strike, wait)
        assert shared.wait_s() == pytest.approx(wait)
        clock.advance(wait)  # the gate opened; the next request got a 429 again
    shared.passed()
    assert shared.hit(5.0) == 5.0  # a hint longer than the backoff wins


def test_429s_of_one_burst_do_not_lengthen_the_backoff(clock):
    """Eight rows in flight all get a 429 of the same burst: one closing of the gate,
    not 2^8 seconds."""
    shared = SharedBackoff(8, base_s=1.0, cap_s=60.0, clock=clock)
    waits = [shared.hit(0.0) for _ in range(8)]
    assert all(1.0 <= wait <= 1.25 for wait in waits), waits
    assert shared.wait_s() <= 1.25


@pytest.mark.parametrize("hint", [None, 0.0, 0.01])
def test_a_single_articles_retry_waits_at_least_the_backoff(hint):
    policy = RetryPolicy(base_s=0.5, cap_s=4.0)
    for attempt in range(1, 8):
        nominal = min(4.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            assert nominal <= policy.backoff(attempt, hint) <= nominal * 1.25
    assert policy.backoff(1, 3.0) == 3.0  # a longer Retry-After is honoured


def test_waited_sums_time_behind_the_gate(clock):
    shared = SharedBackoff(2, clock=clock)
    shared.waited(0.1)
    shared.waited(0.25)
    assert shared.waited_s == pytest.approx(0.35)


# -- in the engine: two generations sharing one backoff ------------------------------

MAX_RETRIES = 1
POLICY = RetryPolicy(max_retries=MAX_RETRIES, max_total_wait_s=30, base_s=0.01, cap_s=0.02)


def provider(fake) -> Provider:
    return Provider(name="fake", model="gpt-4o-mini", base_url=fake.base_url, api_key="k")


def request(fake, marker: str, shared: SharedBackoff) -> Request:
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": f"write about {marker}"}]
    return Request(PromptPlan(messages, 300), provider(fake), POLICY, backoff=shared)


def whose(body: dict) -> str:
    text = " ".join(str(m.get("content")) for m in body.get("messages", []))
    return "A" if "[gen-A]" in text else "B"


def test_a_429_makes_every_generation_sharing_the_backoff_wait(fake):
    """A gets 429 Retry-After 1 while B is streaming; B's stream then breaks and its
    resume waits at the shared gate. A gets more 429s than its own retries allow and
    still completes: 429s behind a shared backoff do not spend a row's retries."""
    log: list[tuple[str, float, int]] = []  # (generation, when answered, status)
    first_429 = threading.Event()
    seen = {"A": 0, "B": 0}
    lock = threading.Lock()

    def responder(body):
        who = whose(body)
        with lock:
            seen[who] += 1
            n = seen[who]
        if who == "A":
            if n == 1:
                log.append(("A", time.monotonic(), 429))
                first_429.set()
                return Reply(status=429, headers={"Retry-After": "1"},
                             error_message="slow down")
            if n <= 4:  # three more: more 429s than MAX_RETRIES
                log.append(("A", time.monotonic(), 429))
                return Reply(status=429, headers={"Retry-After": "0.1"},
                             error_message="slow down")
            log.append(("A", time.monotonic(), 200))
            return Reply(text="Alpha is done now. ", chunk_chars=6)
        if n == 1:
            # B is in flight when A's 429 arrives; it breaks after it (drop_after).
            assert first_429.wait(5)
            log.append(("B", time.monotonic(), 200))
            return Reply(text="Bravo starts here and goes on", chunk_chars=6,
                         chunk_delay=0.05, drop_after=3)
        log.append(("B", time.monotonic(), 200))
        return Reply(text=" and ends well.", chunk_chars=6)

    fake.responder = responder
    shared = SharedBackoff(2)
    generations = {name: Generation(request(fake, f"[gen-{name}]", shared)) for name in "AB"}
    events: dict[str, list] = {}

    def run(name):
        events[name] = list(generations[name].events())

    threads = [threading.Thread(target=run, args=(name,)) for name in "AB"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)

    t429 = next(t for who, t, status in log if who == "A" and status == 429)
    b_times = [t for who, t, _ in log if who == "B"]
    assert len(b_times) == 2, log
    assert b_times[0] < t429 + 0.5  # B's first request was not held back …
    assert b_times[1] - t429 >= 0.9, log  # … its resume waited for A's Retry-After

    for name in "AB":
        finished = events[name][-1]
        assert isinstance(finished, Finished)
        assert finished.status == Status.COMPLETED and finished.error is None, finished
    a_429s = [s for who, _, s in log if who == "A" and s == 429]
    assert len(a_429s) == 4 > MAX_RETRIES
    assert "".join(e.text for e in events["A"] if isinstance(e, Delta)) == "Alpha is done now. "
    b_text = "".join(e.text for e in events["B"] if isinstance(e, Delta))
    assert b_text.startswith("Bravo starts here") and b_text.endswith("ends well.")
    throttled_b = [e for e in events["B"] if isinstance(e, Notice) and e.kind == NoticeKind.THROTTLED]
    # B reached the gate some time after the 429 (its stream broke first): it waited
    # out the rest of the Retry-After, with a countdown.
    assert throttled_b and max(e.wait_s for e in throttled_b) > 0.1
    assert generations["B"].throttled_s >= 0.1
    assert events["A"][-1].retries == 4  # counted, but never held against max_retries
    assert shared.hits == 4 and shared.cuts >= 1
    assert 1 <= shared.limit <= 2


def test_a_relay_answering_retry_after_zero_forever_cannot_hold_a_row_forever(fake):
    """Every request gets 429 `Retry-After: 0` (a relay such as LiteLLM's proxy): behind
    the shared gate the row waits the exponential backoff before each retry (1, 2, 4 …
    60 s on the injected clock, no real waiting), stops after a bounded number of
    retries, and fails as rate limited saying it gave up. (The code as it was sent
    thousands of requests without ever waiting: here it would get an answer after 200.)"""
    clock = Clock()
    sent: list[float] = []

    def responder(body):
        sent.append(clock())
        if len(sent) > 200:
            return Reply(text="the relay gave in.")
        return Reply(status=429, headers={"Retry-After": "0"}, error_message="slow down")

    fake.responder = responder
    shared = SharedBackoff(1, base_s=1.0, cap_s=60.0, clock=clock)
    generation = Generation(request(fake, "[gen-A]", shared), sleep=clock.advance)
    events = list(generation.events())
    done = events[-1]
    assert isinstance(done, Finished)
    assert done.status == Status.FAILED and done.error_kind == "rate_limit", done
    assert "rate limited" in done.error and "gave up after" in done.error
    assert len(sent) == 1 + POLICY.throttle_max_retries
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    for strike, gap in enumerate(gaps):
        assert gap >= min(60.0, 2.0 ** strike) - 1e-6, (strike, gaps)
    assert generation.throttled_s <= POLICY.throttle_max_wait_s
    throttled = [e for e in events if isinstance(e, Notice) and e.kind == NoticeKind.THROTTLED]
    assert throttled and max(e.wait_s for e in throttled) >= 32


def test_throttled_waiting_is_capped_in_time(fake, clock):
    """A cap in time as well as in count: a row never waits at the gate past
    `throttle_max_wait_s` in all, and fails as rate limited when the next wait would."""
    fake.default = Reply(status=429, headers={"Retry-After": "0"}, error_message="slow down")
    shared = SharedBackoff(1, base_s=1.0, cap_s=60.0, clock=clock)
    policy = RetryPolicy(max_retries=1, base_s=0.01, cap_s=0.02, throttle_max_retries=100,
                         throttle_max_wait_s=10.0)
    messages = [{"role": "user", "content": "write"}]
    generation = Generation(Request(PromptPlan(messages, 300), provider(fake), policy,
                                    backoff=shared), sleep=clock.advance)
    done = list(generation.events())[-1]
    assert done.status == Status.FAILED and done.error_kind == "rate_limit"
    assert generation.throttled_s <= 10.0 + 1e-6
    assert len(fake.requests) == 4  # waits of 1, 2 and 4 s fit in 10 s; 8 more would not
