import random
import time

import pytest

from writer.generation.counting import (
    WordCounter,
    _encoding,
    count_words,
    estimate_message_tokens,
    estimate_tokens,
)


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("Hello world", 2),
    ("你好世界", 4),
    ("我爱 AI 写作", 5),
    ("Streaming matters, really!", 3),
    ("don't stop — state-of-the-art", 3),
    ("It’s fine", 2),
    ("GPT-4o costs 2.50 USD", 5),  # GPT-4o, costs, 2, 50, USD
    ("2024年增长了30%", 6),  # 2024 年 增 长 了 30
    ("。，！？、；：“”《》……", 0),
    ("🚀🔥 launch 🎉", 1),
    ("ひらがな カタカナ", 8),
    ("한국어 문장", 5),
    ("Café naïve résumé", 3),
    ("snake_case", 2),
    ("-- dashes -- and 'quotes'", 3),
])
def test_count_words(text, expected):
    assert count_words(text) == expected


def _pieces(text, rng):
    i = 0
    while i < len(text):
        step = rng.randint(1, 7)
        yield text[i:i + step]
        i += step


@pytest.mark.parametrize("seed", range(20))
def test_incremental_counter_matches_full_count_for_any_split(seed):
    rng = random.Random(seed)
    text = ("# 标题 Title\n\nWe're shipping state-of-the-art 流式输出 today — 2,000 tokens/s! "
            "It’s 快. 🚀 Don't-stop-me-now. 한국어 かな ") * 5
    counter = WordCounter()
    for piece in _pieces(text, rng):
        counter.feed(piece)
    assert counter.words == count_words(text)


def test_counter_words_is_exact_mid_word():
    counter = WordCounter()
    counter.feed("hello wor")
    assert counter.words == 2  # "wor" is a word so far
    counter.feed("ld")
    assert counter.words == 2
    counter.feed("-wide")
    assert counter.words == 2


def test_incremental_counting_is_linear_not_quadratic():
    # A 10,000-word article in 5-character deltas: the incremental counter must do
    # far less work than recounting the whole text on every delta. Compared in the
    # same run (a ratio), not against a wall-clock target.
    text = "这是一个测试 streaming words here, " * 1500
    deltas = [text[i:i + 5] for i in range(0, len(text), 5)]
    start = time.perf_counter()
    counter = WordCounter()
    for d in deltas:
        counter.feed(d)
    incremental = time.perf_counter() - start
    start = time.perf_counter()
    acc = ""
    for d in deltas[: len(deltas) // 10]:  # only a tenth of the naive way
        acc += d
        count_words(acc)
    naive_tenth = time.perf_counter() - start
    assert counter.words == count_words(text)
    assert incremental < naive_tenth


def test_token_estimates_are_offline_and_plausible(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("token counting tried to use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    _encoding.cache_clear()  # load the encoding now, with the network forbidden
    assert estimate_tokens("") == 0
    assert 1 <= estimate_tokens("hello world") <= 3
    assert estimate_tokens("你好，世界") >= 3
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert estimate_message_tokens(messages) > estimate_tokens("be brief hi")
