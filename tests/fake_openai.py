"""A scriptable fake OpenAI Chat Completions server for tests (standard library only).

It is a real HTTP/1.1 server on 127.0.0.1 (random free port), run in a background thread,
so the real ``openai`` SDK (and its HTTP stack) is exercised end to end::

    with FakeOpenAI() as fake:
        fake.queue(Reply(text="你好 🌍", split_utf8=True), Reply(status=429, headers={"Retry-After": "1"}))
        client = openai.OpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
        ...
        fake.requests[0]["model"], fake.requests[0]["_headers"]["authorization"]

Each ``POST /v1/chat/completions`` (or ``/chat/completions``) consumes the next queued
``Reply``; when the queue is empty ``fake.responder(request)`` answers if set, else
``fake.default`` (``Reply()`` unless given).
``"stream": true`` requests get Server-Sent Events (``text/event-stream``, chunked
transfer encoding, ``Connection: close``): an optional role chunk, one chunk per content
piece, a finish chunk, a usage chunk (``choices == []``, only when the request had
``stream_options.include_usage``), then ``data: [DONE]``. Other requests get a plain
``chat.completion`` JSON object. ``GET /v1/models`` lists "fake-model"; other paths 404.

Fault injection (see ``Reply``): HTTP errors with extra headers, raw bodies (e.g. HTML),
slow headers, slow first token / slow chunks (or a per-gap delay pattern), dropped connection (no terminating chunk, no ``[DONE]``),
stalls (socket kept open until the client closes it), a malformed ``data:`` line, and SSE
events written in several pieces that cut UTF-8 characters in half.

Recorded (appends are atomic under the GIL):
  ``requests``     JSON bodies, plus ``"_headers"`` (dict, lower-case names)
  ``chunks_sent``  per chat request, content chunks written so far (0 for non-stream
                   answers); updated before the next byte goes out, so it is exact once
                   the client has seen the end, an error or the stall
  ``disconnects``  ``time.monotonic()`` when a client was seen to close mid-response
                   (failed write, or the socket polled every 50 ms during delays/stalls)
"""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MODEL_PATHS = ("/v1/models", "/models")
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "requests"}


@dataclass
class Reply:
    """What one chat request gets. Defaults = a normal successful answer.

    ``*_after`` faults trigger after that many content chunks (``len(pieces)`` = after all
    content, before the finish chunk). ``first_delay`` also delays non-stream/error answers.
    """
    text: str = "Hello world."
    chunks: list[str] | None = None          # explicit content pieces (default: text split every chunk_chars)
    chunk_chars: int = 8
    finish_reason: str = "stop"
    usage: tuple[int, int] | None = (11, 22)  # (prompt_tokens, completion_tokens); None = never send usage
    status: int = 200                         # non-200: `body` or an OpenAI-style JSON error, never a stream
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str = "error"
    body: str | None = None                   # raw body override, sent with `content_type`
    content_type: str | None = None
    first_delay: float = 0.0
    header_delay: float = 0.0                 # wait before the response headers (any answer)
    chunk_delay: float = 0.0
    # Per-gap delays, cycled: before content chunk i (i >= 1) wait chunk_delays[(i - 1) % len];
    # overrides `chunk_delay` when given (e.g. [0.02, 0.06] = alternating 20 / 60 ms gaps).
    chunk_delays: list[float] | None = None
    drop_after: int | None = None             # close the socket abruptly (no terminating chunk, no [DONE])
    stall_after: int | None = None            # send nothing more until the client closes or stall_seconds pass
    stall_seconds: float = 60.0
    malformed_after: int | None = None        # send `data: {not json`, then end the response
    split_utf8: bool = False                  # write each event in pieces cutting multi-byte characters
    role_chunk: bool = True                   # first delta {"role": "assistant", "content": ""}

    def gap(self, i: int) -> float:
        """Seconds to wait before content chunk i >= 1."""
        if self.chunk_delays:
            return self.chunk_delays[(i - 1) % len(self.chunk_delays)]
        return self.chunk_delay

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        n = max(1, self.chunk_chars)
        return [self.text[i:i + n] for i in range(0, len(self.text), n)]


class _Stopped(Exception):
    """The fake is shutting down: end the response silently."""


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()  # raw UTF-8, like OpenAI


