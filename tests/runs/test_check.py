"""The provider check (issue 12) against the loopback provider scripted with known timing:
a fixed first-token delay, alternating gaps with a known CV, a gap over 5 s, a share of
streams that fail under concurrency. The check must report those values within
tolerance and grade them right; it never runs more streams than asked, stops sending
when cancelled, and is saved with a timestamp. The CLI (`python -m writer check`) is
tested in tests/cli/test_cli_check.py.

The check tells its requests apart by max_tokens (prompts/_check.toml): 24 = the TTFT
runs, 640 = the long answer, 16 = the concurrency streams, 5 = the connection test.
Tolerances allow for a loaded 2-core machine: a chunk read late makes the gap before it
longer and the one after it shorter, so lower bounds have a little slack and upper
bounds a lot; a time from the request to the first text can only grow.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from fake_openai import Reply
from writer.access import Actor
from writer.config import load_settings
from writer.providers.base import Provider
from writer.providers.choice import local_provider
from writer.runs import check as checks
from writer.runs.check import (
    Check,
    CheckError,
    Plan,
    estimate,
    grade,
    grade_success,
    grade_value,
    parse_levels,
)
from writer.storage.store import Store

ADMIN = Actor("boss", "admin")  # may change anything (writer/access.py)

ROOT = Path(__file__).resolve().parents[2]
GRADE_WORDS = {"fail", "pass", "excellent"}


# -- helpers ----------------------------------------------------------------------------

def kind_of(request: dict) -> str:
    n = request.get("max_tokens")
    if n is not None and n > 100:
        return "long"
    return {24: "ttft", 16: "concurrency", 5: "connection_test"}.get(n, "other")


def words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]


class Script:
    """The fake's responder: a Reply per kind of check request (or a function of the
    request's number within its kind, from 1). Records each request's kind and how many
    chat requests the fake was answering when it came in (itself included)."""

    def __init__(self, fake, *, ttft=None, long=None, concurrency=None):
        self.fake = fake
        self.replies = {"ttft": ttft or Reply(), "long": long or Reply(chunks=words(11)),
                        "concurrency": concurrency or Reply(), "connection_test": Reply(),
                        "other": Reply()}
        self.seen: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        fake.responder = self

    def __call__(self, request: dict) -> Reply:
        kind = kind_of(request)
        with self._lock:
            self.seen.append((kind, self.fake.active))
            number = sum(k == kind for k, _ in self.seen)
        reply = self.replies[kind]
        return reply(number) if callable(reply) else reply

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]

    def active(self, kind: str) -> list[int]:
        return [active for k, active in self.seen if k == kind]


def provider(fake, **kw) -> Provider:
    return Provider(name="fake", model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-test",
                    **kw)


def run_check(fake, plan: Plan) -> dict:
    report = Check(load_settings(), provider(fake), plan).run()
    assert report["grades"] == grade(report)
    assert set(report["grades"].values()) <= GRADE_WORDS
    return report


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, never listened, closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- measured and graded ----------------------------------------------------------------

def test_fixed_first_token_delay_is_measured_and_everything_graded_excellent(env, fake):
    # Even gaps: 10 of 100 ms (few and long, so one scheduling hiccup cannot move the CV much).
    script = Script(fake, ttft=Reply(first_delay=0.3),
                    long=Reply(chunks=words(11), chunk_delay=0.1),
                    concurrency=Reply(first_delay=0.3))
    report = run_check(fake, Plan(runs=4, levels=(10,)))
    assert report["status"] == "completed" and report["errors"] == []
    ttft = report["ttft_ms"]
    assert ttft["n"] == 4
    assert 300 <= ttft["p50"] <= ttft["p95"] <= ttft["max"] < 300 + 150
    assert set(report["ttft_by_context_tokens"]) == {"0", "200", "800"}  # the short prompt set
    assert report["connect"]["n"] == 4 and 0 <= report["connect_ms"] < 1000
    assert report["itl_cv"] < 0.3 and report["interruptions"] == 0
    assert report["interruption_rate"] == 0.0
    level = report["concurrency"]["10"]
    assert (level["requested"], level["succeeded"], level["success_rate"]) == (10, 10, 1.0)
    assert level["errors"] == {} and level["complete"] is True
    assert 300 <= level["ttft_p95_ms"] < 300 + 1500
    assert report["grades"] == {"connect_ms": "excellent", "ttft_ms": "excellent",
                                "interruption_rate": "excellent", "itl_cv": "excellent",
                                "concurrency_10": "excellent"}
    # Exactly what the plan asks for, in order, never retried, never more than 10 at once.
    assert script.kinds() == ["ttft"] * 4 + ["long"] + ["concurrency"] * 10
    assert fake.max_active <= 10 and max(script.active("concurrency")) <= 10
    assert max(script.active("concurrency")) >= 5  # ... and they did run together
    assert [r["max_tokens"] for r in fake.requests] == [24] * 4 + [640] + [16] * 10
    assert all(r["stream"] is True for r in fake.requests)
    prompt_sizes = [len(r["messages"][-1]["content"]) for r in fake.requests[:4]]
    assert prompt_sizes[0] == prompt_sizes[3] < prompt_sizes[1] < prompt_sizes[2]  # 0, 200, 800, 0
    # Priced beside the figures; the tokens of all 15 answers (11 in / 22 out each) counted.
    assert report["price"] == {"input_per_1m": 0.15, "output_per_1m": 0.6, "currency": "USD"}
    assert report["usage"]["input_tokens"] == 15 * 11 and report["usage"]["output_tokens"] == 15 * 22
    assert report["usage"]["cost"] == pytest.approx((165 * 0.15 + 330 * 0.6) / 1e6)


def test_a_two_second_first_token_passes_but_is_not_excellent(env, fake):
    script = Script(fake, ttft=Reply(first_delay=2.0))
    report = run_check(fake, Plan(runs=2, levels=(), long_answer=False))
    ttft = report["ttft_ms"]
    assert 2000 <= ttft["p50"] <= ttft["p95"] < 2000 + 300
    assert 1500 <= ttft["p95"] < 3000
    assert report["grades"] == {"connect_ms": "excellent", "ttft_ms": "pass"}  # nothing else measured
    assert script.kinds() == ["ttft", "ttft"] and report["status"] == "completed"


@pytest.mark.parametrize("delays, cv, expected", [
    ((0.16, 0.24), 0.2, "excellent"),
    ((0.12, 0.28), 0.4, "pass"),
    ((0.08, 0.32), 0.6, "fail"),
])
def test_alternating_gaps_give_their_cv_and_its_grade(env, fake, delays, cv, expected):
    """Gaps a, b, a, b, ... (8 of them, mean 200 ms): standard deviation (b-a)/2, CV
    (b-a)/(a+b), each 0.1 inside its band. Few long gaps keep one scheduling hiccup of
    the client (a late gap, then a short one) from moving the CV out of its band."""
    Script(fake, long=Reply(chunks=words(9), chunk_delays=list(delays), usage=(40, 16)))
    report = run_check(fake, Plan(runs=1, levels=(), long_answer=True))
    assert report["long_answer_ok"] is True and report["long_answer_chunks"] == 9
    assert report["itl_cv"] == pytest.approx(cv, abs=0.12)
    assert report["grades"]["itl_cv"] == expected
    assert 190 <= report["itl_mean_ms"] < 200 + 40
    assert delays[1] * 1000 - 5 <= report["itl_p95_ms"] < delays[1] * 1000 + 150
    # p95 of 8 values is the largest (max_gap_ms is rounded to 0.1 ms, itl_p95_ms to 0.01)
    assert report["max_gap_ms"] == pytest.approx(report["itl_p95_ms"], abs=0.06)
    assert report["interruptions"] == 0 and report["grades"]["interruption_rate"] == "excellent"
    assert report["tokens_per_s"] == pytest.approx(16 / 1.6, rel=0.25)  # 16 tokens over ~1.6 s


def test_a_gap_over_five_seconds_is_one_interruption(env, fake):
    gaps = [0.02] * 10 + [5.2] + [0.02] * 9  # 21 chunks, 20 gaps, one of them 5.2 s
    Script(fake, long=Reply(chunks=words(21), chunk_delays=gaps))
    report = run_check(fake, Plan(runs=1, levels=(), long_answer=True))
    assert report["long_answer_ok"] is True
    assert report["interruptions"] == 1
    assert report["interruption_rate"] == round(1 / 20, 6) == 0.05
    assert report["grades"]["interruption_rate"] == "fail"  # 5 % >= 1 %
    assert 5200 - 20 <= report["max_gap_ms"] < 5200 + 500
    assert report["itl_p95_ms"] < 200  # p95 of 20 gaps is the 19th: one long gap is not it
    assert report["itl_cv"] > 1 and report["grades"]["itl_cv"] == "fail"


def test_a_long_answer_that_breaks_off_counts_as_an_interruption(env, fake):
    """Eight chunks, then silence past the idle timeout: the stream breaks. That stall is
    the worst interruption of all even though no gap after it was measured, so the
    rate is not 0 % (it was graded "excellent" before)."""
    Script(fake, long=Reply(chunks=words(20), chunk_delay=0.01, stall_after=8, stall_seconds=10))
    report = Check(load_settings(), provider(fake, idle_timeout_s=1.0),
                   Plan(runs=1, levels=(), long_answer=True)).run()
    assert report["long_answer_ok"] is False
    (error,) = [e for e in report["errors"] if e.startswith("long answer:")]
    assert "\n" not in error
    assert report["interruptions"] == 1
    assert report["interruption_rate"] == round(1 / 8, 6)  # 7 gaps measured + the one that broke
    assert report["grades"]["interruption_rate"] == "fail"
    assert report["status"] == "completed"  # the rest of the check still measured
    wait_for(lambda: fake.disconnects, "the stalled stream to be closed")


def test_failed_streams_under_concurrency_lower_the_success_rate(env, fake):
    """Levels 4 then 10; the 7th and 12th concurrency requests (both in the level of 10)
    get a 500. Nothing is retried, so 8 of 10 succeed: 80 % < 99 % fails."""
    def concurrency(number: int) -> Reply:
        return Reply(status=500, first_delay=0.3) if number in (7, 12) else Reply(first_delay=0.3)

    script = Script(fake, concurrency=concurrency)
    report = run_check(fake, Plan(runs=1, levels=(4, 10), long_answer=False))
    four, ten = report["concurrency"]["4"], report["concurrency"]["10"]
    assert (four["requested"], four["succeeded"], four["success_rate"]) == (4, 4, 1.0)
    assert (ten["requested"], ten["succeeded"], ten["success_rate"]) == (10, 8, 0.8)
    assert four["errors"] == {} and ten["errors"] == {"server": 2}
    assert 300 <= ten["ttft_p95_ms"] < 300 + 1500  # over the streams that succeeded
    assert report["grades"]["concurrency_4"] == "excellent"
    assert report["grades"]["concurrency_10"] == "fail"
    assert report["status"] == "completed"
    # Exactly `level` requests per level, never retried, never more at once than the level.
    assert script.kinds() == ["ttft"] + ["concurrency"] * 14
    active = script.active("concurrency")
    assert max(active[:4]) <= 4 and max(active[4:]) <= 10 and fake.max_active <= 10
    assert max(active[4:]) >= 5  # the ten did run together


def test_a_check_where_nothing_answers_fails(env, fake):
    Script(fake, ttft=Reply(status=503), long=Reply(status=503), concurrency=Reply(status=503))
    report = run_check(fake, Plan(runs=2, levels=(3,)))
    assert report["status"] == "failed"
    assert report["ttft_ms"] is None and report["concurrency"]["3"]["success_rate"] == 0.0
    assert report["grades"]["ttft_ms"] == "fail" and report["grades"]["concurrency_3"] == "fail"
    assert len(fake.requests) == 2 + 1 + 3  # no retries in a check: every failure counts
    assert any(e.startswith("ttft run 1:") for e in report["errors"])
    assert all("\n" not in e for e in report["errors"])


# -- cancel -----------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["ttft", "concurrency"])
def test_cancel_mid_check_stops_every_request_and_sends_no_more(env, fake, phase):
    stalled = Reply(first_delay=20)
    if phase == "ttft":
        script = Script(fake, ttft=stalled)
        plan, in_flight = Plan(runs=3, levels=(5,)), 1
    else:
        script = Script(fake, concurrency=stalled)
        plan, in_flight = Plan(runs=1, levels=(5, 8), long_answer=False), 5
    check = Check(load_settings(), provider(fake), plan)
    worker = threading.Thread(target=check.run, daemon=True)
    worker.start()
    wait_for(lambda: script.active(phase) and fake.active == in_flight,
             f"{in_flight} {phase} request(s) in flight")
    sent = len(fake.requests)
    started = time.monotonic()
    check.cancel(actor=ADMIN)
    worker.join(timeout=5)
    assert not worker.is_alive(), "the check did not end after cancel()"
    assert time.monotonic() - started < 3  # not the 20 s the stalled answers would take
    wait_for(lambda: len(fake.disconnects) >= in_flight and fake.active == 0,
             "the provider to see every request closed")
    report = check.report
    assert report["status"] == "cancelled"
    assert len(fake.requests) == sent  # nothing more was sent after the cancel
    if phase == "ttft":
        assert sent == 1 and report["ttft_ms"] is None and report["concurrency"] == {}
        assert "ttft_ms" not in report["grades"]  # cancelled is not measured as failed
        assert not any(e.startswith("ttft") for e in report["errors"]), report["errors"]
    else:
        assert sent == 1 + 5 and list(report["concurrency"]) == ["5"]  # 8 never started
        level = report["concurrency"]["5"]
        assert level["complete"] is False and level["succeeded"] == 0
        assert "concurrency_5" not in report["grades"]  # an incomplete level is not graded
        assert report["grades"]["ttft_ms"] == "excellent"  # what was measured still counts


def test_background_check_runs_one_at_a_time_and_is_saved_when_cancelled(env, fake):
    script = Script(fake, ttft=Reply(first_delay=20))
    settings = load_settings()
    ended = []
    check = checks.start(settings, provider(fake), Plan(runs=2, levels=()), on_end=ended.append)
    assert checks.current(settings) is check
    wait_for(lambda: script.active("ttft"), "the first TTFT request")
    with pytest.raises(CheckError, match="already running"):
        checks.start(settings, provider(fake), Plan(runs=1, levels=()))
    check.cancel(actor=ADMIN)
    assert check.finished.wait(5) and ended == [check] and check.error is None
    (row,) = checks.history(Store(env["WRITER_DB"]))
    assert row["id"] == check.saved_id and row["status"] == "cancelled"
    assert row["report"]["status"] == "cancelled" and len(fake.requests) == 1


# -- grades -----------------------------------------------------------------------------

@pytest.mark.parametrize("metric, value, expected", [
    ("connect_ms", 999.9, "excellent"), ("connect_ms", 1000, "pass"),
    ("connect_ms", 1999.9, "pass"), ("connect_ms", 2000, "fail"),
    ("ttft_ms", 300, "excellent"), ("ttft_ms", 1499.9, "excellent"), ("ttft_ms", 1500, "pass"),
    ("ttft_ms", 2999.9, "pass"), ("ttft_ms", 3000, "fail"),
    ("interruption_rate", 0.0, "excellent"), ("interruption_rate", 0.0009, "excellent"),
    ("interruption_rate", 0.001, "pass"), ("interruption_rate", 0.0099, "pass"),
    ("interruption_rate", 0.01, "fail"), ("interruption_rate", 0.05, "fail"),
    ("itl_cv", 0.0, "excellent"), ("itl_cv", 0.29, "excellent"), ("itl_cv", 0.3, "pass"),
    ("itl_cv", 0.49, "pass"), ("itl_cv", 0.5, "fail"),
])
def test_grade_value_thresholds(metric, value, expected):
    """pass / excellent below: connect 2 s / 1 s, TTFT 3 s / 1.5 s, interruptions 1 % /
    0.1 %, CV 0.5 / 0.3 (issue 12)."""
    assert grade_value(metric, value) == expected


@pytest.mark.parametrize("level, rate, expected", [
    (10, 1.0, "excellent"), (10, 0.995, "pass"), (10, 0.99, "pass"), (10, 0.9, "fail"),
    (50, 1.0, "excellent"), (50, 0.99, "excellent"), (50, 0.98, "pass"), (50, 0.95, "pass"),
    (50, 0.94, "fail"),
    (100, 0.98, "excellent"), (100, 0.97, "pass"), (100, 0.9, "pass"), (100, 0.89, "fail"),
    (200, 0.95, "excellent"), (200, 0.94, "pass"), (200, 0.85, "pass"), (200, 0.845, "fail"),
    (200, 0.0, "fail"),
    # Between table entries the level below applies (the stricter one) ...
    (30, 0.98, "fail"), (30, 0.99, "pass"), (30, 1.0, "excellent"),
    (75, 0.96, "pass"), (75, 0.94, "fail"), (150, 0.97, "pass"), (150, 0.89, "fail"),
    # ... below the first entry its thresholds, and the table's top level is the bound.
    (1, 0.99, "pass"), (5, 0.8, "fail"), (5, 1.0, "excellent"),
])
def test_grade_success_thresholds(level, rate, expected):
    """Success at 10/50/100/200 streams: pass >= 99/95/90/85 %, excellent >= 100/99/98/95 %."""
    assert grade_success(level, rate) == expected


def test_grade_of_a_report_grades_only_what_was_measured():
    assert grade({"errors": []}) == {}
    partial = {"connect_ms": 1200.0, "ttft_ms": {"p50": 900, "p95": 1600, "max": 1700, "n": 3},
               "interruption_rate": None, "itl_cv": None, "errors": [],
               "concurrency": {"10": {"success_rate": 1.0, "complete": True},
                               "50": {"success_rate": 0.2, "complete": False}}}
    assert grade(partial) == {"connect_ms": "pass", "ttft_ms": "pass", "concurrency_10": "excellent"}
    unreachable = {"connect_ms": None, "ttft_ms": None, "errors": [
        "connect: Connection refused", "ttft run 1: cannot connect"]}
    assert grade(unreachable) == {"connect_ms": "fail", "ttft_ms": "fail"}  # failed, not unmeasured


# -- the plan and its estimate -----------------------------------------------------------

def test_parse_levels():
    assert parse_levels("10,50,100,200") == (10, 50, 100, 200)
    assert parse_levels(" 50, 10，10 ,") == (10, 50)  # full-width comma, duplicates, spaces
    assert parse_levels("") == () and parse_levels("0") == ()
    with pytest.raises(CheckError, match="whole numbers"):
        parse_levels("ten")
    with pytest.raises(CheckError, match="whole numbers"):
        parse_levels("-5")


@pytest.mark.parametrize("kwargs, message", [
    ({"runs": 0}, "runs must be 1 to 50"),
    ({"runs": 51}, "runs must be 1 to 50"),
    ({"prompt_set": "medium"}, "unknown prompt set"),
    ({"levels": (500,)}, "1 to 200 streams"),
    ({"levels": (1, 2, 3, 4, 5, 6, 7)}, "at most 6 levels"),
])
def test_plan_bounds(kwargs, message):
    with pytest.raises(CheckError, match=message):
        Plan(**kwargs)


def test_estimate_counts_requests_tokens_and_cost(env, fake):
    settings, store = load_settings(), Store(env["WRITER_DB"])
    plan = Plan(runs=3, levels=(10, 50))
    guess = estimate(plan, provider(fake), settings, store)
    assert guess.requests == 3 + 1 + 60 == len(checks.requests_of(plan))
    assert guess.output_tokens == 3 * 24 + 640 + 60 * 16  # every answer at its max_tokens
    assert guess.input_tokens > 64 * 10
    assert guess.paid and guess.currency == "USD"
    assert guess.cost == pytest.approx((guess.input_tokens * 0.15 + guess.output_tokens * 0.6) / 1e6)
    long = estimate(Plan(runs=3, levels=(10, 50), prompt_set="long"), provider(fake), settings, store)
    # The long set pads the TTFT prompts with 1,000 / 3,000 / 6,000 tokens instead of 0 / 200 /
    # 800: about 9,000 more (the padding is sized at 1.3 tokens a word; the estimator counts
    # fewer, about 0.88 of the nominal size).
    assert long.requests == guess.requests and long.input_tokens - guess.input_tokens > 0.8 * 9000
    assert estimate(Plan(runs=2, levels=(), long_answer=False), provider(fake), settings,
                    store).requests == 2
    # An unpriced model: cost unknown, but it may still be paid (the CLI asks for --yes).
    relay = Provider(name="relay", model="my-own-model", base_url=fake.base_url, api_key="k")
    unpriced = estimate(plan, relay, settings, store)
    assert (unpriced.cost, unpriced.currency, unpriced.paid) == (None, None, True)
    free = estimate(plan, local_provider(), settings, store)
    assert (free.cost, free.currency, free.paid) == (0.0, "local", False)
    assert fake.requests == []  # estimating sends nothing


# -- stored results ----------------------------------------------------------------------

def test_save_history_and_latest_round_trip(env, fake):
    Script(fake, long=Reply(chunks=words(11), chunk_delays=[0.01, 0.02]))
    report = run_check(fake, Plan(runs=1, levels=(2,)))
    store = Store(env["WRITER_DB"])
    first = checks.save(store, report)
    cancelled = checks.save(store, {**report, "status": "cancelled"})
    other = checks.save(store, {**report, "provider": "relay-b", "model": "m2"})
    rows = checks.history(store)
    assert [r["id"] for r in rows] == [first, cancelled, other]  # oldest first, for charts
    row = rows[0]
    assert row["report"] == json.loads(json.dumps(report))  # the whole report, decoded
    assert row["created_at"] == report["created_at"] and row["created_at"].endswith("Z")
    assert (row["provider"], row["model"], row["base_url"]) == ("fake", "gpt-4o-mini", fake.base_url)
    assert row["status"] == "completed"
    assert (row["connect_ms"], row["ttft_p50_ms"], row["ttft_p95_ms"]) == (
        report["connect_ms"], report["ttft_ms"]["p50"], report["ttft_ms"]["p95"])
    assert (row["itl_mean_ms"], row["itl_p95_ms"], row["itl_cv"], row["interruption_rate"],
            row["tokens_per_s"]) == (report["itl_mean_ms"], report["itl_p95_ms"], report["itl_cv"],
                                     report["interruption_rate"], report["tokens_per_s"])
    assert row["itl_cv"] is not None and row["tokens_per_s"] is not None
    assert (row["input_tokens"], row["output_tokens"], row["cost"], row["currency"]) == (
        4 * 11, 4 * 22, report["usage"]["cost"], "USD")
    assert json.loads(row["settings"]) == {"runs": 1, "prompt_set": "short", "levels": [2]}
    assert [r["id"] for r in checks.history(store, "fake")] == [first, cancelled]
    assert [r["id"] for r in checks.history(store, limit=1)] == [other]  # the newest
    # The newest completed check per provider and model, newest first: not the cancelled one.
    assert [(r["id"], r["provider"]) for r in checks.latest(store)] == [(other, "relay-b"),
                                                                       (first, "fake")]


# -- connection test -----------------------------------------------------------------------

def test_connection_test_ok(env, fake):
    result = checks.connection_test(load_settings(), provider(fake))
    assert result["ok"] is True and result["error"] is None
    assert 0 <= result["connect_ms"] < 1000 and result["ttft_ms"] > 0
    assert len(fake.requests) == 1 and fake.requests[0]["max_tokens"] == 5


def test_connection_test_to_a_refused_port_is_one_line(env, fake):
    port = closed_port()
    dead = Provider(name="dead", model="gpt-4o-mini", base_url=f"http://127.0.0.1:{port}/v1",
                    api_key="k")
    result = checks.connection_test(load_settings(), dead)
    assert result["ok"] is False and result["connect_ms"] is None and result["ttft_ms"] is None
    assert result["error"].startswith(f"cannot connect to http://127.0.0.1:{port}/v1: ")
    assert "refused" in result["error"].lower() and "\n" not in result["error"]
    assert fake.requests == []


def test_connection_test_reports_a_rejected_key_in_one_line(env, fake):
    fake.queue(Reply(status=401))
    result = checks.connection_test(load_settings(), provider(fake))
    assert result["ok"] is False and result["connect_ms"] is not None
    assert "API key was rejected" in result["error"] and "\n" not in result["error"]
