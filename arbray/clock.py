"""Injected clocks: core objects never read the wall clock directly, so replays are deterministic."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time in epoch milliseconds."""

    def now_ms(self) -> int: ...


class SystemClock:
    """Wall-clock time (live trading)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock advanced explicitly by a replay or a test."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, ts_ms: int) -> None:
        """Move the clock to ``ts_ms``; it never goes backwards."""
        if ts_ms > self._now:
            self._now = ts_ms
