"""Every refusal of ExecuteProposal, one test per reason code, each with no order at the exchange.

Rejections are FAILED_PRECONDITION listing every failed validator (type = reason code, subject =
validator name), audited, and they do not consume the proposal. CONFIDENCE_NOT_ALLOWED cannot
reach the service (the database's confidence domain refuses such a proposal): its validator is
covered in tests/unit/executor/test_validators.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    account_cap,
    executions,
    in_process_executor,
    payload,
    running_exchange,
    seed_proposal,
    user,
    violation_types,
)
from tests.support.database_clock import DbClock, shift_database_clock


@pytest.fixture(scope="module")
def module_exchange() -> Iterator[Exchange]:
    with running_exchange() as ex:
        yield ex


@pytest.fixture(scope="module")
def ex(postgres: Postgres, module_exchange: Exchange) -> Iterator[Executor]:
    with in_process_executor(postgres, module_exchange.url) as executor:
        yield executor


def _price(exchange: Exchange, market: str = "BTC-EUR") -> Decimal:
    return exchange.price(market)


def rejected_with(
    ex: Executor, exchange: Exchange, uid: str, pid: str, *expected: str, reason: str | None = None
) -> None:
    """The attempt is FAILED_PRECONDITION listing exactly ``expected``; nothing reached the exchange."""
    before = exchange.post_count()
    report = ex.refused(uid, pid)
    assert report.code is grpc.StatusCode.FAILED_PRECONDITION
    assert violation_types(report) == list(expected)
    assert report.reason == (reason or (expected[0] if len(expected) == 1 else "VALIDATION_FAILED"))
    assert exchange.post_count() == before
    assert [e for e in executions(ex.postgres, uid) if e["proposal_id"] == pid] == []


def test_no_policy_denies_everything(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    pid = seed_proposal(postgres, uid, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "ALLOWLIST_EMPTY_DENY_BY_DEFAULT")


def test_an_empty_allowlist_denies_everything(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, allowed_markets=[])
    pid = seed_proposal(postgres, uid, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "ALLOWLIST_EMPTY_DENY_BY_DEFAULT")


def test_a_market_off_the_allowlist(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, allowed_markets=["ETH-EUR"])
    pid = seed_proposal(postgres, uid, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "MARKET_NOT_ALLOWLISTED")


def test_below_the_policy_minimum(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, min_order_eur="20")
    pid = seed_proposal(postgres, uid, amount="10.00", price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "ORDER_TOO_SMALL")


def test_below_the_market_minimum(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, min_order_eur="1")
    pid = seed_proposal(postgres, uid, amount="4.00", price=_price(module_exchange))  # BTC-EUR minimum: 5 EUR
    rejected_with(ex, module_exchange, uid, pid, "ORDER_TOO_SMALL")


def test_above_the_policy_maximum(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, max_order_eur="50")
    pid = seed_proposal(postgres, uid, amount="50.01", price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "ORDER_TOO_LARGE")


def test_confidence_below_the_minimum(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, min_confidence=75)
    pid = seed_proposal(postgres, uid, confidence=50, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "CONFIDENCE_BELOW_MINIMUM")


def test_cooldown(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, cooldown=3600)
    first = seed_proposal(postgres, uid, price=_price(module_exchange))
    assert ex.execute(uid, first).status == pb.EXECUTION_STATUS_FILLED
    second = seed_proposal(postgres, uid, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, second, "COOLDOWN_ACTIVE")


def test_daily_cap(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, daily_trade_cap=1, hourly_trade_cap=10)
    assert (
        ex.execute(uid, seed_proposal(postgres, uid, price=_price(module_exchange))).status
        == pb.EXECUTION_STATUS_FILLED
    )
    rejected_with(
        ex, module_exchange, uid, seed_proposal(postgres, uid, price=_price(module_exchange)), "DAILY_CAP_REACHED"
    )


def test_hourly_cap(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, daily_trade_cap=10, hourly_trade_cap=1)
    assert (
        ex.execute(uid, seed_proposal(postgres, uid, price=_price(module_exchange))).status
        == pb.EXECUTION_STATUS_FILLED
    )
    rejected_with(
        ex, module_exchange, uid, seed_proposal(postgres, uid, price=_price(module_exchange)), "HOURLY_CAP_REACHED"
    )


def test_daily_notional_cap_of_the_user(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, daily_notional_cap_eur="15")
    assert (
        ex.execute(uid, seed_proposal(postgres, uid, price=_price(module_exchange))).status
        == pb.EXECUTION_STATUS_FILLED
    )
    rejected_with(
        ex,
        module_exchange,
        uid,
        seed_proposal(postgres, uid, price=_price(module_exchange)),
        "DAILY_NOTIONAL_CAP_REACHED",
    )


def test_daily_notional_cap_of_the_account(db_clock: DbClock, postgres: Postgres, module_exchange: Exchange) -> None:
    # A UTC day of its own (the database's clock, frozen), so other tests' executions do not count here.
    clock = db_clock(datetime(2033, 5, 17, 9, 0, tzinfo=UTC))
    with in_process_executor(postgres, module_exchange.url, clock=clock) as own, account_cap(own, "25"):
        alice, bob = user(), user()
        own.set_policy(alice)
        own.set_policy(bob)
        price = _price(module_exchange)
        assert (
            own.execute(alice, seed_proposal(postgres, alice, price=price, now=clock.now())).status
            == pb.EXECUTION_STATUS_FILLED
        )
        assert (
            own.execute(bob, seed_proposal(postgres, bob, price=price, now=clock.now())).status
            == pb.EXECUTION_STATUS_FILLED
        )
        rejected_with(
            own,
            module_exchange,
            alice,
            seed_proposal(postgres, alice, price=price, now=clock.now()),
            "ACCOUNT_NOTIONAL_CAP_REACHED",
        )


def test_the_live_policy_decides_not_the_proposals_snapshot(
    postgres: Postgres, module_exchange: Exchange, ex: Executor
) -> None:
    uid = user()
    ex.set_policy(uid, allowed_markets=["ETH-EUR"])  # live: BTC-EUR is not allowlisted (any more)
    permissive = {  # the policy as the scanner saw it when it wrote the proposal: BTC-EUR allowed
        "user_id": uid,
        "version": 1,
        "allowed_markets": ["BTC-EUR", "ETH-EUR"],
        "min_order_eur": "5",
        "max_order_eur": "1000",
        "min_confidence": 0,
        "cooldown_seconds": 0,
        "anti_flip_seconds": 0,
        "daily_trade_cap": 1000,
        "hourly_trade_cap": 1000,
        "daily_notional_cap_eur": "1000000",
        "price_guard_pct": "10",
        "auto_execute": True,
        "trading_enabled": True,
        "updated_at": "2030-01-01T00:00:00+00:00",
        "updated_by": "operator",
    }
    pid = seed_proposal(postgres, uid, price=_price(module_exchange), policy_snapshot=permissive)
    rejected_with(ex, module_exchange, uid, pid, "MARKET_NOT_ALLOWLISTED")


def test_price_moved_since_the_proposal(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, price_guard_pct="2")
    stale = _price(module_exchange) * Decimal("0.95")
    rejected_with(ex, module_exchange, uid, seed_proposal(postgres, uid, price=stale), "PRICE_MOVED")


def test_a_proposal_without_a_snapshot_price_cannot_pass_the_price_guard(
    postgres: Postgres, module_exchange: Exchange, ex: Executor
) -> None:
    uid = user()
    ex.set_policy(uid)
    rejected_with(ex, module_exchange, uid, seed_proposal(postgres, uid, price=None), "PRICE_MOVED")


def test_insufficient_balance_for_a_buy(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid)
    module_exchange.admin.set_balance("EUR", "9.99")
    try:
        pid = seed_proposal(postgres, uid, amount="10.00", price=_price(module_exchange))
        rejected_with(ex, module_exchange, uid, pid, "INSUFFICIENT_BALANCE")
    finally:
        module_exchange.admin.set_balance("EUR", "100000")


def test_insufficient_balance_for_a_sell(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid)
    module_exchange.admin.set_balance("SOL", "0")
    pid = seed_proposal(postgres, uid, market="SOL-EUR", side="sell", price=_price(module_exchange, "SOL-EUR"))
    # nothing on the account, and nothing in the user's own books either
    rejected_with(ex, module_exchange, uid, pid, "INSUFFICIENT_BALANCE", "INSUFFICIENT_POSITION")


def test_a_sell_beyond_the_users_own_position(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    """The account holds plenty of SOL (it passes the balance check), the user holds none."""
    uid = user()
    ex.set_policy(uid)
    module_exchange.admin.set_balance("SOL", "1000")
    try:
        pid = seed_proposal(postgres, uid, market="SOL-EUR", side="sell", price=_price(module_exchange, "SOL-EUR"))
        rejected_with(ex, module_exchange, uid, pid, "INSUFFICIENT_POSITION")
        position = next(v for v in ex.refused(uid, pid).precondition_violations if v.subject == "position")
        assert "0 held" in position.description
    finally:
        module_exchange.admin.set_balance("SOL", "0")


def test_global_kill_switch(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid)
    pid = seed_proposal(postgres, uid, price=_price(module_exchange))
    ex.kill_switch(enabled=False)
    try:
        rejected_with(ex, module_exchange, uid, pid, "TRADING_DISABLED")
    finally:
        ex.kill_switch(enabled=True)
    assert ex.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED  # not consumed by the refusal


def test_user_kill_switch(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid)
    ex.kill_switch(enabled=False, user_id=uid)
    rejected_with(
        ex, module_exchange, uid, seed_proposal(postgres, uid, price=_price(module_exchange)), "TRADING_DISABLED"
    )


def test_expired_proposals(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid)
    past = seed_proposal(postgres, uid, price=_price(module_exchange), expires_in=timedelta(minutes=1))
    marked = seed_proposal(postgres, uid, price=_price(module_exchange), status="expired")
    # Past its expiry on the database's clock, the only one the executor's decision reads.
    shift_database_clock(postgres.admin_url, timedelta(minutes=2))
    try:
        rejected_with(ex, module_exchange, uid, past, "PROPOSAL_EXPIRED")
        rejected_with(ex, module_exchange, uid, marked, "PROPOSAL_EXPIRED")
    finally:
        shift_database_clock(postgres.admin_url, timedelta(0))


def test_unknown_and_foreign_proposals_are_not_found(
    postgres: Postgres, module_exchange: Exchange, ex: Executor
) -> None:
    owner, other = user(), user()
    ex.set_policy(other)
    pid = seed_proposal(postgres, owner, price=_price(module_exchange))
    before = module_exchange.post_count()
    for uid, proposal in ((other, pid), (owner, "6d5f3c1e-0000-4000-8000-000000000001")):
        report = ex.refused(uid, proposal)
        assert report.code is grpc.StatusCode.NOT_FOUND
        assert report.reason == "PROPOSAL_NOT_FOUND"
    assert module_exchange.post_count() == before


def test_every_failed_validator_is_listed_and_audited(
    postgres: Postgres, module_exchange: Exchange, ex: Executor
) -> None:
    uid = user()
    ex.set_policy(uid, allowed_markets=["ETH-EUR"], min_confidence=100, max_order_eur="20")
    pid = seed_proposal(postgres, uid, amount="30.00", confidence=75, price=_price(module_exchange))
    rejected_with(
        ex, module_exchange, uid, pid, "MARKET_NOT_ALLOWLISTED", "ORDER_TOO_LARGE", "CONFIDENCE_BELOW_MINIMUM"
    )
    report = ex.refused(uid, pid)
    assert [v.subject for v in report.precondition_violations] == ["allowlist", "order_size", "confidence"]
    rejected = [e for e in ex.audit(uid) if e.kind == "execution.rejected"]
    assert len(rejected) == 2
    records = payload(rejected[0])["validators"]
    assert [r["name"] for r in records][:3] == ["allowlist", "market_status", "order_size"]
    assert {r["name"] for r in records if not r["passed"]} == {"allowlist", "order_size", "confidence"}


def test_a_rejected_proposal_stays_executable(postgres: Postgres, module_exchange: Exchange, ex: Executor) -> None:
    uid = user()
    ex.set_policy(uid, min_confidence=100)
    pid = seed_proposal(postgres, uid, confidence=75, price=_price(module_exchange))
    rejected_with(ex, module_exchange, uid, pid, "CONFIDENCE_BELOW_MINIMUM")
    ex.set_policy(uid, min_confidence=75)  # the live policy, not the proposal's snapshot, decides
    assert ex.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED
