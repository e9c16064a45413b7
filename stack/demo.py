"""The demo scenario of ``make run`` and how it is seeded, through the services' own RPCs as the
operator would (UpdatePolicy, SetLimits, CreateScanJob), never by writing tables directly.

Why one cycle shows both sides of the rails: the scan job covers eight markets, the policy
allows only four of them. The analyst proposes on most markets (it follows the trend), so the
allowed ones are executed and the others are refused with ``MARKET_NOT_ALLOWLISTED``; in later
cycles the cooldown, the hourly cap and the LLM budget refuse more, each with its reason code.

Seeding is idempotent: a user who already has a policy keeps it (and its limits) as the operator
may have changed them with oraclectl; the scan job is created only when the user has none for
these markets. The next ``make run`` therefore continues where the last one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from google.protobuf import duration_pb2
from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2

from oraclectl.defaults import DEMO_USER
from oraclectl.session import Session

SCANNED_MARKETS = ("BTC-EUR", "ETH-EUR", "SOL-EUR", "XRP-EUR", "ADA-EUR", "DOGE-EUR", "LINK-EUR", "LTC-EUR")
ALLOWED_MARKETS = ("BTC-EUR", "ETH-EUR", "SOL-EUR", "XRP-EUR")

# The simulated account's play money: EUR to buy with, and some of each scanned coin to sell
# (so a sell is refused by a rail, not by an empty wallet).
SIM_BALANCES: dict[str, Decimal] = {
    "EUR": Decimal("10000"),
    "BTC": Decimal("0.02"),
    "ETH": Decimal("0.5"),
    "SOL": Decimal("10"),
    "XRP": Decimal("800"),
    "ADA": Decimal("1000"),
    "DOGE": Decimal("3000"),
    "LINK": Decimal("30"),
    "LTC": Decimal("5"),
}


def demo_policy(user: str) -> executor_pb2.Policy:
    """Small orders, a short cooldown so later cycles show it, caps that a long demo reaches."""
    return executor_pb2.Policy(
        user_id=user,
        allowed_markets=ALLOWED_MARKETS,
        min_order_eur="10.00",
        max_order_eur="25.00",
        min_confidence=50,
        cooldown=duration_pb2.Duration(seconds=120),
        anti_flip_window=duration_pb2.Duration(seconds=600),
        daily_trade_cap=40,
        hourly_trade_cap=12,
        daily_notional_cap_eur="500.00",
        price_guard_pct="2.000",
        auto_execute=True,
        trading_enabled=True,
    )


DEMO_LIMITS = budget_pb2.Limits(daily_calls=1000, hourly_calls=240, daily_tokens=0, daily_cost_micros=2_000_000)


@dataclass(frozen=True)
class Seeded:
    """What seeding found or made."""

    user: str
    policy_version: int
    policy_created: bool
    job_id: str
    job_created: bool
    job_paused: bool


def seed(session: Session, *, user: str = DEMO_USER, interval_seconds: int = 30) -> Seeded:
    """Give ``user`` the demo policy, limits and scan job unless they exist already."""
    executor, scanner, budget = session.executor(), session.scanner(), session.budget()
    policy = session.call("executor", executor.GetPolicy, executor_pb2.GetPolicyRequest(user_id=user)).policy
    created = policy.version == 0
    if created:
        update = executor_pb2.UpdatePolicyRequest(policy=demo_policy(user), expected_version=0)
        policy = session.call("executor", executor.UpdatePolicy, update).policy
        session.call("budget", budget.SetLimits, budget_pb2.SetLimitsRequest(user_id=user, limits=DEMO_LIMITS))
    job = find_job(session, user)
    job_created = job is None
    if job is None:
        request = scanner_pb2.CreateScanJobRequest(
            user_id=user,
            markets=SCANNED_MARKETS,
            interval=duration_pb2.Duration(seconds=interval_seconds),
            analyst=scanner_pb2.ANALYST_KIND_LLM,
        )
        job = session.call("scanner", scanner.CreateScanJob, request).job
    return Seeded(user, policy.version, created, job.job_id, job_created, job.paused)


def live_policy(session: Session, user: str) -> executor_pb2.GetPolicyResponse:
    """The user's policy as the executor enforces it now, with the account settings."""
    reply: executor_pb2.GetPolicyResponse = session.call(
        "executor", session.executor().GetPolicy, executor_pb2.GetPolicyRequest(user_id=user)
    )
    return reply


def find_job(session: Session, user: str, job_id: str = "") -> scanner_pb2.ScanJob | None:
    """The user's demo job (the one with exactly the demo's markets), or the job ``job_id``."""
    token = ""
    while True:
        request = scanner_pb2.ListScanJobsRequest(user_id=user, page_size=500, page_token=token)
        reply = session.call("scanner", session.scanner().ListScanJobs, request)
        for job in reply.jobs:
            if job.job_id == job_id or (not job_id and tuple(job.markets) == SCANNED_MARKETS):
                found: scanner_pb2.ScanJob = job
                return found
        token = reply.next_page_token
        if not token:
            return None
