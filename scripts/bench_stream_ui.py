"""Benchmark: how fast the Write page shows streamed text in a real browser, BEFORE and
AFTER a change, side by side in one run.

Two copies of the app run at once against the same loopback provider (tests/fake_openai.py):

  before  `streamlit run app.py` in a tree extracted with `git archive --before REF`
          (default c06a41c, the last commit before the background-job rewrite);
  after   the same in a snapshot of the current working tree (tracked and untracked,
          not ignored, files copied when the run starts), or in `git archive
          --after-ref REF`;
  raw     the openai SDK consuming the same stream directly, in its own Python process
          (the floor): request -> first / last content chunk received;
  naive   (--naive) `streamlit run scripts/naive_write_page.py`, a page written the
          way Streamlit's docs show (st.write_stream on every delta).

Both app servers get the same environment (as in tests/views/test_browser.py) and each its own
WRITER_DB. Debian's chromium (headless, --no-sandbox --disable-gpu) drives them through
Playwright with a --viewport (default 1280x900) and locale en-US. The brief is filled the
same way on both apps (Topic, Target length, Article language English, length control
off so the reply is one request): fill, Tab, then wait until the rerun that commit
triggered has finished (the after-app has no st.form; the before-app's form sends
nothing until Generate). Every request carries a tag (in the Topic) and the fake
answers each tag with its own reply, so concurrent sessions never get each other's; it
sends the chunks on a fixed timeline (request + TTFT + i x chunk delay), so a late
wake-up of its thread on a loaded machine is caught up instead of slowing the stream.

Scenarios (--scenarios, default fast,fresh,many,viewers; about 12 minutes on 2 cores):

  fast     ~4,000 tokens at ~2,000 tokens/s (the chunk delay is calibrated so the raw
           stream really runs at that rate) -- the held-out reference measurement:
           Generate click -> (a) first article text in the DOM, (b) the article's LAST
           words in the DOM. Criteria: (b) <= 1.10x the raw SDK stream time;
           (a) <= raw SDK TTFT + 150 ms; no main-thread task over 200 ms.
  fresh    (in the default, with fast) the same reply and criteria on the FIRST Generate
           click of a fresh server and a fresh page: per sample a new `streamlit run` of
           each app (own WRITER_DB), a new browser context, the brief filled, Generate;
           medians of --fresh-runs (3) samples, each side in its own new server, printed
           beside the warmed figures with raw SDK runs of the same run. What a person
           meets after the app was (re)started: everything done once per process on the
           first click (imports, the SDK client, the job registry's threads) counts here.
  typical  (not in the default) 50 tokens/s for ~10 s after a 400 ms provider TTFT;
           same figures.
  many     --sessions (20) browser contexts (= Streamlit sessions) in one chromium, all
           on one server, brief filled, then Generate clicked in all of them at the same
           wall-clock instant (a timer in each page); ~1,000 tokens at 100 tokens/s each.
           Per session click -> last words in the DOM, against a SOLO session (same
           reply, nobody else connected) measured just before. Per server: solo, median
           / max of the sessions, max / solo (criterion <= 1.2x), sessions with errors
           (page errors, text missing, an stAlertContentError), the most simultaneous
           streams the provider saw.
  viewers  after only: --viewers (19) sessions have the app open (loaded, idle); one
           more session starts an article (~1,000 tokens at 100 tokens/s), then the 19
           load `/?article=ID` (ID from the URL the Write page sets, else the newest row
           of the server's WRITER_DB) and attach to the running job. Provider requests
           (criterion: exactly 1), each viewer's last words in the DOM relative to the
           provider's last chunk, how many attached while it was still streaming,
           complete text, errors. "not supported" when the page at ?article=ID loads but
           does not show the article.

Page times come from the page's own clock (a click listener + a MutationObserver);
provider-side times (request received, first / last content chunk written) are recorded
by wrapping the fake's handler in this process, and put on the page's clock with a
measured offset (within ~1 ms). Long tasks: a PerformanceObserver({type: 'longtask',
buffered: true}) in each measured page; tasks overlapping click -> last words in the DOM
count (max duration, number over 200 ms). Diagnostics per run: when the markers reached
the page's WebSocket, the engine's own end time (from its row), the fake's real send
rate, and CPU seconds of each server and of the browser. Medians of --runs repetitions.
The report also says how much CPU other processes on the machine used meanwhile (from
/proc/stat minus this benchmark's own process tree): another test run skews everything.

    .venv/bin/python scripts/bench_stream_ui.py [--before c06a41c] [--after-ref REF]
        [--runs 3] [--fresh-runs 3] [--scenarios fast,fresh,typical,many,viewers]
        [--sessions 20] [--naive]

A benchmark, not a test: it prints numbers and ratios, it asserts nothing about them.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from serving import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

STARTUP_TIMEOUT_S = 40
MODEL = "gpt-4o-mini"
CHARS_PER_TOKEN = 4
LONG_TASK_LIMIT_MS = 200
CRITERIA = {"ratio": 1.10, "beyond_ttft_ms": 150, "many_ratio": 1.2, "viewer_requests": 1}
REFERENCE = ("held-out reference: a 4,000-token article at 2,000 tokens/s, Generate on the Write "
             "page at 1280x900: complete article visible <= 1.10x the raw SDK stream time, click "
             "-> first text <= raw SDK TTFT + 150 ms, no main-thread task over 200 ms; 20 sessions "
             "at once <= 1.2x a solo session; viewers of one job: exactly 1 provider request")

SENTENCES = [
    "Readers decide within seconds whether an assistant is worth waiting for.",
    "When the first words arrive at once, the wait feels shorter and the reader starts to read.",
    "Streaming turns that silence into progress that anyone can see and follow.",
    "It also lets a writer stop early when the draft is clearly heading the wrong way.",
    "That saves time, tokens and money, which matters for teams that write every day.",
    "A progress bar that counts words against the target tells the reader how far along it is.",
    "It should move smoothly, not in sudden jumps that hide the real pace of the model.",
    "Good streaming is more than sending bytes as soon as they exist.",
    "The interface has to paint the text without freezing, even when the article grows long.",
    "Painting every tiny fragment wastes effort, so updates are grouped on a short budget.",
    "Errors deserve the same care: a clear message and a saved draft beat a spinning wheel.",
    "If the connection drops halfway, the partial article should survive and be easy to resume.",
    "Costs should be visible too, so nobody is surprised by the bill at the end of the month.",
    "History matters as much as the live view, since writers return to earlier drafts.",
]


# ---- provider: one reply per tag, and provider-side timing (tests/fake_openai.py is not
# modified: its handler is wrapped in this process) ------------------------------------------

TAG_RE = re.compile(r"zbench([a-z0-9]+)z")
REPLIES: dict[str, object] = {}  # tag -> Reply, served to the first request with that tag
SERVED: set[str] = set()
PROVIDER: dict[int, dict] = {}  # request slot -> {tag, received, first, last, done} (time.time())
STREAMS = {"active": 0, "max": 0}
_STREAMS_LOCK = threading.Lock()


def topic_for(tag: str) -> str:
    return f"Why streaming output matters zbench{tag}z"


def request_tag(req: dict) -> str | None:
    match = TAG_RE.search(json.dumps(req.get("messages") or [], ensure_ascii=False))
    return match.group(1) if match else None


def responder(req: dict):
    """The fake's answer when its queue is empty (it always is here): the reply registered
    for the request's tag, once; anything else (a continuation, an outline, an untagged
    request) gets a one-word filler, and shows up as an extra request in the figures."""
    from fake_openai import Reply

    tag = request_tag(req)
    if tag in REPLIES and tag not in SERVED:
        SERVED.add(tag)
        return REPLIES[tag]
    return Reply(chunks=[" Extra."], usage=(10, 1))


def install_provider_timing() -> None:
    import fake_openai

    handler = fake_openai._Handler
    orig_chat, orig_event, orig_wait = handler._chat, handler._event, handler._wait

    def _chat(self, req, reply):
        rec = PROVIDER[self.slot] = {"tag": request_tag(req), "received": time.time(),
                                     "first": None, "last": None, "done": None}
        self._bench_rec = rec
        self._bench_next = time.monotonic()
        with _STREAMS_LOCK:
            STREAMS["active"] += 1
            STREAMS["max"] = max(STREAMS["max"], STREAMS["active"])
        try:
            return orig_chat(self, req, reply)
        finally:
            rec["done"] = time.time()
            with _STREAMS_LOCK:
                STREAMS["active"] -= 1

    def _event(self, obj, split=False):
        out = orig_event(self, obj, split)
        rec = getattr(self, "_bench_rec", None)
        if rec is not None and isinstance(obj, dict):
            choices = obj.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                now = time.time()
                if rec["first"] is None:
                    rec["first"] = now
                rec["last"] = now
        return out

    def _wait(self, seconds):
        """Chunks on a fixed timeline (request + first_delay + i * chunk_delay), like a
        remote provider whose pace does not depend on this machine's load: a late wake-up
        is caught up on the next chunks instead of adding up over a stream (with 20
        browser tabs on 2 cores, sleeps of 10 ms overshoot by several ms each)."""
        nxt = getattr(self, "_bench_next", None)
        if nxt is None:
            return orig_wait(self, seconds)
        self._bench_next = nxt + seconds
        return orig_wait(self, max(0.0, self._bench_next - time.monotonic()))

    handler._chat, handler._event, handler._wait = _chat, _event, _wait


def slots_for(tag: str) -> list[int]:
    return sorted(slot for slot, rec in list(PROVIDER.items()) if rec["tag"] == tag)


def wait_provider_done(slot: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (PROVIDER.get(slot) or {}).get("done") is None and time.monotonic() < deadline:
        time.sleep(0.05)


# ---- replies ---------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    tokens: int
    chunk_delay: float
    first_delay: float
    rate: float  # requested tokens/s
    target_words: int = 0
    text_chars: int = 0

    def fit(self) -> "Scenario":
        _, _, _, text = make_reply(self, "000")
        self.text_chars = len(text)
        self.target_words = max(50, min(20000, round(len(text.split()) / 50) * 50))
        return self

    def expected_s(self) -> float:
        return self.first_delay + self.tokens / self.rate


def make_reply(sc: Scenario, tag: str):
    """~sc.tokens chunks of 4 characters; the first chunk is a unique marker word (the
    first text), the article ends with another unique word completed only by the LAST
    chunk. Returns (Reply, first_marker, last_marker, text)."""
    from fake_openai import Reply

    first, last = f"Qzv{tag}x", f"Endzq{tag}x."
    want = sc.tokens * CHARS_PER_TOKEN - len(first)
    body, i = "", 0
    while len(body) < want:
        body += SENTENCES[i % len(SENTENCES)] + ("\n\n" if i % 5 == 4 else " ")
        i += 1
    rest = " " + body[:max(0, want - len(last) - 2)].rsplit(" ", 1)[0].rstrip() + " " + last
    chunks = [first] + [rest[j:j + CHARS_PER_TOKEN] for j in range(0, len(rest), CHARS_PER_TOKEN)]
    reply = Reply(chunks=chunks, chunk_delay=sc.chunk_delay, first_delay=sc.first_delay,
                  usage=(300, len(chunks)))
    return reply, first, last, "".join(chunks)


def register(sc: Scenario, tag: str):
    reply, first, last, text = make_reply(sc, tag)
    REPLIES[tag] = reply
    SERVED.discard(tag)
    return reply, first, last


# ---- processes and trees ------------------------------------------------------------------

STARTED: list[subprocess.Popen] = []  # every process this script started, killed on exit


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: streamlit and its children
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=10)


def kill_started() -> None:
    while STARTED:
        _kill(STARTED.pop())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                          text=True).stdout


def extract_ref(ref: str, dest: Path) -> str:
    """`git archive REF | tar -x -C dest`; returns a label with the short commit."""
    sha = _git("rev-parse", "--short", f"{ref}^{{commit}}").strip()
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return sha if sha.startswith(ref) or ref.startswith(sha) else f"{ref} = {sha}"


def snapshot_worktree(dest: Path) -> str:
    """Copy the working tree's tracked and untracked (not ignored) files, so edits made
    while the benchmark runs don't change what it measures half way."""
    names = [n for n in _git("ls-files", "-z", "-c", "-o", "--exclude-standard").split("\0") if n]
    for name in names:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    head = _git("rev-parse", "--short", "HEAD").strip()
    changed = [line for line in _git("status", "--porcelain").splitlines() if line.strip()]
    return f"working tree: HEAD {head}" + (f" + {len(changed)} changed/new files" if changed
                                           else ", clean")


