"""Lost answers, errors that may or may not have succeeded, refused connections: what the clients
report, and that the order can be found by clientOrderId afterwards. Placements are never retried."""

from __future__ import annotations

import socket
import time
import uuid
from decimal import Decimal

import pytest

from shared.exchange.errors import (
    ExchangeUnavailableError,
    NotSentError,
    OrderNotFoundError,
    OutcomeUnknownError,
)
from shared.exchange.history import OrderAbsent, OrderFound
from shared.exchange.orders import OrderStatus
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.harness import eventually
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, closed_port
from tests.support.trade_client import FullTradeClient

# A fault that holds an answer does so far longer than the impatient client's 1 s read timeout,
# so "the client gave up first" holds however slow a busy machine is.
HELD_SECONDS = 60.0
# The late order arrives this long after it was sent: the client (1 s) has given up well before,
# and the test then waits for the order itself.
LATE_SECONDS = 5.0


def _listening(port: int) -> bool | None:
    """Does the simulator accept TCP connections on ``port``? True: a connection was made;
    False: refused (no listener); None: neither for sure (reset while the listener was closing,
    a slow answer), so the caller asks again."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return None


def _since(client: FullTradeClient) -> int:
    return client.exchange_now_ms() - 60_000


def test_dropped_answer_to_a_filled_market_order(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    admin.drop_next_order(market="BTC-EUR")
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError):
        trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert admin.post_order_count() == 1  # sent once, not retried
    [stored] = admin.orders()
    assert stored["fault"] == "drop"
    found = trade_client.get_order("BTC-EUR", client_order_id=cid)
    assert found.status is OrderStatus.FILLED and found.order_id == stored["order"]["orderId"]
    history = trade_client.find_order("BTC-EUR", cid, since_ms=_since(trade_client))
    assert isinstance(history, OrderFound) and history.order is not None
    assert history.order.order_id == found.order_id


def test_dropped_answer_to_a_resting_limit_order(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    admin.drop_next_order()
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError):
        trade_client.place_order("BTC-EUR", "buy", "limit", cid, amount=Decimal("0.001"), price=Decimal("70000"))
    found = trade_client.get_order("BTC-EUR", client_order_id=cid)
    assert found.status is OrderStatus.NEW
    assert [o.client_order_id for o in trade_client.open_orders("BTC-EUR")] == [str(cid)]
    history = trade_client.find_order("BTC-EUR", cid, since_ms=_since(trade_client))
    assert isinstance(history, OrderFound) and history.order is not None and history.trades == ()


def test_hung_answer_times_out_as_outcome_unknown(
    admin: SimulatorAdmin, impatient_client: FullTradeClient, trade_client: FullTradeClient
) -> None:
    admin.hang_next_order(seconds=HELD_SECONDS)
    cid = uuid.uuid4()
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        impatient_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    # the client's own 1 s read timeout ended the wait, not the server's answer after HELD_SECONDS
    assert time.monotonic() - started < HELD_SECONDS / 2
    assert trade_client.get_order("BTC-EUR", client_order_id=cid).status is OrderStatus.FILLED
    assert admin.post_order_count() == 1


@pytest.mark.parametrize(("code", "place"), [(101, True), (109, True), (109, False), (107, False)])
def test_may_or_may_not_have_succeeded_codes(
    admin: SimulatorAdmin, trade_client: FullTradeClient, code: int, place: bool
) -> None:
    admin.fail_next_order(code, place=place)
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError) as caught:
        trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert caught.value.code == code
    assert admin.post_order_count() == 1
    if place:
        assert trade_client.get_order("BTC-EUR", client_order_id=cid).status is OrderStatus.FILLED
    else:
        with pytest.raises(OrderNotFoundError):
            trade_client.get_order("BTC-EUR", client_order_id=cid)
        assert isinstance(trade_client.find_order("BTC-EUR", cid, since_ms=_since(trade_client)), OrderAbsent)
        assert admin.order_count() == 0


def test_html_error_page_is_outcome_unknown(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    admin.garble_next_order(http_status=502, place=True)
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError):
        trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert trade_client.get_order("BTC-EUR", client_order_id=cid).status is OrderStatus.FILLED


def test_late_order_after_the_client_gave_up(
    admin: SimulatorAdmin, impatient_client: FullTradeClient, trade_client: FullTradeClient
) -> None:
    admin.add_latency(LATE_SECONDS, path="/order", method="POST", count=1)
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError):
        impatient_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert admin.order_count() == 0  # not yet: the exchange is still "slow"
    assert eventually(lambda: admin.order_count() == 1)  # the order arrives after all
    assert trade_client.get_order("BTC-EUR", client_order_id=cid).status is OrderStatus.FILLED


def test_connection_closed_before_reading_is_outcome_unknown_and_creates_nothing(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    trade_client.open_orders("BTC-EUR")  # a started client: its exchange clock is measured
    admin.drop_next_connections(1)
    cid = uuid.uuid4()
    with pytest.raises(OutcomeUnknownError):  # the request was written: the client cannot know
        trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert admin.faults() == []  # the fault was used by that connection
    assert admin.post_order_count() == 0 and admin.order_count() == 0
    assert isinstance(trade_client.find_order("BTC-EUR", cid, since_ms=_since(trade_client)), OrderAbsent)


def test_refused_connection_is_not_sent() -> None:
    settings = ExchangeSettings(
        rest_url=f"http://127.0.0.1:{closed_port()}/v2", connect_timeout_s=1, read_timeout_s=1, read_backoff_s=0.01
    )
    client = FullTradeClient(TRADE, operator_id=OPERATOR_ID, settings=settings)
    with pytest.raises(NotSentError):
        client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    with pytest.raises(NotSentError):
        client.get_order("BTC-EUR", client_order_id=uuid.uuid4())


def test_refused_while_the_exchange_stops_listening(
    sim: BitvavoSimulator, admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    admin.refuse_connections(HELD_SECONDS)
    assert eventually(lambda: _listening(sim.port) is False)
    with pytest.raises(NotSentError):
        trade_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    sim.start()  # listen again on the same port now, instead of waiting out the pause
    assert eventually(lambda: _listening(sim.port) is True)
    assert admin.order_count() == 0
    assert trade_client.balance("EUR").available == Decimal("10000")


def test_reads_are_retried_on_transient_errors(admin: SimulatorAdmin, public: PublicMarketData) -> None:
    admin.fail_next_request("/ticker/price", 107)
    assert public.ticker_price("BTC-EUR").market == "BTC-EUR"
    assert admin.request_count("/ticker/price") == 2
    admin.drop_next_connections(1)
    assert len(public.markets()) >= 10
    assert admin.request_count("/markets") == 1  # the dropped connection was never read
    admin.fail_next_request("/{market}/candles", 109, count=5)
    with pytest.raises(ExchangeUnavailableError) as caught:
        public.candles("BTC-EUR", "1h", limit=3)
    assert caught.value.code == 109
    assert admin.request_count("/BTC-EUR/candles") == 2  # bounded: read_attempts


def test_writes_are_never_retried_even_when_retrying_would_be_safe(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    admin.fail_next_order(107, place=False, count=3)
    for _ in range(2):
        with pytest.raises(OutcomeUnknownError):
            trade_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    assert admin.post_order_count() == 2
