"""The loss breaker and the trading states (docs/design.md#trading-states).

A user (per mode) and the account are ACTIVE or REDUCING; HALTED is the kill switch
(``trading_enabled``), unchanged. In REDUCING only SELLs pass — a SELL is always position-reducing,
since validators.position lets a SELL sell only the user's own coins — so a losing user can get out.

The breaker runs on every BUY under the user's lock, on figures from the user's books and prices
read before the lock (:class:`Marks`, cached a few seconds):

* the user's daily loss: minus (today's realized P&L + the unrealized loss of open positions),
  against the policy's ``max_daily_loss_eur`` (``DAILY_LOSS_LIMIT_REACHED``);
* the user's drawdown: the peak of its cumulative P&L (realized + unrealized, kept in
  ``trading_states.peak_pnl_eur`` and raised at every evaluation) minus the cumulative P&L now,
  against ``max_drawdown_eur`` (``MAX_DRAWDOWN_REACHED``);
* the account's daily loss: the same as the user's over every user's books, against
  ``account_settings.daily_loss_limit_eur`` (``ACCOUNT_DAILY_LOSS_LIMIT_REACHED``).

A crossed limit refuses the BUY (audited as every refusal is); then, in a transaction of its own,
:func:`trip` moves the user (or the account) to REDUCING, audited (``trading_state.reducing``)
with the figures that tripped it. Only an operator moves it back (:func:`resume`,
SetTradingState / ``oraclectl state resume``), audited; the drawdown's peak then starts afresh
from the next evaluation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.executor import SERVICE
from services.executor import books_repository as books
from services.executor.ledger import Position, unrealized, user_positions
from services.executor.recent import Recent
from services.executor.validators import Check, eur
from shared import audit
from shared.db import SYSTEM_USER, Conn, Database
from shared.db.locks import LockSpace, lock_account, lock_user
from shared.exchange.errors import RequestRejectedError

log = logging.getLogger(__name__)

ACTIVE = "ACTIVE"
REDUCING = "REDUCING"
HALTED = "HALTED"

DAILY_LOSS_LIMIT_REACHED = "DAILY_LOSS_LIMIT_REACHED"
MAX_DRAWDOWN_REACHED = "MAX_DRAWDOWN_REACHED"
ACCOUNT_DAILY_LOSS_LIMIT_REACHED = "ACCOUNT_DAILY_LOSS_LIMIT_REACHED"
USER_REDUCING = "USER_REDUCING"
ACCOUNT_REDUCING = "ACCOUNT_REDUCING"

ZERO = Decimal(0)


class Marks:
    """Current prices of held markets, read before any lock and reused ``ttl_seconds`` (a few
    seconds: the breaker must see a falling market, not hammer the exchange; recent.Recent)."""

    def __init__(self, price: Callable[[str], Decimal], ttl_seconds: float) -> None:
        self._price = price
        self._recent: Recent[str, Decimal] = Recent(ttl_seconds)

    def prices(self, markets: Iterable[str], *, read_now: Mapping[str, Decimal] | None = None) -> dict[str, Decimal]:
        """The price of each market. A market the exchange definitively refuses to price (no
        longer listed) is left out — :func:`figures` then counts its whole cost as lost; any other
        failure (the exchange unreachable) is raised: nothing is decided on a blind breaker.
        ``read_now``: prices the caller has just read (kept, and not asked for again)."""
        for market, price in (read_now or {}).items():
            self._recent.remember(market, price)
        out: dict[str, Decimal] = {}
        for market in sorted(set(markets)):
            try:
                out[market] = self._recent.get(market, lambda m=market: self._price(m))  # type: ignore[misc]
            except RequestRejectedError as exc:
                log.warning("no price for held market %s: %s", market, exc)
        return out


@dataclass(frozen=True)
class Figures:
    """One user's (or the account's) P&L figures at the given prices."""

    realized_today_eur: Decimal
    realized_total_eur: Decimal
    unrealized_eur: Decimal
    unrealized_loss_eur: Decimal  # the sum of open positions' losses (gains do not offset them)

    @property
    def daily_loss_eur(self) -> Decimal:
        """Today's loss: minus (realized today + unrealized losses); 0 when not losing."""
        return max(ZERO, -(self.realized_today_eur + self.unrealized_loss_eur))

    @property
    def cumulative_pnl_eur(self) -> Decimal:
        return self.realized_total_eur + self.unrealized_eur

    def json(self) -> dict[str, str]:
        return {
            "realized_today_eur": str(self.realized_today_eur),
            "realized_total_eur": str(self.realized_total_eur),
            "unrealized_eur": str(self.unrealized_eur),
            "unrealized_loss_eur": str(self.unrealized_loss_eur),
            "daily_loss_eur": str(self.daily_loss_eur),
            "cumulative_pnl_eur": str(self.cumulative_pnl_eur),
        }


