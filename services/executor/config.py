"""The executor's configuration: every ``EXECUTOR_`` variable, and the rule that the mode and the
trade keys must agree.

``EXECUTOR_MODE`` is required: ``live`` sends real orders and needs a trade key, its secret and
the operator id, and refuses ``EXECUTOR_AUTH_MODE=insecure-dev``; ``paper`` sends nothing and must hold no trade key at all. Every timing knob of
the reconciler is here so tests can run it short. :func:`load_settings` names every bad variable
at once.

Account-wide limits are not configuration: the account daily notional cap lives in the database
(oracle.account_settings, UpdateAccountSettings), so every replica enforces one value. The old
``EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR`` is refused (:data:`RETIRED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, SecretStr

from shared.config import AuthMode, ConfigError, ServiceSettings, load
from shared.exchange.sdk import PRODUCTION_REST_URL

PREFIX = "EXECUTOR_"
INT64_MAX = 2**63 - 1


class Mode(StrEnum):
    """Whether orders move real money."""

    LIVE = "live"
    PAPER = "paper"  # every validator, claim and transition as live; filled at the public price, nothing sent


class ExecutorSettings(ServiceSettings):
    """Everything the executor reads from its environment (prefix EXECUTOR_)."""

    mode: Mode
    """live or paper. Required: the executor never guesses whether money moves."""

    exchange_url: str = Field(default=PRODUCTION_REST_URL, pattern=r"^https?://[^\s]+$")
    """Bitvavo REST base URL (the simulator's in tests and the demo)."""

    bitvavo_api_key: SecretStr | None = None
    """Trade API key (live mode only)."""

    bitvavo_api_secret: SecretStr | None = None
    """Secret of the trade API key (live mode only)."""

    operator_id: int | None = Field(default=None, ge=-(2**63), le=INT64_MAX)
    """Bitvavo operatorId sent with every order (int64; required in live mode)."""

    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Longest wait for one exchange request."""

    access_window_ms: int = Field(default=10000, ge=100, le=60000)
    """Bitvavo access window: the exchange refuses a request that arrives later than this."""

    reconcile_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often the reconciler runs (it also runs at startup and on demand)."""

    reconcile_safety_margin_seconds: float = Field(default=30.0, ge=0, le=3600)
    """Added to request timeout and access window before an order not found is proven absent."""

    stale_claimed_seconds: float = Field(default=60.0, gt=0, le=86400)
    """A CLAIMED execution older than this was never sent (its process died): it becomes FAILED."""

    reconcile_batch: int = Field(default=500, ge=1, le=100000)
    """Most executions one reconciler pass looks at (the longest-waiting first)."""

    reconcile_weight_per_minute: int = Field(default=300, ge=1, le=1000)
    """Exchange weight the reconciler may spend in any minute (Bitvavo allows 1000 per key, shared
    with the orders; a history lookup costs 5 per 24 h window and endpoint)."""

    reconcile_backoff_seconds: float = Field(default=30.0, gt=0, le=3600)
    """First wait before an execution whose reconciliation failed (or found nothing during the
    found-late watch) is looked at again; doubles each time."""

    reconcile_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=86400)
    """Longest such wait."""

    found_late_watch_hours: float = Field(default=48.0, gt=0, le=720)
    """How long an execution FAILED as PROVEN_ABSENT is still looked up (an order found is adopted)."""

    market_cache_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How long the exchange's market list (minimums, precision) is reused."""

    marks_cache_seconds: float = Field(default=3.0, ge=0, le=10)
    """How long a held market's price serves the loss breaker and the money view ("a few
    seconds": the breaker must see a falling market)."""

    balance_cache_seconds: float = Field(default=10.0, ge=0, le=60)
    """How long a free balance read from the exchange (GET /balance, weight 5) is reused (0: read
    for every execution). Conservative meanwhile: every execution in flight or settled since it
    was read is counted against it, and an order refused for balance (216) drops it
    (services/executor/balances.py)."""

    paper_balance_eur: Decimal = Field(default=Decimal("10000"), ge=0, max_digits=20, decimal_places=2)
    """Paper mode: the free EUR balance the balance check sees."""

    paper_fee_rate: Decimal = Field(default=Decimal("0.0025"), ge=0, le=Decimal("0.1"))
    """Paper mode: taker fee charged on a simulated fill."""

    paper_price_max_age_seconds: float = Field(default=1.0, ge=0, le=1.0)
    """Paper mode: how long a public price is reused (at most a second; 0: never). Live mode
    always asks for a fresh one."""


def load_settings(environ: Mapping[str, str]) -> ExecutorSettings:
    """The settings of ``environ``; ConfigError names every bad variable, including a mode that
    does not match the keys."""
    problems: list[str] = []
    settings: ExecutorSettings | None = None
    try:
        settings = load(ExecutorSettings, environ, prefix=PREFIX)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(_mode_problems(environ))
    problems.extend(_retired_problems(environ))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


# Variables the executor no longer reads, and where their setting lives now. The executor refuses
# to start while one is set, so nobody believes a stale value is in force.
RETIRED: Mapping[str, str] = {
    PREFIX + "ACCOUNT_DAILY_NOTIONAL_CAP_EUR": (
        "no longer read: the account daily notional cap now lives in the database"
        " (oracle.account_settings) and is set with the UpdateAccountSettings RPC, e.g."
        " 'oraclectl account set --daily-notional-cap-eur <EUR>'; remove this variable"
    ),
}


def _retired_problems(environ: Mapping[str, str]) -> list[str]:
    """A retired variable that is still set (even empty) is an error, not silently ignored."""
    return [f"{name}: {text}" for name, text in RETIRED.items() if name in environ]


def _mode_problems(environ: Mapping[str, str]) -> list[str]:
    """Cross-variable rules: live needs key, secret and operator id; paper holds no trade key."""
    mode = environ.get(PREFIX + "MODE", "")
    key_vars = (PREFIX + "BITVAVO_API_KEY", PREFIX + "BITVAVO_API_SECRET")
    if mode == Mode.LIVE:
        needed = (*key_vars, PREFIX + "OPERATOR_ID")
        problems = [f"{name}: required when {PREFIX}MODE=live" for name in needed if not environ.get(name)]
        if environ.get(PREFIX + "AUTH_MODE") == AuthMode.INSECURE_DEV:
            # insecure-dev makes every caller, the scanner included, a principal allowed to override.
            problems.append(f"{PREFIX}AUTH_MODE: insecure-dev is refused when {PREFIX}MODE=live (real money)")
        return problems
    if mode == Mode.PAPER:
        return [
            f"{name}: must be unset when {PREFIX}MODE=paper (no trade key)" for name in key_vars if environ.get(name)
        ]
    return []
