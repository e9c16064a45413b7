"""The simulator's clock: wall time plus a skew and a test-only jump forward, neither ever negative.

Two parts, both only ever growing:

* ``skew_ms`` — how far the exchange's clock runs ahead of the clients' (real) clock. ``GET /time``,
  order timestamps, rate-limit minutes *and the access-window check* all see it, so a client that
  signs with its own ``time.time()`` is refused (304) once the skew exceeds its window, while one
  that signs with the exchange's time (measured with ``GET /time``) is accepted.
* ``travel_ms`` — a jump forward for tests (``advance``): rate-limit minutes, bans, price steps and
  order timestamps move, ``GET /time`` moves, but the access window is still judged on
  ``wall + skew`` so a client signing with the real clock keeps working after a jump. (A request
  signed with the jumped ``GET /time`` is ahead of that reference; the simulator accepts timestamps
  in the future up to the jumped clock plus the window — whether Bitvavo's window is symmetric is
  unconfirmed, BITVAVO_API facts sheet "Not confirmed" 7.)

The clock never runs behind the wall clock: the SDK sleeps until ``bitvavo-ratelimit-resetat`` in a
thread, and a value in the past makes that ``time.sleep`` raise.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Milliseconds since the epoch, ``wall + skew + travel``; ``advance``/``add_skew`` move it forward."""

    def __init__(self, offset_ms: int = 0, *, skew_ms: int = 0) -> None:
        if offset_ms < 0 or skew_ms < 0:
            raise ValueError("the simulator clock never runs behind the wall clock")
        self._travel_ms = offset_ms
        self._skew_ms = skew_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """The exchange's time: what ``GET /time`` answers and every timestamp it writes."""
        with self._lock:
            return int(time.time() * 1000) + self._skew_ms + self._travel_ms

    def window_ms(self) -> int:
        """The clock the access window is judged by at arrival: ``wall + skew`` (no test jumps)."""
        with self._lock:
            return int(time.time() * 1000) + self._skew_ms

    @staticmethod
    def wall_ms() -> int:
        """The host's wall clock, which the official SDK signs its timestamps with."""
        return int(time.time() * 1000)

    @property
    def offset_ms(self) -> int:
        """Everything ``now_ms`` adds to the wall clock (skew and jumps)."""
        with self._lock:
            return self._skew_ms + self._travel_ms

    @property
    def skew_ms(self) -> int:
        with self._lock:
            return self._skew_ms

    def advance(self, ms: int) -> int:
        """Jump forward by ``ms`` (≥ 0) for tests; the access window does not see it. Returns the new time."""
        if ms < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._travel_ms += ms
        return self.now_ms()

    def add_skew(self, ms: int) -> int:
        """Put the exchange ``ms`` (≥ 0) further ahead of the clients' clocks, access window included."""
        if ms < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._skew_ms += ms
        return self.now_ms()

    def advance_to_minute_start(self, extra_ms: int = 0) -> int:
        """Jump to the start of the next minute (plus ``extra_ms``): a full fresh rate-limit window."""
        now = self.now_ms()
        return self.advance(60_000 - now % 60_000 + extra_ms)
