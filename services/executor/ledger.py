"""The per-user books on the one shared exchange account (docs/design.md#per-user-books).

Per user, mode (live and paper apart) and market: the quantity of the base asset held, its cost
in EUR (fees included, average-cost method) and the realized P&L; unrealized P&L is computed on
demand at current prices (:func:`unrealized`).

:func:`record_fills` is the ONE way a fill enters the database: it writes ``trade_history`` and
moves the book in the same transaction, so the books are never behind the executions. Every
path that learns fills calls it — the sender's answer and the reconciler (through
``state_machine.record_order``), an order found late after FAILED, and a fee refreshed after
the fill was recorded (the same fill recorded again with its new fee). A fill that sorts after
the book's last fill (fill order: ``filled_at``, execution id, fill id) is applied on top; any
other change (a fill found late, a fee refreshed) rebuilds that one book from ``trade_history``,
in fill order, with the same :meth:`Position.apply`. So the books always equal a rebuild from the
fills, which :func:`check` proves (``CheckBooks``/``oraclectl books check``, and the tests).

The rule, per fill (fees in EUR; a fee charged in the base asset is valued at the fill price and,
on a buy, reduces the quantity received):

* buy: quantity += amount; cost += amount × price + fee.
* sell: of the quantity held, ``matched = min(amount, held)`` leaves; its cost leaves at the
  average cost (cost × matched / held) and the realized P&L is the proceeds net of the fee for
  ``matched`` minus that cost. A sell beyond the user's books (coins the account held before,
  never attributed to the user) realizes nothing for the user; SELLs are checked against the
  position, so the executor itself never sends one.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.executor import books_repository as books
from services.executor.model import Execution, Fill, Side, base_asset
from shared.db import Conn

# Every stored figure has 18 decimals (numeric(38, 18)); each step is rounded to them so the
# state kept in the database and the state replayed in memory are the same numbers.
_STEP = Decimal(1).scaleb(-18)
_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
ZERO = Decimal(0)


def _q(value: Decimal) -> Decimal:
    return value.quantize(_STEP, context=_CONTEXT)


@dataclass(frozen=True)
class BookFill:
    """A fill as the books read it."""

    execution_id: str
    fill_id: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    filled_at: datetime

    @property
    def key(self) -> tuple[datetime, str, str]:
        """Fill order."""
        return (self.filled_at, self.execution_id, self.fill_id)

    @classmethod
    def of(cls, execution_id: str, side: Side, fill: Fill) -> BookFill:
        return cls(
            execution_id, fill.fill_id, side, fill.amount, fill.price, fill.fee, fill.fee_currency, fill.filled_at
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BookFill:
        return cls(
            str(row["execution_id"]),
            row["fill_id"],
            Side(row["side"]),
            Decimal(row["amount"]),
            Decimal(row["price"]),
            Decimal(row["fee"]),
            row["fee_currency"],
            row["filled_at"],
        )


@dataclass(frozen=True)
class Entry:
    """One fill's effect on its book."""

    fill: BookFill
    quantity_delta: Decimal
    cost_delta_eur: Decimal
    realized_pnl_eur: Decimal

    def values(self) -> dict[str, Any]:
        return {
            "execution_id": self.fill.execution_id,
            "fill_id": self.fill.fill_id,
            "side": self.fill.side.value,
            "filled_at": self.fill.filled_at,
            "quantity_delta": self.quantity_delta,
            "cost_delta_eur": self.cost_delta_eur,
            "realized_pnl_eur": self.realized_pnl_eur,
        }


