"""Trading policies, account settings and kill switches: what a policy may hold, the
deny-everything default, and the operations on them (GetPolicy, UpdatePolicy,
UpdateAccountSettings, SetTradingEnabled).

Every policy write takes the per-user trading lock (the one ExecuteProposal's check-and-claim
holds), so a policy never changes in the middle of a claim; the account-wide writes (the global
kill switch, the account daily notional cap) take the account lock exclusively, which every
execution holds shared. UpdatePolicy and UpdateAccountSettings are optimistic: the caller's
``expected_version`` must equal the stored one (0 to create a policy), else ABORTED. Neither
touches a kill switch (it is kept); SetTradingEnabled flips it, audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from services.executor import SERVICE, repository
from shared import audit, fields
from shared.clock import Clock
from shared.db import SYSTEM_USER, Conn, Database
from shared.db.locks import LockSpace, lock_account, lock_user
from shared.errors import Aborted, FieldViolation, InvalidArgument
from shared.policy import Policy

log = logging.getLogger(__name__)
MAX_WINDOW_SECONDS = 30 * 24 * 3600
MAX_TRADE_CAP = 100_000
MAX_EUR = Decimal("1000000000")
MAX_MARKETS = 200


def default_policy(user_id: str) -> Policy:
    """The policy of a user who has none: an empty allowlist, so every proposal is denied."""
    return Policy(
        user_id=user_id,
        version=0,
        allowed_markets=(),
        min_order_eur=Decimal("5.00"),
        max_order_eur=Decimal("100.00"),
        min_confidence=75,
        cooldown_seconds=900,
        anti_flip_seconds=3600,
        daily_trade_cap=10,
        hourly_trade_cap=3,
        daily_notional_cap_eur=Decimal("500.00"),
        price_guard_pct=Decimal("2.000"),
        auto_execute=False,
        trading_enabled=True,
    )


def live_policy(conn: Conn, user_id: str) -> Policy:
    """The transaction user's stored policy; a user without one has the default policy (the one
    default everywhere: trading on, nothing allowlisted)."""
    row = repository.policy(conn)
    return Policy.from_row(row) if row else default_policy(user_id)


def problems(policy: Policy, known_markets: frozenset[str] | None) -> list[FieldViolation]:
    """Every reason ``policy`` cannot be stored, each naming its field (``policy.<field>``).

    ``known_markets`` is the exchange's market list when it could be fetched; without it only
    the format of a market is checked.
    """
    return [*_market_problems(policy, known_markets), *_limit_problems(policy)]


def _market_problems(policy: Policy, known_markets: frozenset[str] | None) -> list[FieldViolation]:
    out: list[FieldViolation] = []

    def bad(field: str, text: str) -> None:
        out.append(FieldViolation(f"policy.{field}", text))

    if len(policy.allowed_markets) > MAX_MARKETS:
        bad("allowed_markets", f"at most {MAX_MARKETS} markets")
    if len(set(policy.allowed_markets)) != len(policy.allowed_markets):
        bad("allowed_markets", "lists a market twice")
    if known_markets is not None:
        unknown = sorted(m for m in policy.allowed_markets if m not in known_markets)
        if unknown:
            bad("allowed_markets", f"not traded at the exchange: {', '.join(unknown[:5])}")
    return out


def _limit_problems(policy: Policy) -> list[FieldViolation]:
    out: list[FieldViolation] = []

    def bad(field: str, text: str) -> None:
        out.append(FieldViolation(f"policy.{field}", text))

    for field, amount in (
        ("min_order_eur", policy.min_order_eur),
        ("max_order_eur", policy.max_order_eur),
        ("daily_notional_cap_eur", policy.daily_notional_cap_eur),
        ("max_daily_loss_eur", policy.max_daily_loss_eur),
        ("max_drawdown_eur", policy.max_drawdown_eur),
    ):
        if amount is not None and (amount < 0 or amount > MAX_EUR):
            bad(field, f"must be between 0 and {MAX_EUR}")
    if policy.max_order_eur < policy.min_order_eur:
        bad("max_order_eur", "must be at least min_order_eur")
    if policy.min_confidence not in fields.CONFIDENCE_VALUES:
        bad("min_confidence", f"must be one of {fields.CONFIDENCE_TEXT}")
    for field, seconds in (("cooldown", policy.cooldown_seconds), ("anti_flip_window", policy.anti_flip_seconds)):
        if seconds < 0 or seconds > MAX_WINDOW_SECONDS:
            bad(field, f"must be between 0 and {MAX_WINDOW_SECONDS} seconds")
    for field, cap in (("daily_trade_cap", policy.daily_trade_cap), ("hourly_trade_cap", policy.hourly_trade_cap)):
        if cap < 0 or cap > MAX_TRADE_CAP:
            bad(field, f"must be between 0 and {MAX_TRADE_CAP}")
    if policy.price_guard_pct < 0 or policy.price_guard_pct > 100:
        bad("price_guard_pct", "must be between 0 and 100")
    return out


@dataclass(frozen=True)
class AccountSettings:
    """What every user of the deployment's one exchange account shares (oracle.account_settings)."""

    trading_enabled: bool
    daily_notional_cap_eur: Decimal
    version: int
    daily_loss_limit_eur: Decimal | None = None  # the account's loss breaker limit; None: none
    trading_state: str = "ACTIVE"  # ACTIVE or REDUCING (breaker.py); HALTED is trading_enabled off
    state_reason: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AccountSettings:
        limit = row.get("daily_loss_limit_eur")
        return cls(
            bool(row["trading_enabled"]),
            Decimal(row["daily_notional_cap_eur"]),
            int(row["version"]),
            daily_loss_limit_eur=None if limit is None else Decimal(limit),
            trading_state=str(row.get("trading_state") or "ACTIVE"),
            state_reason=str(row.get("state_reason") or ""),
        )


