"""Loopback network states for Stop tests (Linux): a port where a TCP connect hangs,
what /proc/net/tcp says about a connection, and a reply that notes when its body
began. Used by test_stop.py, test_cli_stop.py and test_browser.py."""
from __future__ import annotations

import contextlib
import select
import socket
import time
from pathlib import Path

import pytest

from fake_openai import Reply


def tcp_table() -> list[list[str]]:
    try:
        return [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    except OSError:
        pytest.skip("no /proc/net/tcp")


def connecting_to(port: int, ignore: set[int]) -> bool:
    """A socket is in SYN_SENT to 127.0.0.1:port from a local port not in `ignore`."""
    target = f"0100007F:{port:04X}"
    return any(fields[2] == target and fields[3] == "02"
               and int(fields[1].split(":")[1], 16) not in ignore for fields in tcp_table())


def drained(port: int) -> bool:
    """Every established loopback connection to or from `port` has nothing in flight:
    the sender's bytes were acknowledged and the receiving process has read them all."""
    for fields in tcp_table():
        local, remote, state = fields[1:4]
        tx_queue, rx_queue = (int(n, 16) for n in fields[4].split(":"))
        if state == "01" and f":{port:04X}" in (local[-5:], remote[-5:]) and (tx_queue or rx_queue):
            return False
    return True


@contextlib.contextmanager
def unanswered_port():
    """A loopback port where a TCP connect hangs: a listener whose accept queue is full.
    Yields (port, local ports of the sockets filling the queue)."""
    tcp_table()  # skips where there is no /proc/net/tcp
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(16):
            probe = socket.socket()
            probe.setblocking(False)
            probe.connect_ex(("127.0.0.1", port))
            fillers.append(probe)
            if not select.select([], [probe], [], 0.2)[1]:
                break  # this one hangs: the queue is full
        else:
            pytest.skip("could not fill the accept queue on this kernel")
        yield port, {sock.getsockname()[1] for sock in fillers}
    finally:
        for sock in fillers:
            sock.close()
        server.close()


class ServedReply(Reply):
    """A streamed Reply that notes when the fake began its body: the fake calls
    `pieces()` right after it has written the response headers and the role chunk."""

    served_at: float | None = None

    def pieces(self) -> list[str]:
        if self.served_at is None:
            self.served_at = time.monotonic()
        return super().pieces()
