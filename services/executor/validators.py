"""Every rule a proposal must pass before money moves, each a small pure function.

A check reads :class:`Facts` (gathered under the per-user lock by execution.py) and returns a
:class:`Check` record ``{name, passed, observed, limit, reason}``, stored with the execution and
in the audit trail. :func:`run_validators` runs the validators (docs/design.md#checking-a-proposal) in their fixed order
and reports *every* failure, not only the first. Freshness and the kill switch are checks of
their own, run before the validators (and the kill switch again before the order is sent).

Caps, cooldown, anti-flip and the notional caps read executions of the same mode that count
(every status except FAILED and zero-fill CANCELED), timed by their claim; the repository
gathers those figures, this module only compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from services.executor.model import MarketInfo, Proposal, Side
from shared import order_size as size_rule
from shared.fields import CONFIDENCE_VALUES
from shared.policy import Policy

# Reason codes: the PreconditionViolation types a caller may see.
PROPOSAL_EXPIRED = "PROPOSAL_EXPIRED"
PROPOSAL_CHANGED = "PROPOSAL_CHANGED"
TRADING_DISABLED = "TRADING_DISABLED"
ALLOWLIST_EMPTY_DENY_BY_DEFAULT = "ALLOWLIST_EMPTY_DENY_BY_DEFAULT"
MARKET_NOT_ALLOWLISTED = "MARKET_NOT_ALLOWLISTED"
MARKET_NOT_TRADING = "MARKET_NOT_TRADING"
ORDER_TOO_SMALL = size_rule.ORDER_TOO_SMALL
ORDER_TOO_LARGE = size_rule.ORDER_TOO_LARGE
CONFIDENCE_NOT_ALLOWED = "CONFIDENCE_NOT_ALLOWED"
CONFIDENCE_BELOW_MINIMUM = "CONFIDENCE_BELOW_MINIMUM"
COOLDOWN_ACTIVE = "COOLDOWN_ACTIVE"
ANTI_FLIP_ACTIVE = "ANTI_FLIP_ACTIVE"
DAILY_CAP_REACHED = "DAILY_CAP_REACHED"
HOURLY_CAP_REACHED = "HOURLY_CAP_REACHED"
DAILY_NOTIONAL_CAP_REACHED = "DAILY_NOTIONAL_CAP_REACHED"
ACCOUNT_NOTIONAL_CAP_REACHED = "ACCOUNT_NOTIONAL_CAP_REACHED"
PRICE_MOVED = "PRICE_MOVED"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"


@dataclass(frozen=True)
class Check:
    """One rule's verdict. ``overridden`` marks a check skipped by an operator override."""

    name: str
    passed: bool
    observed: str
    limit: str
    reason: str = ""
    overridden: bool = False

    def record(self) -> dict[str, Any]:
        """The JSON record stored in preflight and the audit trail."""
        return asdict(self)


@dataclass(frozen=True)
class Facts:
    """Everything the validators look at, gathered for one attempt.

    Network figures (price, balance, market rules) were fetched before the transaction; the
    figures read from trade_executions were read under the per-user lock (and, for the
    account-wide ones, under the account row lock), so they cannot change before the claim.
    """

    proposal: Proposal
    policy: Policy
    now: datetime
    market: MarketInfo | None  # None: the exchange does not list the market
    price_now: Decimal | None  # None: the exchange has no price for the market (not listed)
    free_balance: Decimal  # EUR for a buy, the base asset for a sell (what the exchange calls available)
    in_flight_eur: Decimal  # same side's orders the balance may not reflect yet (account-wide)
    last_on_market_at: datetime | None  # latest counting execution on this market, any side
    last_opposite_at: datetime | None  # latest counting execution on this market, opposite side
    trades_today: int
    trades_last_hour: int
    notional_today_eur: Decimal  # this user's claimed EUR this UTC day
    account_notional_today_eur: Decimal  # every user's claimed EUR this UTC day
    account_daily_notional_cap_eur: Decimal
    override_cooldown: bool = False
    override_anti_flip: bool = False
    position_base: Decimal = Decimal(0)  # the user's own holding of the base asset (its books)
    sells_in_flight_base: Decimal = Decimal(0)  # the user's SELLs of this market not final, unfilled part

    @property
    def amount(self) -> Decimal:
        """The order size in EUR at the market's precision (rounded down, never up)."""
        return order_amount(self.proposal.amount_quote, self.market)

    @property
    def sell_base(self) -> Decimal:
        """What a SELL sends: :attr:`amount` in the base asset at the checked price (0 for a BUY)."""
        if self.proposal.side is not Side.SELL:
            return Decimal(0)
        return base_amount(self.amount, self.price_now, self.market)