def _utf8_cuts(data: bytes) -> list[int]:
    """Positions right after a multi-byte lead byte (i.e. mid-character); else the middle."""
    cuts = [i for i in range(1, len(data)) if data[i - 1] >= 0xC0 and 0x80 <= data[i] < 0xC0]
    return sorted({cuts[0], cuts[-1]}) if cuts else [len(data) // 2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args):  # keep test output quiet
        pass

    # ---- routing -------------------------------------------------------------------------
    def do_GET(self):
        if self.path.split("?")[0].rstrip("/") in MODEL_PATHS:
            model = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
            return self._send_full(200, _dumps({"object": "list", "data": [model]}))
        self._send_full(404, _dumps(self._error(404, "Not found", "not_found")))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].rstrip("/") not in CHAT_PATHS:
            return self._send_full(404, _dumps(self._error(404, "Not found", "not_found")))
        fake = self.server.fake
        try:
            req = json.loads(raw)
        except ValueError:
            req = {"_raw": raw.decode("utf-8", "replace")}
        req["_headers"] = {k.lower(): v for k, v in self.headers.items()}
        req["_path"] = self.path
        with fake._lock:
            fake.requests.append(req)
            fake.chunks_sent.append(0)
            self.slot = len(fake.chunks_sent) - 1
            fake.active += 1
            fake.max_active = max(fake.max_active, fake.active)
        try:
            self._chat(req, fake._next(req))
        except ConnectionError:  # BrokenPipe / ConnectionReset on write, or seen by _wait
            fake.disconnects.append(time.monotonic())
            self.close_connection = True
        except _Stopped:
            self.close_connection = True
        finally:
            with fake._lock:
                fake.active -= 1

    # ---- chat ----------------------------------------------------------------------------
    def _chat(self, req: dict, r: Reply):
        self._wait(r.header_delay)
        if r.status != 200 or r.body is not None or not req.get("stream"):
            self._wait(r.first_delay)
            if r.body is not None:
                return self._send_full(r.status, r.body.encode(), r.content_type or "text/plain", r.headers)
            if r.status != 200:
                err = self._error(r.status, r.error_message, r.error_code)
                return self._send_full(r.status, _dumps(err), r.content_type or "application/json", r.headers)
            return self._send_full(200, _dumps(self._completion(req, r)), headers=r.headers)

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.close_connection = True
        split = r.split_utf8
        chunk = lambda delta, finish=None: self._event(self._chunk(req, delta, finish), split)  # noqa: E731

        if r.role_chunk:
            chunk({"role": "assistant", "content": ""})
        pieces = r.pieces()
        for i in range(len(pieces) + 1):
            if i == r.drop_after:
                return  # handler ends -> socket closed without the terminating chunk
            if i == r.stall_after:
                self._wait(r.stall_seconds)
                return
            if i == r.malformed_after:
                self._write(b"data: {not json\n\n")
                return self._write(b"")
            if i == len(pieces):
                break
            self._wait(r.first_delay if i == 0 else r.gap(i))
            chunk({"content": pieces[i]})
            self.server.fake.chunks_sent[self.slot] += 1  # counted before any later byte is sent
        chunk({}, r.finish_reason)
        if r.usage is not None and (req.get("stream_options") or {}).get("include_usage") is True:
            self._event({**self._chunk(req, {}, None), "choices": [], "usage": self._usage(r)}, split)
        self._event("[DONE]", split)
        self._write(b"")  # terminating zero-length chunk

    def _chunk(self, req, delta, finish):
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": req.get("model", "fake-model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _completion(self, req, r: Reply):
        out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
               "model": req.get("model", "fake-model"),
               "choices": [{"index": 0, "finish_reason": r.finish_reason,
                            "message": {"role": "assistant", "content": "".join(r.pieces())}}]}
        if r.usage is not None:
            out["usage"] = self._usage(r)
        return out

    @staticmethod
    def _usage(r: Reply):
        a, b = r.usage
        return {"prompt_tokens": a, "completion_tokens": b, "total_tokens": a + b}

    @staticmethod
    def _error(status, message, code):
        return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"),
                          "param": None, "code": code}}

    # ---- wire ----------------------------------------------------------------------------
    def _send_full(self, status, body: bytes, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _event(self, obj, split=False):
        data = b"data: " + (obj.encode() if isinstance(obj, str) else _dumps(obj)) + b"\n\n"
        if not split:
            return self._write(data)
        start = 0
        for cut in _utf8_cuts(data) + [len(data)]:
            self._write(data[start:cut])
            start = cut
            time.sleep(0.005)  # let each piece reach the client on its own

    def _write(self, data: bytes):
        """One HTTP chunk (b"" = the terminating chunk)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")
        self.wfile.flush()

    def _wait(self, seconds: float):
        """Sleep, polling the socket every 50 ms; raise ConnectionAbortedError if the client closed."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.server.stopping.is_set():
                raise _Stopped
            if select.select([self.connection], [], [], min(left, 0.05))[0]:
                try:
                    peek = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    peek = b""
                if not peek:
                    raise ConnectionAbortedError("client closed the connection")
                time.sleep(min(left, 0.05))  # unexpected client bytes: don't spin


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # listen() backlog: the default 5 drops a burst of simultaneous connects, whose SYNs
    # are then retried a second later (concurrency tests would time the fake, not the client).
    request_queue_size = 256

    def __init__(self, fake: "FakeOpenAI"):
        self.fake = fake
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeOpenAI:
    def __init__(self, replies: list[Reply] | None = None, default: Reply | None = None,
                 responder=None):
        self.default = default or Reply()
        # Called with the request's JSON body when the queue is empty: answers that
        # depend on the request (benchmarks: a model that stops early or rambles).
        self.responder = responder
        self._queue = list(replies or [])
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        self.disconnects: list[float] = []
        self.chunks_sent: list[int] = []
        self.active = 0  # chat requests being answered right now
        self.max_active = 0  # the most at once
        self._server: _Server | None = None
        self.base_url = ""

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next(self, req: dict | None = None) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        if self.responder is not None and req is not None:
            return self.responder(req)
        return self.default

    def start(self) -> "FakeOpenAI":
        self._server = _Server(self)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.stopping.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
