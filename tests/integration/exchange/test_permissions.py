"""Key permissions: a view-only key can never trade, and each client refuses the wrong kind of key."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from services.scanner.account import ReadonlyAccount
from shared.exchange.errors import PermissionDeniedError, TradeCapableKeyError
from shared.exchange.sdk import ExchangeSettings
from sim.bitvavo import BitvavoSimulator, SimulatorAdmin, make_key
from tests.integration.exchange.conftest import OPERATOR_ID, TRADE, VIEW, sdk
from tests.support.trade_client import FullTradeClient


def test_view_only_key_placing_an_order_gets_310_and_no_order_exists(
    sim: BitvavoSimulator, admin: SimulatorAdmin, settings: ExchangeSettings
) -> None:
    answer = sdk(sim, VIEW).placeOrder(
        "BTC-EUR", "buy", "market", {"operatorId": OPERATOR_ID, "clientOrderId": str(uuid.uuid4()), "amountQuote": "10"}
    )
    assert answer == {"errorCode": 310, "error": "This key does not allow trading actions."}
    view_client = FullTradeClient(VIEW, operator_id=OPERATOR_ID, settings=settings)
    with pytest.raises(PermissionDeniedError) as caught:
        view_client.place_order("BTC-EUR", "buy", "market", uuid.uuid4(), amount_quote=Decimal("10"))
    assert caught.value.code == 310
    assert admin.post_order_count(VIEW.key) == 2  # both requests reached the exchange ...
    assert admin.order_count() == 0  # ... and neither created an order
    assert admin.available("EUR") == Decimal("10000")


def test_view_only_key_cannot_cancel(sim: BitvavoSimulator) -> None:
    view = sdk(sim, VIEW)
    assert view.cancelOrder("BTC-EUR", str(uuid.uuid4()), OPERATOR_ID)["errorCode"] == 310
    assert view.cancelOrders({"market": "BTC-EUR", "operatorId": OPERATOR_ID})["errorCode"] == 310
    assert sdk(sim, TRADE).cancelOrder("BTC-EUR", str(uuid.uuid4()), OPERATOR_ID)["errorCode"] == 240


def test_readonly_account_refuses_a_trade_capable_key(settings: ExchangeSettings, admin: SimulatorAdmin) -> None:
    with pytest.raises(TradeCapableKeyError):
        ReadonlyAccount(TRADE, settings)
    assert admin.request_count("/order", "DELETE") == 1  # the probe: one cancel of a random id
    assert admin.post_order_count() == 0  # it never places anything
    assert admin.order_count() == 0


def test_readonly_account_accepts_a_view_key_and_reads(
    settings: ExchangeSettings, admin: SimulatorAdmin, trade_client: FullTradeClient
) -> None:
    account = ReadonlyAccount(VIEW, settings)
    cid = uuid.uuid4()
    trade_client.place_order("BTC-EUR", "buy", "market", cid, amount_quote=Decimal("20"))
    balances = {b.symbol: b for b in account.balances()}
    assert balances["EUR"].available == Decimal("9980")
    assert balances["BTC"].available > 0
    assert account.balance("ETH").total == 0
    assert [o.client_order_id for o in account.orders("BTC-EUR")] == [str(cid)]
    assert [t.client_order_id for t in account.trades("BTC-EUR")] == [str(cid)]
    assert account.open_orders() == ()
    assert account.rate_limit is not None and account.rate_limit.remaining < 1000
    assert not hasattr(account, "place_order")


def test_trade_client_refuses_a_view_only_key(settings: ExchangeSettings, admin: SimulatorAdmin) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        FullTradeClient.connect(VIEW, operator_id=OPERATOR_ID, settings=settings)
    assert caught.value.code == 310
    client = FullTradeClient.connect(TRADE, operator_id=OPERATOR_ID, settings=settings)
    assert client.operator_id == OPERATOR_ID
    assert admin.order_count() == 0


def test_a_trade_only_key_on_the_same_account_cannot_view_balances(
    sim: BitvavoSimulator, admin: SimulatorAdmin
) -> None:
    trade_only = make_key("trade-only", "main", frozenset({"trade"}))
    admin.add_key(trade_only.key, trade_only.secret, "main", ("trade",))
    client = sdk(sim)
    client.APIKEY, client.APISECRET = trade_only.key, trade_only.secret
    assert client.balance({})["errorCode"] == 311
    placed = client.placeOrder("BTC-EUR", "buy", "market", {"operatorId": 1, "amountQuote": "10"})
    assert placed["status"] == "filled"
    # the view key of the same account sees the trade key's order
    assert [o["order"]["orderId"] for o in admin.orders(account="main")] == [placed["orderId"]]
    assert sdk(sim, VIEW).getOrder("BTC-EUR", placed["orderId"])["orderId"] == placed["orderId"]


def test_every_order_changing_call_refuses_a_view_key(sim: BitvavoSimulator) -> None:
    view = sdk(sim, VIEW)
    body = {"operatorId": OPERATOR_ID, "amount": "0.002"}
    assert view.updateOrder("BTC-EUR", str(uuid.uuid4()), body)["errorCode"] == 310