class StreamlitServer:
    def __init__(self, name: str, label: str, script: str, cwd: Path, env: dict, tmp: Path):
        self.name, self.label, self.script, self.cwd = name, label, script, cwd
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.db_path = env.get("WRITER_DB")
        self.env = env
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))}
        cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(self.port),
               "--server.headless", "true", "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env={**clean, **env},
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(self.proc)

    @property
    def is_app(self) -> bool:
        return self.name != "naive"

    def log(self, tail: int = 3000) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")[-tail:]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: streamlit exited ({self.proc.returncode}):\n"
                                   f"{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not healthy after {STARTUP_TIMEOUT_S} s:\n"
                                   f"{self.log()}")
            time.sleep(0.1)

    def row(self, tag: str, columns: str = "id, duration_ms, status") -> tuple | None:
        """The newest article row whose topic carries `tag` (None if there is none or the
        schema differs)."""
        if not self.db_path:
            return None
        try:
            with sqlite3.connect(self.db_path, timeout=5) as db:
                return db.execute(f"SELECT {columns} FROM articles WHERE topic LIKE ? "
                                  "ORDER BY id DESC LIMIT 1", (f"%zbench{tag}z%",)).fetchone()
        except sqlite3.Error:
            return None


class RawClient:
    """The floor: the openai SDK in its own process (like the Streamlit servers), so the
    fake's threads and the consumer don't share one GIL."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--raw-worker"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        STARTED.append(self.proc)

    def run(self, base_url: str, tag: str, timeout_s: float) -> dict:
        self.proc.stdin.write(json.dumps({"base_url": base_url, "content": topic_for(tag)}) + "\n")
        self.proc.stdin.flush()
        import select
        if not select.select([self.proc.stdout], [], [], timeout_s)[0]:
            raise TimeoutError(f"raw client gave no answer within {timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"raw client exited ({self.proc.poll()})")
        return json.loads(line)


def raw_worker() -> None:
    import openai

    for line in sys.stdin:
        if not line.strip():
            return
        job = json.loads(line)
        client = openai.OpenAI(base_url=job["base_url"], api_key="sk-test", max_retries=0)
        sent = time.time()
        start = time.perf_counter()
        first = last = None
        chunks = chars = 0
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": job["content"]}], stream=True,
            stream_options={"include_usage": True})
        for event in stream:
            if event.choices and event.choices[0].delta and event.choices[0].delta.content:
                last = time.perf_counter()
                if first is None:
                    first = last
                chunks += 1
                chars += len(event.choices[0].delta.content)
        done = time.perf_counter()
        client.close()
        print(json.dumps({"sent": sent, "ttft": first - start, "last": last - start,
                          "done": done - start, "chunks": chunks, "chars": chars}), flush=True)


# ---- CPU time from /proc (Linux): per process, and the browser's process tree ------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # fields from "state" on
    except (OSError, IndexError):
        return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    st = _stat(pid)
    return (int(st[11]) + int(st[12])) / CLK_TCK if st else 0.0


def cpu_with_reaped_s(pid: int) -> float:
    """cpu_s plus the CPU of its children that have exited and been waited for (closed
    browser contexts' renderers end up there)."""
    st = _stat(pid)
    return sum(int(x) for x in st[11:15]) / CLK_TCK if st else 0.0


def browser_cpu_s(exclude: set[int], per_process=cpu_s) -> float:
    """CPU seconds of this script's descendants except `exclude` (the Streamlit servers
    and the raw client): the Playwright driver and chromium's processes."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))):
            parent[int(entry)] = int(st[1])
    me, total = os.getpid(), 0.0
    for pid in parent:
        p, seen = pid, 0
        while p in parent and p != me and p not in exclude and seen < 64:
            p, seen = parent[p], seen + 1
        if p == me and pid != me:
            total += per_process(pid)
    return total


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used (the /proc/stat cpu line)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class LoadMeter:
    """CPU seconds used by processes that are not this benchmark's (another test run,
    a build...) between start() and stop(): their load skews every figure here."""

    def __init__(self):
        self.other = self.wall = 0.0

    def _sample(self) -> tuple[float, float, float]:
        # this process and all it started, with their exited children
        ours = cpu_with_reaped_s(os.getpid()) + browser_cpu_s(set(), cpu_with_reaped_s)
        return time.monotonic(), machine_busy_s(), ours

    def start(self) -> "LoadMeter":
        self._t0 = self._sample()
        return self

    def stop(self) -> "LoadMeter":
        t1 = self._sample()
        self.wall += t1[0] - self._t0[0]
        self.other += max(0.0, (t1[1] - self._t0[1]) - (t1[2] - self._t0[2]))
        return self

    def text(self) -> str:
        share = self.other / max(1e-9, self.wall * (os.cpu_count() or 1))
        return (f"other processes used {self.other:.0f} CPU-s in {self.wall:.0f} s "
                f"({share:.0%} of the machine)")


# ---- browser ---------------------------------------------------------------------------

# Installed before each page loads. (1) When the app's WebSocket messages with the first
# and last markers reach the page (before Streamlit's own handler runs), so server-side
# and browser-side delays can be told apart; only message tails are scanned after the
# first, and nothing is scanned until markers are set. (2) The protocol's own "the run
# is over": the page's rerun requests (BackMsg field 11, rerun_script) and the server's
# script_finished (ForwardMsg field 6), read from the messages' top-level protobuf fields,
# so "the rerun my commit triggered has finished" is a condition, not a sleep. (The
# stApp element's script-state attribute is not enough: a quick rerun can go
# notRunning -> running -> notRunning within one React render and never show.)
INIT_JS = """(() => {
    const L = window.__ws = {markers: null, first: null, last: null, msgs: 0, bytes: 0,
                             reruns: 0, lastRerun: -1, finished: 0, lastFinish: -1};
    const scan = (bytes) => { let s = ''; for (const b of bytes) s += String.fromCharCode(b); return s; };
    const fields = (u8) => {  // top-level [field number, varint value or null]
        const out = []; let i = 0;
        const varint = () => { let v = 0, k = 1, b;
            do { b = u8[i++]; v += (b & 0x7f) * k; k *= 128; } while (b & 0x80 && i < u8.length);
            return v; };
        while (i < u8.length) {
            const tag = varint(), field = Math.floor(tag / 8), wire = tag & 7;
            let value = null;
            if (wire === 0) value = varint();
            else if (wire === 2) i += varint();
            else if (wire === 1) i += 8;
            else if (wire === 5) i += 4;
            else break;
            out.push([field, value]);
        }
        return out;
    };
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            this.addEventListener('message', (event) => {
                if (!(event.data instanceof ArrayBuffer)) return;
                const now = performance.now(), size = event.data.byteLength;
                L.msgs++; L.bytes += size;
                if (fields(new Uint8Array(event.data)).some(([f]) => f === 6)) {
                    L.finished++; L.lastFinish = now;
                }
                if (!L.markers) return;
                if (L.first === null && size < 65536
                        && scan(new Uint8Array(event.data)).includes(L.markers[0])) L.first = now;
                if (L.last === null
                        && scan(new Uint8Array(event.data, Math.max(0, size - 512))).includes(L.markers[1]))
                    L.last = now;
            });
        }
        send(data) {
            try {
                const u8 = data instanceof ArrayBuffer ? new Uint8Array(data)
                    : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
                    : null;
                if (u8 && fields(u8).some(([f]) => f === 11)) { L.reruns++; L.lastRerun = performance.now(); }
            } catch (e) { /* never break the app */ }
            return super.send(data);
        }
    };
})();"""

# Page-clock timestamps: the Generate click, the first DOM mutation after which the first
# marker is in the main area, and the one after which the last marker is; an error alert
# in the main area; long tasks (buffered, filtered to click -> last on the Python side).
# The whole document is observed (the main area may be re-created), the main area's text
# is read once per mutation batch, and the observer stops at the last marker.
TIMING_JS = """([first, last]) => {
    const T = window.__bench = {origin: performance.timeOrigin, click: null, first: null,
                                last: null, firstPaint: null, lastPaint: null, updates: 0,
                                errorAlert: false, longtasks: [], longtaskApi: true};
    try {
        window.__lt = new PerformanceObserver((list) => {
            for (const e of list.getEntries()) T.longtasks.push([e.startTime, e.duration]);
        });
        window.__lt.observe({type: 'longtask', buffered: true});
    } catch (e) { T.longtaskApi = false; }
    document.addEventListener('click', (event) => {
        const button = event.target.closest('button');
        if (T.click === null && button && button.innerText.includes('Generate'))
            T.click = performance.now();
    }, true);
    let main = null;
    const observer = new MutationObserver(() => {
        if (T.click === null) return;
        T.updates++;
        if (!main || !main.isConnected) main = document.querySelector('[data-testid="stMain"]');
        if (!main) return;
        const text = main.textContent;
        if (T.first === null && text.includes(first)) {
            T.first = performance.now();
            requestAnimationFrame(() => { T.firstPaint = performance.now(); });
        }
        if (T.last === null && text.includes(last)) {
            T.last = performance.now();
            requestAnimationFrame(() => { T.lastPaint = performance.now(); });
            observer.disconnect();
        }
        if (!T.errorAlert && main.querySelector('[data-testid="stAlertContentError"]'))
            T.errorAlert = true;
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

READ_JS = """() => {
    const T = window.__bench;
    if (window.__lt) for (const e of window.__lt.takeRecords()) T.longtasks.push([e.startTime, e.duration]);
    return T;
}"""

DONE_JS = """() => { const T = window.__bench;
    return (T.last !== null && T.lastPaint !== null) || T.errorAlert; }"""

# A viewer's page (installed before it loads): when the main area first shows the first
# and the last marker, and whether an error alert appeared; stops at the last marker.
VIEWER_JS = """(() => {
    const [first, last] = __MARKERS__;
    const V = window.__view = {origin: performance.timeOrigin, first: null, last: null,
                               errorAlert: false, updates: 0};
    let main = null;
    const observer = new MutationObserver(() => {
        V.updates++;
        if (!main || !main.isConnected) main = document.querySelector('[data-testid="stMain"]');
        if (!main) return;
        const text = main.textContent;
        if (V.first === null && text.includes(first)) V.first = performance.now();
        if (V.last === null && text.includes(last)) { V.last = performance.now(); observer.disconnect(); }
        if (!V.errorAlert && main.querySelector('[data-testid="stAlertContentError"]')) V.errorAlert = true;
    });
    observer.observe(document, {subtree: true, childList: true, characterData: true});
})();"""

IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning';
}"""

# Generate in the main area (never the sidebar), clicked by a timer at wall-clock `at`.
CLICK_AT_JS = """(at) => {
    const main = document.querySelector('[data-testid="stMain"]');
    const button = main && [...main.querySelectorAll('button')]
        .find((b) => b.innerText.trim() === 'Generate');
    if (!button) return false;
    setTimeout(() => button.click(), Math.max(0, at - Date.now()));
    return true;
}"""


def clock_offset(page) -> float:
    """page epoch seconds (timeOrigin + now) minus this process's time.time()."""
    best = None
    for _ in range(7):
        t0 = time.time()
        p = page.evaluate("performance.timeOrigin + performance.now()")
        t1 = time.time()
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, p / 1000 - (t0 + t1) / 2)
    return best[1]


def wait_idle(page, timeout_s: float) -> None:
    page.wait_for_function(IDLE_JS, polling=50, timeout=timeout_s * 1000)


NOTES: list[str] = []  # oddities seen while driving the pages, printed with the report


def commit(page, in_form: bool, action, what: str) -> None:
    """Do one widget action; outside a form, wait until the rerun it triggered has
    finished (the page sent a rerun request and the server's script_finished came after).
    Inside the before-app's st.form nothing is sent until Generate."""
    from playwright.sync_api import TimeoutError as PWTimeout

    reruns0 = page.evaluate("window.__ws.reruns")
    action()
    if not in_form:
        try:
            page.wait_for_function(
                "(r0) => window.__ws.reruns > r0 && window.__ws.lastFinish > window.__ws.lastRerun",
                arg=reruns0, polling=50, timeout=10_000)
        except PWTimeout:
            ws = page.evaluate("window.__ws")
            NOTES.append(f"{what}: no rerun finished within 10 s after the commit (continued when "
                         f"idle; {ws['reruns'] - reruns0} rerun requests sent)")
    wait_idle(page, 20)


def open_page(context, server: StreamlitServer, wait: bool = True):
    """A new page of `context` navigating to the server (wait=False: only until the
    navigation is committed). Returns (page, page errors list)."""
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/", wait_until="load" if wait else "commit")
    return page, errors


def fill_brief(page, server: StreamlitServer, tag: str, target_words: int) -> None:
    """Fill the brief (topic carrying `tag`) on a page at the Write page; returns when the
    page is idle, Generate not clicked."""
    main = page.get_by_test_id("stMain")
    topic = main.get_by_role("textbox", name="Topic", exact=True)
    topic.wait_for()
    wait_idle(page, 30)
    if not server.is_app:  # the naive page: a text input and a button, no form
        commit(page, False, lambda: (topic.fill(topic_for(tag)), topic.press("Enter")), "naive topic")
        return
    in_form = main.get_by_test_id("stForm").get_by_role("textbox", name="Topic",
                                                        exact=True).count() > 0
    what = f"{server.name}: %s"
    commit(page, in_form, lambda: (topic.fill(topic_for(tag)), topic.press("Tab")), what % "Topic")
    length = main.get_by_role("spinbutton", name=re.compile(r"^Target length"))  # (words) or (characters): units follow the article language
    if length.input_value() != str(target_words):
        commit(page, in_form, lambda: (length.fill(str(target_words)), length.press("Tab")),
               what % "Target length")
    language = main.get_by_test_id("stRadio").filter(has_text="Article language")
    if not language.get_by_role("radio", name="English").is_checked():
        commit(page, in_form, lambda: language.get_by_text("English", exact=True).click(),
               what % "Article language")
    control = main.get_by_test_id("stCheckbox").filter(has_text="Hold to the target length")
    if control.count() and control.get_by_role("checkbox").is_checked():
        # off: one request writes the whole reply (no outline, no top-ups, no early end)
        commit(page, in_form, lambda: control.locator("label").click(), what % "length control")


def generate_button(page):
    return page.get_by_test_id("stMain").get_by_role("button", name="Generate", exact=True)


def finish_page(page, server: StreamlitServer, timeout_s: float) -> bool:
    """Wait for the end of the run (success alert on the app, else idle); True if the
    app showed its success alert."""
    from playwright.sync_api import TimeoutError as PWTimeout

    ok = True
    if server.is_app:
        try:
            page.locator('[data-testid="stAlertContentSuccess"], '
                         '[data-testid="stAlertContentError"]').first.wait_for(timeout=timeout_s * 1000)
            ok = page.get_by_test_id("stAlertContentSuccess").count() > 0
        except PWTimeout:
            ok = False
    try:
        wait_idle(page, 10)
    except PWTimeout:
        pass
    return ok


def long_tasks(timing: dict, start: float, end: float) -> tuple[float, int]:
    """(max duration ms, count over the limit) of long tasks overlapping [start, end]."""
    if not timing.get("longtaskApi"):
        return float("nan"), 0
    durs = [d for s, d in timing["longtasks"] if s < end and s + d > start]
    return (max(durs) if durs else 0.0), sum(d > LONG_TASK_LIMIT_MS for d in durs)


def new_context(browser, viewport: dict):
    context = browser.new_context(viewport=viewport, locale="en-US")
    context.set_default_timeout(30_000)
    context.add_init_script(INIT_JS)
    return context


def measure_ui(browser, server: StreamlitServer, sc: Scenario, tag: str, timeout_s: float,
               exclude: set[int], viewport: dict) -> dict:
    reply, first, last = register(sc, tag)
    context = new_context(browser, viewport)
    try:
        page, errors = open_page(context, server)
        fill_brief(page, server, tag, sc.target_words)
        offset = clock_offset(page)
        page.evaluate(TIMING_JS, [first, last])
        page.evaluate("(m) => { window.__ws.markers = m; }", [first, last])
        cpu0 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        generate_button(page).click()
        page.wait_for_function(DONE_JS, polling=50, timeout=timeout_s * 1000)
        timing = page.evaluate(READ_JS)
        ws = page.evaluate("window.__ws")
        if timing["errorAlert"] and timing["last"] is None:
            raise RuntimeError(f"{server.name}: error alert: "
                               + page.get_by_test_id("stAlertContentError").first.inner_text()[:300])
        slots = slots_for(tag)
        if slots:  # let the run finish (provider done, result shown) before the session goes
            wait_provider_done(slots[0], 20)
        success = finish_page(page, server, 15)
        cpu1 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"JavaScript errors on the {server.name} page: {errors}")
    if not slots or PROVIDER[slots[0]]["first"] is None:
        raise RuntimeError(f"{server.name}: the fake never streamed the reply for {tag}")
    rec = PROVIDER[slots[0]]
    sent = FAKE.chunks_sent[slots[0]]
    if sent != len(reply.pieces()):
        raise RuntimeError(f"{server.name}: the fake sent {sent} of {len(reply.pieces())} chunks")
    engine_lag = None
    row = server.row(tag)
    if row and row[1]:
        # the engine starts a few ms before the request reaches the provider: an upper bound
        engine_lag = (rec["received"] + row[1] / 1000 - rec["last"]) * 1000
    to_py = lambda t_ms: (timing["origin"] + t_ms) / 1000 - offset  # noqa: E731
    click = to_py(timing["click"])
    lt_max, lt_over = long_tasks(timing, timing["click"], timing["last"])
    return {
        "first": timing["first"] - timing["click"],
        "end": timing["last"] - timing["click"],
        "first_paint": timing["firstPaint"] - timing["click"] if timing["firstPaint"] else None,
        "end_paint": timing["lastPaint"] - timing["click"],
        "updates": timing["updates"],
        "click_to_request": (rec["received"] - click) * 1000, "click_at": click,
        "provider_ttft": (rec["first"] - rec["received"]) * 1000,
        "provider_stream": (rec["last"] - rec["received"]) * 1000,
        "provider_rate": (len(reply.pieces()) - 1) / (rec["last"] - rec["first"])
        if rec["last"] > rec["first"] else float("nan"),
        "end_lag": (to_py(timing["last"]) - rec["last"]) * 1000,
        "first_lag": (to_py(timing["first"]) - rec["first"]) * 1000,
        "ws_first": ws["first"] - timing["click"] if ws["first"] is not None else None,
        "ws_last": ws["last"] - timing["click"] if ws["last"] is not None else None,
        "ws_msgs": ws["msgs"], "ws_mb": ws["bytes"] / 1e6,
        "engine_lag": engine_lag,
        "lt_max": lt_max, "lt_over": lt_over,
        "requests": len(slots), "success": success,
        "server_cpu": cpu1[0] - cpu0[0],
        "browser_cpu": cpu1[1] - cpu0[1],
    }


