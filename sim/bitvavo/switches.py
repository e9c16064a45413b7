"""Where the exchange's behaviour is a constraint clients must live with, or is unconfirmed, the
simulator makes it a switch — so tests can run against the strict setting and against the other.

``Switches`` is set with the simulator's constructor (``BitvavoSimulator(switches=...)``) and
changed at run time through the admin API (``SimulatorAdmin.set_switches``); ``reset`` restores
the constructor's values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

DAY_MS = 86_400_000
FEE_SETTLEMENTS = ("immediate", "deferred")


@dataclass(frozen=True)
class Switches:
    """The simulator's switchable behaviours (defaults: the strict reading of the facts sheet)."""

    history_range_limit_ms: int | None = DAY_MS
    """Longest ``start``..``end`` span of one ``GET /orders`` or ``GET /trades`` request
    (``end`` defaults to now). Longer is refused with 205 ``"start parameter is invalid."``
    (the sheet's code for an invalid parameter value; the live text is unconfirmed). Without
    ``start`` the answer covers only ``end`` − limit .. ``end``. ``None`` turns the limit off."""
    closed_orders_by_client_order_id: bool = True
    """Whether ``GET /order?clientOrderId=`` (and ``DELETE /order`` by clientOrderId) finds an order
    that is no longer active. Unconfirmed at Bitvavo; off, such an order is 240 there (by
    ``orderId`` and in the history endpoints it is still found)."""
    fee_settlement: str = "immediate"
    """``immediate``: every fill is ``settled:true`` with its fee. ``deferred``: new fills come out
    ``settled:false`` with ``fee``/``feeCurrency`` omitted (and left out of the order's
    ``feePaid``) until settled by the admin API or after ``settle_after_lookups`` lookups."""
    settle_after_lookups: int | None = None
    """With deferred fees: a fill settles once this many answers (``GET /order``, ``/orders``,
    ``/ordersOpen``, ``/trades``) have shown it unsettled. ``None``: only the admin API settles."""

    def __post_init__(self) -> None:
        if self.history_range_limit_ms is not None and self.history_range_limit_ms < 1:
            raise ValueError("history_range_limit_ms must be positive (or None for no limit)")
        if self.fee_settlement not in FEE_SETTLEMENTS:
            raise ValueError(f"fee_settlement must be one of {FEE_SETTLEMENTS}")
        if self.settle_after_lookups is not None and self.settle_after_lookups < 1:
            raise ValueError("settle_after_lookups must be at least 1 (or None)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> Switches:
        """A copy with ``changes`` (field names as in this class) applied; unknown names raise."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown switches: {sorted(unknown)}")
        return replace(self, **changes)
