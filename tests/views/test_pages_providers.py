"""The Providers page through AppTest, against the loopback provider and a scratch database.

The page lists the configured providers (the loopback one from OPENAI_BASE_URL and the
bundled `local` model) with a connection test, starts a provider check on a thread of
the server (writer/runs/check.py `start`), shows its progress with Cancel, then the graded
report, the latest check of each provider side by side and the figures over time.

The fake answers by the request's `max_tokens`, which tells the check's requests apart
(prompts/_check.toml): 24 = the first-token runs, 640 = the long answer, 16 = the
concurrency streams, 5 = the connection test. AppTest does not rerun the progress
fragment by itself: each test waits for the check's `finished` event (with a deadline)
and then reruns the page, as the fragment's own `st.rerun` would. The same flows in a
real browser, with the fragment refreshing by itself: tests/views/test_browser_providers.py.
"""
from __future__ import annotations

import dataclasses
import sqlite3
import time

import pytest
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from fake_openai import Reply
from scripted_check import LONG, LONG_TEXT, PING, STREAM, TTFT, ByKind
from test_pages import ROOT
from writer.access import Actor
from writer.config import load_settings
from writer.io.i18n import Translator
from writer.providers.choice import choose_provider
from writer.runs import check as checks
from writer.storage.store import Store

LOOPBACK = "127.0.0.1"  # the name the app gives OPENAI_BASE_URL=http://127.0.0.1:…/v1
CHECK_TIMEOUT_S = 20

ADMIN = Actor("tester", "admin")  # the person at the machine (WRITER_AUTH=none)


@pytest.fixture
def script(fake) -> ByKind:
    fake.responder = ByKind()
    return fake.responder


@pytest.fixture(autouse=True)
def _no_check_outlives_its_test(env):
    """A check a failed test left running is cancelled (its thread ends, nothing hangs)."""
    yield
    check = checks.current(load_settings())
    if check is not None and not check.finished.is_set():
        check.cancel(actor=ADMIN)
        check.finished.wait(10)


# ---- helpers ----------------------------------------------------------------------------

def providers_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    at.switch_page("views/providers.py").run()
    assert not at.exception, at.exception
    return at


def confirmation(at: AppTest):
    (box,) = [c for c in at.checkbox if c.key.startswith("check_confirm_")]
    return box


def run_check(at: AppTest, *, runs: int = 3) -> checks.Check:
    """Set the runs, tick the cost confirmation, click Run; the check the page started."""
    at.slider(key="check_runs").set_value(runs).run()
    confirmation(at).check().run()
    assert not at.button(key="check-run").disabled
    at.button(key="check-run").click().run()
    assert not at.exception, at.exception
    check = checks.current(load_settings())
    assert check is not None, "Run did not start a check"
    return check