def ui_line(r: dict) -> str:
    nan = float("nan")
    engine = ("" if r["engine_lag"] is None else
              f"; engine done ≤{r['engine_lag']:.0f} ms after the provider's last chunk")
    return (f"first {r['first']:.0f} ms, end painted {r['end']:.0f} ms (click→request "
            f"{r['click_to_request']:.0f} ms; provider→DOM first {r['first_lag']:.0f} / last "
            f"{r['end_lag']:.0f} ms; WebSocket first {r['ws_first'] or nan:.0f} / last "
            f"{r['ws_last'] or nan:.0f} ms, {r['ws_msgs']} msgs {r['ws_mb']:.1f} MB{engine}; "
            f"provider {r['provider_rate']:,.0f} tokens/s; {r['updates']} DOM updates; long "
            f"tasks max {r['lt_max']:.0f} ms, {r['lt_over']} > {LONG_TASK_LIMIT_MS} ms; "
            f"{r['requests']} request(s){'' if r['success'] else '; NO success alert'}; CPU "
            f"server {r['server_cpu']:.2f} s, browser {r['browser_cpu']:.2f} s)")


def measure_raw(raw: RawClient, sc: Scenario, tag: str, timeout_s: float) -> dict:
    reply, *_ = register(sc, tag)
    cpu0 = cpu_s(raw.proc.pid)
    out = raw.run(FAKE.base_url, tag, timeout_s)
    cpu = cpu_s(raw.proc.pid) - cpu0
    rec = PROVIDER[slots_for(tag)[0]]
    if out["chunks"] != len(reply.pieces()):
        raise RuntimeError(f"raw: received {out['chunks']} of {len(reply.pieces())} chunks")
    return {
        "first": out["ttft"] * 1000, "end": out["last"] * 1000,
        "rate": (out["chunks"] - 1) / (out["last"] - out["ttft"]),
        "provider_ttft": (rec["first"] - rec["received"]) * 1000,
        "provider_stream": (rec["last"] - rec["received"]) * 1000,
        "provider_rate": (len(reply.pieces()) - 1) / (rec["last"] - rec["first"]),
        "server_cpu": cpu,
    }


