"""Every SQL statement of the per-user books (docs/design.md#per-user-books).

Kept beside repository.py, in the same style: functions take a connection inside
``Database.transaction(user_id)`` (row-level security limits every table to that user); the
account-wide figures go through the SECURITY DEFINER functions of migration 0026. Only
ledger.py writes the books; breaker.py writes the trading states.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from psycopg.types.json import Jsonb

from services.executor.model import Fill, Side
from shared.db import Conn
from shared.errors import InvariantBroken

Row = dict[str, Any]

# Fill order: when the fill happened, then its execution and id (byte order, as Python sorts).
_FILL_ORDER = 'h.filled_at, h.execution_id, h.fill_id COLLATE "C"'


# ------------------------------------------------------------------ fills


def upsert_fill(
    conn: Conn, *, execution_id: str, user_id: str, market: str, side: Side, fill: Fill
) -> Literal["inserted", "fee_changed", "unchanged"]:
    """Record one fill: new → inserted; recorded with another fee → the fee is refreshed."""
    row = conn.execute(
        "INSERT INTO oracle.trade_history AS h (execution_id, fill_id, user_id, market, side, amount, price,"
        " fee, fee_currency, taker, filled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (execution_id, fill_id) DO UPDATE SET fee = EXCLUDED.fee, fee_currency = EXCLUDED.fee_currency"
        " WHERE (h.fee, h.fee_currency) IS DISTINCT FROM (EXCLUDED.fee, EXCLUDED.fee_currency)"
        " RETURNING (xmax = 0) AS inserted",
        (
            execution_id,
            fill.fill_id,
            user_id,
            market,
            side.value,
            fill.amount,
            fill.price,
            fill.fee,
            fill.fee_currency,
            fill.taker,
            fill.filled_at,
        ),
    ).fetchone()
    if row is None:
        return "unchanged"
    return "inserted" if row["inserted"] else "fee_changed"


def fills_of_book(conn: Conn, *, mode: str, market: str) -> list[Row]:
    """Every recorded fill of the user's book (mode, market), in fill order."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT h.execution_id::text AS execution_id, h.fill_id, h.side, h.amount, h.price, h.fee, h.fee_currency,"  # noqa: S608 -- only constant module-level fragments
        " h.filled_at FROM oracle.trade_history h JOIN oracle.trade_executions e USING (execution_id)"
        f" WHERE e.mode = %s AND h.market = %s ORDER BY {_FILL_ORDER}",
        (mode, market),
    ).fetchall()


def books_with_fills(conn: Conn, mode: str) -> list[str]:
    """Markets where the user has recorded fills of ``mode`` (what a rebuild covers)."""
    rows = conn.execute(
        "SELECT DISTINCT h.market::text AS market FROM oracle.trade_history h"
        " JOIN oracle.trade_executions e USING (execution_id) WHERE e.mode = %s ORDER BY 1",
        (mode,),
    ).fetchall()
    return [r["market"] for r in rows]


# ------------------------------------------------------------------ positions and entries


def lock_position(conn: Conn, *, user_id: str, mode: str, market: str) -> Row:
    """The user's position row (created empty if missing), locked until commit: fills of one book
    are applied one transaction at a time."""
    conn.execute(
        "INSERT INTO oracle.book_positions (user_id, mode, market) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (user_id, mode, market),
    )
    row = conn.execute(
        "SELECT * FROM oracle.book_positions WHERE mode = %s AND market = %s FOR UPDATE", (mode, market)
    ).fetchone()
    if row is None:
        raise InvariantBroken("the user's book position is missing right after its INSERT … ON CONFLICT DO NOTHING")
    return row


def save_position(conn: Conn, *, mode: str, market: str, values: Mapping[str, Any], now: datetime) -> None:
    conn.execute(
        "UPDATE oracle.book_positions SET quantity = %s, cost_eur = %s, realized_pnl_eur = %s, fills = %s,"
        " last_filled_at = %s, last_execution_id = %s, last_fill_id = %s, updated_at = %s"
        " WHERE mode = %s AND market = %s",
        (
            values["quantity"],
            values["cost_eur"],
            values["realized_pnl_eur"],
            values["fills"],
            values["last_filled_at"],
            values["last_execution_id"],
            values["last_fill_id"],
            now,
            mode,
            market,
        ),
    )


def delete_entries(conn: Conn, *, mode: str, market: str) -> None:
    conn.execute("DELETE FROM oracle.book_entries WHERE mode = %s AND market = %s", (mode, market))


def insert_entry(conn: Conn, *, user_id: str, mode: str, market: str, entry: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO oracle.book_entries (execution_id, fill_id, user_id, mode, market, side, filled_at,"
        " quantity_delta, cost_delta_eur, realized_pnl_eur) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            entry["execution_id"],
            entry["fill_id"],
            user_id,
            mode,
            market,
            entry["side"],
            entry["filled_at"],
            entry["quantity_delta"],
            entry["cost_delta_eur"],
            entry["realized_pnl_eur"],
        ),
    )


