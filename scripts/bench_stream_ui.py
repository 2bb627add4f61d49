"""Benchmark: how fast the Write page shows streamed text in a real browser.

One run measures, against the same loopback provider (tests/fake_openai.py) and the
same replies, interleaved:

  raw    the openai SDK consuming the stream directly, in its own Python process
         (the floor): request -> first / last content chunk received;
  app    `streamlit run app.py` (env as in tests/test_browser.py) in Debian's chromium:
         Generate click -> (a) first article text in the DOM, (b) the article's LAST
         words in the DOM (end of stream painted);
  naive  `streamlit run scripts/naive_write_page.py`, a page written the way
         Streamlit's docs show (client per click, every delta straight into
         st.write_stream, st.progress on every delta): the same (a) and (b).

Page times come from the page's own clock (a click listener + a MutationObserver);
provider-side times (request received, first / last content chunk written) are
recorded by wrapping the fake's handler in this process, and put on the page's clock
with a measured offset (within ~1 ms). Diagnostics per run: when the markers reached the
page's WebSocket (server side vs browser side), the app engine's own end time (from its
row), the fake's real send rate, and CPU seconds of each server and of the browser.
Scenarios: `fast` (~4,000 tokens at ~2,000 tokens/s,
1 token ≈ 4 characters per chunk; the chunk delay is calibrated so the raw stream
really runs at that rate) and `typical` (50 tokens/s for ~10 s after a provider
time to first token). Medians of --runs repetitions.

    .venv/bin/python scripts/bench_stream_ui.py [--runs 3] [--scenarios fast,typical]

A benchmark, not a test: it prints numbers and ratios, it asserts nothing about them.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
STARTUP_TIMEOUT_S = 40
MODEL = "gpt-4o-mini"
CHARS_PER_TOKEN = 4
REFERENCE = ("product brief: a page written like Streamlit's docs measured +1.6 s click -> first "
             "text beyond the provider's TTFT, and 1.77x the raw stream time at 2,000 tokens/s")

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


# ---- provider-side timing: wrap the fake's handler (tests/fake_openai.py is not modified) --

PROVIDER: dict[int, dict] = {}  # request slot -> {received, first, last, done} (time.time())


def install_provider_timing() -> None:
    import fake_openai

    handler = fake_openai._Handler
    orig_chat, orig_event = handler._chat, handler._event

    def _chat(self, req, reply):
        rec = PROVIDER[self.slot] = {"received": time.time(), "first": None, "last": None,
                                     "done": None}
        self._bench_rec = rec
        try:
            return orig_chat(self, req, reply)
        finally:
            rec["done"] = time.time()

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

    handler._chat, handler._event = _chat, _event


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


# ---- processes -------------------------------------------------------------------------

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


class StreamlitServer:
    def __init__(self, name: str, script: str, env: dict, tmp: Path):
        self.name, self.script = name, script
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"{name}.log"
        self.db_path = env.get("WRITER_DB")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WRITER_", "OPENAI_"))}
        cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(self.port),
               "--server.headless", "true", "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**clean, **env},
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(self.proc)

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


class RawClient:
    """The floor: the openai SDK in its own process (like the Streamlit servers), so the
    fake's threads and the consumer don't share one GIL."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--raw-worker"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        STARTED.append(self.proc)

    def run(self, base_url: str, timeout_s: float) -> dict:
        self.proc.stdin.write(base_url + "\n")
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
        base_url = line.strip()
        if not base_url:
            return
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        sent = time.time()
        start = time.perf_counter()
        first = last = None
        chunks = chars = 0
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "write"}], stream=True,
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


def browser_cpu_s(exclude: set[int]) -> float:
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
            total += cpu_s(pid)
    return total


# ---- browser ---------------------------------------------------------------------------