# ---- the first click of a fresh server ----------------------------------------------------

def run_fresh(browser, raw: RawClient, servers: dict, sc: Scenario, samples: int,
              exclude: set[int], viewport: dict, tmp: Path, log) -> dict[str, list[dict]]:
    """Per sample and app: a new `streamlit run` of the same tree (own WRITER_DB), a
    new page, brief, the first Generate click; the server is stopped after it. Raw SDK
    runs interleaved. Returns {"raw": [...], "before": [...], "after": [...]}."""
    kinds = [k for k in servers if servers[k].is_app]
    res: dict[str, list[dict]] = {"raw": [], **{k: [] for k in kinds}}
    timeout = 30 + 5 * sc.expected_s()
    for rep in range(samples):
        res["raw"].append(measure_raw(raw, sc, f"x{rep}raw", timeout))
        k = rep % len(kinds)
        for kind in kinds[k:] + kinds[:k]:
            base = servers[kind]
            env = {**base.env, "WRITER_DB": str(tmp / f"{kind}-fresh{rep}.db")}
            server = StreamlitServer(f"{kind}-fresh{rep}", base.label, base.script, base.cwd, env, tmp)
            exclude.add(server.proc.pid)
            try:
                server.wait_healthy()
                r = measure_ui(browser, server, sc, f"x{rep}{kind[:2]}", timeout, exclude, viewport)
            finally:
                _kill(server.proc)
            log(f"  fresh #{rep + 1} {kind}: {ui_line(r)}")
            res[kind].append(r)
    return res


# ---- many sessions at once ---------------------------------------------------------------

