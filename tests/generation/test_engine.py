"""The streaming engine against a real loopback HTTP provider and the real openai SDK."""
import pytest

from fake_openai import Reply
from writer.generation.counting import estimate_tokens
from writer.generation.engine import Request, stream
from writer.generation.events import Delta, Finished, Notice
from writer.generation.plan import PromptPlan
from writer.generation.retry import RetryPolicy
from writer.providers.base import Provider

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "写一段话"}]
NO_WAIT = RetryPolicy(max_retries=3, max_total_wait_s=10, base_s=0.01, cap_s=0.02)


def provider(fake, **kw):
    return Provider(name="fake", model="gpt-4o-mini", base_url=fake.base_url, api_key="k", **kw)


def run(fake, retry=NO_WAIT, sleeps=None, **kw):
    request = Request(PromptPlan(MESSAGES, 500), provider(fake, **kw), retry)
    events = list(stream(request, sleep=(sleeps.append if sleeps is not None else lambda s: None)))
    assert isinstance(events[-1], Finished)
    text = "".join(e.text for e in events if isinstance(e, Delta))
    return events, text, events[-1]


def test_streams_text_in_order_with_reported_usage(fake):
    fake.queue(Reply(text="流式输出让第一个字更快出现。Streaming shows the first word sooner.",
                     chunk_chars=3, usage=(40, 30)))
    events, text, done = run(fake)
    assert text == "流式输出让第一个字更快出现。Streaming shows the first word sooner."
    assert sum(isinstance(e, Delta) for e in events) > 5
    assert done.status == "completed" and done.finish_reason == "stop" and done.error is None
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.source) == (40, 30, "reported")
    body = fake.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 500 and body["messages"] == MESSAGES
    assert done.metrics.ttft_ms is not None and done.metrics.duration_ms >= done.metrics.ttft_ms


def test_usage_is_estimated_when_provider_sends_none(fake):
    fake.queue(Reply(text="hello there general kenobi", usage=None))
    _, _, done = run(fake)
    assert done.usage.source == "estimated"
    assert done.usage.output_tokens == estimate_tokens("hello there general kenobi") == 5
    assert done.usage.input_tokens > 5


def test_stream_options_can_be_turned_off(fake):
    fake.queue(Reply(text="ok"))
    _, _, done = run(fake, stream_usage=False)
    assert "stream_options" not in fake.requests[0]
    assert done.usage.source == "estimated"


def test_max_completion_tokens_parameter(fake):
    fake.queue(Reply(text="ok"))
    run(fake, max_tokens_param="max_completion_tokens")
    assert fake.requests[0]["max_completion_tokens"] == 500 and "max_tokens" not in fake.requests[0]


@pytest.mark.parametrize("reason, status, error", [
    ("length", "truncated", "max_tokens"),
    ("content_filter", "failed", "content filter"),
])
def test_finish_reasons(fake, reason, status, error):
    fake.queue(Reply(text="partial text here", finish_reason=reason))
    _, text, done = run(fake)
    assert text == "partial text here"
    assert done.status == status and error in done.error


def test_rate_limit_is_retried_honouring_retry_after(fake):
    fake.queue(Reply(status=429, headers={"Retry-After": "1"}), Reply(text="after the wait"))
    sleeps = []
    events, text, done = run(fake, sleeps=sleeps)
    assert text == "after the wait" and done.status == "completed"
    notices = [e for e in events if isinstance(e, Notice)]
    assert notices[0].attempt == 1 and notices[0].wait_s == pytest.approx(1.0)
    assert "rate limited" in notices[0].message
    assert sum(sleeps) == pytest.approx(1.0)
    assert len(fake.requests) == 2


@pytest.mark.parametrize("reply, kind", [
    (Reply(status=401), "API key was rejected"),
    (Reply(status=404, error_message="model not found"), "not found"),
    (Reply(status=429, error_code="insufficient_quota"), "no quota"),
    (Reply(status=400, error_code="context_length_exceeded"), "too long"),
    (Reply(status=200, body="<html><body>Welcome</body></html>", content_type="text/html"),
     "web page instead of the API"),
])
def test_non_retryable_errors_fail_at_once_with_a_clear_message(fake, reply, kind):
    fake.queue(reply)
    events, text, done = run(fake)
    assert done.status == "failed" and kind in done.error
    assert "\n" not in done.error and "Traceback" not in done.error
    assert len(fake.requests) == 1 and not any(isinstance(e, Notice) for e in events)


def test_connection_refused_is_a_clear_message(fake):
    from fake_openai import FakeOpenAI

    dead = FakeOpenAI().start()
    dead.stop()  # nothing listens on that port any more
    request = Request(PromptPlan(MESSAGES, 100), Provider("x", "m", base_url=dead.base_url, api_key="k"),
                      RetryPolicy(max_retries=1, base_s=0.01, cap_s=0.01))
    done = list(stream(request, sleep=lambda s: None))[-1]
    assert done.status == "failed" and "cannot connect" in done.error


def test_closing_the_stream_closes_the_provider_connection(fake):
    fake.queue(Reply(text="abcdefghij" * 10, chunk_chars=5, stall_after=3, stall_seconds=10))
    events = stream(Request(PromptPlan(MESSAGES, 100), provider(fake)))
    received = [next(events) for _ in range(3)]
    assert all(isinstance(e, Delta) for e in received)
    events.close()
    import time

    deadline = time.monotonic() + 2
    while not fake.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.disconnects, "the provider never saw the client disconnect"


def test_response_models_are_built_with_the_client_not_on_the_first_chunk():
    """Pydantic builds the SDK's models lazily; built mid-stream, a Ctrl-C landing there
    came out as a SchemaError ("unexpected SchemaError") instead of an interrupt."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("from openai.types.chat import chat_completion_chunk as c\n"
            "assert not c.ChoiceDelta.__pydantic_complete__\n"
            "from writer.providers import http as providers\n"
            "providers.openai_client('http://127.0.0.1:9/v1', 'k', 5.0, 5.0)\n"
            "assert c.ChoiceDelta.__pydantic_complete__ and c.ChatCompletionChunk.__pydantic_complete__\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_retry_after_zero_never_shortens_the_backoff_and_the_retries_end(fake):
    """A relay answering every request 429 with `Retry-After: 0` (LiteLLM's proxy does):
    each wait is at least the exponential backoff, the retries stop at max_retries, and
    the article fails as rate limited with a message that says it gave up."""
    fake.default = Reply(status=429, headers={"Retry-After": "0"}, error_message="slow down")
    policy = RetryPolicy(max_retries=4, max_total_wait_s=60, base_s=0.5, cap_s=20)
    sleeps = []
    events, text, done = run(fake, retry=policy, sleeps=sleeps)
    assert len(fake.requests) == 1 + policy.max_retries
    waits: dict[int, float] = {}  # each retry's first countdown notice: its whole wait
    for e in events:
        if isinstance(e, Notice) and e.kind == "retrying":
            waits.setdefault(e.attempt, e.wait_s)
    assert sorted(waits) == [1, 2, 3, 4]
    for attempt, wait in waits.items():
        assert wait >= min(policy.cap_s, policy.base_s * 2 ** (attempt - 1)), waits
    assert sum(sleeps) == pytest.approx(sum(waits.values()))
    assert text == "" and done.status == "failed" and done.error_kind == "rate_limit"
    assert "rate limited" in done.error and "gave up after 4 retries" in done.error