def figures(positions: Sequence[Position], realized_today: Decimal, prices: Mapping[str, Decimal]) -> Figures:
    """The P&L figures of ``positions`` at ``prices`` (a held market without a price counts its
    whole cost as lost: the breaker must not be blind to what it cannot price)."""
    total_unrealized = loss = ZERO
    for p in positions:
        value = unrealized(p, prices.get(p.market))
        if value is None:
            value = -p.cost_eur
        total_unrealized += value
        loss += min(ZERO, value)
    return Figures(
        realized_today_eur=realized_today,
        realized_total_eur=sum((p.realized_pnl_eur for p in positions), ZERO),
        unrealized_eur=total_unrealized,
        unrealized_loss_eur=loss,
    )


def account_figures(rows: Sequence[Mapping[str, Any]], prices: Mapping[str, Decimal]) -> Figures:
    """:func:`figures` over every user's positions (oracle.account_book rows)."""
    positions = [
        Position(
            market=r["market"],
            quantity=Decimal(r["quantity"]),
            cost_eur=Decimal(r["cost_eur"]),
            realized_pnl_eur=Decimal(r["realized_pnl_eur"]),
        )
        for r in rows
    ]
    return figures(positions, sum((Decimal(r["realized_today_eur"]) for r in rows), ZERO), prices)


@dataclass(frozen=True)
class Verdict:
    """What the breaker found for one BUY: the checks it ran and, when one failed for a loss,
    what to move to REDUCING (``trip_user`` / ``trip_account``) with which figures."""

    checks: tuple[Check, ...]
    trip_user: bool = False
    trip_account: bool = False
    user: Figures | None = None
    account: Figures | None = None
    peak_eur: Decimal = ZERO

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def payload(self) -> dict[str, Any]:
        return {
            "reasons": [c.reason for c in self.failed],
            "user": self.user.json() if self.user else {},
            "account": self.account.json() if self.account else {},
            "peak_pnl_eur": str(self.peak_eur),
            "checks": [c.record() for c in self.checks],
        }


def _limit_check(name: str, observed: Decimal, limit: Decimal | None, reason: str) -> Check:
    if limit is None:
        return Check(name, True, eur(observed), "no limit")
    ok = observed < limit
    return Check(name, ok, eur(observed), f"< {eur(limit)}", "" if ok else reason)


@dataclass(frozen=True)
class UserReading:
    """The user's side of the breaker, read under the user's lock (before the account row is
    locked: the user's lock already orders everything that changes it)."""

    reducing_reason: str | None  # the user is REDUCING (why); None when ACTIVE
    figures: Figures | None = None
    peak_eur: Decimal = ZERO


def read_user(
    conn: Conn, *, user_id: str, mode: str, day_start: datetime, prices: Mapping[str, Decimal]
) -> UserReading:
    """The user's trading state and, when ACTIVE, its P&L figures at ``prices`` with the
    drawdown's peak raised to them."""
    state = books.trading_state(conn, mode)
    if state is not None and state["state"] == REDUCING:
        return UserReading(str(state["reason"]))
    mine = figures(user_positions(conn, mode), books.realized_since(conn, mode=mode, since=day_start), prices)
    peak = books.raise_peak(conn, user_id=user_id, mode=mode, pnl_eur=mine.cumulative_pnl_eur)
    return UserReading(None, mine, peak)


def evaluate(
    user: UserReading,
    *,
    account_book: Sequence[Mapping[str, Any]],
    prices: Mapping[str, Decimal],
    max_daily_loss_eur: Decimal | None,
    max_drawdown_eur: Decimal | None,
    account_state: str,
    account_daily_loss_limit_eur: Decimal | None,
) -> Verdict:
    """The breaker's checks for one BUY: the user's reading (:func:`read_user`), every user's
    books (oracle.account_book rows) and the account's state and limit, read with its row locked."""
    if account_state == REDUCING:
        return Verdict((Check("trading_state", False, "account REDUCING", "ACTIVE", ACCOUNT_REDUCING),))
    if user.reducing_reason is not None or user.figures is None:
        reason = user.reducing_reason or ""
        return Verdict((Check("trading_state", False, f"user REDUCING ({reason})", "ACTIVE", USER_REDUCING),))
    mine = user.figures
    drawdown = max(ZERO, user.peak_eur - mine.cumulative_pnl_eur)
    account = account_figures(account_book, prices)
    checks = (
        Check("trading_state", True, "ACTIVE", "ACTIVE"),
        _limit_check("daily_loss", mine.daily_loss_eur, max_daily_loss_eur, DAILY_LOSS_LIMIT_REACHED),
        _limit_check("drawdown", drawdown, max_drawdown_eur, MAX_DRAWDOWN_REACHED),
        _limit_check(
            "account_daily_loss", account.daily_loss_eur, account_daily_loss_limit_eur, ACCOUNT_DAILY_LOSS_LIMIT_REACHED
        ),
    )
    failed = {c.reason for c in checks if not c.passed}
    return Verdict(
        checks,
        trip_user=bool(failed & {DAILY_LOSS_LIMIT_REACHED, MAX_DRAWDOWN_REACHED}),
        trip_account=ACCOUNT_DAILY_LOSS_LIMIT_REACHED in failed,
        user=mine,
        account=account,
        peak_eur=user.peak_eur,
    )