def run_sessions(browser, server: StreamlitServer, sc: Scenario, tags: list[str],
                 timeout_s: float, exclude: set[int], viewport: dict, log) -> dict:
    """Open one context per tag, fill the brief in each, then click Generate in all of
    them at the same wall-clock instant; per session click -> last words in the DOM."""
    sessions = []
    try:
        t_open = time.monotonic()
        for tag in tags:  # all pages load at once, then the briefs are filled one by one
            _, first, last = register(sc, tag)
            context = new_context(browser, viewport)
            sessions.append({"tag": tag, "context": context, "first": first, "last": last})
            page, errors = open_page(context, server, wait=False)
            sessions[-1].update(page=page, errors=errors)
        for s in sessions:
            fill_brief(s["page"], server, s["tag"], sc.target_words)
        open_s = time.monotonic() - t_open
        for s in sessions:
            s["offset"] = clock_offset(s["page"])
            s["page"].evaluate(TIMING_JS, [s["first"], s["last"]])
        STREAMS["max"] = STREAMS["active"]
        requests0 = len(FAKE.requests)
        cpu0 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        at_ms = (time.time() + 0.5 + 0.05 * len(sessions)) * 1000
        for s in sessions:
            if not s["page"].evaluate(CLICK_AT_JS, at_ms):
                s["errors"].append("no Generate button in the main area")
        # The times are taken in the pages; this only waits until every page is done, or
        # nothing can change any more (no stream running, no new request for 15 s).
        deadline = time.monotonic() + timeout_s + (at_ms / 1000 - time.time())
        pending, quiet_since, seen = list(sessions), None, len(FAKE.requests)
        while pending and time.monotonic() < deadline:
            pending = [s for s in pending if not s["page"].evaluate(DONE_JS)]
            if len(FAKE.requests) != seen or STREAMS["active"] or time.time() * 1000 < at_ms:
                seen, quiet_since = len(FAKE.requests), None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 15:
                break
            time.sleep(0.5)
        for s in sessions:
            s["timing"] = s["page"].evaluate(READ_JS)
        cpu1 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        for s in sessions:
            for slot in slots_for(s["tag"]):
                wait_provider_done(slot, 20)
            s["success"] = finish_page(s["page"], server, 15)
            s["error_alerts"] = s["page"].get_by_test_id("stAlertContentError").count()
            if s["timing"]["last"] is None:  # what the page shows instead
                s["shown"] = " ".join((s["page"].get_by_test_id("stMain").text_content(
                    timeout=5000) or "").split())[-160:]
    finally:
        for s in sessions:
            s["context"].close()
    rows = []
    for s in sessions:
        timing, slots = s["timing"], slots_for(s["tag"])
        rec = PROVIDER[slots[0]] if slots else None
        problems = list(s["errors"])
        if timing["click"] is None:
            problems.append("Generate click not seen")
        if timing["last"] is None:
            problems.append("last words never in the DOM")
            row = server.row(s["tag"])
            problems.append(f"row #{row[0]} {row[2]}" if row else "no article row (the click "
                            "started no job)")
            if timing["first"] is not None:
                problems.append("first text was shown")
        if s["error_alerts"] or timing["errorAlert"]:
            problems.append("error alert")
        to_py = lambda t_ms: (timing["origin"] + t_ms) / 1000 - s["offset"]  # noqa: E731, B023 (called within this iteration)
        ok = timing["last"] is not None and timing["click"] is not None
        lt_max, lt_over = (long_tasks(timing, timing["click"], timing["last"]) if ok
                           else (float("nan"), 0))
        rows.append({
            "tag": s["tag"], "problems": problems, "success": s["success"],
            "shown": s.get("shown"),
            "click_py": to_py(timing["click"]) if timing["click"] is not None else None,
            "end": timing["last"] - timing["click"] if ok else None,
            "first": timing["first"] - timing["click"]
            if timing["first"] is not None and timing["click"] is not None else None,
            "end_lag": (to_py(timing["last"]) - rec["last"]) * 1000
            if ok and rec and rec["last"] else None,
            "provider_stream": (rec["last"] - rec["received"]) * 1000
            if rec and rec["last"] else None,
            "requests": len(slots), "lt_max": lt_max, "lt_over": lt_over,
        })
    clicks = [r["click_py"] for r in rows if r["click_py"] is not None]
    return {"rows": rows, "open_s": open_s, "max_streams": STREAMS["max"],
            "requests": len(FAKE.requests) - requests0,
            "click_spread": (max(clicks) - min(clicks)) * 1000 if clicks else float("nan"),
            "server_cpu": cpu1[0] - cpu0[0], "browser_cpu": cpu1[1] - cpu0[1]}


def many_summary(solo: dict, many: dict) -> dict:
    ends = [r["end"] for r in many["rows"] if r["end"] is not None]
    solo_end = solo["rows"][0]["end"] if solo["rows"][0]["end"] is not None else float("nan")
    nan = float("nan")
    return {
        "solo": solo_end, "median": statistics.median(ends) if ends else nan,
        "max": max(ends) if ends else nan,
        "ratio": max(ends) / solo_end if ends and solo_end == solo_end else nan,
        "errors": sum(bool(r["problems"]) for r in many["rows"]),
        "no_success": sum(not r["success"] for r in many["rows"]),
        "problems": sorted({p for r in many["rows"] for p in r["problems"]
                            if not p.startswith("row #")}),
        "rows_seen": sorted({p.split()[-1] for r in many["rows"] for p in r["problems"]
                             if p.startswith("row #")}),
        "shown": next((r["shown"] for r in many["rows"] if r.get("shown")), None),
        "max_streams": many["max_streams"], "requests": many["requests"],
        "end_lag_med": med(many["rows"], "end_lag"), "end_lag_max": mx(many["rows"], "end_lag"),
        "solo_lag": solo["rows"][0]["end_lag"] if solo["rows"][0]["end_lag"] is not None else nan,
        "prov_med": med(many["rows"], "provider_stream"),
        "solo_prov": solo["rows"][0]["provider_stream"] or nan,
        "first_med": med(many["rows"], "first"), "first_max": mx(many["rows"], "first"),
        "lt_max": mx(many["rows"], "lt_max"), "lt_over": sum(r["lt_over"] for r in many["rows"]),
        "solo_lt_max": solo["rows"][0]["lt_max"],
        "click_spread": many["click_spread"], "open_s": many["open_s"],
        "server_cpu": many["server_cpu"], "browser_cpu": many["browser_cpu"],
        "sessions": len(many["rows"]),
    }


# ---- viewers of one running job ----------------------------------------------------------

def run_viewers(browser, server: StreamlitServer, sc: Scenario, n_viewers: int,
                timeout_s: float, exclude: set[int], viewport: dict, log) -> dict:
    from playwright.sync_api import TimeoutError as PWTimeout

    tag = "v1"
    reply, first, last = register(sc, tag)
    requests0 = len(FAKE.requests)
    contexts, viewers = [], []
    try:
        # The viewers' browsers have the app open before the job starts (like colleagues
        # with a tab on it: HTTP and code caches warm, renderer running); attaching is
        # then opening the link, a fresh page load of /?article=ID in each.
        for _ in range(n_viewers):
            context = new_context(browser, viewport)
            context.add_init_script(VIEWER_JS.replace("__MARKERS__", json.dumps([first, last])))
            contexts.append(context)
            page, errors = open_page(context, server, wait=False)
            viewers.append({"page": page, "errors": errors})
        for v in viewers:
            v["page"].get_by_test_id("stMain").get_by_role("textbox", name="Topic",
                                                          exact=True).wait_for(timeout=120_000)
            wait_idle(v["page"], 60)
        writer_ctx = new_context(browser, viewport)
        contexts.append(writer_ctx)
        writer, writer_errors = open_page(writer_ctx, server)
        fill_brief(writer, server, tag, sc.target_words)
        writer_offset = clock_offset(writer)
        writer.evaluate(TIMING_JS, [first, last])
        cpu0 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        generate_button(writer).click()
        writer.wait_for_function("() => window.__bench.first !== null || window.__bench.errorAlert",
                                 polling=50, timeout=timeout_s * 1000)
        article_id, source = None, None
        try:  # the after-app's Write page puts the running job's article in its URL
            handle = writer.wait_for_function(
                "() => new URLSearchParams(location.search).get('article')", polling=50,
                timeout=3000)
            article_id, source = handle.json_value(), "the Write page's URL"
        except PWTimeout:
            row = server.row(tag)
            if row:
                article_id, source = row[0], "the newest row of WRITER_DB (the URL had no ?article=)"
        if article_id is None:
            return {"supported": False, "why": "no article id (no ?article= in the URL, no row)"}
        url = f"{server.url}/?article={article_id}"
        log(f"  viewers: article {article_id} from {source}; opening {n_viewers} viewers at {url}")
        t_nav = time.time()
        for v in viewers:  # navigations in flight together; each page loads on its own
            v["page"].goto(url, wait_until="commit")
        slot = slots_for(tag)[0] if slots_for(tag) else None
        # Attach supported? The first viewer, once its page has loaded (a script run has
        # finished, or the article is shown), must show the article's beginning.
        first_viewer = viewers[0]["page"]
        first_viewer.wait_for_function(
            "() => window.__view.first !== null || window.__ws.finished > 0", polling=100,
            timeout=timeout_s * 1000)
        try:
            first_viewer.wait_for_function("() => window.__view.first !== null", polling=100,
                                           timeout=10_000)
        except PWTimeout:
            return {"supported": False, "article_id": article_id, "source": source,
                    "why": f"the page at ?article={article_id} loaded but did not show the "
                           "article within 10 s"}
        deadline = time.monotonic() + timeout_s
        for v in viewers:
            try:
                v["page"].wait_for_function("() => window.__view.last !== null || "
                                            "window.__view.errorAlert", polling=250,
                                            timeout=max(1, deadline - time.monotonic()) * 1000)
            except PWTimeout:
                pass
        writer.wait_for_function(DONE_JS, polling=250,
                                 timeout=max(1, deadline - time.monotonic()) * 1000)
        cpu1 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        if slot is not None:
            wait_provider_done(slot, 20)
        writer_timing = writer.evaluate(READ_JS)
        writer_success = finish_page(writer, server, 15)
        for v in viewers:
            v["view"] = v["page"].evaluate("window.__view")
            v["offset"] = clock_offset(v["page"])
            v["text"] = v["page"].get_by_test_id("stMain").text_content(timeout=5000) or ""
            v["error_alerts"] = v["page"].get_by_test_id("stAlertContentError").count()
    finally:
        for context in contexts:
            context.close()
    rec = PROVIDER[slot] if slot is not None else None
    rows = []
    for v in viewers:
        view = v["view"]
        to_py = lambda t_ms: (view["origin"] + t_ms) / 1000 - v["offset"]  # noqa: E731, B023 (called within this iteration)
        problems = list(v["errors"])
        if view["last"] is None:
            problems.append("last words never in the DOM")
        if first not in v["text"] or last not in v["text"]:
            problems.append("text incomplete at the end")
        if v["error_alerts"] or view["errorAlert"]:
            problems.append("error alert")
        rows.append({
            "problems": problems,
            "attach": (to_py(view["first"]) - t_nav) * 1000 if view["first"] is not None else None,
            "live": view["first"] is not None and rec is not None and rec["last"] is not None
            and to_py(view["first"]) < rec["last"],
            "end_lag": (to_py(view["last"]) - rec["last"]) * 1000
            if view["last"] is not None and rec and rec["last"] else None,
        })
    wt = writer_timing
    writer_lag = ((wt["origin"] + wt["last"]) / 1000 - writer_offset - rec["last"]) * 1000 \
        if wt["last"] is not None and rec and rec["last"] else float("nan")
    return {
        "supported": True, "article_id": article_id, "source": source,
        "requests": len(FAKE.requests) - requests0, "viewers": len(rows),
        "attach_med": med(rows, "attach"), "attach_max": mx(rows, "attach"),
        "end_lag_med": med(rows, "end_lag"), "end_lag_max": mx(rows, "end_lag"),
        "errors": sum(bool(r["problems"]) for r in rows),
        "problems": sorted({p for r in rows for p in r["problems"]}),
        "live": sum(r["live"] for r in rows),
        "live_lag_med": med([r for r in rows if r["live"]], "end_lag"),
        "live_lag_max": mx([r for r in rows if r["live"]], "end_lag"),
        "writer_lag": writer_lag, "writer_errors": len(writer_errors),
        "writer_success": writer_success,
        "provider_stream": (rec["last"] - rec["received"]) * 1000 if rec and rec["last"] else None,
        "server_cpu": cpu1[0] - cpu0[0], "browser_cpu": cpu1[1] - cpu0[1],
    }