def positions(conn: Conn, mode: str) -> list[Row]:
    """The user's positions of ``mode`` (every market it ever traded), by market."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT market::text AS market, quantity, cost_eur, realized_pnl_eur, fills FROM oracle.book_positions"
        " WHERE mode = %s ORDER BY market",
        (mode,),
    ).fetchall()


def entries(conn: Conn, mode: str) -> list[Row]:
    """The user's book entries of ``mode``, by book and fill order."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT execution_id::text AS execution_id, fill_id, market::text AS market, side, filled_at,"  # noqa: S608 -- only constant module-level fragments
        " quantity_delta, cost_delta_eur, realized_pnl_eur FROM oracle.book_entries h WHERE mode = %s"
        f" ORDER BY market, {_FILL_ORDER}",
        (mode,),
    ).fetchall()


def realized_since(conn: Conn, *, mode: str, since: datetime) -> Decimal:
    """The user's realized P&L of fills at or after ``since``."""
    row = conn.execute(
        "SELECT COALESCE(sum(realized_pnl_eur), 0) AS eur FROM oracle.book_entries WHERE mode = %s AND filled_at >= %s",
        (mode, since),
    ).fetchone()
    if row is None:
        raise InvariantBroken("the realized P&L aggregate returned no row")
    return Decimal(row["eur"])


def sells_in_flight_base(conn: Conn, *, mode: str, market: str) -> Decimal:
    """Base amount of the user's SELLs on ``market`` not final yet, less what they already filled
    (their fills are in the position already)."""
    row = conn.execute(
        "SELECT COALESCE(sum(GREATEST(amount_base - filled_amount, 0)), 0) AS base FROM oracle.trade_executions"
        " WHERE mode = %s AND market = %s AND side = 'sell' AND amount_base IS NOT NULL"
        " AND NOT oracle.execution_is_final(status)",
        (mode, market),
    ).fetchone()
    if row is None:
        raise InvariantBroken("the SELLs-in-flight aggregate returned no row")
    return Decimal(row["base"])


def account_book(conn: Conn, *, mode: str, day_start: datetime) -> list[Row]:
    """Every user's positions of ``mode`` (no user ids), with the realized P&L since ``day_start``."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT * FROM oracle.account_book(%s, %s)", (mode, day_start)
    ).fetchall()


def book_users(conn: Conn, mode: str) -> list[str]:
    rows = conn.execute("SELECT user_id FROM oracle.book_users(%s)", (mode,)).fetchall()
    return [r["user_id"] for r in rows]


# ------------------------------------------------------------------ trading states


def trading_state(conn: Conn, mode: str) -> Row | None:
    """The user's trading state row of ``mode`` (None: ACTIVE, no peak recorded yet)."""
    return conn.execute("SELECT * FROM oracle.trading_states WHERE mode = %s", (mode,)).fetchone()


def raise_peak(conn: Conn, *, user_id: str, mode: str, pnl_eur: Decimal) -> Decimal:
    """The user's peak cumulative P&L after seeing ``pnl_eur`` (kept, or raised to it; a user's
    first peak is at least 0, the P&L before any trade)."""
    row = conn.execute(
        "INSERT INTO oracle.trading_states AS s (user_id, mode, peak_pnl_eur) VALUES (%s, %s, GREATEST(%s, 0))"
        " ON CONFLICT (user_id, mode) DO UPDATE SET peak_pnl_eur = GREATEST(s.peak_pnl_eur, EXCLUDED.peak_pnl_eur)"
        " RETURNING peak_pnl_eur",
        (user_id, mode, pnl_eur),
    ).fetchone()
    if row is None:
        raise InvariantBroken("INSERT INTO oracle.trading_states … RETURNING returned no row")
    return Decimal(row["peak_pnl_eur"])


def set_user_state(
    conn: Conn, *, user_id: str, mode: str, state: str, reason: str, figures: Mapping[str, Any], now: datetime, by: str
) -> Row:
    """Set the user's trading state (returns the row as it was before, or an empty row)."""
    before = trading_state(conn, mode)
    conn.execute(
        "INSERT INTO oracle.trading_states AS s (user_id, mode, state, reason, figures, updated_at, updated_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, mode) DO UPDATE SET state = EXCLUDED.state,"
        " reason = EXCLUDED.reason, figures = EXCLUDED.figures, updated_at = EXCLUDED.updated_at,"
        " updated_by = EXCLUDED.updated_by",
        (user_id, mode, state, reason, Jsonb(dict(figures)), now, by),
    )
    return before or {}


def reset_peak(conn: Conn, *, mode: str) -> None:
    """Forget the peak (an operator's return to ACTIVE): the next evaluation starts it afresh
    from the cumulative P&L it sees (GREATEST ignores NULL)."""
    conn.execute("UPDATE oracle.trading_states SET peak_pnl_eur = NULL WHERE mode = %s", (mode,))


def set_account_state(conn: Conn, *, state: str, reason: str, now: datetime, by: str) -> Row:
    """Set the account's trading state; returns the account row before the change (locked)."""
    before = conn.execute(
        "SELECT trading_state, state_reason FROM oracle.account_settings WHERE id FOR UPDATE"
    ).fetchone()
    if before is None:
        raise InvariantBroken("oracle.account_settings has no row (migration 0001 inserts it)")
    conn.execute(
        "UPDATE oracle.account_settings SET trading_state = %s, state_reason = %s, version = version + 1,"
        " updated_at = %s, updated_by = %s WHERE id",
        (state, reason, now, by),
    )
    return before