def held_markets(account_book: Sequence[Mapping[str, Any]]) -> set[str]:
    """Markets anyone holds (what the breaker needs prices of), from oracle.account_book rows."""
    return {r["market"] for r in account_book if Decimal(r["quantity"]) > 0}


def trip(db: Database, *, user_id: str, mode: str, verdict: Verdict, principal: str, now: datetime) -> None:
    """Move the user and/or the account to REDUCING (its own transaction, after the refusal)."""
    payload = verdict.payload()
    if verdict.trip_user:
        with db.transaction(user_id) as conn:
            lock_user(conn, LockSpace.USER_TRADING, user_id)
            before = books.set_user_state(
                conn,
                user_id=user_id,
                mode=mode,
                state=REDUCING,
                reason=",".join(payload["reasons"]),
                figures=payload,
                now=now,
                by=principal,
            )
            if before.get("state") != REDUCING:
                audit.append(
                    conn,
                    service=SERVICE,
                    kind="trading_state.reducing",
                    subject_id=user_id,
                    principal=principal,
                    payload={"scope": "user", "mode": mode, **payload},
                )
        log.warning(
            "user moved to REDUCING by the loss breaker", extra={"user": user_id, "reasons": payload["reasons"]}
        )
    if verdict.trip_account:
        with db.transaction(SYSTEM_USER) as conn:
            lock_account(conn, exclusive=True)
            before = books.set_account_state(
                conn, state=REDUCING, reason=ACCOUNT_DAILY_LOSS_LIMIT_REACHED, now=now, by=principal
            )
            if before["trading_state"] != REDUCING:
                audit.append(
                    conn,
                    service=SERVICE,
                    kind="trading_state.reducing",
                    principal=principal,
                    payload={"scope": "account", "mode": mode, "user_id": user_id, **payload},
                )
        log.warning("ACCOUNT moved to REDUCING by the loss breaker", extra={"reasons": payload["reasons"]})


def set_state(
    db: Database, *, user_id: str | None, mode: str, state: str, reason: str, principal: str, now: datetime
) -> str:
    """An operator's deliberate move of ``user_id`` (or of the account, when None) to ACTIVE or
    REDUCING, audited; returns the state before. Back to ACTIVE, a user's drawdown peak starts
    afresh at the next evaluation."""
    kind = "trading_state.active" if state == ACTIVE else "trading_state.reducing"
    if user_id is None:
        with db.transaction(SYSTEM_USER) as conn:
            lock_account(conn, exclusive=True)
            before = books.set_account_state(
                conn, state=state, reason=reason if state == REDUCING else "", now=now, by=principal
            )
            audit.append(
                conn,
                service=SERVICE,
                kind=kind,
                principal=principal,
                payload={"scope": "account", "before": before["trading_state"], "reason": reason, "by": "operator"},
            )
        log.warning("account trading state set to %s by %s", state, principal)
        return str(before["trading_state"])
    with db.transaction(user_id) as conn:
        lock_user(conn, LockSpace.USER_TRADING, user_id)
        row = books.set_user_state(
            conn,
            user_id=user_id,
            mode=mode,
            state=state,
            reason=reason if state == REDUCING else "",
            figures={},
            now=now,
            by=principal,
        )
        if state == ACTIVE:
            books.reset_peak(conn, mode=mode)
        audit.append(
            conn,
            service=SERVICE,
            kind=kind,
            subject_id=user_id,
            principal=principal,
            payload={
                "scope": "user",
                "mode": mode,
                "before": row.get("state", ACTIVE),
                "reason": reason,
                "by": "operator",
            },
        )
    log.warning("user trading state set to %s by %s", state, principal, extra={"user": user_id})
    return str(row.get("state", ACTIVE))
