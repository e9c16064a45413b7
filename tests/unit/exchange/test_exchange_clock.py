"""``ExchangeClock`` (offset at the round trip's midpoint, staleness, invalidation), ``history_windows`` tiling and request weights — no network."""

from __future__ import annotations

import itertools
import threading

import pytest

from shared.exchange.clock import ExchangeClock
from shared.exchange.errors import ExchangeError
from shared.exchange.history import HISTORY_WINDOW_MS, history_windows
from shared.exchange.weights import WeightMeter, request_weight


class FakeTime:
    def __init__(self) -> None:
        self.local = 1_700_000_000_000
        self.mono = 0.0


def test_offset_is_measured_at_the_midpoint_of_the_round_trip() -> None:
    t = FakeTime()

    def fetch() -> int:
        t.local += 100  # the round trip takes 200 ms; the server read its clock in the middle
        server = t.local + 30_000
        t.local += 100
        return server

    clock = ExchangeClock(fetch, local_ms=lambda: t.local, monotonic=lambda: t.mono, refresh_after_s=60)
    assert clock.is_stale() and clock.now_ms() == t.local  # before measuring: no offset
    assert clock.sync() == 30_000 and clock.round_trip_ms == 200
    assert clock.now_ms() == t.local + 30_000
    assert not clock.is_stale()
    t.mono += 59.9
    assert not clock.is_stale()
    t.mono += 0.1
    assert clock.is_stale()
    clock.sync()
    clock.invalidate()
    assert clock.is_stale()


def test_a_clock_without_fetch_never_measures() -> None:
    clock = ExchangeClock(None, offset_ms=5, local_ms=lambda: 10)
    assert not clock.is_stale() and clock.sync() == 5 and clock.now_ms() == 15


def test_a_bad_time_answer_is_an_error() -> None:
    clock = ExchangeClock(lambda: "soon")  # type: ignore[arg-type,return-value]
    with pytest.raises(ExchangeError):
        clock.sync()
    assert clock.is_stale()


def test_history_windows_tile_the_span_newest_first() -> None:
    windows = list(history_windows(0, 3 * HISTORY_WINDOW_MS))
    assert windows[0][1] == 3 * HISTORY_WINDOW_MS and windows[-1][0] == 0
    assert all(end - start < HISTORY_WINDOW_MS for start, end in windows)
    assert all(newer[0] == older[1] + 1 for newer, older in itertools.pairwise(windows))
    assert len(windows) == 4
    assert list(history_windows(5, 5)) == [(5, 5)]
    assert list(history_windows(6, 5)) == []


def test_request_weights() -> None:
    assert request_weight("GET", "/orders", "?market=BTC-EUR&limit=1000") == 5
    assert request_weight("GET", "/trades", "?market=BTC-EUR") == 5
    assert request_weight("GET", "/BTC-EUR/trades") == 5
    assert request_weight("GET", "/order", "?market=BTC-EUR&clientOrderId=x") == 1
    assert request_weight("GET", "/ordersOpen") == 25 and request_weight("GET", "/ordersOpen", "?market=X-EUR") == 1
    assert request_weight("POST", "/order") == 1 and request_weight("DELETE", "/orders", "?market=X") == 1


def test_weight_tallies_are_per_thread() -> None:
    meter = WeightMeter()
    with meter.tally() as mine:
        meter.add(5)
        other = threading.Thread(target=meter.add, args=(25,))
        other.start()
        other.join()
        meter.add(1)
    assert mine.spent == 6 and meter.total == 31
