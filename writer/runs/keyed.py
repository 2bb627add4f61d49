"""One live run per key in the registry of live runs (writer/runs/registry.py): a batch
run (per batch), the provider check (one per database). A run ended stays readable for
`KEEP_FINISHED_S` (a page attaches after the end and reads how it finished), then it is
pruned. Pure Python, no Streamlit.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

KEEP_FINISHED_S = 900.0  # a finished job or run stays readable this long (then: its row)
KEEP_FINISHED_MAX = 200


@dataclass
class _Run:
    run: object
    done: threading.Event
    ended_at: float | None = None


class KeyedRuns:
    """The (kind, key) runs of a registry; it provides `_clock` and `_keep_finished_s`."""

    _clock: Callable[[], float]
    _keep_finished_s: float

    def __init__(self):
        self._runs: dict[tuple[str, object], _Run] = {}  # (kind, key) -> batch run, check
        self._runs_lock = threading.Lock()

    def begin(self, kind: str, key, run, done: threading.Event,
              claim: Callable[[], None] | None = None):
        """Make `run` the live run of (`kind`, `key`), ended once `done` is set. When
        another is live, returns that one and registers nothing; else calls `claim()`
        (which may refuse by raising), registers `run` and returns None."""
        with self._runs_lock:
            self._prune_runs()
            current = self._runs.get((kind, key))
            if current is not None and not current.done.is_set():
                return current.run
            if claim is not None:
                claim()
            self._runs[(kind, key)] = _Run(run, done)
        return None

    def run(self, kind: str, key=None):
        """The live (or recently ended) run of (`kind`, `key`), or None."""
        with self._runs_lock:
            self._prune_runs()
            found = self._runs.get((kind, key))
        return found.run if found is not None else None

    def runs(self, kind: str) -> list:
        """Live and recently ended runs of a kind, oldest first."""
        with self._runs_lock:
            self._prune_runs()
            return [r.run for (k, _), r in self._runs.items() if k == kind]

    def _prune_runs(self) -> None:
        """Forget runs ended more than keep_finished_s ago (lock held)."""
        now = self._clock()
        ended = []
        for key, entry in self._runs.items():
            if entry.done.is_set():
                entry.ended_at = entry.ended_at if entry.ended_at is not None else now
                ended.append(key)
        for number, key in enumerate(reversed(ended)):
            if number >= KEEP_FINISHED_MAX or \
                    now - self._runs[key].ended_at > self._keep_finished_s:
                del self._runs[key]