@dataclass(frozen=True)
class Position:
    """One book: what the user holds of a market's base asset, and what it gained so far."""

    market: str
    quantity: Decimal = ZERO
    cost_eur: Decimal = ZERO
    realized_pnl_eur: Decimal = ZERO
    fills: int = 0
    last: tuple[datetime, str, str] | None = None

    @property
    def asset(self) -> str:
        return base_asset(self.market)

    @property
    def average_cost_eur(self) -> Decimal:
        """EUR per unit held, fees included (0 when nothing is held)."""
        return _q(self.cost_eur / self.quantity) if self.quantity else ZERO

    def apply(self, fill: BookFill) -> tuple[Position, Entry]:
        """The book after ``fill``, and the fill's entry. The one rule of the books."""
        with decimal.localcontext(_CONTEXT):
            in_base = fill.fee_currency not in ("", "EUR") and fill.fee_currency == self.asset
            fee_eur = fill.fee * fill.price if in_base else fill.fee
            if fill.side is Side.BUY:
                received = fill.amount - fill.fee if in_base else fill.amount
                d_qty = _q(received)
                d_cost = _q(fill.amount * fill.price + fee_eur)
                realized = ZERO
            else:
                matched = min(fill.amount, self.quantity)
                d_qty = -_q(matched)
                d_cost = (
                    -(self.cost_eur if matched == self.quantity else _q(self.cost_eur * matched / self.quantity))
                    if self.quantity
                    else ZERO
                )
                proceeds = (fill.amount * fill.price - fee_eur) * matched / fill.amount
                realized = _q(proceeds + d_cost)
        after = Position(
            market=self.market,
            quantity=_q(self.quantity + d_qty),
            cost_eur=_q(self.cost_eur + d_cost),
            realized_pnl_eur=_q(self.realized_pnl_eur + realized),
            fills=self.fills + 1,
            last=fill.key,
        )
        return after, Entry(fill, d_qty, d_cost, realized)

    def values(self) -> dict[str, Any]:
        last = self.last or (None, None, None)
        return {
            "quantity": self.quantity,
            "cost_eur": self.cost_eur,
            "realized_pnl_eur": self.realized_pnl_eur,
            "fills": self.fills,
            "last_filled_at": last[0],
            "last_execution_id": last[1],
            "last_fill_id": last[2],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Position:
        last = None
        if row.get("last_filled_at") is not None:
            last = (row["last_filled_at"], str(row["last_execution_id"]), row["last_fill_id"])
        return cls(
            market=str(row["market"]),
            quantity=Decimal(row["quantity"]),
            cost_eur=Decimal(row["cost_eur"]),
            realized_pnl_eur=Decimal(row["realized_pnl_eur"]),
            fills=int(row["fills"]),
            last=last,
        )


def replay(market: str, fills: Iterable[BookFill]) -> tuple[Position, list[Entry]]:
    """A book rebuilt from its fills, in fill order."""
    position = Position(market)
    out: list[Entry] = []
    for fill in sorted(fills, key=lambda f: f.key):
        position, entry = position.apply(fill)
        out.append(entry)
    return position, out


def unrealized(position: Position, price: Decimal | None) -> Decimal | None:
    """Unrealized P&L of a position at ``price`` (None: no price known)."""
    if not position.quantity:
        return ZERO
    if price is None:
        return None
    return _q(position.quantity * price - position.cost_eur)


# ------------------------------------------------------------------ the one way fills are recorded


def record_fills(conn: Conn, execution: Execution, fills: Sequence[Fill], *, now: datetime) -> int:
    """Record ``fills`` of ``execution`` in trade_history and move the user's book with them, in
    the caller's transaction (which is the user's). A fill recorded before is left alone unless
    its fee changed (a fee refresh): then the fee is updated and the book rebuilt. Returns the
    number of fills added."""
    added: list[BookFill] = []
    refreshed = False
    for fill in sorted(fills, key=lambda f: (f.filled_at, f.fill_id)):
        outcome = books.upsert_fill(
            conn,
            execution_id=execution.execution_id,
            user_id=execution.user_id,
            market=execution.market,
            side=execution.side,
            fill=fill,
        )
        if outcome == "inserted":
            added.append(BookFill.of(execution.execution_id, execution.side, fill))
        elif outcome == "fee_changed":
            refreshed = True
    if not added and not refreshed:
        return 0
    row = books.lock_position(conn, user_id=execution.user_id, mode=execution.mode, market=execution.market)
    position = Position.from_row(row)
    in_order = not refreshed and all(position.last is None or f.key > position.last for f in added)
    if in_order:
        for book_fill in sorted(added, key=lambda f: f.key):
            position, entry = position.apply(book_fill)
            books.insert_entry(
                conn, user_id=execution.user_id, mode=execution.mode, market=execution.market, entry=entry.values()
            )
        books.save_position(conn, mode=execution.mode, market=execution.market, values=position.values(), now=now)
    else:
        rebuild_book(conn, user_id=execution.user_id, mode=execution.mode, market=execution.market, now=now)
    return len(added)


def rebuild_book(conn: Conn, *, user_id: str, mode: str, market: str, now: datetime) -> Position:
    """Replace one book (its position row is locked by the caller) with a replay of its fills."""
    fills = [BookFill.from_row(r) for r in books.fills_of_book(conn, mode=mode, market=market)]
    position, out = replay(market, fills)
    books.delete_entries(conn, mode=mode, market=market)
    for entry in out:
        books.insert_entry(conn, user_id=user_id, mode=mode, market=market, entry=entry.values())
    books.save_position(conn, mode=mode, market=market, values=position.values(), now=now)
    return position


# ------------------------------------------------------------------ reading and checking


def user_positions(conn: Conn, mode: str) -> list[Position]:
    """The user's books of ``mode``, by market."""
    return [Position.from_row(r) for r in books.positions(conn, mode)]


def position_of(conn: Conn, mode: str, market: str) -> Position:
    for p in user_positions(conn, mode):
        if p.market == market:
            return p
    return Position(market)


@dataclass
class CheckResult:
    """A comparison of the stored books with a rebuild from the fills."""

    user_id: str
    books: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def check(conn: Conn, user_id: str, mode: str) -> CheckResult:
    """Compare the user's stored books (positions and entries) with a replay of trade_history."""
    result = CheckResult(user_id)
    stored = {p.market: p for p in user_positions(conn, mode)}
    stored_entries: dict[str, list[dict[str, Any]]] = {}
    for r in books.entries(conn, mode):
        stored_entries.setdefault(r["market"], []).append(
            {k: r[k] for k in ("execution_id", "fill_id", "quantity_delta", "cost_delta_eur", "realized_pnl_eur")}
        )
    for market in sorted(set(stored) | set(books.books_with_fills(conn, mode))):
        result.books += 1
        fills = [BookFill.from_row(r) for r in books.fills_of_book(conn, mode=mode, market=market)]
        rebuilt, out = replay(market, fills)
        have = stored.get(market, Position(market))
        for name in ("quantity", "cost_eur", "realized_pnl_eur", "fills"):
            if getattr(have, name) != getattr(rebuilt, name):
                result.differences.append(
                    f"{market} {name}: books {getattr(have, name)}, rebuilt from fills {getattr(rebuilt, name)}"
                )
        expected = [
            {
                k: e.values()[k]
                for k in ("execution_id", "fill_id", "quantity_delta", "cost_delta_eur", "realized_pnl_eur")
            }
            for e in out
        ]
        if stored_entries.get(market, []) != expected:
            result.differences.append(f"{market} entries differ from a replay of the fills")
    return result
