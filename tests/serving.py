"""Waiting for a server this test run started (streamlit, llama.cpp's server) and
stopping it, and how Debian's chromium is launched. Used by the browser tests,
test_llama_server.py, scripts/screenshots.py and scripts/bench_stream_ui.py."""
from __future__ import annotations

import subprocess
import time
import urllib.request
from typing import Callable

# Debian's chromium (`playwright install` cannot download browsers here), as the
# browser tests and the scripts launch it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]

# An st.dataframe's cells as rows of {header: text}, read from glide's accessible table
# (the grid itself is drawn on a canvas): `locator.evaluate(GRID_JS)`.
GRID_JS = """(element) => {
    const table = element.querySelector('table[role="grid"]');
    if (!table) return null;
    const header = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
    return [...table.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
        [...tr.querySelectorAll('td')].map((td, i) => [header[i], td.innerText.trim()])));
}"""


class NotServing(RuntimeError):
    """The server exited or did not answer in time; the message has its output."""


def wait_until_serving(proc: subprocess.Popen, url: str, *, timeout_s: float,
                       log: Callable[[], str], name: str = "the server",
                       ok: Callable[[bytes], bool] = lambda body: True) -> None:
    """Poll `url` until it answers 200 with a body `ok` accepts; raise NotServing with
    the server's output if the process exits or `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise NotServing(f"{name} exited with code {proc.returncode} before it answered "
                             f"{url}:\n{log()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200 and ok(response.read()):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NotServing(f"{name} did not answer {url} within {timeout_s:.0f} s:\n{log()}")
        time.sleep(0.1)


def stop(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)