# Page-clock timestamps: the Generate click, the first DOM mutation after which the first
# marker is in the main area, and the one after which the last marker is.
TIMING_JS = """([first, last]) => {
    const T = window.__bench = {origin: performance.timeOrigin, click: null, first: null,
                                last: null, firstPaint: null, lastPaint: null, updates: 0};
    document.addEventListener('click', (event) => {
        const button = event.target.closest('button');
        if (T.click === null && button && button.innerText.includes('Generate'))
            T.click = performance.now();
    }, true);
    const main = document.querySelector('[data-testid="stMain"]');
    const observer = new MutationObserver(() => {
        if (T.click === null) return;
        T.updates++;
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
    });
    observer.observe(main, {subtree: true, childList: true, characterData: true});
}"""

# Installed before the page loads: when the app's WebSocket messages with the first and
# last markers reach the page (before Streamlit's own handler runs), so server-side and
# browser-side delays can be told apart. Only message tails are scanned after the first.
WS_JS = """(() => {
    const L = window.__ws = {markers: null, first: null, last: null, msgs: 0, bytes: 0};
    const scan = (bytes) => { let s = ''; for (const b of bytes) s += String.fromCharCode(b); return s; };
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            this.addEventListener('message', (event) => {
                if (!L.markers || !(event.data instanceof ArrayBuffer)) return;
                const now = performance.now(), size = event.data.byteLength;
                L.msgs++; L.bytes += size;
                if (L.first === null && size < 65536
                        && scan(new Uint8Array(event.data)).includes(L.markers[0])) L.first = now;
                if (L.last === null
                        && scan(new Uint8Array(event.data, Math.max(0, size - 512))).includes(L.markers[1]))
                    L.last = now;
            });
        }
    };
})();"""

IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.getAttribute('data-test-script-state') === 'notRunning';
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
    page.wait_for_timeout(400)  # a rerun just triggered may not have started yet
    page.wait_for_function(IDLE_JS, polling=50, timeout=timeout_s * 1000)


def measure_ui(browser, fake, server: StreamlitServer, sc: Scenario, tag: str,
               timeout_s: float, exclude: set[int]) -> dict:
    reply, first, last, _ = make_reply(sc, tag)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    context.set_default_timeout(30_000)
    context.add_init_script(WS_JS)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        topic = page.get_by_role("textbox", name="Topic", exact=True)
        topic.wait_for()
        wait_idle(page, 20)
        if server.name.startswith("app"):
            topic.fill("Why streaming output matters")
            page.get_by_role("spinbutton", name="Target length (words)").fill(str(sc.target_words))
            page.get_by_test_id("stRadio").filter(has_text="Article language") \
                .get_by_text("English", exact=True).click()
        else:
            topic.fill("Why streaming output matters")
            topic.press("Enter")  # commit the value now, not as a rerun during the click
        wait_idle(page, 20)
        offset = clock_offset(page)
        page.evaluate(TIMING_JS, [first, last])
        page.evaluate("(m) => { window.__ws.markers = m; }", [first, last])
        slot = len(fake.chunks_sent)
        fake.queue(reply)
        cpu0 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
        page.get_by_role("button", name="Generate").click()
        page.wait_for_function("() => window.__bench.last !== null && window.__bench.lastPaint "
                               "!== null", polling=50, timeout=timeout_s * 1000)
        timing = page.evaluate("window.__bench")
        ws = page.evaluate("window.__ws")
        # Let the run finish (provider done, result shown) before the session goes away.
        deadline = time.monotonic() + 20
        while (PROVIDER.get(slot) or {}).get("done") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        wait_idle(page, 30)
        if server.name.startswith("app"):
            page.get_by_test_id("stAlertContentSuccess").first.wait_for(timeout=10_000)
        cpu1 = (cpu_s(server.proc.pid), browser_cpu_s(exclude))
    finally:
        context.close()
    if errors:
        raise RuntimeError(f"JavaScript errors on the {server.name} page: {errors}")
    rec = PROVIDER.get(slot)
    if rec is None or rec["first"] is None:
        raise RuntimeError(f"{server.name}: the fake never streamed request #{slot}")
    sent = fake.chunks_sent[slot]
    if sent != len(reply.pieces()):
        raise RuntimeError(f"{server.name}: the fake sent {sent} of {len(reply.pieces())} chunks")
    engine_lag = None
    if server.db_path:  # the app's row: the engine's own start→end time (metrics.duration_ms)
        import sqlite3
        with sqlite3.connect(server.db_path) as db:
            row = db.execute("SELECT duration_ms FROM articles ORDER BY id DESC LIMIT 1").fetchone()
        if row and row[0]:
            # the engine starts a few ms before the request reaches the provider: an upper bound
            engine_lag = (rec["received"] + row[0] / 1000 - rec["last"]) * 1000
    to_py = lambda t_ms: (timing["origin"] + t_ms) / 1000 - offset  # noqa: E731
    click = to_py(timing["click"])
    return {
        "first": timing["first"] - timing["click"],
        "end": timing["last"] - timing["click"],
        "first_paint": timing["firstPaint"] - timing["click"] if timing["firstPaint"] else None,
        "end_paint": timing["lastPaint"] - timing["click"],
        "updates": timing["updates"],
        "click_to_request": (rec["received"] - click) * 1000,
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
            f"provider {r['provider_rate']:,.0f} tokens/s; {r['updates']} DOM updates; CPU "
            f"server {r['server_cpu']:.2f} s, browser {r['browser_cpu']:.2f} s)")