def account_problems(
    daily_notional_cap_eur: Decimal, daily_loss_limit_eur: Decimal | None = None
) -> list[FieldViolation]:
    """Every reason the account settings cannot be stored, each naming its field."""
    out = []
    if daily_notional_cap_eur < 0 or daily_notional_cap_eur > MAX_EUR:
        out.append(FieldViolation("settings.daily_notional_cap_eur", f"must be between 0 and {MAX_EUR}"))
    if daily_loss_limit_eur is not None and (daily_loss_limit_eur < 0 or daily_loss_limit_eur > MAX_EUR):
        out.append(FieldViolation("settings.daily_loss_limit_eur", f"must be between 0 and {MAX_EUR}"))
    return out


class PolicyBook:
    """GetPolicy, UpdatePolicy, UpdateAccountSettings and SetTradingEnabled over the database."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        known_markets: Callable[[], frozenset[str] | None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._known_markets = known_markets

    def get(self, user_id: str) -> tuple[Policy, AccountSettings]:
        """The user's live policy (the deny-everything default when none is stored) and the live
        account settings."""
        with self._db.transaction(user_id) as conn:
            policy = live_policy(conn, user_id)
            account = repository.account_settings(conn)
        return policy, AccountSettings.from_row(account)

    def update_account(
        self,
        *,
        daily_notional_cap_eur: Decimal,
        expected_version: int,
        principal: str,
        daily_loss_limit_eur: Decimal | None = None,
    ) -> AccountSettings:
        """Set the account daily notional cap if the stored version is ``expected_version``.

        Takes the account lock exclusively, so it waits for every execution in its check-and-claim
        (they hold it shared) and every later claim reads the new cap; audited in the ``_system``
        chain with the old and the new values. The global kill switch is kept.
        """
        found = account_problems(daily_notional_cap_eur, daily_loss_limit_eur)
        if found:
            raise InvalidArgument(found)
        now = self._clock.now()
        with self._db.transaction(SYSTEM_USER) as conn:
            lock_account(conn, exclusive=True)
            old = AccountSettings.from_row(repository.account_settings(conn))
            row = repository.update_account_settings(
                conn,
                daily_notional_cap_eur=daily_notional_cap_eur,
                daily_loss_limit_eur=daily_loss_limit_eur,
                expected_version=expected_version,
                now=now,
                by=principal,
            )
            if row is None:
                raise Aborted(
                    f"account settings version is {old.version}, not {expected_version}: re-read and retry",
                    reason="ACCOUNT_SETTINGS_VERSION_CONFLICT",
                    metadata={"stored_version": str(old.version), "expected_version": str(expected_version)},
                )
            new = AccountSettings.from_row(row)
            audit.append(
                conn,
                service=SERVICE,
                kind="account.settings_updated",
                principal=principal,
                payload={"old": _account_json(old), "new": _account_json(new)},
            )
        log.warning(
            "account daily notional cap set to %s EUR (was %s EUR), version %d",
            new.daily_notional_cap_eur,
            old.daily_notional_cap_eur,
            new.version,
        )
        return new

    def update(self, policy: Policy, *, expected_version: int, principal: str) -> Policy:
        """Store ``policy`` if the stored version is ``expected_version`` (0: none stored yet)."""
        found = problems(policy, self._known_markets())  # network before the transaction
        if found:
            raise InvalidArgument(found)
        now = self._clock.now()
        with self._db.transaction(policy.user_id) as conn:
            lock_user(conn, LockSpace.USER_TRADING, policy.user_id)
            current = repository.policy(conn)
            stored_version = int(current["version"]) if current else 0
            if stored_version != expected_version:
                row = None
            elif current is None:
                row = repository.insert_policy(conn, replace(policy, trading_enabled=True), now=now, by=principal)
            else:
                row = repository.update_policy(conn, policy, expected_version=expected_version, now=now, by=principal)
            if row is None:
                raise Aborted(
                    f"policy version is {stored_version}, not {expected_version}: re-read and retry",
                    reason="POLICY_VERSION_CONFLICT",
                    metadata={"stored_version": str(stored_version), "expected_version": str(expected_version)},
                )
            stored = Policy.from_row(row)
            audit.append(
                conn,
                service=SERVICE,
                kind="policy.updated",
                subject_id=policy.user_id,
                principal=principal,
                payload={"version": stored.version, "policy": _policy_json(stored)},
            )
        return stored

    def set_user_trading(self, user_id: str, enabled: bool, *, reason: str, principal: str) -> bool:
        """Flip one user's kill switch (a user with no policy gets the default one, switched)."""
        now = self._clock.now()
        with self._db.transaction(user_id) as conn:
            lock_user(conn, LockSpace.USER_TRADING, user_id)
            row = repository.set_user_trading_enabled(conn, enabled, now=now, by=principal)
            if row is None:
                switched = replace(default_policy(user_id), trading_enabled=enabled)
                row = repository.insert_policy(conn, switched, now=now, by=principal)
            audit.append(
                conn,
                service=SERVICE,
                kind="kill_switch.user",
                subject_id=user_id,
                principal=principal,
                payload={"enabled": enabled, "reason": reason, "policy_version": int(row["version"])},
            )
        log.warning(
            "user kill switch %s", "off (trading on)" if enabled else "ON (trading off)", extra={"user": user_id}
        )
        return enabled

    def set_global_trading(self, enabled: bool, *, reason: str, principal: str) -> bool:
        """Flip the global kill switch; waits for executions in their check-and-claim step (which
        writes the claim as SUBMITTING) to commit, and every later one sees the new value."""
        now = self._clock.now()
        with self._db.transaction(SYSTEM_USER) as conn:
            lock_account(conn, exclusive=True)
            row = repository.set_global_trading_enabled(conn, enabled, now=now, by=principal)
            audit.append(
                conn,
                service=SERVICE,
                kind="kill_switch.global",
                principal=principal,
                payload={"enabled": enabled, "reason": reason, "account_settings_version": int(row["version"])},
            )
        log.warning("GLOBAL kill switch %s", "off (trading on)" if enabled else "ON (trading off)")
        return enabled


