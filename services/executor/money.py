"""The money view (GetPositions): per user its books at current prices, its loss-breaker figures,
today's EUR and trades against its caps and its trading state; for the account, what it holds
per asset (attributed to users, and the unattributed rest), its daily figures, limits and state.

It reads; it decides nothing. The figures are computed by the same functions the rules use
(ledger.unrealized, breaker.figures, repository.user_figures), so what an operator sees is what
the breaker and the validators see. Prices and balances come from the exchange before any
transaction; a price that cannot be read leaves that position's unrealized P&L empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from services.executor import books_repository as books
from services.executor import breaker, ledger, policies, repository
from services.executor.ledger import Position
from services.executor.model import Side, base_asset
from services.executor.venue import Venue
from shared.clock import Clock, start_of_utc_day
from shared.db import Database
from shared.exchange.errors import ExchangeError

log = logging.getLogger(__name__)
ZERO = Decimal(0)


@dataclass(frozen=True)
class PricedPosition:
    position: Position
    price: Decimal | None
    unrealized_eur: Decimal | None


@dataclass(frozen=True)
class UserMoney:
    user_id: str
    positions: list[PricedPosition]
    figures: breaker.Figures
    drawdown_eur: Decimal
    peak_eur: Decimal | None
    max_daily_loss_eur: Decimal | None
    max_drawdown_eur: Decimal | None
    notional_today_eur: Decimal
    daily_notional_cap_eur: Decimal
    trades_today: int
    daily_trade_cap: int
    trades_last_hour: int
    hourly_trade_cap: int
    state: str  # ACTIVE, REDUCING or HALTED
    state_reason: str
    books_check: ledger.CheckResult | None = None


@dataclass(frozen=True)
class Holding:
    asset: str
    account_quantity: Decimal | None  # None: the exchange could not be asked
    users_quantity: Decimal

    @property
    def unattributed(self) -> Decimal | None:
        if self.account_quantity is None:
            return None
        return max(ZERO, self.account_quantity - self.users_quantity)


@dataclass(frozen=True)
class AccountMoney:
    mode: str
    holdings: list[Holding]
    figures: breaker.Figures
    notional_today_eur: Decimal
    daily_notional_cap_eur: Decimal
    daily_loss_limit_eur: Decimal | None
    state: str
    state_reason: str


@dataclass(frozen=True)
class MoneyReport:
    users: list[UserMoney]
    account: AccountMoney
    as_of: datetime
    missing_prices: list[str] = field(default_factory=list)


class MoneyView:
    """GetPositions over the database and the venue."""

    def __init__(self, db: Database, venue: Venue, clock: Clock, marks: breaker.Marks) -> None:
        self._db = db
        self._venue = venue
        self._clock = clock
        self._marks = marks

    def report(self, user_id: str | None, *, check_books: bool = False) -> MoneyReport:
        now = self._clock.now()
        day_start = start_of_utc_day(now)
        mode = self._venue.mode
        with self._db.transaction(None) as conn:
            users = [user_id] if user_id is not None else books.book_users(conn, mode)
            rows = books.account_book(conn, mode=mode, day_start=day_start)
        markets = sorted({r["market"] for r in rows} | self._users_markets(users))
        prices, missing = self._prices(markets)
        held: dict[str, Decimal] = {}
        for r in rows:
            held[r["market"]] = held.get(r["market"], ZERO) + Decimal(r["quantity"])
        holdings = [Holding(base_asset(m), self._balance(m), held.get(m, ZERO)) for m in sorted(held) if held[m] > 0]
        out = [self._user(u, mode, prices, now, check_books) for u in users]
        with self._db.transaction(None) as conn:
            settings = policies.AccountSettings.from_row(repository.account_settings(conn))
            notional = repository.account_figures(
                conn,
                mode=mode,
                side=Side.BUY,
                market="",
                day_start=day_start,
                day_end=day_start + timedelta(days=1),
                balance_at=now,
            ).notional_today_eur
        account = AccountMoney(
            mode=mode,
            holdings=holdings,
            figures=breaker.account_figures(rows, prices),
            notional_today_eur=notional,
            daily_notional_cap_eur=settings.daily_notional_cap_eur,
            daily_loss_limit_eur=settings.daily_loss_limit_eur,
            state=breaker.HALTED if not settings.trading_enabled else settings.trading_state,
            state_reason="kill switch off" if not settings.trading_enabled else settings.state_reason,
        )
        return MoneyReport(out, account, now, missing)

    def _users_markets(self, users: list[str]) -> set[str]:
        out: set[str] = set()
        for u in users:
            with self._db.transaction(u) as conn:
                out |= {p.market for p in ledger.user_positions(conn, self._venue.mode) if p.quantity > 0}
        return out

    def _prices(self, markets: list[str]) -> tuple[dict[str, Decimal], list[str]]:
        prices: dict[str, Decimal] = {}
        missing: list[str] = []
        for m in markets:
            try:
                prices.update(self._marks.prices([m]))
            except ExchangeError as exc:
                log.warning("no price for %s in the money view: %s", m, type(exc).__name__)
                missing.append(m)
        return prices, missing

    def _balance(self, market: str) -> Decimal | None:
        try:
            return self._venue.free_balance(base_asset(market), market)
        except ExchangeError as exc:
            log.warning("no balance for %s in the money view: %s", market, type(exc).__name__)
            return None

    def _user(self, user_id: str, mode: str, prices: dict[str, Decimal], now: datetime, check_books: bool) -> UserMoney:
        day_start = start_of_utc_day(now)
        with self._db.transaction(user_id) as conn:
            positions = ledger.user_positions(conn, mode)
            realized_today = books.realized_since(conn, mode=mode, since=day_start)
            state_row = books.trading_state(conn, mode) or {}
            policy = policies.live_policy(conn, user_id)
            hour_start = now - timedelta(hours=1)
            counts = repository.user_figures(
                conn,
                mode=mode,
                market="",
                side=Side.BUY,
                day_start=day_start,
                hour_start=hour_start,
                since=min(day_start, hour_start),
            )
            check = ledger.check(conn, user_id, mode) if check_books else None
        figures = breaker.figures(positions, realized_today, prices)
        peak = state_row.get("peak_pnl_eur")
        peak_eur = None if peak is None else Decimal(peak)
        drawdown = max(ZERO, (peak_eur if peak_eur is not None else ZERO) - figures.cumulative_pnl_eur)
        if not policy.trading_enabled:
            state, reason = breaker.HALTED, "kill switch off"
        else:
            state, reason = str(state_row.get("state") or breaker.ACTIVE), str(state_row.get("reason") or "")
        return UserMoney(
            user_id=user_id,
            positions=[
                PricedPosition(p, prices.get(p.market), ledger.unrealized(p, prices.get(p.market))) for p in positions
            ],
            figures=figures,
            drawdown_eur=drawdown,
            peak_eur=peak_eur,
            max_daily_loss_eur=policy.max_daily_loss_eur,
            max_drawdown_eur=policy.max_drawdown_eur,
            notional_today_eur=counts.notional_today_eur,
            daily_notional_cap_eur=policy.daily_notional_cap_eur,
            trades_today=counts.trades_today,
            daily_trade_cap=policy.daily_trade_cap,
            trades_last_hour=counts.trades_last_hour,
            hourly_trade_cap=policy.hourly_trade_cap,
            state=state,
            state_reason=reason,
            books_check=check,
        )
