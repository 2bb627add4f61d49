"""What a job has produced, for its viewers: a `Feed` of text pieces and engine events.

A job running in the registry (writer/runs/registry.py) appends to its feed; any number
of viewers follow it (a browser tab, a second tab after a reload, the sidebar): they
get the text so far at once, then the rest as it arrives, coalesced on a `Pacer`'s
budget, and detach by going away. Nothing a viewer does stops a job. Pure Python.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from writer.generation.events import Finished, Notice
from writer.kinds import NoticeKind
from writer.runs.pacing import Pacer

VIEWERS_PER_BASE_BUDGET = 4  # beyond this many viewers in the process, paints stretch

_viewers = 0  # viewers following a job in this process (all registries)
_viewers_lock = threading.Lock()


def _count_viewer(delta: int) -> None:
    global _viewers
    with _viewers_lock:
        _viewers += delta


def viewer_scale() -> float:
    """How much to stretch a viewer's paint budget: 1 up to 4 viewers in the process,
    then proportionally (20 viewers paint every 0.4 s instead of 0.08 s), so that
    many tabs on a small server and browser machine keep up instead of falling behind."""
    return max(1.0, _viewers / VIEWERS_PER_BASE_BUDGET)


@dataclass
class Update:
    """What a viewer should paint now: the new text, the events in between, the notice
    in force (None: none, or text came after it) and, at the end, how it finished."""

    text: str = ""
    events: list = field(default_factory=list)
    notice: Notice | None = None
    finished: Finished | None = None
    done: bool = False


class Feed:
    """What a job has produced, in order: text pieces (str) and engine events.
    Append-only; a reader keeps a cursor (an index) and waits for more."""

    def __init__(self, prefix: str = ""):
        self._items: list = [prefix] if prefix else []
        self._cond = threading.Condition()
        self.closed = False

    def append(self, item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read(self, cursor: int) -> tuple[list, int, bool]:
        """The items after `cursor`, the new cursor, and whether the feed is closed."""
        with self._cond:
            return self._items[cursor:], len(self._items), self.closed

    def wait(self, cursor: int, timeout: float | None, *, close_only: bool = False) -> bool:
        """Wait for items after `cursor` (or, with `close_only`, for the end only);
        False on timeout."""
        with self._cond:
            if close_only:
                return self._cond.wait_for(lambda: self.closed, timeout)
            return self._cond.wait_for(lambda: self.closed or len(self._items) > cursor, timeout)

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(item for item in self._items if isinstance(item, str))

    def follow(self, *, pacer: Pacer | None = None, tick_s: float = 0.5,
               first_tick_s: float | None = None,
               clock: Callable[[], float] = time.monotonic) -> Iterator[Update]:
        """The feed as a viewer sees it: first everything so far in one update, then
        new text coalesced on the pacer's budget (a paint is never held back longer
        than the budget, even when the stream stalls), notices as they come, and an
        empty update every `tick_s` while nothing happens (so a caller can refresh
        what it shows and notice that it should go away; the first one after
        `first_tick_s` if given). Ends after the update with `done=True`. Leaving
        the loop early detaches; the job goes on."""
        pacer = pacer or Pacer(clock=clock)
        _count_viewer(+1)
        try:
            yield from self._follow(pacer, tick_s, first_tick_s, clock)
        finally:
            _count_viewer(-1)

    def _follow(self, pacer: Pacer, tick_s: float, first_tick_s: float | None,
                clock: Callable[[], float]) -> Iterator[Update]:
        cursor, shown = 0, 0
        text: list[str] = []
        events: list = []
        notice: Notice | None = None
        finished: Finished | None = None
        last_yield = clock()
        tick = tick_s if first_tick_s is None else first_tick_s
        while True:
            items, cursor, closed = self.read(cursor)
            notice_changed = False
            for item in items:
                if isinstance(item, str):
                    text.append(item)
                    if notice is not None:
                        notice, notice_changed = None, True
                    continue
                events.append(item)
                if isinstance(item, Notice) and item.kind != NoticeKind.SECTION:
                    notice, notice_changed = item, True
                elif isinstance(item, Finished):
                    finished = item
            pending = sum(map(len, text))
            pacer.scale = viewer_scale()
            if closed:
                yield Update("".join(text), events, None, finished, done=True)
                return
            wait = pacer.wait_s(shown + pending) if pending else tick
            if (pending and wait <= 0) or notice_changed or (events and not pending) or \
                    (not pending and clock() - last_yield >= tick):
                if pending:
                    pacer.due(shown + pending)  # records the paint
                yield Update("".join(text), events, notice)
                shown += pending
                text, events = [], []
                last_yield = clock()
                tick = tick_s
                continue
            # Text waiting for its paint: wake for the end only (new text can wait for
            # the budget). Nothing waiting: wake on anything, or on the tick.
            self.wait(cursor, wait if pending else max(0.0, tick - (clock() - last_yield)),
                      close_only=bool(pending))