def order_amount(amount_quote: Decimal, market: MarketInfo | None) -> Decimal:
    """``amount_quote`` at the market's notional precision, rounded down."""
    places = 2 if market is None else max(0, min(market.notional_decimals, 2))
    return amount_quote.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def base_amount(amount_eur: Decimal, price: Decimal | None, market: MarketInfo | None) -> Decimal:
    """``amount_eur`` in the base asset at ``price``, rounded DOWN to the market's quantity
    decimals, so the order never sells more than was checked (0 without a price or market)."""
    if not price or market is None:
        return Decimal(0)
    step = Decimal(1).scaleb(-market.quantity_decimals)
    return (amount_eur / price).quantize(step, rounding=ROUND_DOWN)


def eur(value: Decimal) -> str:
    """A EUR amount as text for a record."""
    return f"{value.quantize(Decimal('0.01'))} EUR"


# ------------------------------------------------------------------ checks before the validators


def freshness(proposal: Proposal, now: datetime) -> Check:
    """An expired proposal (marked so, or past its expiry) is never executed."""
    expired = proposal.status != "open" or proposal.expires_at <= now
    return Check(
        name="freshness",
        passed=not expired,
        observed=f"status {proposal.status}, expires {proposal.expires_at.isoformat()}",
        limit=f"open and expiring after {now.isoformat()}",
        reason=PROPOSAL_EXPIRED if expired else "",
    )


def same_version(fetched_for: Proposal, under_lock: Proposal) -> Check:
    """The proposal read under the lock must be the very version the market data was fetched
    for: proposals are immutable (migration 0096), so a difference means something changed it
    behind the database's back, and the fetched facts are not the proposal's. The status is the
    one change a proposal makes (open → expired): the freshness check judges that one."""
    same = replace(fetched_for, status=under_lock.status) == under_lock
    return Check(
        name="proposal_version",
        passed=same,
        observed="unchanged" if same else "changed since the market data was fetched",
        limit="the version the market data was fetched for",
        reason="" if same else PROPOSAL_CHANGED,
    )


def kill_switch(global_enabled: bool, user_enabled: bool) -> Check:
    """The global and the user's kill switch must both allow trading."""
    enabled = global_enabled and user_enabled
    return Check(
        name="kill_switch",
        passed=enabled,
        observed=f"global {'on' if global_enabled else 'off'}, user {'on' if user_enabled else 'off'}",
        limit="both on",
        reason="" if enabled else TRADING_DISABLED,
    )


# ------------------------------------------------------------------ the validators, in order


def allowlist(f: Facts) -> Check:
    """Deny by default: an empty allowlist denies every market."""
    markets = f.policy.allowed_markets
    if not markets:
        return Check("allowlist", False, f.proposal.market, "allowlist is empty", ALLOWLIST_EMPTY_DENY_BY_DEFAULT)
    listed = f.proposal.market in markets
    return Check("allowlist", listed, f.proposal.market, ",".join(markets), "" if listed else MARKET_NOT_ALLOWLISTED)


def market_status(f: Facts) -> Check:
    """The exchange lists the market and it accepts market orders now."""
    status = "not listed" if f.market is None else f.market.status
    ok = status == "trading"
    return Check("market_status", ok, status, "trading", "" if ok else MARKET_NOT_TRADING)