# ---- main ------------------------------------------------------------------------------

def calibrate(raw: RawClient, sc: Scenario, log) -> None:
    """Pick the fake's chunk_delay so the raw stream runs at sc.rate chunks/s: the fake
    sleeps in select() and each chunk costs extra time, so 1/rate is too long a delay."""
    delay = sc.chunk_delay
    for attempt in range(4):
        sc.chunk_delay = delay
        r = measure_raw(raw, sc, f"c{attempt}", 60)
        per_chunk = r["end"] / 1000 / sc.tokens
        log(f"  calibrate {sc.name}: chunk_delay {delay * 1000:.3f} ms -> raw "
            f"{r['rate']:,.0f} tokens/s ({r['end']:.0f} ms)")
        if abs(r["rate"] - sc.rate) / sc.rate <= 0.05:
            return
        overhead = max(0.0, per_chunk - delay)
        delay = max(0.0, 1 / sc.rate - overhead)
        if delay == 0.0 and sc.chunk_delay == 0.0:
            log(f"  calibrate {sc.name}: chunk_delay 0 cannot reach {sc.rate:,.0f} tokens/s; "
                "using the measured rate")
            return
    sc.chunk_delay = delay


def _vals(rows: list[dict], key: str) -> list[float]:
    return [r[key] for r in rows if r.get(key) is not None and r[key] == r[key]]


def med(rows: list[dict], key: str) -> float:
    vals = _vals(rows, key)
    return statistics.median(vals) if vals else float("nan")


def mx(rows: list[dict], key: str) -> float:
    vals = _vals(rows, key)
    return max(vals) if vals else float("nan")


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


COLUMNS = [  # (header, key, unit) of the result table
    ("click→1st", "first", " ms"), ("−rawTTFT", "beyond", " ms"), ("click→end", "end", " ms"),
    ("×raw", "ratio", "x"), ("click→req", "click_to_request", " ms"),
    ("1st→DOM", "first_lag", " ms"), ("end lag", "end_lag", " ms"),
    ("prov tok/s", "provider_rate", ""), ("DOM upd", "updates", ""),
    ("LT max", "lt_max", " ms"), ("LT>200", "lt_over", ""),
    ("CPU srv", "server_cpu", " s"), ("CPU brw", "browser_cpu", " s"),
]


def report(sc: Scenario, res: dict[str, list[dict]], runs: int, labels: dict) -> list[str]:
    raw_ttft, raw_end = med(res["raw"], "first"), med(res["raw"], "end")
    width = max(len(v) for v in labels.values()) + 2
    lines = [
        f"scenario {sc.name}: {sc.tokens:,} chunks of ~{CHARS_PER_TOKEN} chars ({sc.text_chars:,} "
        f"chars, target {sc.target_words:,} words), provider TTFT {sc.first_delay * 1000:.0f} ms, "
        f"chunk_delay {sc.chunk_delay * 1000:.3f} ms; requested {sc.rate:,.0f} tokens/s, raw "
        f"measured {med(res['raw'], 'rate'):,.0f} tokens/s; medians of {runs} (LT max: median "
        f"of the runs' max long task; LT>200: total over the runs)",
        f"  {'':<{width}}" + "".join(f"{h:>11}" for h, _, _ in COLUMNS),
    ]
    values_by = {}
    for kind, rows in res.items():
        values = {key: med(rows, key) for _, key, _ in COLUMNS}
        values["ratio"] = values["end"] / raw_end
        values["beyond"] = values["first"] - raw_ttft if kind != "raw" else float("nan")
        if kind != "raw":
            values["lt_over"] = sum(r["lt_over"] for r in rows)
            values["lt_worst"] = mx(rows, "lt_max")
        values_by[kind] = values
        cells = []
        for _, key, unit in COLUMNS:
            v = values[key]
            if v != v:
                cells.append("–")
            elif unit == "x":
                cells.append(f"{v:.2f}x")
            elif unit == " s":
                cells.append(f"{v:.2f} s")
            else:
                cells.append(f"{v:,.0f}{unit}")
        lines.append(f"  {labels[kind]:<{width}}" + "".join(f"{c:>11}" for c in cells))
    apps = [k for k in ("before", "after") if k in res]
    for kind in apps:
        v = values_by[kind]
        lines.append(
            f"  {kind}: click→end {v['ratio']:.2f}x raw ({verdict(v['ratio'] <= CRITERIA['ratio'])} "
            f"≤ {CRITERIA['ratio']:.2f}x); click→first {v['first']:,.0f} ms = raw TTFT "
            f"{v['beyond']:+,.0f} ms ({verdict(v['beyond'] <= CRITERIA['beyond_ttft_ms'])} ≤ "
            f"+{CRITERIA['beyond_ttft_ms']} ms); longest main-thread task {v['lt_worst']:,.0f} ms "
            f"over {len(res[kind])} runs, {v['lt_over']} over {LONG_TASK_LIMIT_MS} ms "
            f"({verdict(v['lt_over'] == 0)} none over {LONG_TASK_LIMIT_MS} ms)")
    if len(apps) == 2:
        b, a = values_by["before"], values_by["after"]
        lines.append(
            f"  after vs before: click→end {a['end']:,.0f} vs {b['end']:,.0f} ms ({a['end'] - b['end']:+,.0f}"
            f" ms, after/before {a['end'] / b['end']:.2f}x; ×raw {a['ratio']:.2f} vs {b['ratio']:.2f}, "
            f"{a['ratio'] - b['ratio']:+.2f}); click→first {a['first']:,.0f} vs {b['first']:,.0f} ms "
            f"({a['first'] - b['first']:+,.0f} ms); longest task {a['lt_worst']:,.0f} vs "
            f"{b['lt_worst']:,.0f} ms; server CPU {a['server_cpu']:.2f} vs {b['server_cpu']:.2f} s")
    if "naive" in res:
        n = values_by["naive"]
        lines.append(f"  naive (docs-style): click→end {n['ratio']:.2f}x raw, click→first raw TTFT "
                     f"{n['beyond']:+,.0f} ms")
    for kind in (k for k in res if k != "raw"):
        rows = res[kind]
        lines.append(f"  {kind}: markers reached the page's WebSocket at first "
                     f"{med(rows, 'ws_first'):,.0f} / last {med(rows, 'ws_last'):,.0f} ms after the "
                     f"click (DOM {med(rows, 'first'):,.0f} / {med(rows, 'end'):,.0f} ms); "
                     f"{med(rows, 'ws_msgs'):,.0f} messages, {med(rows, 'ws_mb'):.1f} MB"
                     + (f"; the engine had consumed the last chunk ≤{med(rows, 'engine_lag'):,.0f} "
                        "ms after the provider wrote it (row's duration_ms)"
                        if med(rows, 'engine_lag') == med(rows, 'engine_lag') else "")
                     + (f"; {sum(r['requests'] for r in rows) - len(rows)} extra provider requests"
                        if any(r["requests"] != 1 for r in rows) else "")
                     + (f"; success alert missing in {sum(not r['success'] for r in rows)} runs"
                        if not all(r["success"] for r in rows) else ""))
    return lines