def wait_finished(check: checks.Check, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    assert check.finished.wait(timeout_s), f"the check still runs after {timeout_s} s " \
                                           f"({check.done} / {check.total}, {check.phase})"
    assert check.error is None, check.error


def wait_for(condition, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def saved_rows(env) -> list[dict]:
    conn = sqlite3.connect(env["WRITER_DB"])
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM provider_checks ORDER BY id")]
    finally:
        conn.close()


def report_table(at: AppTest) -> dict[str, dict]:
    """The report's rows by metric: {metric: {"Value": …, "Grade": …, "Pass / excellent": …}}."""
    frame = at.dataframe[0].value
    assert list(frame.columns) == ["Metric", "Value", "Grade", "Pass / excellent"]
    return {row["Metric"]: row for row in frame.to_dict("records")}


def progress_texts(at: AppTest) -> list[str]:
    return [el.proto.text for el in at.main if el.type == "progress"]


def chart_data(at: AppTest):
    (chart,) = at.get("vega_lite_chart")
    (dataset,) = chart.proto.datasets
    return convert_arrow_bytes_to_pandas_df(dataset.data.data)


def save_check(settings, name: str, *, first_delay: float, fake) -> int:
    """A check of the loopback provider under `name`, run in the foreground and saved
    (what the page shows for a check it did not start: another session's, the CLI's)."""
    fake.responder = ByKind(first_delay=first_delay)
    provider = dataclasses.replace(choose_provider(settings), name=name)
    report = checks.Check(settings, provider, checks.Plan(runs=1, levels=())).run()
    store = Store(settings.db_path)
    try:
        return checks.save(store, report)
    finally:
        store.close()


def title(fake) -> str:
    """What the pages call the loopback provider: host:port (no WRITER_PROVIDER_NAME)."""
    return f"{LOOPBACK}:{fake.base_url.split(':')[2].split('/')[0]}"


# ---- tests ------------------------------------------------------------------------------

def test_no_check_yet_lists_the_providers_and_the_estimate(env, fake, script):
    at = providers_page()
    assert at.title[0].value == "Providers"
    assert [s.value for s in at.subheader] == ["Configured providers", "Check a provider"]
    listed = [m.value for m in at.main.markdown if m.value.startswith("**")]
    assert len(listed) == 2, listed
    loopback, local = listed
    # named as people call it (WRITER_PROVIDER_NAME, a known service, else host:port)
    port = fake.base_url.split(":")[2].split("/")[0]
    assert loopback.startswith(f"**{LOOPBACK}:{port}** · `gpt-4o-mini`") and fake.base_url in loopback
    assert "0.15 / 0.6 USD per 1M input / output tokens" in loopback
    assert "streams at once: 32" in loopback
    assert local.startswith("**Local demo model** · `SmolLM2-135M-Instruct`")
    assert "free (local model)" in local and "streams at once: 1" in local
    assert [b.key for b in at.button] == [f"test-{LOOPBACK}", "test-local", "check-run"]

    estimate, empty = [i.value for i in at.info]
    # The defaults: 5 runs, one long answer, 10 streams at once.
    assert estimate.startswith("This check sends 16 requests: about ")
    assert "at most 920 output tokens · ≤ 0.0008 USD" in estimate  # 5×24 + 640 + 10×16
    assert empty.startswith("No check yet")
    assert not at.dataframe and not at.get("vega_lite_chart")
    assert at.selectbox(key="check_provider").value == LOOPBACK
    assert (at.slider(key="check_runs").value, at.multiselect(key="check_levels").value,
            at.radio(key="check_prompt_set").value) == (5, [10], "short")
    assert fake.requests == []  # opening the page sends nothing
    assert saved_rows(env) == []


def test_connection_test_reaches_the_loopback_provider(env, fake, script):
    at = providers_page()
    at.button(key=f"test-{LOOPBACK}").click().run()
    assert not at.exception
    (message,) = [s.value for s in at.success]
    assert message.startswith("Reachable: connection ") and ", first text " in message
    assert message.endswith(" ms") or message.endswith(" s")
    assert not at.error
    assert script.kinds == [PING]  # one tiny request, nothing else
    assert fake.requests[0]["model"] == "gpt-4o-mini" and fake.requests[0]["stream"] is True
    at.run()  # the result stays on the page
    assert [s.value for s in at.success] == [message]
    assert saved_rows(env) == []  # a connection test is no check


def test_connection_test_against_a_provider_that_rejects_the_key(env, fake):
    fake.responder = ByKind(ping=Reply(status=401, error_message="Incorrect API key provided"))
    at = providers_page()
    at.button(key=f"test-{LOOPBACK}").click().run()
    assert not at.exception
    (message,) = [e.value for e in at.error]
    assert message == "Not reachable: The API key was rejected: check OPENAI_API_KEY in .env"
    (details,) = at.expander  # the provider's own words, collapsed under it
    assert "HTTP 401" in details.text[0].value and "sk-test-secret" not in details.text[0].value
    assert not at.success
    assert len(fake.requests) == 1  # no retry hides the failure


def test_run_is_disabled_until_the_cost_is_confirmed(env, fake, script):
    at = providers_page()
    run = at.button(key="check-run")
    assert run.disabled
    box = confirmation(at)
    assert box.label == "I understand this check costs ≤ 0.0008 USD on this provider"
    box.check().run()
    assert not at.button(key="check-run").disabled
    # Another plan costs another amount: it must be confirmed again.
    at.slider(key="check_runs").set_value(10).run()
    box = confirmation(at)
    assert not box.value and at.button(key="check-run").disabled
    assert "sends 21 requests" in at.info[0].value
    # The local model is free: nothing to confirm.
    at.selectbox(key="check_provider").set_value("local").run()
    assert not [c for c in at.checkbox if c.key.startswith("check_confirm_")]
    assert not at.button(key="check-run").disabled
    assert at.info[0].value.endswith("· free (local model)")
    assert fake.requests == [] and saved_rows(env) == []


def test_a_check_runs_with_progress_and_its_report_is_graded_and_saved(env, fake):
    # First text after 50 ms (excellent); 2 of the 10 simultaneous streams fail (fail:
    # 80 % < 99 %); the long answer streams for about a second (the progress shows).
    script = fake.responder = ByKind(
        first_delay=0.05, failing_streams=2,
        long=Reply(text=LONG_TEXT, chunk_chars=12, chunk_delay=0.03))
    at = providers_page()
    check = run_check(at, runs=3)
    assert check.total == 3 + 3 + 1 + 10  # connections, first-token runs, long answer, streams
    # While it runs: the progress and Cancel instead of the form.
    (progress,) = progress_texts(at)
    assert progress.startswith(f"Checking {title(fake)}: ") and "/ 17 · " in progress
    assert at.button(key="check-cancel").label == "Cancel"
    assert not at.button(key="check-cancel").disabled
    assert "check-run" not in [b.key for b in at.button]

    wait_finished(check)
    at.run()
    assert not at.exception, at.exception
    assert not progress_texts(at)
    assert (script.count(TTFT), script.count(LONG), script.count(STREAM)) == (3, 1, 10)
    assert len(fake.requests) == 14  # exactly the plan: no retries, never more streams
    assert fake.max_active <= 10

    assert "Report" in [s.value for s in at.subheader]
    (shown,) = at.selectbox(key="check_shown").options
    assert shown.startswith(f"#1 · {LOOPBACK} · gpt-4o-mini · ") and shown.endswith("· completed")
    rows = report_table(at)
    assert rows["Time to first text"]["Grade"] == "excellent"
    assert rows["Time to first text"]["Value"].startswith("p50 ")
    assert rows["Connection set-up"]["Grade"] == "excellent"  # loopback
    assert rows["Interruptions (gaps > 5 s)"]["Grade"] == "excellent"
    assert rows["Interruptions (gaps > 5 s)"]["Value"] == "0 (0.00 %)"
    level = rows["10 streams at once"]
    assert (level["Grade"], level["Pass / excellent"]) == ("fail", "≥ 99 % / ≥ 100 %")
    assert level["Value"].startswith("80% succeeded · first text p95 ")
    captions = [c.value for c in at.caption]
    assert "0.15 / 0.6 USD per 1M input / output tokens" in captions  # the price beside it
    (usage,) = [c for c in captions if c.startswith("This check: ")]
    assert " USD · " in usage

    (row,) = saved_rows(env)  # saved once, when it ended
    assert (row["provider"], row["model"], row["status"]) == (LOOPBACK, "gpt-4o-mini", "completed")
    assert row["ttft_p95_ms"] is not None and row["ttft_p95_ms"] >= 40  # the first_delay
    assert check.saved_id == row["id"] == 1
    assert checks.history(Store(env["WRITER_DB"]))[0]["report"]["grades"]["concurrency_10"] == "fail"
    at.run()
    at.selectbox(key="check_chart_metric").set_value("connect_ms").run()
    assert not at.exception
    assert len(saved_rows(env)) == 1  # reruns show it, never save it again
    assert len(fake.requests) == 14


def test_the_next_check_is_shown_when_it_ends_and_the_form_keeps_its_choices(env, fake, script):
    at = providers_page()
    at.radio(key="check_prompt_set").set_value("long")
    at.multiselect(key="check_levels").set_value([]).run()  # no concurrency test: quicker
    wait_finished(run_check(at, runs=1))
    at.run()
    assert at.selectbox(key="check_shown").value == 1
    # The form is not drawn while a check runs; the choices are still there after it.
    assert (at.slider(key="check_runs").value, at.multiselect(key="check_levels").value,
            at.radio(key="check_prompt_set").value) == (1, [], "long")

    confirmation(at).check().run()
    at.button(key="check-run").click().run()
    wait_finished(checks.current(load_settings()))
    at.run()
    assert not at.exception, at.exception
    assert [row["id"] for row in saved_rows(env)] == [1, 2]
    picker = at.selectbox(key="check_shown")
    assert picker.value == 2, "the report still shows the previous check"
    assert picker.options[0].startswith("#2 · ") and picker.options[1].startswith("#1 · ")
    picker.set_value(1).run()  # an older one can still be picked
    assert at.selectbox(key="check_shown").value == 1 and not at.exception


def test_cancel_stops_the_check_and_saves_it_cancelled(env, fake):
    # The long answer sends three chunks, then nothing until the client goes away.
    script = fake.responder = ByKind(long=Reply(text=LONG_TEXT, chunk_chars=12, stall_after=3,
                                                stall_seconds=30))
    at = providers_page()
    check = run_check(at, runs=1)
    wait_for(lambda: script.count(LONG) == 1 and fake.chunks_sent[-1] == 3 and fake.active == 1,
             "the long answer to stall")
    at.run()
    (progress,) = progress_texts(at)
    assert progress.startswith(f"Checking {title(fake)}: 2 / 13 · ")  # (its phase: see below)
    disconnects = len(fake.disconnects)

    at.button(key="check-cancel").click().run()
    wait_finished(check, timeout_s=10)
    wait_for(lambda: len(fake.disconnects) == disconnects + 1, "the provider to see the close")
    assert fake.active == 0
    at.run()
    assert not at.exception, at.exception
    assert script.count(STREAM) == 0 and len(fake.requests) == 2  # nothing after the cancel
    (row,) = saved_rows(env)
    assert row["status"] == "cancelled"
    assert at.selectbox(key="check_shown").options[0].endswith("· cancelled")
    rows = report_table(at)
    assert rows["Time to first text"]["Grade"] == "excellent"  # measured before the cancel
    assert "10 streams at once" not in rows  # never started
    # A cancelled check is in no comparison and on no chart.
    assert "Side by side (latest check of each)" not in [s.value for s in at.subheader]
    assert "No completed check has this figure yet." in [c.value for c in at.caption]
    # The form is back: a new check can start.
    assert at.button(key="check-run").disabled  # (once confirmed)


def test_the_progress_names_the_phase_under_way(env, fake):
    script = fake.responder = ByKind(long=Reply(text=LONG_TEXT, chunk_chars=12, stall_after=3,
                                                stall_seconds=30))
    at = providers_page()
    check = run_check(at, runs=1)
    wait_for(lambda: script.count(LONG) == 1 and fake.chunks_sent[-1] == 3,
             "the long answer to stall")
    at.run()
    try:
        assert progress_texts(at) == [f"Checking {title(fake)}: 2 / 13 · a long streamed answer"]
    finally:
        check.cancel(actor=ADMIN)
        wait_finished(check, timeout_s=10)


def test_two_providers_side_by_side_and_over_time(env, fake):
    settings = load_settings()
    slow = save_check(settings, LOOPBACK, first_delay=0.4, fake=fake)
    save_check(settings, "relay-b", first_delay=0.05, fake=fake)
    fast = save_check(settings, LOOPBACK, first_delay=0.05, fake=fake)
    at = providers_page()
    assert not at.exception, at.exception
    subheaders = [s.value for s in at.subheader]
    assert subheaders[-3:] == ["Report", "Side by side (latest check of each)", "Over time"]
    assert at.selectbox(key="check_shown").value == 3  # the newest

    compare = at.dataframe[1].value  # the latest completed check of each, newest first
    assert list(compare["Provider"]) == [f"{LOOPBACK} · gpt-4o-mini", "relay-b · gpt-4o-mini"]
    assert list(compare["Price per 1M in / out"]) == ["0.15 / 0.6 USD"] * 2
    assert list(compare["Success at N streams"]) == ["–", "–"]  # no concurrency level checked
    assert all(ms.endswith(" ms") for ms in compare["Time to first text p95"])
    latest = {row["provider"]: row for row in checks.latest(Store(env["WRITER_DB"]))}
    assert latest[LOOPBACK]["id"] == fast != slow  # the newer, faster check of the loopback
    assert latest[LOOPBACK]["ttft_p95_ms"] < {r["id"]: r for r in saved_rows(env)}[slow][
        "ttft_p95_ms"]

    points = chart_data(at)  # time to first text p95, every check
    assert sorted(points["provider"]) == sorted([f"{LOOPBACK} · gpt-4o-mini"] * 2 +
                                                ["relay-b · gpt-4o-mini"])
    mine = points[points["provider"] == f"{LOOPBACK} · gpt-4o-mini"].sort_values("when")
    assert list(mine["value"])[0] >= 400 and list(mine["value"])[0] > list(mine["value"])[1]  # faster
    at.selectbox(key="check_chart_metric").set_value("connect_ms").run()
    assert not at.exception
    assert len(chart_data(at)) == 3
    assert at.get("vega_lite_chart")[0].proto.spec.count("connection set-up (ms)") >= 1
    at.selectbox(key="check_chart_metric").set_value("interruption_rate").run()
    assert list(chart_data(at)["value"]) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_both_ui_languages_render_the_page(env, fake, monkeypatch, language):
    monkeypatch.setenv("WRITER_UI_LANGUAGE", language)
    settings = load_settings()
    save_check(settings, LOOPBACK, first_delay=0.05, fake=fake)
    t = Translator(language)
    at = providers_page()
    assert at.title[0].value == t("providers.title")
    assert [s.value for s in at.subheader] == [
        t("providers.configured"), t("providers.check"), t("providers.report"),
        t("providers.compare"), t("providers.over_time")]
    assert [b.label for b in at.button] == [t("providers.test")] * 2 + [t("providers.run")]
    rows = at.dataframe[0].value
    grades = set(rows[t("providers.col_grade")])
    assert t("providers.grade_excellent") in grades
    assert grades <= {t(f"providers.grade_{g}") for g in ("excellent", "pass", "fail")} | {"–"}
    texts = [el.value for el in (*at.markdown, *at.caption, *at.info, *at.subheader)
             if isinstance(el.value, str)]
    assert not [s for s in texts if "providers." in s], "an untranslated key on the page"
    at.button(key=f"test-{LOOPBACK}").click().run()
    assert not at.exception
    assert at.success[0].value.startswith(t("providers.test_ok").split("{")[0])