def order_size(f: Facts) -> Check:
    """Within the policy's min/max and the market's minimums (quote and base) and maximum
    (the rule itself: shared/order_size.py, which the scanner sizes its ideas by)."""
    amount = f.amount
    bounds = [f"policy {f.policy.min_order_eur}..{f.policy.max_order_eur} EUR"]
    limits = size_rule.OrderSizeLimits(policy_min_eur=f.policy.min_order_eur, policy_max_eur=f.policy.max_order_eur)
    base_amount: Decimal | None = None
    if f.market is not None:
        base_amount = amount / f.price_now if f.price_now else Decimal(0)
        bounds.append(
            f"market {f.market.min_order_quote}..{f.market.max_order_quote} EUR, min {f.market.min_order_base} {f.market.base}"
        )
        limits = replace(
            limits,
            market_min_eur=f.market.min_order_quote,
            market_max_eur=f.market.max_order_quote,
            market_min_base=f.market.min_order_base,
        )
    reason = limits.verdict(amount, base_amount=base_amount)
    observed = eur(amount)
    if amount != f.proposal.amount_quote:
        observed += f" (proposed {f.proposal.amount_quote}, rounded down to the market's precision)"
    return Check("order_size", not reason, observed, "; ".join(bounds), reason)


def confidence(f: Facts) -> Check:
    """One of :data:`shared.fields.CONFIDENCE_VALUES` and at least the policy's minimum."""
    value = f.proposal.confidence
    reason = ""
    if value not in CONFIDENCE_VALUES:
        reason = CONFIDENCE_NOT_ALLOWED
    elif value < f.policy.min_confidence:
        reason = CONFIDENCE_BELOW_MINIMUM
    levels = "/".join(map(str, CONFIDENCE_VALUES))
    return Check("confidence", not reason, str(value), f">= {f.policy.min_confidence}, one of {levels}", reason)


def cooldown(f: Facts) -> Check:
    """No second trade on a market within the policy's cooldown (operator override skips it)."""
    return _window_check(
        "cooldown",
        last=f.last_on_market_at,
        seconds=f.policy.cooldown_seconds,
        now=f.now,
        overridden=f.override_cooldown,
        reason=COOLDOWN_ACTIVE,
    )


def anti_flip(f: Facts) -> Check:
    """No opposite-side trade on a market within the anti-flip window (operator override skips it)."""
    return _window_check(
        "anti_flip",
        last=f.last_opposite_at,
        seconds=f.policy.anti_flip_seconds,
        now=f.now,
        overridden=f.override_anti_flip,
        reason=ANTI_FLIP_ACTIVE,
    )


def daily_cap(f: Facts) -> Check:
    """Trades per UTC day: claims at or after 00:00:00 UTC of ``now``'s day (``claimed_at >=
    day_start``), so a trade claimed at 23:59:59 stops counting at midnight."""
    return _count_check("daily_cap", f.trades_today, "today", f.policy.daily_trade_cap, DAILY_CAP_REACHED)


def hourly_cap(f: Facts) -> Check:
    """Trades in the last 60 minutes: a trade counts while ``now - claimed_at <= 60 min`` (the
    window is closed at both ends; repository.user_figures counts ``claimed_at >= now - 1 hour``),
    so a trade claimed exactly 60 minutes ago still counts and one a microsecond older does not."""
    return _count_check(
        "hourly_cap", f.trades_last_hour, "in the last hour", f.policy.hourly_trade_cap, HOURLY_CAP_REACHED
    )


def daily_notional(f: Facts) -> Check:
    """This user's EUR per UTC day, this order included."""
    return _notional_check(
        "daily_notional", f.notional_today_eur, f.amount, f.policy.daily_notional_cap_eur, DAILY_NOTIONAL_CAP_REACHED
    )


def account_notional(f: Facts) -> Check:
    """Every user's EUR per UTC day on the deployment's one exchange account, this order included."""
    return _notional_check(
        "account_notional",
        f.account_notional_today_eur,
        f.amount,
        f.account_daily_notional_cap_eur,
        ACCOUNT_NOTIONAL_CAP_REACHED,
    )