def report_many(sc: Scenario, many: dict[str, dict], labels: dict) -> list[str]:
    lines = [f"scenario many: {sc.tokens:,} chunks (~{sc.text_chars:,} chars, target "
             f"{sc.target_words} words) at {sc.rate:,.0f} tokens/s per session; SOLO = one "
             "session alone, then all sessions clicking Generate at the same instant; times = "
             "click → the article's last words in the DOM"]
    header = ["solo", "median", "max", "max/solo", "errors", "no ✓", "streams", "requests",
              "end lag", "prov strm", "1st med", "LT max", "LT>200", "click ±", "CPU srv",
              "CPU brw"]
    width = max(len(labels[k]) for k in many) + 2
    lines.append(f"  {'':<{width}}" + "".join(f"{h:>13}" for h in header))
    for kind, s in many.items():
        cells = [f"{s['solo']:,.0f}", f"{s['median']:,.0f}", f"{s['max']:,.0f}",
                 f"{s['ratio']:.2f}x", f"{s['errors']}/{s['sessions']}", f"{s['no_success']}",
                 f"{s['max_streams']}", f"{s['requests']}",
                 f"{s['end_lag_med']:,.0f}/{s['end_lag_max']:,.0f}", f"{s['prov_med']:,.0f}",
                 f"{s['first_med']:,.0f}", f"{s['lt_max']:,.0f}", f"{s['lt_over']}",
                 f"{s['click_spread']:,.0f}", f"{s['server_cpu']:.1f} s", f"{s['browser_cpu']:.1f} s"]
        lines.append(f"  {labels[kind]:<{width}}" + "".join(f"{c:>13}" for c in cells))
    for kind, s in many.items():
        lines.append(
            f"  {kind}: {s['sessions']} sessions, median {s['median']:,.0f} / max {s['max']:,.0f} ms "
            f"vs solo {s['solo']:,.0f} ms: max/solo {s['ratio']:.2f}x "
            f"({verdict(s['ratio'] <= CRITERIA['many_ratio'])} ≤ {CRITERIA['many_ratio']}x); "
            f"{s['errors']} sessions with errors{' (' + '; '.join(s['problems']) + ')' if s['problems'] else ''}"
            f"{'; their rows: ' + ', '.join(s['rows_seen']) if s['rows_seen'] else ''}; "
            f"provider saw at most {s['max_streams']} simultaneous streams ({s['requests']} requests); "
            f"last words {s['end_lag_med']:,.0f} ms (median) / {s['end_lag_max']:,.0f} ms (max) after "
            f"the provider's last chunk (solo {s['solo_lag']:,.0f} ms); provider stream "
            f"{s['prov_med']:,.0f} ms median (solo {s['solo_prov']:,.0f} ms); opening + filling "
            f"{s['sessions']} sessions took {s['open_s']:.0f} s")
    for kind, s in many.items():
        if s["shown"]:
            lines.append(f"  {kind}: a session without its article showed, at the end: "
                         f"“…{s['shown']}”")
    if "before" in many and "after" in many:
        b, a = many["before"], many["after"]
        lines.append(f"  after vs before: max {a['max']:,.0f} vs {b['max']:,.0f} ms "
                     f"({a['max'] - b['max']:+,.0f} ms), max/solo {a['ratio']:.2f} vs "
                     f"{b['ratio']:.2f}x, errors {a['errors']} vs {b['errors']}")
    lines.append("  (end lag: last words in the DOM after the provider's last chunk, median/max; "
                 "prov strm: request → last chunk at the provider, median; 1st med: click → first "
                 "text, median; no ✓: sessions without the success alert; click ±: spread of the "
                 "sessions' click events, ms)")
    return lines


def report_viewers(sc: Scenario, v: dict | None, n: int, label: str) -> list[str]:
    head = (f"scenario viewers ({label}): 1 session writes ({sc.tokens:,} chunks at "
            f"{sc.rate:,.0f} tokens/s), {n} more open /?article=ID")
    if v is None:
        return [head, "  not run"]
    if not v["supported"]:
        return [head, f"  not supported: {v['why']}"
                + (f" (article {v['article_id']} from {v['source']})" if v.get("article_id") else "")]
    return [head,
            f"  article {v['article_id']} (from {v['source']}); provider requests: {v['requests']} "
            f"({verdict(v['requests'] == CRITERIA['viewer_requests'])} exactly 1)",
            f"  viewers: first text {v['attach_med']:,.0f} ms (median) / {v['attach_max']:,.0f} ms "
            f"(max) after their navigation started; {v['live']}/{v['viewers']} attached while the "
            f"job was still streaming (their last words {v['live_lag_med']:,.0f} ms median / "
            f"{v['live_lag_max']:,.0f} ms max after the provider's last chunk); all: last words in the DOM {v['end_lag_med']:,.0f} ms "
            f"(median) / {v['end_lag_max']:,.0f} ms (max) after the provider's last chunk (the "
            f"writer's own page: {v['writer_lag']:,.0f} ms); {v['errors']}/{v['viewers']} viewers "
            f"with errors{' (' + '; '.join(v['problems']) + ')' if v['problems'] else ''}; writer: "
            f"{v['writer_errors']} page errors, success alert {'yes' if v['writer_success'] else 'NO'}",
            f"  provider stream {v['provider_stream'] or float('nan'):,.0f} ms; CPU server "
            f"{v['server_cpu']:.1f} s, browser {v['browser_cpu']:.1f} s"]


FAKE = None  # the FakeOpenAI instance (module-level for the measuring functions)


