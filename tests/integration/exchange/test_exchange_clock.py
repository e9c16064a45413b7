"""Signing with exchange time: a skewed exchange clock, a request stalled past its access window,
and the signing deadline — the official SDK's own signature over a timestamp the project chooses."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from shared.exchange.clock import ExchangeClock
from shared.exchange.errors import AuthenticationError, SigningDeadlinePassedError
from shared.exchange.sdk import BitvavoGateway, ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, sdk

SKEW_MS = 30_000  # the exchange runs 30 s ahead: three times the default 10 s access window


def _body() -> dict[str, object]:
    return {"operatorId": OPERATOR_ID, "clientOrderId": str(uuid.uuid4()), "amountQuote": "10"}


@pytest.fixture
def skewed() -> Iterator[BitvavoSimulator]:
    with BitvavoSimulator(seed=42, skew_ms=SKEW_MS) as simulator:
        yield simulator


def _settings(sim: BitvavoSimulator) -> ExchangeSettings:
    return ExchangeSettings(rest_url=sim.base_url, connect_timeout_s=2.0, read_timeout_s=5.0)


def test_exchange_clock_30s_ahead_orders_signed_with_exchange_time_are_accepted(skewed: BitvavoSimulator) -> None:
    admin = SimulatorAdmin(skewed.base_url)
    gateway = BitvavoGateway(_settings(skewed), TRADE)
    answer = gateway.place_order("BTC-EUR", "buy", "market", _body())
    assert answer["status"] == "filled"
    assert abs(gateway.clock.offset_ms - SKEW_MS) < 2_000  # measured with GET /time
    [stored] = admin.orders()
    assert abs(stored["signedAt"] - admin.now_ms()) < 5_000  # signed in the exchange's time

    local = BitvavoGateway(_settings(skewed), TRADE, clock=ExchangeClock(None))  # signs with the local clock
    with pytest.raises(AuthenticationError) as refused:
        local.place_order("BTC-EUR", "buy", "market", _body())
    assert refused.value.code == 304
    official = sdk(skewed, TRADE)  # the official SDK signs with time.time(): refused the same way
    assert official.placeOrder("BTC-EUR", "buy", "market", _body())["errorCode"] == 304
    assert admin.order_count() == 1 and admin.post_order_count() == 3
    gateway.close()
    local.close()


def test_a_304_makes_the_client_measure_the_clock_again(skewed: BitvavoSimulator) -> None:
    admin = SimulatorAdmin(skewed.base_url)
    gateway = BitvavoGateway(_settings(skewed), TRADE)
    gateway.clock.sync()
    admin.skew_clock(SKEW_MS)  # the exchange's clock jumps another 30 s
    with pytest.raises(AuthenticationError):
        gateway.place_order("BTC-EUR", "buy", "market", _body())
    assert gateway.clock.is_stale()
    gateway.place_order("BTC-EUR", "buy", "market", _body())  # re-measured first, then accepted
    assert abs(gateway.clock.offset_ms - 2 * SKEW_MS) < 2_000
    assert admin.order_count() == 1
    gateway.close()


def test_a_request_stalled_past_its_access_window_is_refused(admin: SimulatorAdmin, settings: ExchangeSettings) -> None:
    gateway = BitvavoGateway(settings, TRADE)
    admin.stall_next_request(11.0)  # arrives 11 s after it was signed; the window is 10 s
    with pytest.raises(AuthenticationError) as refused:
        gateway.place_order("BTC-EUR", "buy", "market", _body())
    assert refused.value.code == 304
    assert admin.post_order_count() == 1 and admin.order_count() == 0  # it arrived, and created nothing
    admin.stall_next_request(5.0)  # within the window: accepted
    gateway.place_order("BTC-EUR", "buy", "market", _body())
    assert admin.order_count() == 1
    gateway.close()


def test_nothing_is_signed_past_the_signing_deadline(admin: SimulatorAdmin, settings: ExchangeSettings) -> None:
    start = time.time_ns() // 1_000_000
    ticks = itertools.count(start)  # every reading of the clock is 1 ms later
    gateway = BitvavoGateway(settings, TRADE, clock=ExchangeClock(None, local_ms=lambda: next(ticks)))
    deadline = start  # the first reading is exactly on the deadline, every later one past it
    gateway.place_order("BTC-EUR", "buy", "market", _body(), sign_by_ms=deadline)
    [stored] = admin.orders()
    assert stored["signedAt"] == deadline  # the reading checked is the timestamp signed
    with pytest.raises(SigningDeadlinePassedError) as late:
        gateway.place_order("BTC-EUR", "buy", "market", _body(), sign_by_ms=deadline)
    assert late.value.deadline_ms == deadline and late.value.now_ms > deadline
    with pytest.raises(SigningDeadlinePassedError):  # a caller-given timestamp past it is refused too
        gateway.place_order("BTC-EUR", "buy", "market", _body(), sign_by_ms=start + 10_000, timestamp_ms=start + 10_001)
    assert admin.post_order_count() == 1 and admin.order_count() == 1  # the refused ones sent nothing
    gateway.close()


def test_threads_starting_together_measure_the_clock_once(admin: SimulatorAdmin, settings: ExchangeSettings) -> None:
    gateway = BitvavoGateway(settings, TRADE)
    start = threading.Barrier(16)
    failures: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            gateway.read("balance", lambda sdk: sdk.balance({}))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert admin.request_count("/time") == 1 and admin.request_count("/balance") == 16
    gateway.close()


def test_one_client_reuses_one_keep_alive_connection(
    sim: BitvavoSimulator, admin: SimulatorAdmin, settings: ExchangeSettings
) -> None:
    before = admin.connection_count()  # the admin client's own connection is open by now
    gateway = BitvavoGateway(settings, TRADE)
    for _ in range(10):
        gateway.read("balance", lambda sdk: sdk.balance({}))
    gateway.place_order("BTC-EUR", "buy", "market", _body())
    assert admin.request_count("/time") == 1
    assert admin.connection_count() - before == 1  # GET /time, ten reads and a POST: one connection
    official = sdk(sim, TRADE)  # the SDK's module-level requests.request: a connection per call
    for _ in range(3):
        official.balance({})
    assert admin.connection_count() - before == 4
    gateway.close()
