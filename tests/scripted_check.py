"""A scripted provider for the provider check (writer/runs/check.py) on the loopback fake:
each kind of request the check sends (told apart by its max_tokens) answered its own
way. Used by the Providers page tests, in AppTest and in chromium."""
from __future__ import annotations

import threading

from fake_openai import Reply

TTFT, LONG, STREAM, PING = 24, 640, 16, 5  # max_tokens of each kind of request
LONG_TEXT = "Small coffee brands can launch on social media with a plan. " * 8  # 480 chars


class ByKind:
    """The fake's responder: each kind of request of the check answered its own way.
    `failing_streams` of the concurrency streams answer HTTP 500 (whichever come first)."""

    def __init__(self, *, first_delay: float = 0.05, long: Reply | None = None,
                 failing_streams: int = 0, ping: Reply | None = None):
        self.first_delay = first_delay
        self.long = long or Reply(text=LONG_TEXT, chunk_chars=12, chunk_delay=0.005)
        self.failing_streams = failing_streams
        self.ping = ping or Reply(text="OK")
        self.kinds: list[int | None] = []  # max_tokens of each request, in order
        self._lock = threading.Lock()

    def __call__(self, request: dict) -> Reply:
        kind = request.get("max_tokens")
        with self._lock:
            self.kinds.append(kind)
            streams = self.kinds.count(STREAM)
        if kind == PING:
            return self.ping
        if kind == LONG:
            return self.long
        if kind == STREAM:
            if streams <= self.failing_streams:
                return Reply(status=500, error_message="relay overloaded")
            return Reply(text="Latte, mocha, flat white.", chunk_chars=8)
        return Reply(text="Fresh beans, clean water and the right grind.", chunk_chars=8,
                     first_delay=self.first_delay)

    def count(self, kind: int) -> int:
        with self._lock:
            return self.kinds.count(kind)
