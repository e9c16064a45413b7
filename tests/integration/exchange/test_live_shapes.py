"""The simulator answers in the live shapes (facts sheet, "Corrections") and the clients read them:
``/markets`` all strings with a per-market ``tickSize`` that limit prices must respect (422), full
``/assets`` entries, and fills whose fee settles after the answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from shared.exchange.account import AccountReads
from shared.exchange.errors import OrderRejectedError
from shared.exchange.history import OrderFound, OrderLookup
from shared.exchange.market import Market
from shared.exchange.public import PublicMarketData
from shared.exchange.sdk import BitvavoGateway, ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, sdk


@pytest.fixture
def gateway(settings: ExchangeSettings) -> Iterator[BitvavoGateway]:
    client = BitvavoGateway(settings, TRADE)
    yield client
    client.close()


def test_markets_are_all_strings_and_parse(sim: BitvavoSimulator, public: PublicMarketData) -> None:
    raw = sdk(sim).markets({})
    btc = next(m for m in raw if m["market"] == "BTC-EUR")
    ltc = next(m for m in raw if m["market"] == "LTC-EUR")
    for market in raw:
        for name, value in market.items():
            assert name == "orderTypes" or isinstance(value, str), (name, value)
    assert btc["pricePrecision"] == "0" and btc["tickSize"] == "1.00" and ltc["tickSize"] == "0.00100"
    assert btc["quantityDecimals"] == "8" and btc["notionalDecimals"] == "2" and btc["maxOpenOrders"] == "100"
    assert btc["minOrderInBaseAsset"] == "0.00006000" and btc["minOrderInQuoteAsset"] == "5.00"
    assert btc["maxOrderInQuoteAsset"] == "1000000000.00"
    parsed = public.market("BTC-EUR")
    assert (parsed.tick_size, parsed.quantity_decimals, parsed.price_precision) == (Decimal("1.00"), 8, 0)
    # integers (the documented schema) parse the same way
    as_ints = {**btc, "pricePrecision": 0, "quantityDecimals": 8, "notionalDecimals": 2, "maxOpenOrders": 100}
    assert Market.from_json(as_ints) == parsed


def test_book_prices_sit_on_the_tick(public: PublicMarketData) -> None:
    for name in ("BTC-EUR", "LTC-EUR", "SHIB-EUR"):
        tick = public.market(name).tick_size
        assert tick is not None
        book = public.book(name, depth=10)
        for level in (*book.bids, *book.asks):
            assert level.price % tick == 0, (name, level.price, tick)


def test_assets_have_the_full_shape(sim: BitvavoSimulator) -> None:
    assets = {a["symbol"]: a for a in sdk(sim).assets({})}
    assert assets["EUR"] == {
        "symbol": "EUR",
        "name": "Euro",
        "decimals": "2",
        "depositFee": "0",
        "depositConfirmations": "0",
        "depositStatus": "OK",
        "withdrawalFee": "0",
        "withdrawalMinAmount": "0",
        "withdrawalStatus": "OK",
        "networks": ["SEPA"],
        "message": "",
    }
    assert assets["BTC"]["networks"] == ["BTC"] and assets["BTC"]["decimals"] == "8"
    assert any(a["depositStatus"] == "DELISTED" for a in assets.values())
    assert set(assets["BTC"]) == set(assets["EUR"])


def test_a_limit_price_off_the_tick_is_422(admin: SimulatorAdmin, gateway: BitvavoGateway) -> None:
    body = {"operatorId": OPERATOR_ID, "clientOrderId": str(uuid.uuid4()), "amount": "0.001"}
    with pytest.raises(OrderRejectedError) as refused:
        gateway.place_order("BTC-EUR", "buy", "limit", {**body, "price": "70000.5"})
    assert refused.value.code == 422
    answer = gateway.place_order("BTC-EUR", "buy", "limit", {**body, "price": "70001"})  # on the tick
    assert answer["status"] == "new"
    assert admin.order_count() == 1


def test_a_fee_that_settles_after_the_answer_is_reported_settled_later(
    admin: SimulatorAdmin, gateway: BitvavoGateway
) -> None:
    admin.set_switches(fee_settlement="deferred")
    cid = str(uuid.uuid4())
    since = gateway.clock.now_ms() - 60_000
    answer = gateway.place_order(
        "BTC-EUR", "buy", "market", {"operatorId": OPERATOR_ID, "clientOrderId": cid, "amountQuote": "10"}
    )
    assert answer["status"] == "filled" and all(f["settled"] is False and "fee" not in f for f in answer["fills"])
    lookup = OrderLookup(gateway)
    first = lookup.find("BTC-EUR", cid, since_ms=since)
    assert isinstance(first, OrderFound) and first.order is not None
    assert first.order.fills and all(not f.settled and f.fee is None for f in first.order.fills)
    assert first.order.fee_paid == 0
    assert all(not t.settled and t.fee is None for t in AccountReads(gateway).trades("BTC-EUR"))

    assert admin.settle_fees(client_order_id=cid) == len(first.order.fills)
    later = lookup.find("BTC-EUR", cid, since_ms=since)
    assert isinstance(later, OrderFound) and later.order is not None
    assert all(f.settled and f.fee is not None and f.fee > 0 for f in later.order.fills)
    assert later.order.fee_paid == sum(f.fee or 0 for f in later.order.fills) > 0
    assert later.order.filled_amount_quote + later.order.fee_paid == Decimal("10")


def test_a_fee_settles_after_n_lookups(admin: SimulatorAdmin, gateway: BitvavoGateway) -> None:
    admin.set_switches(fee_settlement="deferred", settle_after_lookups=2)
    cid = str(uuid.uuid4())
    since = gateway.clock.now_ms() - 60_000
    gateway.place_order(
        "BTC-EUR", "buy", "market", {"operatorId": OPERATOR_ID, "clientOrderId": cid, "amountQuote": "10"}
    )
    lookup = OrderLookup(gateway)
    seen = []
    for _ in range(3):
        result = lookup.find("BTC-EUR", cid, since_ms=since)
        assert isinstance(result, OrderFound) and result.order is not None
        seen.append(all(f.settled for f in result.order.fills))
    assert seen == [False, False, True]
