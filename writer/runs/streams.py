"""Per-provider stream slots of the registry of live runs (writer/runs/registry.py): the
queue of worker jobs waiting for their provider, and when the next one starts.

Jobs are bounded per provider (`Provider.max_streams`, from WRITER_MAX_STREAMS or the
providers file). The others wait in submission order, each with its row saved `queued`
and a position in line. The bound holds across every process on the database (issue
24: several servers, the CLI): the head of a queue starts only when
writer/storage/slots.py `try_start` finds a free slot among the live streams of every
process, and marks its row `streaming` in the same transaction. Refused, it waits: the
queue is pumped again when a job of this process ends and every `remote.POLL_S` by the
process's watcher thread (another process's stream may have ended). The bundled local
model runs on this machine's CPU: its bound is per process, as before. A job run in
the foreground (the CLI's `write`) waits for its slot the same way: `wait_for_slot`.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Callable

from writer.runs import remote
from writer.storage import slots

log = logging.getLogger("writer")


def database_of(job) -> str | os.PathLike | None:
    """Where a job's rows are (its settings' database), or None."""
    return getattr(getattr(job, "settings", None), "database", None)


def slot_free(job, limit: int) -> bool:
    """May `job` (the head of its provider's queue) start now, counting every process's
    streams? Marks its row `streaming` when it may. Never raises: a failed look is
    logged and the job waits for the next pump."""
    provider = job.provider
    target = database_of(job)
    if provider.kind == "local" or target is None or job.article_id is None:
        return True  # counted in this process only
    version = getattr(job, "version_number", None) \
        if getattr(job, "version_kind", None) == "revision" else None
    try:
        return slots.try_start(target, job.article_id, provider.name, limit, version=version)
    except Exception:  # noqa: BLE001 - the watcher pumps again in a moment
        log.warning("stream slots: could not count %s's streams", provider.name, exc_info=True)
        return False


def wait_for_slot(job, poll_s: float = remote.POLL_S,
                  on_wait: Callable[[], None] | None = None) -> bool:
    """Block the calling thread (a foreground job, its row saved `queued`) until its
    provider has a free slot across processes; the row is then `streaming`. `on_wait()`
    is called once if it has to wait (the CLI says so). False when the job was stopped
    meanwhile (it then starts and ends at once, as stopped)."""
    limit = max(1, job.provider.max_streams)
    waited = False
    while not job.cancel_requested:
        if slot_free(job, limit):
            job.slot_taken = True
            return True
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(poll_s)
    return False


class Lanes:
    """The waiting jobs (registry Handles) per provider, and the slots this process holds."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pumping = threading.Lock()  # one pump at a time: a job is started once
        self._queues: dict[str, deque] = {}
        self._busy: dict[str, int] = {}
        self.refused: set[str] = set()  # providers whose head waits for another process

    def enqueue(self, handle) -> None:
        with self._lock:
            self._queues.setdefault(handle.provider_name, deque()).append(handle)

    def remove(self, handle) -> bool:
        """Take a queued job out of line (it was stopped); False if it was not queued."""
        with self._lock:
            queue = self._queues.get(handle.provider_name)
            if not queue or handle not in queue:
                return False
            queue.remove(handle)
            return True

    def position(self, handle) -> int | None:
        """1 = next in line for its provider; None when not queued."""
        with self._lock:
            for number, queued in enumerate(self._queues.get(handle.provider_name) or (), 1):
                if queued is handle:
                    return number
        return None

    def release(self, handle) -> None:
        """A job ended: its slot is free (if it held one)."""
        with self._lock:
            if handle.counted:
                handle.counted = False
                self._busy[handle.provider_name] -= 1

    def waiting(self) -> list[str]:
        """Providers with jobs in line."""
        with self._lock:
            return [name for name, queue in self._queues.items() if queue]

    def pump(self, provider: str, start: Callable[[object], None]) -> None:
        """Start queued jobs of `provider` while it has free slots, here and across
        processes (`start(handle)` runs one). Call without the registry's lock held."""
        with self._pumping:
            while True:
                with self._lock:
                    queue = self._queues.get(provider)
                    if not queue:
                        self.refused.discard(provider)
                        return
                    handle = queue[0]
                    limit = max(1, handle.job.provider.max_streams)
                    if self._busy.get(provider, 0) >= limit:
                        return  # one of ours ends first; its end pumps again
                if not slot_free(handle.job, limit):  # the database: outside the lock
                    with self._lock:
                        self.refused.add(provider)
                    remote.wake()  # the watcher pumps again in a moment
                    return
                with self._lock:
                    if not queue or queue[0] is not handle:
                        continue  # stopped meanwhile: it ran at once (Registry._promote)
                    queue.popleft()
                    self._busy[provider] = self._busy.get(provider, 0) + 1
                    handle.counted = True
                handle.job.slot_taken = True  # Job._begin does not wait again
                start(handle)