def _account_json(a: AccountSettings) -> dict[str, object]:
    return {
        "daily_notional_cap_eur": str(a.daily_notional_cap_eur),
        "daily_loss_limit_eur": "" if a.daily_loss_limit_eur is None else str(a.daily_loss_limit_eur),
        "trading_enabled": a.trading_enabled,
        "version": a.version,
    }


def _policy_json(p: Policy) -> dict[str, object]:
    return {
        "allowed_markets": list(p.allowed_markets),
        "min_order_eur": str(p.min_order_eur),
        "max_order_eur": str(p.max_order_eur),
        "min_confidence": p.min_confidence,
        "cooldown_seconds": p.cooldown_seconds,
        "anti_flip_seconds": p.anti_flip_seconds,
        "daily_trade_cap": p.daily_trade_cap,
        "hourly_trade_cap": p.hourly_trade_cap,
        "daily_notional_cap_eur": str(p.daily_notional_cap_eur),
        "price_guard_pct": str(p.price_guard_pct),
        "auto_execute": p.auto_execute,
        "trading_enabled": p.trading_enabled,
        "max_daily_loss_eur": "" if p.max_daily_loss_eur is None else str(p.max_daily_loss_eur),
        "max_drawdown_eur": "" if p.max_drawdown_eur is None else str(p.max_drawdown_eur),
    }