def main() -> int:
    global FAKE
    if "--raw-worker" in sys.argv:
        raw_worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="c06a41c",
                        help="git ref of the BEFORE app (extracted with git archive)")
    parser.add_argument("--after-ref", default=None,
                        help="git ref of the AFTER app (default: a snapshot of the working tree)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per measurement (≥3)")
    parser.add_argument("--scenarios", default="fast,fresh,many,viewers",
                        help="any of fast,fresh,typical,many,viewers (typical is not in the "
                             "default, to keep a run under ~12 minutes)")
    parser.add_argument("--fresh-runs", type=int, default=3,
                        help="samples in `fresh`: a new server per app and a new page each")
    parser.add_argument("--viewport", default="1280x900", help="WIDTHxHEIGHT")
    parser.add_argument("--naive", action="store_true",
                        help="also measure scripts/naive_write_page.py (docs-style page) in "
                             "fast/typical")
    parser.add_argument("--fast-tokens", type=int, default=4000)
    parser.add_argument("--fast-rate", type=float, default=2000.0, help="tokens/s")
    parser.add_argument("--typical-rate", type=float, default=50.0, help="tokens/s")
    parser.add_argument("--typical-seconds", type=float, default=10.0)
    parser.add_argument("--typical-ttft", type=float, default=0.4,
                        help="the provider's time to first token in the typical scenario (s)")
    parser.add_argument("--sessions", type=int, default=20, help="sessions in `many`")
    parser.add_argument("--many-rate", type=float, default=100.0,
                        help="tokens/s per stream in `many` and `viewers`")
    parser.add_argument("--many-tokens", type=int, default=1000,
                        help="tokens per article in `many` and `viewers`")
    parser.add_argument("--viewers", type=int, default=19, help="viewers in `viewers`")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="use chunk_delay = 1/rate as is")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1 (3 or more for meaningful medians)")
    try:
        width, height = (int(x) for x in args.viewport.lower().split("x"))
    except ValueError:
        parser.error("--viewport must look like 1280x900")
    viewport = {"width": width, "height": height}
    command = " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
                        else sys.executable, os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    wanted = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = set(wanted) - {"fast", "fresh", "typical", "many", "viewers"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    scenarios = {
        "fast": Scenario("fast", args.fast_tokens, 1 / args.fast_rate, 0.0, args.fast_rate),
        "typical": Scenario("typical", round(args.typical_rate * args.typical_seconds),
                            1 / args.typical_rate, args.typical_ttft, args.typical_rate),
        "many": Scenario("many", args.many_tokens, 1 / args.many_rate, 0.0, args.many_rate),
    }
    scenarios["viewers"] = Scenario("viewers", args.many_tokens, 1 / args.many_rate, 0.0,
                                    args.many_rate)
    for sc in scenarios.values():
        sc.fit()
    streamed = [scenarios[n] for n in wanted if n in ("fast", "typical")]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(kill_started)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from playwright.sync_api import sync_playwright

    from fake_openai import FakeOpenAI

    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    install_provider_timing()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-ui-"))
    t_start = time.monotonic()
    before_label = extract_ref(args.before, tmp / "before")
    if args.after_ref:
        after_label = extract_ref(args.after_ref, tmp / "after")
    else:
        after_label = snapshot_worktree(tmp / "after")
    labels = {"raw": "raw SDK (floor)", "before": f"before ({before_label})",
              "after": f"after ({after_label})", "naive": "naive (docs-style)"}
    short = {"raw": "raw SDK", "before": f"before {before_label.split()[-1]}", "after": "after",
             "naive": "naive"}
    results: dict[str, dict[str, list[dict]]] = {}
    many: dict[str, dict] = {}
    viewers_res = None
    fresh_res = None
    timings: dict[str, float] = {}
    meters: dict[str, LoadMeter] = {}
    total_meter = LoadMeter().start()
    with FakeOpenAI(responder=responder) as fake:
        FAKE = fake
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test", "WRITER_MODEL": MODEL,
               "WRITER_NO_DOTENV": "1", "WRITER_UI_LANGUAGE": "en"}
        servers = {
            name: StreamlitServer(name, labels[name], "app.py", tmp / name,
                                  {**env, "WRITER_DB": str(tmp / f"{name}.db")}, tmp)
            for name in ("before", "after")
        }
        if args.naive:
            servers["naive"] = StreamlitServer(
                "naive", labels["naive"], "scripts/naive_write_page.py", ROOT,
                {**env, "NAIVE_TARGET_WORDS": str((streamed or [scenarios["fast"]])[0].target_words)},
                tmp)
        raw = RawClient()
        exclude = {server.proc.pid for server in servers.values()} | {raw.proc.pid}
        pw = sync_playwright().start()
        browser = None
        try:
            for server in servers.values():
                server.wait_healthy()
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            log(f"servers up ({', '.join(f'{s.name} {s.url}' for s in servers.values())}, fake "
                f"{fake.base_url}); before = {before_label}, after = {after_label}; warming up")
            warm = Scenario("warmup", 40, 0.005, 0.0, 200, target_words=50)
            cold = {"raw": measure_raw(raw, warm, "w0raw", 30)}
            for name, server in servers.items():  # also: the first click after server start
                cold[name] = measure_ui(browser, server, warm, f"w0{name}", 60, exclude, viewport)
                log(f"  cold first click, {name}: {ui_line(cold[name])}")
            timings["start + warm-up"] = time.monotonic() - t_start
            for sc in streamed:
                t0 = time.monotonic()
                meters[sc.name] = LoadMeter().start()
                if sc.name == "fast" and not args.no_calibrate:
                    calibrate(raw, sc, log)
                timeout = 30 + 5 * sc.expected_s()
                kinds = ["raw", *servers]
                res = results[sc.name] = {kind: [] for kind in kinds}
                for rep in range(args.runs):
                    k = rep % len(kinds)
                    order = kinds[k:] + kinds[:k]  # rotate the order each repetition
                    for kind in order:
                        for attempt in (1, 2):  # one retry: a single hiccup must not lose the run
                            tag = f"{sc.name[0]}{rep}{kind[:2]}{attempt}"
                            try:
                                if kind == "raw":
                                    r = measure_raw(raw, sc, tag, timeout)
                                else:
                                    r = measure_ui(browser, servers[kind], sc, tag, timeout,
                                                   exclude, viewport)
                                break
                            except Exception as exc:  # noqa: BLE001
                                if attempt == 2:
                                    raise
                                log(f"  {sc.name} #{rep + 1} {kind}: failed ({type(exc).__name__}: "
                                    f"{str(exc)[:300]}); retrying once")
                        if kind == "raw":
                            log(f"  {sc.name} #{rep + 1} raw: first {r['first']:.0f} ms, last chunk "
                                f"{r['end']:.0f} ms ({r['rate']:,.0f} tokens/s, client CPU "
                                f"{r['server_cpu']:.2f} s)")
                        else:
                            log(f"  {sc.name} #{rep + 1} {kind}: {ui_line(r)}")
                        res[kind].append(r)
                timings[sc.name] = time.monotonic() - t0
                meters[sc.name].stop()
            if "fresh" in wanted:
                t0 = time.monotonic()
                meters["fresh"] = LoadMeter().start()
                sc = scenarios["fast"]
                if "fast" not in wanted and not args.no_calibrate:
                    calibrate(raw, sc, log)
                fresh_res = run_fresh(browser, raw, servers, sc, args.fresh_runs, exclude,
                                      viewport, tmp, log)
                timings["fresh"] = time.monotonic() - t0
                meters["fresh"].stop()
            if "many" in wanted:
                t0 = time.monotonic()
                meters["many"] = LoadMeter().start()
                sc = scenarios["many"]
                timeout = 60 + 5 * sc.expected_s()
                for kind in ("before", "after"):
                    solo = run_sessions(browser, servers[kind], sc, [f"s{kind[:2]}"], timeout,
                                        exclude, viewport, log)
                    log(f"  many, {kind} solo: {solo['rows'][0]}")
                    crowd = run_sessions(browser, servers[kind], sc,
                                         [f"m{kind[:2]}{i:02d}" for i in range(args.sessions)],
                                         timeout, exclude, viewport, log)
                    many[kind] = many_summary(solo, crowd)
                    log(f"  many, {kind}: {many[kind]}")
                timings["many"] = time.monotonic() - t0
                meters["many"].stop()
            if "viewers" in wanted:
                t0 = time.monotonic()
                meters["viewers"] = LoadMeter().start()
                sc = scenarios["viewers"]
                viewers_res = run_viewers(browser, servers["after"], sc, args.viewers,
                                          60 + 5 * sc.expected_s(), exclude, viewport, log)
                log(f"  viewers: {viewers_res}")
                timings["viewers"] = time.monotonic() - t0
                meters["viewers"].stop()
        except BaseException:
            for server in servers.values():
                log(f"--- {server.name} server log (tail) ---\n{server.log()}")
            log(f"logs, trees and databases kept in {tmp}")
            raise
        finally:
            if browser is not None:
                browser.close()
            pw.stop()
            kill_started()
    shutil.rmtree(tmp, ignore_errors=True)  # kept above when something failed

    total = time.monotonic() - t_start
    total_meter.stop()
    print(f"\n$ {command}")
    print(f"{os.cpu_count()} CPUs; before = {before_label}, after = {after_label}; both "
          f"streamlit servers{' + naive page' if args.naive else ''} + chromium (one process, a "
          f"context per session, viewport {width}x{height}, en-US) + fake provider on this "
          f"machine; total {total:.0f} s ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    print(f"machine load from outside this benchmark: {total_meter.text()}; per scenario: "
          + "; ".join(f"{k} {m.other:.0f} CPU-s" for k, m in meters.items())
          + (" -- figures are skewed by it" if total_meter.other > 0.1 * total_meter.wall else ""))
    if streamed:
        print("click→1st: Generate click → first article text in the DOM (raw: request → first "
              "chunk); −rawTTFT: minus the raw SDK's time to first chunk; click→end: click → the "
              "article's last words in the DOM (raw: request → last chunk); ×raw: click→end / raw; "
              "click→req: click → request at the provider; 1st→DOM / end lag: first / last chunk "
              "written by the provider → in the DOM; prov tok/s: the fake's send rate in that run; "
              "DOM upd: mutation batches; LT max / LT>200: main-thread long tasks from click to "
              "last words in the DOM; CPU srv: CPU seconds of the Streamlit server (raw: the SDK "
              "client) from click to idle; CPU brw: chromium + Playwright driver")
    for sc in streamed:
        print()
        print("\n".join(report(sc, results[sc.name], args.runs, short)))
    if fresh_res:
        print()
        print(f"first click of a FRESH server and page (scenario fast's reply; a new streamlit "
              f"server per app and sample, medians of {args.fresh_runs}; raw: the SDK in the same "
              "run) -- what a person meets after the app was started; scenario fast above: warmed "
              "servers):")
        print("\n".join(report(scenarios["fast"], fresh_res, args.fresh_runs, short)))
    if many:
        print()
        print("\n".join(report_many(scenarios["many"], many, short)))
    if "viewers" in wanted:
        print()
        print("\n".join(report_viewers(scenarios["viewers"], viewers_res, args.viewers,
                                       labels["after"])))
    print(f"\ncold first click after server start (one {warm.tokens}-chunk reply, no TTFT; not in "
          "the medians): " + "; ".join(
              f"{name} click→first {cold[name]['first']:,.0f} ms (click→request "
              f"{cold[name]['click_to_request']:,.0f} ms)" for name in servers)
          + f"; raw SDK first request TTFT {cold['raw']['first']:,.0f} ms")
    if NOTES:
        print("\nnotes: " + "; ".join(NOTES))
    print(f"\n({REFERENCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
