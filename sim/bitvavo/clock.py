"""The simulator's clock: wall time plus an offset that only ever grows.

Everything the exchange times (rate-limit minutes, bans, price steps, order timestamps) reads this
clock, so tests can jump forward a minute through the admin API instead of sleeping. It never runs
behind the wall clock: the SDK sleeps until ``bitvavo-ratelimit-resetat`` in a thread, and a value
in the past makes that ``time.sleep`` raise.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Milliseconds since the epoch, ``wall + offset``; ``advance`` moves it forward."""

    def __init__(self, offset_ms: int = 0) -> None:
        if offset_ms < 0:
            raise ValueError("the simulator clock never runs behind the wall clock")
        self._offset_ms = offset_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return int(time.time() * 1000) + self._offset_ms

    @staticmethod
    def wall_ms() -> int:
        """The host's wall clock, which clients sign their timestamps with."""
        return int(time.time() * 1000)

    @property
    def offset_ms(self) -> int:
        with self._lock:
            return self._offset_ms

    def advance(self, ms: int) -> int:
        """Move the clock forward by ``ms`` (≥ 0); returns the new time."""
        if ms < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._offset_ms += ms
        return self.now_ms()

    def advance_to_minute_start(self, extra_ms: int = 0) -> int:
        """Jump to the start of the next minute (plus ``extra_ms``): a full fresh rate-limit window."""
        now = self.now_ms()
        return self.advance(60_000 - now % 60_000 + extra_ms)