def measure_raw(raw: RawClient, fake, sc: Scenario, tag: str, timeout_s: float) -> dict:
    reply, *_ = make_reply(sc, tag)
    slot = len(fake.chunks_sent)
    fake.queue(reply)
    cpu0 = cpu_s(raw.proc.pid)
    out = raw.run(fake.base_url, timeout_s)
    cpu = cpu_s(raw.proc.pid) - cpu0
    rec = PROVIDER[slot]
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


# ---- main ------------------------------------------------------------------------------

def calibrate(raw: RawClient, fake, sc: Scenario, log) -> None:
    """Pick the fake's chunk_delay so the raw stream runs at sc.rate chunks/s: the fake
    sleeps in select() and each chunk costs extra time, so 1/rate is too long a delay."""
    delay = sc.chunk_delay
    for attempt in range(4):
        sc.chunk_delay = delay
        r = measure_raw(raw, fake, sc, f"c{attempt}", 60)
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


def med(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def fmt(v: float, unit: str = "") -> str:
    if v != v:  # nan
        return "–"
    return f"{v:,.0f}{unit}"


LABELS = {"raw": "raw SDK (floor)", "app": "app (app.py)", "naive": "naive (docs-style)",
          "app_nogc": "app, postScriptGC off"}
COLUMNS = [  # (header, key, unit) of the result table
    ("click→1st", "first", " ms"), ("−rawTTFT", "beyond", " ms"), ("click→end", "end", " ms"),
    ("×raw", "ratio", "x"), ("click→req", "click_to_request", " ms"),
    ("1st→DOM", "first_lag", " ms"), ("end lag", "end_lag", " ms"),
    ("prov tok/s", "provider_rate", ""), ("DOM upd", "updates", ""),
    ("CPU srv", "server_cpu", " s"), ("CPU brw", "browser_cpu", " s"),
]


def report(sc: Scenario, res: dict[str, list[dict]], runs: int) -> list[str]:
    raw_ttft, raw_end = med(res["raw"], "first"), med(res["raw"], "end")
    lines = [
        f"scenario {sc.name}: {sc.tokens:,} chunks of ~{CHARS_PER_TOKEN} chars ({sc.text_chars:,} "
        f"chars), provider TTFT {sc.first_delay * 1000:.0f} ms, chunk_delay "
        f"{sc.chunk_delay * 1000:.3f} ms; requested {sc.rate:,.0f} tokens/s, raw measured "
        f"{med(res['raw'], 'rate'):,.0f} tokens/s; medians of {runs}",
        f"  {'':<21}" + "".join(f"{h:>11}" for h, _, _ in COLUMNS),
    ]
    for kind, rows in res.items():
        name = LABELS[kind]
        values = {key: med(rows, key) for _, key, _ in COLUMNS}
        values["ratio"] = values["end"] / raw_end
        values["beyond"] = values["first"] - raw_ttft if kind != "raw" else float("nan")
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
        lines.append(f"  {name:<21}" + "".join(f"{c:>11}" for c in cells))
    app, naive = res["app"], res["naive"]
    a_first, n_first, a_end, n_end = (med(app, "first"), med(naive, "first"), med(app, "end"),
                                      med(naive, "end"))
    lines.append(f"  app vs naive: click→first {a_first:,.0f} vs {n_first:,.0f} ms "
                 f"({a_first - n_first:+,.0f} ms; beyond raw TTFT {a_first - raw_ttft:+,.0f} vs "
                 f"{n_first - raw_ttft:+,.0f} ms); end painted {a_end:,.0f} vs {n_end:,.0f} ms "
                 f"(app/naive {a_end / n_end:.2f}x); app/raw {a_end / raw_end:.2f}x, "
                 f"naive/raw {n_end / raw_end:.2f}x")
    for kind in (k for k in res if k != "raw"):
        rows = res[kind]
        lines.append(f"  {kind}: markers reached the page's WebSocket at first "
                     f"{med(rows, 'ws_first'):,.0f} / last {med(rows, 'ws_last'):,.0f} ms after the "
                     f"click (DOM {med(rows, 'first'):,.0f} / {med(rows, 'end'):,.0f} ms); "
                     f"{med(rows, 'ws_msgs'):,.0f} messages, {med(rows, 'ws_mb'):.1f} MB"
                     + (f"; the engine had consumed the last chunk ≤{med(rows, 'engine_lag'):,.0f} "
                        "ms after the provider wrote it (row's duration_ms)"
                        if kind.startswith("app") else ""))
    return lines


def main() -> int:
    if "--raw-worker" in sys.argv:
        raw_worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per measurement (≥3)")
    parser.add_argument("--scenarios", default="fast,typical")
    parser.add_argument("--fast-tokens", type=int, default=4000)
    parser.add_argument("--fast-rate", type=float, default=2000.0, help="tokens/s")
    parser.add_argument("--typical-rate", type=float, default=50.0, help="tokens/s")
    parser.add_argument("--typical-seconds", type=float, default=10.0)
    parser.add_argument("--typical-ttft", type=float, default=0.4,
                        help="the provider's time to first token in the typical scenario (s)")
    parser.add_argument("--variant-no-post-gc", action="store_true",
                        help="also measure the app with Streamlit's runner.postScriptGC off "
                             "(a third server), to see what the full GC at the end of each "
                             "script run costs the end of the stream")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="use chunk_delay = 1/rate as is")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1 (3 or more for meaningful medians)")
    command = " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT))
                        else sys.executable, os.path.relpath(__file__, ROOT), *sys.argv[1:]])

    scenarios = {
        "fast": Scenario("fast", args.fast_tokens, 1 / args.fast_rate, 0.0, args.fast_rate),
        "typical": Scenario("typical", round(args.typical_rate * args.typical_seconds),
                            1 / args.typical_rate, args.typical_ttft, args.typical_rate),
    }
    chosen = [scenarios[n.strip()] for n in args.scenarios.split(",") if n.strip()]
    for sc in chosen:
        _, _, _, text = make_reply(sc, "000")
        sc.text_chars = len(text)
        sc.target_words = max(50, min(20000, round(len(text.split()) / 50) * 50))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(kill_started)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from fake_openai import FakeOpenAI
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} not found (apt-get install chromium)", file=sys.stderr)
        return 2
    install_provider_timing()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-ui-"))
    results: dict[str, dict[str, list[dict]]] = {}
    t_start = time.monotonic()
    with FakeOpenAI() as fake:
        env = {"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-test", "WRITER_MODEL": MODEL,
               "WRITER_NO_DOTENV": "1", "WRITER_UI_LANGUAGE": "en"}
        servers = {
            "app": StreamlitServer("app", "app.py", {**env, "WRITER_DB": str(tmp / "writer.db")},
                                   tmp),
            "naive": StreamlitServer("naive", "scripts/naive_write_page.py",
                                     {**env, "NAIVE_TARGET_WORDS": str(chosen[0].target_words)},
                                     tmp),
        }
        if args.variant_no_post_gc:
            servers["app_nogc"] = StreamlitServer(
                "app_nogc", "app.py", {**env, "WRITER_DB": str(tmp / "writer-nogc.db"),
                                       "STREAMLIT_RUNNER_POST_SCRIPT_GC": "false"}, tmp)
        raw = RawClient()
        exclude = {server.proc.pid for server in servers.values()} | {raw.proc.pid}
        pw = sync_playwright().start()
        browser = None
        try:
            for server in servers.values():
                server.wait_healthy()
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            log(f"servers up (app {servers['app'].url}, naive {servers['naive'].url}, "
                f"fake {fake.base_url}); warming up")
            warm = Scenario("warmup", 40, 0.005, 0.0, 200, target_words=50)
            cold = {"raw": measure_raw(raw, fake, warm, "w00", 30)}
            for name, server in servers.items():  # also: the first click after server start
                cold[name] = measure_ui(browser, fake, server, warm, "w00", 60, exclude)
                log(f"  cold first click, {name}: {ui_line(cold[name])}")
            for sc in chosen:
                if sc.name == "fast" and not args.no_calibrate:
                    calibrate(raw, fake, sc, log)
                expected = sc.first_delay + sc.tokens / sc.rate
                timeout = 30 + 5 * expected
                kinds = ["raw", *servers]
                res = results[sc.name] = {kind: [] for kind in kinds}
                for rep in range(args.runs):
                    k = rep % len(kinds)
                    order = kinds[k:] + kinds[:k]  # rotate the order each repetition
                    for kind in order:
                        for attempt in (1, 2):  # one retry: a single hiccup must not lose the run
                            tag = f"{sc.name[0]}{rep}{kinds.index(kind)}{attempt}"
                            try:
                                if kind == "raw":
                                    r = measure_raw(raw, fake, sc, tag, timeout)
                                else:
                                    r = measure_ui(browser, fake, servers[kind], sc, tag, timeout,
                                                   exclude)
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
        except BaseException:
            for server in servers.values():
                log(f"--- {server.name} server log (tail) ---\n{server.log()}")
            log(f"logs and databases kept in {tmp}")
            raise
        finally:
            if browser is not None:
                browser.close()
            pw.stop()
            kill_started()
    shutil.rmtree(tmp, ignore_errors=True)  # kept above when something failed

    print(f"\n$ {command}")
    print(f"{os.cpu_count()} CPUs; streamlit app + naive page + chromium + fake provider on "
          f"this machine; total {time.monotonic() - t_start:.0f} s")
    print("click→1st: Generate click → first article text in the DOM (raw: request → first "
          "chunk); −rawTTFT: minus the raw SDK's time to first chunk; click→end: click → the "
          "article's last words in the DOM (raw: request → last chunk); ×raw: click→end / raw; "
          "click→req: click → request at the provider; 1st→DOM / end lag: first / last chunk "
          "written by the provider → in the DOM; prov tok/s: the fake's send rate in that run; "
          "DOM upd: main-area mutation batches; CPU srv: CPU seconds of the Streamlit server "
          "(raw: the SDK client) from click to idle; CPU brw: chromium + Playwright driver")
    for sc in chosen:
        print()
        print("\n".join(report(sc, results[sc.name], args.runs)))
    print(f"\ncold first click after server start (one {warm.tokens}-chunk reply, no TTFT; not in "
          f"the medians): click→first app {cold['app']['first']:,.0f} ms (click→request "
          f"{cold['app']['click_to_request']:,.0f} ms), naive {cold['naive']['first']:,.0f} ms "
          f"(click→request {cold['naive']['click_to_request']:,.0f} ms); raw SDK first request "
          f"TTFT {cold['raw']['first']:,.0f} ms")
    print(f"\n({REFERENCE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
