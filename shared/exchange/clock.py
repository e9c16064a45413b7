"""``ExchangeClock``: the exchange's time as this process knows it — the local clock plus an offset
measured with ``GET /time`` — which every request is signed with and every exchange deadline is
checked against.

Why: Bitvavo refuses a request that arrives more than the access window after its signed timestamp
(304), judged by *its* clock. Signing with exchange time makes a skewed local clock harmless, and
lets a caller bound when an order may still be signed in the one time both sides agree on
(docs/design.md, "the late-send bound lives in exchange time").

The offset is measured at the midpoint of the ``GET /time`` round trip (the server read its clock
somewhere inside it, so the error is at most half the round trip) and re-measured when older than
``refresh_after_s`` or after the exchange refused a timestamp. ``now_ms`` never does I/O. Thread-safe;
the local clock, the monotonic clock and the fetch are injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.exchange.errors import ExchangeError


def _local_ms() -> int:
    return time.time_ns() // 1_000_000


class ExchangeClock:
    """Exchange time in epoch milliseconds: ``local_ms() + offset_ms``."""

    def __init__(
        self,
        fetch_server_ms: Callable[[], int] | None = None,
        *,
        refresh_after_s: float = 300.0,
        local_ms: Callable[[], int] = _local_ms,
        monotonic: Callable[[], float] = time.monotonic,
        offset_ms: int = 0,
    ) -> None:
        """``fetch_server_ms`` answers the exchange's ``GET /time`` (``None``: a fixed offset,
        never measured — for tests and keyless clients). ``offset_ms`` is the starting offset."""
        if refresh_after_s <= 0:
            raise ValueError("refresh_after_s must be positive")
        self._fetch = fetch_server_ms
        self._refresh_after_s = refresh_after_s
        self._local_ms = local_ms
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one measurement at a time; readers never wait on it
        self._offset_ms = offset_ms
        self._measured_at: float | None = None
        self._round_trip_ms: int | None = None

    def now_ms(self) -> int:
        """The exchange's time now, from the last measured offset (no I/O)."""
        with self._lock:
            offset = self._offset_ms
        return self._local_ms() + offset

    @property
    def offset_ms(self) -> int:
        """Exchange time minus local time, as last measured."""
        with self._lock:
            return self._offset_ms

    @property
    def round_trip_ms(self) -> int | None:
        """The round trip of the last measurement: the offset is right to within half of it."""
        with self._lock:
            return self._round_trip_ms

    def is_stale(self) -> bool:
        """Never measured, measured longer than ``refresh_after_s`` ago, or invalidated."""
        if self._fetch is None:
            return False
        with self._lock:
            measured = self._measured_at
        return measured is None or self._monotonic() - measured >= self._refresh_after_s

    def invalidate(self) -> None:
        """The exchange refused a timestamp (304): measure again before the next request."""
        with self._lock:
            self._measured_at = None

    def sync(self) -> int:
        """Measure the offset now with ``GET /time``; returns it. Errors of the fetch propagate."""
        if self._fetch is None:
            return self.offset_ms
        with self._sync_lock:
            return self._measure(self._fetch)

    def _measure(self, fetch: Callable[[], int]) -> int:
        """One measurement (the caller holds ``_sync_lock``)."""
        before = self._local_ms()
        server = fetch()
        after = self._local_ms()
        if isinstance(server, bool) or not isinstance(server, int):
            raise ExchangeError(f"GET /time answered {server!r}, not epoch milliseconds")
        offset = server - (before + after) // 2
        with self._lock:
            self._offset_ms = offset
            self._round_trip_ms = after - before
            self._measured_at = self._monotonic()
        return offset

    def refresh_if_stale(self) -> None:
        """``sync`` when stale; a no-op otherwise (and for a clock that does not measure). Threads
        that find it stale together measure once: the others wait and then see it fresh."""
        if self._fetch is None or not self.is_stale():
            return
        with self._sync_lock:
            if self.is_stale():
                self._measure(self._fetch)
