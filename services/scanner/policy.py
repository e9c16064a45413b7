"""The user's trading policy as the scanner sees it: a typed, read-only view of one row.

The executor owns the policy (it writes it and enforces it on every execution); the scanner only
reads it, to size its ideas (scan.order_bounds), to decide whether to auto-execute, and to keep a
snapshot of it on each proposal for the audit trail (:meth:`Policy.snapshot`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Policy:
    """One user's live trading policy (``oracle.trading_policies``)."""

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
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Policy:
        return cls(**{**row, "allowed_markets": tuple(row["allowed_markets"])})

    def snapshot(self) -> dict[str, Any]:
        """The policy as JSON (decimals and times as strings), for the audit trail."""
        return {
            key: (
                str(value)
                if isinstance(value, Decimal)
                else value.isoformat()
                if isinstance(value, datetime)
                else list(value)
                if isinstance(value, tuple)
                else value
            )
            for key, value in asdict(self).items()
        }
