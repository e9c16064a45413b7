"""The executor's nouns as plain values: proposals, executions, fills, the exchange's view of an
order and of a market (the policy is shared.policy.Policy, one shape for both services). No
behaviour beyond reading a database row; the rules live in
validators.py, execution.py, state_machine.py and reconciler.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    """Side of an order, as stored and as Bitvavo spells it."""

    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Status(StrEnum):
    """Execution status (docs/design.md#states-and-transitions); the allowed moves are in state_machine.py."""

    CLAIMED = "CLAIMED"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Proposal:
    """A scanner's proposal, as far as the executor reads it."""

    proposal_id: str
    user_id: str
    market: str
    side: Side
    amount_quote: Decimal
    confidence: int
    status: str
    expires_at: datetime
    snapshot_price: Decimal | None  # the price the analyst saw (market_snapshot.price)
    # The rest of what makes this version of the proposal (compared: the executor validates
    # exactly the version its market data was fetched for).
    created_at: datetime | None = None
    snapshot_json: str = ""
    # When it was read, on the database's clock (not part of the proposal: not compared).
    read_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Proposal:
        snapshot = row["market_snapshot"] or {}
        raw_price = snapshot.get("price") if isinstance(snapshot, dict) else None
        return cls(
            proposal_id=str(row["proposal_id"]),
            user_id=row["user_id"],
            market=row["market"],
            side=Side(row["side"]),
            amount_quote=Decimal(row["amount_quote"]),
            confidence=int(row["confidence"]),
            status=row["status"],
            expires_at=row["expires_at"],
            snapshot_price=_decimal_or_none(raw_price),
            created_at=row.get("created_at"),
            snapshot_json=json.dumps(snapshot, sort_keys=True, default=str),
            read_at=row.get("read_at"),
        )


@dataclass(frozen=True)
class Execution:
    """One claimed proposal and what became of its order."""

    execution_id: str
    user_id: str
    proposal_id: str
    mode: str
    market: str
    side: Side
    amount_quote: Decimal
    status: Status
    client_order_id: str
    exchange_order_id: str
    filled_amount: Decimal
    filled_amount_quote: Decimal
    fee_paid: Decimal
    fee_currency: str
    override_cooldown: bool
    override_anti_flip: bool
    principal: str
    preflight: dict[str, Any]
    error: dict[str, Any]
    claimed_at: datetime
    submitting_at: datetime | None
    updated_at: datetime
    amount_base: Decimal | None = None  # a SELL's size in the base asset, as sent; None for a BUY
    sign_deadline_ms: int | None = None  # exchange time: the order is never signed after it
    fee_pending: bool = False  # a fill was recorded before its fee settled
    found_late_until: datetime | None = None  # FAILED as PROVEN_ABSENT: still looked up until then

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Execution:
        return cls(
            execution_id=str(row["execution_id"]),
            user_id=row["user_id"],
            proposal_id=str(row["proposal_id"]),
            mode=row["mode"],
            market=row["market"],
            side=Side(row["side"]),
            amount_quote=Decimal(row["amount_quote"]),
            status=Status(row["status"]),
            client_order_id=str(row["client_order_id"]),
            exchange_order_id=row["exchange_order_id"] or "",
            filled_amount=Decimal(row["filled_amount"]),
            filled_amount_quote=Decimal(row["filled_amount_quote"]),
            fee_paid=Decimal(row["fee_paid"]),
            fee_currency=row["fee_currency"],
            override_cooldown=bool(row["override_cooldown"]),
            override_anti_flip=bool(row["override_anti_flip"]),
            principal=row["principal"],
            preflight=dict(row["preflight"] or {}),
            error=dict(row["error"] or {}),
            claimed_at=row["claimed_at"],
            submitting_at=row["submitting_at"],
            updated_at=row["updated_at"],
            amount_base=None if row.get("amount_base") is None else Decimal(row["amount_base"]),
            sign_deadline_ms=row.get("sign_deadline_ms"),
            fee_pending=bool(row.get("fee_pending", False)),
            found_late_until=row.get("found_late_until"),
        )

    @property
    def validators(self) -> list[dict[str, Any]]:
        """The validator records stored at claim time."""
        records = self.preflight.get("validators", [])
        return list(records) if isinstance(records, list) else []


@dataclass(frozen=True)
class Fill:
    """One fill reported by the exchange (a trade_history row)."""

    fill_id: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    taker: bool
    filled_at: datetime


@dataclass(frozen=True)
class OrderView:
    """What the exchange says about one order, in the executor's terms."""

    order_id: str
    status: Status  # the execution status this order state maps to
    exchange_status: str  # Bitvavo's own word, e.g. "filled", "canceledMarketProtection"
    filled_amount: Decimal
    filled_amount_quote: Decimal
    fee_paid: Decimal
    fee_currency: str
    fills: tuple[Fill, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    fee_pending: bool = False  # a fill's fee has not settled yet: look again until it has


@dataclass(frozen=True)
class Found:
    """A lookup found the order (or only its fills)."""

    view: OrderView


@dataclass(frozen=True)
class Absent:
    """Every lookup answered cleanly: no order under the clientOrderId up to ``searched_until_ms``
    (exchange time)."""

    searched_until_ms: int


@dataclass(frozen=True)
class Unreadable:
    """A row that is ours (its clientOrderId matches) but cannot be parsed: the raw row and why."""

    raw: Any
    reason: str
    source: str


Lookup = Found | Absent | Unreadable


@dataclass(frozen=True)
class MarketInfo:
    """A market's trading rules at the exchange."""

    market: str
    status: str  # "trading" is the only one that accepts market orders
    min_order_quote: Decimal
    min_order_base: Decimal
    max_order_quote: Decimal
    notional_decimals: int
    quantity_decimals: int

    @property
    def base(self) -> str:
        return base_asset(self.market)


def base_asset(market: str) -> str:
    """The asset a market trades (``BTC`` of ``BTC-EUR``)."""
    return market.split("-", 1)[0]


def _decimal_or_none(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() and number > 0 else None
