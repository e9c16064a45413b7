"""The scanner's configuration: ``SCANNER_*`` variables, and the refusal to hold a trade key.

The scanner proposes; it never trades (docs/design.md#key-separation). It reads only its own prefixed
variables, and it refuses to start — naming the variable — when its environment holds any
trade key at all (the executor's ``EXECUTOR_BITVAVO_API_KEY``/``_SECRET`` or any variable whose
name says TRADE and KEY or SECRET), whatever the value, even empty. Its own exchange key is a
read-only view key; that it cannot trade is proven at startup by ``ReadonlyAccount`` (app.py).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from enum import StrEnum

from pydantic import Field, SecretStr

from shared.config import ConfigError, ServiceSettings, load
from shared.exchange.sdk import PRODUCTION_REST_URL

PREFIX = "SCANNER_"

# The executor's trade key variables, named exactly.
EXECUTOR_TRADE_KEY_VARIABLES = ("EXECUTOR_BITVAVO_API_KEY", "EXECUTOR_BITVAVO_API_SECRET")


class AnalystChoice(StrEnum):
    """Which analyst a scan uses when the request does not say."""

    RULES = "rules"
    LLM = "llm"


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ScannerSettings(ServiceSettings):
    """Everything the scanner reads from ``SCANNER_*`` variables."""

    exchange_url: str = Field(default=PRODUCTION_REST_URL, pattern=r"^https?://\S+$")
    """Bitvavo REST base URL (the exchange simulator's in tests and the demo)."""

    exchange_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Timeout of one exchange request."""

    bitvavo_api_key: SecretStr | None = None
    """Read-only (view) API key; unset: public market data only, unauthenticated."""

    bitvavo_api_secret: SecretStr | None = None
    """Secret of the read-only API key."""

    rate_limit_reserve: int = Field(default=50, ge=0, le=999)
    """Exchange weight points per minute kept unused, so the scanner never trips error 105."""

    budget_addr: str = Field(default="", pattern=r"^([^\s:]+:\d{1,5})?$")
    """host:port of the budget service; required for the LLM analyst."""

    budget_token: SecretStr = SecretStr("")
    """The scanner principal's token at the budget service."""

    budget_token_file: str = ""
    """File holding that token instead, re-read on change (rotation without a restart)."""

    budget_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Deadline of one budget call."""

    executor_addr: str = Field(default="", pattern=r"^([^\s:]+:\d{1,5})?$")
    """host:port of the executor; unset: auto-execute is reported as not configured."""

    executor_token: SecretStr = SecretStr("")
    """The scanner principal's token at the executor."""

    executor_token_file: str = ""
    """File holding that token instead, re-read on change (rotation without a restart)."""

    executor_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """Deadline of one ExecuteProposal call."""

    llm_base_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    """Base URL of an OpenAI-compatible API (e.g. https://api.openai.com/v1, or the LLM simulator)."""

    llm_api_key: SecretStr = SecretStr("")
    """API key of the LLM endpoint."""

    llm_model: str = Field(default="gpt-4o-mini", min_length=1, max_length=200)
    """Model name sent to the LLM endpoint (and to the budget service for pricing)."""

    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """Timeout of one LLM call (the client never retries it: every call is budgeted)."""

    llm_max_tokens: int = Field(default=300, ge=16, le=8192)
    """Completion tokens asked of the budget per call; the call uses what the budget grants."""

    default_analyst: AnalystChoice = AnalystChoice.RULES
    """rules or llm: the analyst of a RunScan that does not name one."""

    instance_id: str = Field(default_factory=_default_instance_id, min_length=1, max_length=200)
    """This instance's name in leases (default hostname-pid)."""

    lease_seconds: int = Field(default=120, ge=1, le=3600)
    """How long a claimed job stays leased without a heartbeat."""

    heartbeat_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often a running job's lease is extended; must be shorter than the lease."""

    poll_interval_seconds: float = Field(default=2.0, gt=0, le=3600)
    """How long the scheduler waits when no job was due."""

    claim_batch_size: int = Field(default=50, ge=1, le=1000)
    """Most jobs claimed at once; one batch is one market-data cycle."""

    job_concurrency: int = Field(default=4, ge=1, le=64)
    """Jobs of one batch run at the same time."""

    proposal_ttl_seconds: int = Field(default=900, ge=1, le=86400)
    """How long a proposal stays executable: the lifetime asked of the database, which stamps the
    proposal and caps the lifetime at its ``proposal_max_lifetime`` (migration 0096, 1 hour)."""

    expiry_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How often open proposals past their expiry are marked expired."""

    backoff_base_seconds: float = Field(default=30.0, gt=0, le=86400)
    """First retry delay of a failing job; doubles per consecutive failure."""

    backoff_max_seconds: float = Field(default=3600.0, gt=0, le=604800)
    """Longest retry delay of a failing job."""

    market_data_ttl_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long one market's data is shared between scans (one cycle)."""

    candle_interval: str = Field(default="1h", pattern=r"^(1m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d)$")
    """Candle interval the analysts read."""

    candle_count: int = Field(default=48, ge=5, le=1440)
    """Candles read per market."""

    scheduler_enabled: bool = True
    """Run the scheduler in this instance (off: RPCs only)."""


def trade_key_variables(environ: Mapping[str, str]) -> list[str]:
    """Names of the variables in ``environ`` that hold (or are named like) a trade key."""
    found = []
    for name in environ:
        upper = name.upper()
        if upper in EXECUTOR_TRADE_KEY_VARIABLES or ("TRADE" in upper and ("KEY" in upper or "SECRET" in upper)):
            found.append(name)
    return sorted(found)


def load_settings(environ: Mapping[str, str]) -> ScannerSettings:
    """The scanner's settings; ConfigError naming every bad variable, and every trade key present."""
    problems = [
        f"{name}: a trade key must never be in the scanner's environment (remove it)"
        for name in trade_key_variables(environ)
    ]
    try:
        settings = load(ScannerSettings, environ, PREFIX)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if (settings.bitvavo_api_key is None) != (settings.bitvavo_api_secret is None):
        problems.append(f"{PREFIX}BITVAVO_API_KEY and {PREFIX}BITVAVO_API_SECRET: set both or neither")
    if settings.heartbeat_interval_seconds >= settings.lease_seconds:
        problems.append(f"{PREFIX}HEARTBEAT_INTERVAL_SECONDS: must be shorter than {PREFIX}LEASE_SECONDS")
    if settings.backoff_max_seconds < settings.backoff_base_seconds:
        problems.append(f"{PREFIX}BACKOFF_MAX_SECONDS: must be at least {PREFIX}BACKOFF_BASE_SECONDS")
    if settings.default_analyst is AnalystChoice.LLM:
        if not settings.llm_base_url:
            problems.append(f"{PREFIX}LLM_BASE_URL: required when {PREFIX}DEFAULT_ANALYST is llm")
        if not settings.budget_addr:
            problems.append(f"{PREFIX}BUDGET_ADDR: required when {PREFIX}DEFAULT_ANALYST is llm")
    if problems:
        raise ConfigError(problems)
    return settings
