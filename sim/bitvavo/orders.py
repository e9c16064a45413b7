"""The simulator's order record and how it is written on the wire (the fact sheet's order object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sim.bitvavo.markets import wire

ACTIVE_STATUSES = frozenset({"new", "partiallyFilled", "awaitingTrigger"})
ALL_STATUSES = (
    "new",
    "awaitingTrigger",
    "canceled",
    "canceledAuction",
    "canceledSelfTradePrevention",
    "canceledIOC",
    "canceledFOK",
    "canceledMarketProtection",
    "canceledPostOnly",
    "filled",
    "partiallyFilled",
)
TRIGGER_TYPES = frozenset({"stopLoss", "stopLossLimit", "takeProfit", "takeProfitLimit"})


@dataclass
class Fill:
    fill_id: str
    timestamp: int
    amount: Decimal
    price: Decimal
    taker: bool
    fee: Decimal
    fee_currency: str
    settled: bool = True
    lookups_left: int | None = None  # deferred fee: answers showing it unsettled before it settles

    def fee_fields(self) -> dict[str, Any]:
        """``fee``/``feeCurrency`` appear only once the fill is settled (fact sheet, fill object)."""
        if not self.settled:
            return {"settled": False}
        return {"fee": wire(self.fee), "feeCurrency": self.fee_currency, "settled": True}

    def looked_up(self) -> None:
        """One more answer showed this fill: a deferred fee with a lookup count settles when it runs out."""
        if not self.settled and self.lookups_left is not None:
            self.lookups_left -= 1
            if self.lookups_left <= 0:
                self.settled = True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.fill_id,
            "timestamp": self.timestamp,
            "amount": wire(self.amount),
            "price": wire(self.price),
            "taker": self.taker,
            **self.fee_fields(),
        }


@dataclass
class SimOrder:
    """One order as the exchange keeps it. ``account``/``key`` say who placed it (admin only)."""

    order_id: str
    market: str
    account: str
    key: str
    created: int
    side: str
    order_type: str
    operator_id: int
    client_order_id: str | None = None
    amount: Decimal | None = None
    amount_quote: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str = "GTC"
    post_only: bool = False
    self_trade_prevention: str = "decrementAndCancel"
    trigger_amount: Decimal | None = None
    trigger_type: str | None = None
    trigger_reference: str | None = None
    status: str = "new"
    updated: int = 0
    filled_amount: Decimal = Decimal(0)
    filled_amount_quote: Decimal = Decimal(0)
    fee_paid: Decimal = Decimal(0)
    fee_currency: str = "EUR"
    on_hold: Decimal = Decimal(0)
    on_hold_currency: str = "EUR"
    fills: list[Fill] = field(default_factory=list)
    restatement_reason: str | None = None
    fault: str | None = None  # the admin fault that hit the answer to this order's placement
    signed_at: int | None = None  # the placement request's signed timestamp (admin only)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def amount_remaining(self) -> Decimal:
        return (self.amount or Decimal(0)) - self.filled_amount

    @property
    def amount_quote_remaining(self) -> Decimal:
        if self.amount_quote is None:
            return Decimal(0)
        spent = self.filled_amount_quote + (self.fee_paid if self.side == "buy" else Decimal(0))
        return max(self.amount_quote - spent, Decimal(0))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"orderId": self.order_id}
        if self.client_order_id is not None:
            body["clientOrderId"] = self.client_order_id
        body.update(
            market=self.market,
            created=self.created,
            updated=self.updated,
            status=self.status,
            side=self.side,
            orderType=self.order_type,
        )
        if self.amount_quote is not None:
            body["amountQuote"] = wire(self.amount_quote)
            body["amountQuoteRemaining"] = wire(self.amount_quote_remaining)
        else:
            body["amount"] = wire(self.amount or Decimal(0))
            body["amountRemaining"] = wire(self.amount_remaining)
            if self.price is not None:
                body["price"] = wire(self.price)
        if self.trigger_amount is not None:
            body["triggerPrice"] = wire(self.trigger_amount)
            body["triggerAmount"] = wire(self.trigger_amount)
            body["triggerType"] = self.trigger_type or "price"
            body["triggerReference"] = self.trigger_reference or "lastTrade"
        body.update(
            onHold=wire(self.on_hold),
            onHoldCurrency=self.on_hold_currency,
            filledAmount=wire(self.filled_amount),
            filledAmountQuote=wire(self.filled_amount_quote),
            feePaid=wire(self.fee_paid - sum((f.fee for f in self.fills if not f.settled), Decimal(0))),
            feeCurrency=self.fee_currency,
            fills=[f.to_json() for f in self.fills],
            selfTradePrevention=self.self_trade_prevention,
            visible=self.order_type not in ("market", "stopLoss", "takeProfit"),
            timeInForce=self.time_in_force,
            postOnly=self.post_only,
            operatorId=self.operator_id,
        )
        if self.order_type == "market":
            body["disableMarketProtection"] = False
        if self.restatement_reason is not None:
            body["restatementReason"] = self.restatement_reason
        body["createdNs"] = self.created * 1_000_000
        body["updatedNs"] = self.updated * 1_000_000
        return body

    def trade_json(self, fill: Fill) -> dict[str, Any]:
        """The fill as ``GET /trades`` lists it."""
        body: dict[str, Any] = {"id": fill.fill_id, "orderId": self.order_id}
        if self.client_order_id is not None:
            body["clientOrderId"] = self.client_order_id
        body.update(
            timestamp=fill.timestamp,
            market=self.market,
            side=self.side,
            amount=wire(fill.amount),
            price=wire(fill.price),
            taker=fill.taker,
            **fill.fee_fields(),
        )
        return body

    def looked_up(self) -> None:
        for fill in self.fills:
            fill.looked_up()
