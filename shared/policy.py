"""A user's trading policy as a typed, read-only value (one row of ``oracle.trading_policies``).

The executor owns the policy: it writes it and enforces it on every execution. The scanner reads
it to size its ideas, to decide whether to auto-execute and to keep a snapshot of it on each
proposal for the audit trail (:meth:`Policy.snapshot`). Both read the same row, so the row's
shape is written here once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Policy:
    """A user's live trading policy (trading_policies); version 0 means none is stored."""

    user_id: str
    version: int
    allowed_markets: tuple[str, ...]
    min_order_eur: Decimal
    max_order_eur: Decimal
    min_confidence: int
    cooldown_seconds: int
    anti_flip_seconds: int
    daily_trade_cap: int
    hourly_trade_cap: int
    daily_notional_cap_eur: Decimal
    price_guard_pct: Decimal
    auto_execute: bool
    trading_enabled: bool
    updated_at: datetime | None = None
    updated_by: str = ""
    max_daily_loss_eur: Decimal | None = None  # the loss breaker's daily loss limit; None: none
    max_drawdown_eur: Decimal | None = None  # the loss breaker's drawdown limit; None: none

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Policy:
        return cls(
            user_id=row["user_id"],
            version=int(row["version"]),
            allowed_markets=tuple(row["allowed_markets"] or ()),
            min_order_eur=Decimal(row["min_order_eur"]),
            max_order_eur=Decimal(row["max_order_eur"]),
            min_confidence=int(row["min_confidence"]),
            cooldown_seconds=int(row["cooldown_seconds"]),
            anti_flip_seconds=int(row["anti_flip_seconds"]),
            daily_trade_cap=int(row["daily_trade_cap"]),
            hourly_trade_cap=int(row["hourly_trade_cap"]),
            daily_notional_cap_eur=Decimal(row["daily_notional_cap_eur"]),
            price_guard_pct=Decimal(row["price_guard_pct"]),
            auto_execute=bool(row["auto_execute"]),
            trading_enabled=bool(row["trading_enabled"]),
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
            max_daily_loss_eur=_optional_decimal(row.get("max_daily_loss_eur")),
            max_drawdown_eur=_optional_decimal(row.get("max_drawdown_eur")),
        )

    def snapshot(self) -> dict[str, Any]:
        """The policy as JSON (decimals and times as strings, markets as a list), for the audit trail."""
        return {key: _json(value) for key, value in asdict(self).items()}


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _json(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value
