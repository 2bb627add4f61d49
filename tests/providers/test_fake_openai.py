"""Drive tests/fake_openai.py with the real openai SDK (openai 3.x on httpx2)."""
import json
import time

import httpx2
import openai
import pytest

from fake_openai import FakeOpenAI, Reply, _utf8_cuts

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def client(fake):
    with openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0) as c:
        yield c


def stream(client, **kw):
    return client.chat.completions.create(model="fake-model", messages=MSGS, stream=True, **kw)


def content(chunks):
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def test_stream_with_usage(fake, client):
    fake.queue(Reply(text="Hello streaming world", chunk_chars=8))
    chunks = list(stream(client, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content(chunks) == ["Hello st", "reaming ", "world"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.model == "fake-model"
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (11, 22, 33)
    assert fake.chunks_sent == [3] and fake.disconnects == []


def test_stream_without_stream_options_has_no_usage(fake, client):
    fake.queue(Reply(text="abc", finish_reason="length"))
    chunks = list(stream(client))
    assert all(c.usage is None and c.choices for c in chunks)
    assert "".join(content(chunks)) == "abc"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_non_streaming(fake, client):
    fake.queue(Reply(chunks=["Full ", "answer"], finish_reason="length", usage=(5, 7)))
    resp = client.chat.completions.create(model="fake-model", messages=MSGS)
    assert resp.choices[0].message.content == "Full answer"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.total_tokens == 12
    assert "stream" not in fake.requests[0] and fake.chunks_sent == [0]


def test_rate_limit_with_retry_after(fake, client):
    fake.queue(Reply(status=429, headers={"Retry-After": "1"}, error_code="rate_limit_exceeded",
                     error_message="slow down"))
    with pytest.raises(openai.RateLimitError) as exc:
        stream(client)
    err = exc.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and "slow down" in err.message
    assert err.response.headers["retry-after"] == "1"


def test_drop_mid_stream_raises(fake, client):
    fake.queue(Reply(text="one two three four", chunk_chars=4, drop_after=2))
    got = []
    with pytest.raises(openai.APIConnectionError) as exc:
        for c in stream(client):
            got.append(c)
    assert content(got) == ["one ", "two "]
    assert isinstance(exc.value.__cause__, httpx2.RemoteProtocolError)  # incomplete chunked read
    assert fake.chunks_sent == [2]


def test_split_utf8_reassembles_text(fake, client):
    text = "你好，世界 🌍🚀 émoji ok"
    data = b"data: " + text.encode() + b"\n\n"
    with pytest.raises(UnicodeDecodeError):  # the fake really cuts characters in half
        data[:_utf8_cuts(data)[0]].decode()
    fake.queue(Reply(text=text, chunk_chars=3, split_utf8=True))
    assert "".join(content(stream(client))) == text


@pytest.mark.parametrize("close", [lambda s: s.close(), lambda s: s.response.close()])
def test_client_close_during_stall_is_detected(fake, client, close):
    fake.queue(Reply(text="abcdefgh", chunk_chars=2, stall_after=1))
    s = stream(client)
    it = iter(s)
    next(it), next(it)  # role chunk + first content chunk, then the server stalls
    closed_at = time.monotonic()
    close(s)
    while not fake.disconnects and time.monotonic() - closed_at < 2:
        time.sleep(0.01)
    assert fake.disconnects and fake.disconnects[0] - closed_at < 1.0
    assert fake.chunks_sent == [1]


def test_malformed_chunk_raises(fake, client):
    fake.queue(Reply(text="abcdef", chunk_chars=3, malformed_after=1))
    got = []
    with pytest.raises(json.JSONDecodeError):
        for c in stream(client):
            got.append(c)
    assert content(got) == ["abc"]


def test_html_body_is_sent_raw(fake, client):
    html = "<html><body>Login required</body></html>"
    fake.queue(Reply(body=html, content_type="text/html"), Reply(body=html, content_type="text/html"))
    raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=MSGS)
    assert raw.headers["content-type"] == "text/html" and raw.http_response.text == html
    assert list(stream(client)) == []  # quirk: the SDK yields nothing for a non-SSE 200 body


def test_slow_first_token(fake, client):
    fake.queue(Reply(first_delay=0.3))
    start = time.monotonic()
    with stream(client) as s:
        first = next(c for c in s if c.choices and c.choices[0].delta.content)
    assert time.monotonic() - start >= 0.3 and first.choices[0].delta.content == "Hello wo"


def test_requests_recorded_and_queue_order(fake):
    fake.queue(Reply(text="first"), Reply(text="second"))
    with openai.OpenAI(base_url=fake.base_url.removesuffix("/v1"), api_key="test", max_retries=0) as c:
        answers = [c.chat.completions.create(model=f"m{i}", messages=MSGS, max_tokens=50 + i)
                   .choices[0].message.content for i in range(3)]  # base URL without /v1 works too
    assert answers == ["first", "second", "Hello world."]
    req = fake.requests[1]
    assert (req["model"], req["messages"], req["max_tokens"]) == ("m1", MSGS, 51)
    assert req["_headers"]["authorization"] == "Bearer test"


def test_models_and_unknown_path(fake, client):
    assert [m.id for m in client.models.list()] == ["fake-model"]
    resp = httpx2.get(fake.base_url + "/nope")
    assert resp.status_code == 404 and "error" in resp.json()