def price_guard(f: Facts) -> Check:
    """Refuse when the price moved more than the policy's percentage since the proposal."""
    snapshot = f.proposal.snapshot_price
    limit = f"<= {f.policy.price_guard_pct}%"
    if snapshot is None:
        return Check("price_guard", False, "the proposal carries no snapshot price", limit, PRICE_MOVED)
    if f.price_now is None:
        return Check("price_guard", False, "no current price at the exchange", limit, PRICE_MOVED)
    moved = abs(f.price_now - snapshot) / snapshot * 100
    ok = moved <= f.policy.price_guard_pct
    observed = f"{moved.quantize(Decimal('0.001'))}% ({snapshot} -> {f.price_now})"
    return Check("price_guard", ok, observed, limit, "" if ok else PRICE_MOVED)


def balance(f: Facts) -> Check:
    """Enough free balance, net of the same side's orders still in flight on the account."""
    if f.proposal.side is Side.BUY:
        free_eur = f.free_balance
        observed = f"{eur(f.free_balance)} free, {eur(f.in_flight_eur)} in flight"
    else:
        base = f.market.base if f.market is not None else "base"
        free_eur = f.free_balance * (f.price_now or Decimal(0))
        observed = f"{f.free_balance} {base} free (~{eur(free_eur)}), {eur(f.in_flight_eur)} in flight"
    ok = free_eur - f.in_flight_eur >= f.amount
    return Check("balance", ok, observed, f">= {eur(f.amount)}", "" if ok else INSUFFICIENT_BALANCE)


def position(f: Facts) -> Check:
    """A SELL sells only the user's own coins: its base amount must fit in the user's position
    (per-user books on the shared account) net of the user's SELLs still in flight."""
    if f.proposal.side is Side.BUY:
        return Check("position", True, "buy", "sells only")
    asset = f.market.base if f.market is not None else "base"
    base = f.sell_base
    available = f.position_base - f.sells_in_flight_base
    ok = Decimal(0) < base <= available
    observed = f"{base} {asset} ({eur(f.amount)} at {f.price_now})"
    limit = f"<= {available} {asset} ({f.position_base} held, {f.sells_in_flight_base} in flight)"
    return Check("position", ok, observed, limit, "" if ok else INSUFFICIENT_POSITION)


VALIDATORS: tuple[Callable[[Facts], Check], ...] = (
    allowlist,
    market_status,
    order_size,
    confidence,
    cooldown,
    anti_flip,
    daily_cap,
    hourly_cap,
    daily_notional,
    account_notional,
    price_guard,
    balance,
    position,
)


def run_validators(facts: Facts) -> list[Check]:
    """Every validator, in order; all of them run, so a rejection lists every failure."""
    return [validator(facts) for validator in VALIDATORS]


def failures(checks: list[Check]) -> list[Check]:
    """The checks that failed."""
    return [c for c in checks if not c.passed]


def _count_check(name: str, count: int, when: str, cap: int, reason: str) -> Check:
    ok = count < cap
    return Check(name, ok, f"{count} {when}", f"< {cap}", "" if ok else reason)


def _notional_check(name: str, so_far: Decimal, amount: Decimal, cap: Decimal, reason: str) -> Check:
    ok = so_far + amount <= cap
    return Check(name, ok, f"{eur(so_far)} today + {eur(amount)}", f"<= {eur(cap)}", "" if ok else reason)


def _window_check(
    name: str, *, last: datetime | None, seconds: int, now: datetime, overridden: bool, reason: str
) -> Check:
    """Active while the last trade is younger than ``seconds``. ``overridden`` (the operator's
    flag) marks the check only when it actually skipped a failing check: an override of a window
    with no trade in it, or of a window already over, changes nothing and is not recorded as one."""
    limit = f"{seconds}s since the last trade"
    if last is None:
        return Check(name, True, "no trade in the window", limit)
    elapsed = now - last
    active = seconds > 0 and elapsed < timedelta(seconds=seconds)
    observed = f"last trade {int(elapsed.total_seconds())}s ago"
    if active and overridden:
        return Check(name, True, observed + " (operator override)", limit, overridden=True)
    return Check(name, not active, observed, limit, reason if active else "")
