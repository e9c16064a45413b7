"""Order rules and matching, through the SDK (raw answers) and FullTradeClient (typed errors)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from shared.exchange.errors import OrderNotFoundError, OrderRejectedError, OutcomeUnknownError
from shared.exchange.orders import OrderStatus
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, sdk
from tests.support.trade_client import FullTradeClient


def _cid() -> str:
    return str(uuid.uuid4())


def _place(sim: BitvavoSimulator, market: str, side: str, order_type: str, **body: object) -> dict[str, Any]:
    answer: dict[str, Any] = sdk(sim, TRADE).placeOrder(market, side, order_type, {"operatorId": OPERATOR_ID, **body})
    return answer


@pytest.mark.parametrize(
    ("market", "side", "order_type", "body", "code"),
    [
        ("BTC-EUR", "buy", "market", {"amountQuote": "4.99"}, 217),
        ("BTC-EUR", "buy", "limit", {"amount": "0.00006", "price": "60000"}, 217),
        ("BTC-EUR", "sell", "market", {"amount": "0.00001"}, 212),
        ("BTC-EUR", "buy", "market", {"amountQuote": "10001"}, 216),
        ("ETH-EUR", "sell", "market", {"amount": "1"}, 216),
        ("NOPE-EUR", "buy", "market", {"amountQuote": "10"}, 205),
        ("BTC-EUR", "buy", "market", {"amountQuote": "10", "amount": "0.001"}, 206),
        ("BTC-EUR", "buy", "limit", {"amount": "0.001"}, 203),
        ("BTC-EUR", "buy", "market", {"amountQuote": "10.001"}, 429),
        ("BTC-EUR", "buy", "limit", {"amount": "0.001", "price": "80000.5"}, 422),  # off BTC-EUR's tick 1.00
        ("LTC-EUR", "buy", "limit", {"amount": "0.1", "price": "80.0005"}, 422),  # off LTC-EUR's tick 0.00100
    ],
)
def test_refusals_with_their_codes(
    sim: BitvavoSimulator,
    admin: SimulatorAdmin,
    trade_client: FullTradeClient,
    market: str,
    side: str,
    order_type: str,
    body: dict[str, str],
    code: int,
) -> None:
    assert _place(sim, market, side, order_type, clientOrderId=_cid(), **body)["errorCode"] == code
    amount_quote = Decimal(body["amountQuote"]) if "amountQuote" in body else None
    amount = Decimal(body["amount"]) if "amount" in body else None
    price = Decimal(body["price"]) if "price" in body else None

    def place() -> None:
        trade_client.place_order(
            market, side, order_type, _cid(), amount_quote=amount_quote, amount=amount, price=price
        )

    if code in (206, 203):  # the client refuses these shapes itself, before sending
        with pytest.raises(ValueError):
            place()
    else:
        with pytest.raises(OrderRejectedError) as caught:
            place()
        assert caught.value.code == code
    assert admin.order_count() == 0
    assert admin.available("EUR") == Decimal("10000")


def test_operator_id_is_required(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    answer = sdk(sim, TRADE).placeOrder("BTC-EUR", "buy", "market", {"amountQuote": "10"})
    assert answer == {"errorCode": 203, "error": "operatorId parameter is required."}
    assert sdk(sim, TRADE).cancelOrder("BTC-EUR", _cid())["errorCode"] == 203
    assert admin.order_count() == 0


def test_client_order_id_must_be_a_uuid(
    sim: BitvavoSimulator, admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    answer = _place(sim, "BTC-EUR", "buy", "market", clientOrderId="order-1", amountQuote="10")
    assert answer == {"errorCode": 205, "error": "clientOrderId parameter is invalid."}
    with pytest.raises(ValueError, match="UUID"):
        trade_client.place_order("BTC-EUR", "buy", "market", "order-1", amount_quote=Decimal("10"))
    assert admin.post_order_count() == 1  # our client did not even send it
    assert admin.order_count() == 0


def test_every_order_carries_operator_id_and_client_order_id(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    cid = uuid.uuid4()
    order = trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    stored = admin.orders()[0]["order"]
    assert (stored["operatorId"], stored["clientOrderId"]) == (OPERATOR_ID, str(cid))
    assert (order.operator_id, order.client_order_id) == (OPERATOR_ID, str(cid))


def test_quote_sized_market_buy_takes_the_fee_out_of_amount_quote(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    order = trade_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    assert order.status is OrderStatus.FILLED
    assert order.filled_amount_quote + order.fee_paid == Decimal("10")
    assert order.fee_currency == "EUR"
    assert abs(order.fee_paid / order.filled_amount_quote - Decimal("0.0025")) < Decimal("0.0001")
    assert order.amount is None and order.price is None and order.amount_quote_remaining == 0
    assert sum(f.amount for f in order.fills) == order.filled_amount
    assert all(f.taker for f in order.fills)
    balances = admin.balances()
    assert balances["EUR"]["available"] == Decimal("9990")
    assert balances["BTC"]["available"] == order.filled_amount


def test_base_sized_market_sell_pays_fee_from_proceeds(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    admin.set_balance("ETH", "1")
    order = trade_client.place_order("ETH-EUR", "sell", "market", uuid.uuid4(), amount=Decimal("0.5"))
    assert order.status is OrderStatus.FILLED and order.filled_amount == Decimal("0.5")
    assert order.amount_quote is None and order.amount_remaining == 0
    received = admin.available("EUR") - Decimal("10000")
    assert received == order.filled_amount_quote - order.fee_paid
    assert admin.available("ETH") == Decimal("0.5")


def test_limit_order_rests_holds_funds_and_fills_as_maker_when_price_crosses(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    cid = uuid.uuid4()
    order = trade_client.place_order("BTC-EUR", "buy", "limit", cid, amount=Decimal("0.01"), price=Decimal("80000"))
    assert order.status is OrderStatus.NEW and order.is_active
    held = Decimal("0.01") * Decimal("80000") * Decimal("1.0025")
    assert admin.balances()["EUR"]["inOrder"] == held
    admin.set_price("BTC-EUR", "79000")
    filled = trade_client.get_order("BTC-EUR", client_order_id=cid)
    assert filled.status is OrderStatus.FILLED
    assert [f.price for f in filled.fills] == [Decimal("80000")]
    assert filled.fee_paid == Decimal("800") * Decimal("0.0015")  # maker fee
    assert not filled.fills[0].taker
    balances = admin.balances()
    assert balances["EUR"]["inOrder"] == 0
    assert balances["EUR"]["available"] == Decimal("10000") - Decimal("800") - filled.fee_paid
    assert balances["BTC"]["available"] == Decimal("0.01")


def test_duplicate_client_order_id_only_while_the_first_is_open(
    admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    cid = uuid.uuid4()
    first = trade_client.place_order("BTC-EUR", "buy", "limit", cid, amount=Decimal("0.001"), price=Decimal("70000"))
    # 220: an open order holds this clientOrderId. Not a refusal of "an order": that order is live,
    # so the outcome of the placement is unknown and the order is looked up by clientOrderId.
    with pytest.raises(OutcomeUnknownError) as caught:
        trade_client.place_order("BTC-EUR", "buy", "limit", cid, amount=Decimal("0.001"), price=Decimal("70000"))
    assert caught.value.code == 220
    other_market = trade_client.place_order("ETH-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert other_market.status is OrderStatus.FILLED  # 220 is per market
    trade_client.cancel_order("BTC-EUR", order_id=first.order_id)
    again = trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert again.status is OrderStatus.FILLED  # the closed order's id may be reused
    third = trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("10"))
    assert third.order_id != again.order_id  # a filled order does not block it either
    assert admin.order_count(market="BTC-EUR") == 3


def test_get_order_by_client_order_id_finds_open_and_closed_and_wins_over_order_id(
    sim: BitvavoSimulator, trade_client: FullTradeClient
) -> None:
    open_cid, closed_cid = _cid(), _cid()
    open_order = trade_client.place_order(
        "BTC-EUR", "buy", "limit", open_cid, amount=Decimal("0.001"), price=Decimal("70000")
    )
    closed = trade_client.place_order("BTC-EUR", "buy", "market", closed_cid, amount_quote=Decimal("10"))
    assert trade_client.get_order("BTC-EUR", client_order_id=open_cid).order_id == open_order.order_id
    assert trade_client.get_order("BTC-EUR", client_order_id=closed_cid).status is OrderStatus.FILLED
    both = sdk(sim, TRADE).privateRequest(
        "/order", f"?market=BTC-EUR&orderId={open_order.order_id}&clientOrderId={closed_cid}", {}, "GET"
    )
    assert both["orderId"] == closed.order_id
    with pytest.raises(OrderNotFoundError) as caught:
        trade_client.get_order("BTC-EUR", client_order_id=_cid())
    assert caught.value.code == 240
    with pytest.raises(OrderNotFoundError):
        trade_client.get_order("ETH-EUR", order_id=open_order.order_id)  # ids are per market


def test_halted_market_refuses_orders_with_423(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    admin.halt_market("ETH-EUR")
    with pytest.raises(OrderRejectedError) as caught:
        trade_client.place_order("ETH-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    assert caught.value.code == 423
    assert admin.order_count() == 0
    admin.resume_market("ETH-EUR")
    assert (
        trade_client.place_order("ETH-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10")).status
        is OrderStatus.FILLED
    )


def test_cancelling_a_closed_order_is_233(trade_client: FullTradeClient) -> None:
    order = trade_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    with pytest.raises(OrderRejectedError) as caught:
        trade_client.cancel_order("BTC-EUR", order_id=order.order_id)
    assert caught.value.code == 233


def test_cancel_by_client_order_id_releases_the_hold(admin: SimulatorAdmin, trade_client: FullTradeClient) -> None:
    cid = uuid.uuid4()
    trade_client.place_order("BTC-EUR", "buy", "limit", cid, amount=Decimal("0.01"), price=Decimal("70000"))
    assert admin.balances()["EUR"]["inOrder"] > 0
    receipt = trade_client.cancel_order("BTC-EUR", client_order_id=cid)
    assert receipt.client_order_id == str(cid) and receipt.operator_id == OPERATOR_ID
    assert trade_client.get_order("BTC-EUR", client_order_id=cid).status is OrderStatus.CANCELED
    assert admin.balances()["EUR"] == {"available": Decimal("10000"), "inOrder": Decimal("0")}


def test_statuses_of_the_fact_sheet(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    admin.advance_to_next_minute(extra_ms=10)  # one price step (~60 s) for the whole test
    admin.set_balance("EUR", "1000000")
    ask = Decimal(sdk(sim).tickerBook({"market": "BTC-EUR"})["ask"])
    below, above = str(ask - 2000), str(ask + 2000)
    statuses = {
        "new": _place(sim, "BTC-EUR", "buy", "limit", amount="0.001", price=below),
        # 1 BTC is more than the best level holds (at most 10 000 EUR of it)
        "partiallyFilled": _place(sim, "BTC-EUR", "buy", "limit", amount="1", price=str(ask)),
        "canceledIOC": _place(sim, "BTC-EUR", "buy", "limit", amount="1", price=str(ask), timeInForce="IOC"),
        "canceledFOK": _place(sim, "BTC-EUR", "buy", "limit", amount="5", price=str(ask), timeInForce="FOK"),
        "canceledPostOnly": _place(sim, "BTC-EUR", "buy", "limit", amount="0.001", price=above, postOnly=True),
        "filled": _place(sim, "BTC-EUR", "buy", "market", amountQuote="10"),
        "awaitingTrigger": _place(
            sim,
            "BTC-EUR",
            "buy",
            "stopLoss",
            amountQuote="10",
            triggerAmount=above,
            triggerType="price",
            triggerReference="lastTrade",
        ),
    }
    admin.set_balance("BTC", "1")
    # a sell the account's own resting buy (at `below`) would trade against
    statuses["canceledSelfTradePrevention"] = _place(
        sim, "BTC-EUR", "sell", "limit", amount="0.001", price=below, selfTradePrevention="cancelNewest"
    )
    statuses["canceledMarketProtection"] = _place(sim, "BTC-EUR", "buy", "market", amount="50")
    for expected, answer in statuses.items():
        assert answer.get("status") == expected, (expected, answer)
    assert statuses["partiallyFilled"]["filledAmount"] != "0"
    assert statuses["canceledIOC"]["filledAmount"] != "0"
    assert statuses["canceledIOC"]["amountRemaining"] != "0"
    assert statuses["canceledFOK"]["fills"] == []
    open_ids = {o["orderId"] for o in sdk(sim, TRADE).ordersOpen({})}
    assert open_ids == {statuses[s]["orderId"] for s in ("new", "partiallyFilled", "awaitingTrigger")}
    cancelled = sdk(sim, TRADE).cancelOrder("BTC-EUR", statuses["new"]["orderId"], OPERATOR_ID)
    assert cancelled["operatorId"] == OPERATOR_ID
    assert sdk(sim, TRADE).getOrder("BTC-EUR", statuses["new"]["orderId"])["status"] == "canceled"
    # the stop order fires when the price reaches its trigger
    admin.set_price("BTC-EUR", Decimal(above) + 100)
    triggered = sdk(sim, TRADE).getOrder("BTC-EUR", statuses["awaitingTrigger"]["orderId"])
    assert triggered["status"] == "filled"


def test_auction_cancels_immediate_orders(sim: BitvavoSimulator, admin: SimulatorAdmin) -> None:
    admin.set_market_status("BTC-EUR", "auction")
    answer = _place(sim, "BTC-EUR", "buy", "limit", amount="0.001", price="80000", timeInForce="IOC")
    assert answer["status"] == "canceledAuction"
    assert _place(sim, "BTC-EUR", "buy", "market", amountQuote="10")["errorCode"] == 425
