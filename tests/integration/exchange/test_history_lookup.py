"""``OrderLookup`` against the simulator with the exchange's real constraints switched on: history
requests limited to 24 h, ``GET /order?clientOrderId=`` finding closed orders or not (both ways),
rows of other users of the shared account in shapes nobody parses, weight counted and bounded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from shared.exchange.account import AccountReads
from shared.exchange.errors import RequestRejectedError, UnexpectedResponseError, WeightBudgetExceededError
from shared.exchange.history import HISTORY_WINDOW_MS, OrderAbsent, OrderFound, OrderLookup, Unparseable
from shared.exchange.orders import OrderStatus
from shared.exchange.sdk import BitvavoGateway, ExchangeSettings
from shared.exchange.wire import epoch_ms_to_datetime
from sim.bitvavo import SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE

HOUR_MS = 3_600_000


@pytest.fixture(params=[False, True], ids=["closed-by-cid-off", "closed-by-cid-on"])
def closed_by_cid(request: pytest.FixtureRequest, admin: SimulatorAdmin) -> bool:
    """Whether the simulator's ``GET /order?clientOrderId=`` finds closed orders: tests run both ways."""
    enabled: bool = request.param
    admin.set_switches(closed_orders_by_client_order_id=enabled)
    assert admin.switches()["history_range_limit_ms"] == HISTORY_WINDOW_MS  # the limit is on by default
    return enabled


@pytest.fixture
def gateway(settings: ExchangeSettings) -> Iterator[BitvavoGateway]:
    client = BitvavoGateway(settings, TRADE)
    yield client
    client.close()


def _place_filled(gateway: BitvavoGateway, market: str = "BTC-EUR") -> tuple[str, int]:
    """A market buy that fills at once (so it is closed); its clientOrderId and send time."""
    cid = str(uuid.uuid4())
    sent_at = gateway.clock.now_ms()
    answer = gateway.place_order(
        market, "buy", "market", {"operatorId": OPERATOR_ID, "clientOrderId": cid, "amountQuote": "10"}
    )
    assert answer["status"] == "filled"
    return cid, sent_at


def test_order_placed_30_hours_ago_is_found_within_the_range_limit(
    admin: SimulatorAdmin, settings: ExchangeSettings, gateway: BitvavoGateway, closed_by_cid: bool
) -> None:
    cid, sent_at = _place_filled(gateway)
    admin.advance_clock(30 * HOUR_MS)  # the exchange is 30 h later; no sleeping
    later = BitvavoGateway(settings, TRADE)  # another replica, starting now: measures the clock afresh
    assert later.clock.now_ms() - sent_at < HOUR_MS  # not measured yet …
    later.clock.sync()
    assert later.clock.now_ms() - sent_at >= 30 * HOUR_MS  # … now it is 30 h after the send
    with pytest.raises(RequestRejectedError) as refused:  # one request over the whole span is refused
        AccountReads(later).orders("BTC-EUR", start=epoch_ms_to_datetime(sent_at))
    assert refused.value.code == 205

    before = admin.request_count("/orders")
    result = OrderLookup(later).find("BTC-EUR", cid, since_ms=sent_at - 60_000)
    assert isinstance(result, OrderFound)
    assert result.order is not None and result.order.client_order_id == cid
    assert result.order.status is OrderStatus.FILLED
    if closed_by_cid:
        assert result.via == "order" and result.weight == 1
        assert admin.request_count("/orders") == before
    else:
        assert result.via == "history"
        assert [t.client_order_id for t in result.trades] == [cid] * len(result.order.fills)
        assert admin.request_count("/orders") - before == 2  # 30 h in two windows of at most 24 h
        assert result.weight == 1 + 2 * 5 + 2 * 5  # GET /order, then two windows of /orders and /trades
    later.close()


def test_absent_order_is_absent_only_after_every_window_answered(
    admin: SimulatorAdmin, gateway: BitvavoGateway, closed_by_cid: bool
) -> None:
    _place_filled(gateway)
    since = gateway.clock.now_ms() - 50 * HOUR_MS
    result = OrderLookup(gateway).find("BTC-EUR", uuid.uuid4(), since_ms=since)
    assert isinstance(result, OrderAbsent)
    assert result.searched_from_ms == since and result.searched_until_ms > since + 50 * HOUR_MS
    assert admin.request_count("/orders") == 3 and admin.request_count("/trades") == 3  # 50 h: three windows
    assert result.weight == 1 + 3 * 5 + 3 * 5


def test_rows_of_other_users_in_unknown_shapes_are_skipped(
    admin: SimulatorAdmin, gateway: BitvavoGateway, closed_by_cid: bool
) -> None:
    cid, sent_at = _place_filled(gateway)
    admin.add_foreign_history("BTC-EUR", count=6, order_type="trailingStop", status="pendingNew")
    admin.add_foreign_history("BTC-EUR", count=2, order_type="twap", status="queued", age_ms=HOUR_MS)
    with pytest.raises(UnexpectedResponseError):  # a strict parser of the whole history falls over
        AccountReads(gateway).orders("BTC-EUR")

    found = OrderLookup(gateway).find("BTC-EUR", cid, since_ms=sent_at - 2 * HOUR_MS)
    assert isinstance(found, OrderFound) and found.order is not None
    assert found.order.client_order_id == cid
    assert isinstance(OrderLookup(gateway).find("BTC-EUR", uuid.uuid4(), since_ms=sent_at - 2 * HOUR_MS), OrderAbsent)


def test_a_row_of_ours_that_does_not_parse_is_reported_not_raised(
    admin: SimulatorAdmin, gateway: BitvavoGateway
) -> None:
    admin.set_switches(closed_orders_by_client_order_id=False)
    cid = str(uuid.uuid4())
    since = gateway.clock.now_ms() - 60_000
    [row] = admin.add_foreign_history("BTC-EUR", count=1, order_type="trailingStop", client_order_id=cid)
    result = OrderLookup(gateway).find("BTC-EUR", cid, since_ms=since)
    assert isinstance(result, Unparseable)
    assert result.source == "GET /orders" and result.raw == row
    assert "orderType" in result.reason


def test_weight_budget_is_enforced_before_sending(admin: SimulatorAdmin, gateway: BitvavoGateway) -> None:
    since = gateway.clock.now_ms() - 50 * HOUR_MS
    gateway.clock.sync()
    with pytest.raises(WeightBudgetExceededError):
        OrderLookup(gateway).find("BTC-EUR", uuid.uuid4(), since_ms=since, max_weight=12)
    assert admin.request_count("/order") == 1 and admin.request_count("/orders") == 2  # 1 + 5 + 5 = 11 ≤ 12


def test_history_paging_within_a_window(admin: SimulatorAdmin, gateway: BitvavoGateway) -> None:
    admin.set_switches(closed_orders_by_client_order_id=False)
    admin.set_balance("EUR", "100000")
    cid, sent_at = _place_filled(gateway)
    admin.add_foreign_history("BTC-EUR", count=1200)  # newer than ours: ours is on the second page
    result = OrderLookup(gateway).find("BTC-EUR", cid, since_ms=sent_at - 60_000)
    assert isinstance(result, OrderFound) and result.order is not None
    assert admin.request_count("/orders") == 2 and admin.request_count("/trades") == 2
    assert result.order.filled_amount_quote + result.order.fee_paid == Decimal("10")
