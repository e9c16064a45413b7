"""Anti-flip, cooldown overrides and who may use them, with time moved on the database's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    executions,
    failure,
    in_process_executor,
    payload,
    permissive_policy,
    seed_proposal,
    unpack_execution,
    user,
    violation_types,
)
from tests.support.database_clock import DbClock


def test_anti_flip_blocks_the_opposite_side_until_an_operator_overrides_it(
    db_clock: DbClock, postgres: Postgres, exchange: Exchange
) -> None:
    clock = db_clock(datetime(2033, 6, 1, 10, 0, tzinfo=UTC))
    exchange.admin.set_balance("BTC", "1")  # enough to sell: only anti-flip may refuse
    uid = user()
    with in_process_executor(postgres, exchange.url, clock=clock) as ex:
        ex.set_policy(uid, cooldown=60, anti_flip_window=3600)
        price = exchange.price("BTC-EUR")

        def proposal(side: str, amount: str = "10.00") -> str:
            return seed_proposal(postgres, uid, side=side, amount=amount, price=price, now=clock.now())

        # 20 EUR bought: the user's own position covers the 10 EUR sell below (only anti-flip may refuse)
        assert ex.execute(uid, proposal("buy", "20.00")).status == pb.EXECUTION_STATUS_FILLED
        clock.advance(timedelta(minutes=2))  # past the cooldown, inside the anti-flip window

        sell = proposal("sell")
        report = ex.refused(uid, sell)
        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["ANTI_FLIP_ACTIVE"]
        assert exchange.post_count() == 1

        assert ex.execute(uid, proposal("buy")).status == pb.EXECUTION_STATUS_FILLED  # same side passes
        clock.advance(timedelta(minutes=2))

        denied = ex.refused(uid, sell, as_scanner=True, override_anti_flip=True, override_reason="scanner tries")
        assert denied.code is grpc.StatusCode.PERMISSION_DENIED
        assert denied.reason == "OVERRIDE_NOT_ALLOWED"
        assert exchange.post_count() == 2

        executed = ex.execute(uid, sell, override_anti_flip=True, override_reason="rebalance after news")
        assert executed.status == pb.EXECUTION_STATUS_FILLED
        assert executed.override_anti_flip and not executed.override_cooldown
        anti_flip = next(v for v in executed.validators if v.name == "anti_flip")
        assert anti_flip.passed and anti_flip.overridden
        assert exchange.post_count() == 3

        events = ex.audit(uid)
        kinds = [e.kind for e in events]
        assert "execution.denied" in kinds
        override = next(e for e in events if e.kind == "execution.override")
        assert override.principal == "operator"
        assert override.subject_id == executed.execution_id
        assert payload(override)["reason"] == "rebalance after news"
        assert [r["name"] for r in payload(override)["overridden"]] == ["anti_flip"]


def test_the_cooldown_override_skips_only_the_cooldown(
    db_clock: DbClock, postgres: Postgres, exchange: Exchange
) -> None:
    clock = db_clock(datetime(2033, 6, 2, 10, 0, tzinfo=UTC))
    uid = user()
    with in_process_executor(postgres, exchange.url, clock=clock) as ex:
        ex.set_policy(uid, cooldown=3600, hourly_trade_cap=1, daily_trade_cap=10)
        price = exchange.price("BTC-EUR")
        first = ex.execute(uid, seed_proposal(postgres, uid, price=price, now=clock.now()))
        assert first.status == pb.EXECUTION_STATUS_FILLED
        second = seed_proposal(postgres, uid, price=price, now=clock.now(), expires_in=timedelta(hours=2))
        report = ex.refused(uid, second, override_cooldown=True)
        assert violation_types(report) == ["HOURLY_CAP_REACHED"]  # the cooldown itself no longer refuses
        clock.advance(timedelta(minutes=61))
        assert ex.execute(uid, second).status == pb.EXECUTION_STATUS_FILLED


def test_a_duplicate_is_already_exists_before_the_override_permission(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        executed = ex.execute(uid, pid)
        assert executed.status == pb.EXECUTION_STATUS_FILLED

        # The scanner may not override, but the proposal was executed: that answer comes first.
        for flags in ({"override_cooldown": True}, {"override_anti_flip": True, "override_reason": "x"}):
            report = ex.refused(uid, pid, as_scanner=True, **flags)
            assert (report.code, report.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EXECUTION_EXISTS")
            assert unpack_execution(report).execution_id == executed.execution_id
        assert [e.kind for e in ex.audit(uid)][-2:] == ["execution.duplicate", "execution.duplicate"]

        # A proposal not executed yet: the scanner's override is refused, nothing is claimed.
        fresh = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        denied = ex.refused(uid, fresh, as_scanner=True, override_cooldown=True)
        assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OVERRIDE_NOT_ALLOWED")
        assert [e["proposal_id"] for e in executions(postgres, uid)] == [pid]
        assert exchange.post_count() == 1


def test_an_override_that_skips_nothing_is_not_recorded_as_one(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid, cooldown=3600, anti_flip_window=3600)
        executed = ex.execute(
            uid,
            seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")),
            override_cooldown=True,
            override_anti_flip=True,
            override_reason="nothing to skip: no trade yet",
        )
        assert executed.status == pb.EXECUTION_STATUS_FILLED
        assert executed.override_cooldown and executed.override_anti_flip  # what was asked
        checks = {v.name: v for v in executed.validators}
        assert checks["cooldown"].passed and not checks["cooldown"].overridden
        assert checks["anti_flip"].passed and not checks["anti_flip"].overridden
        assert "execution.override" not in [e.kind for e in ex.audit(uid)]


def test_the_scanner_executes_only_with_auto_execute_on(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid, auto_execute=False)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        report = ex.refused(uid, pid, as_scanner=True)
        assert report.code is grpc.StatusCode.PERMISSION_DENIED
        assert report.reason == "AUTO_EXECUTE_OFF"
        assert exchange.post_count() == 0
        assert executions(postgres, uid) == []
        assert [e.kind for e in ex.audit(uid)][-1] == "execution.denied"

        ex.set_policy(uid, auto_execute=True)
        reply = ex.scanner.ExecuteProposal(pb.ExecuteProposalRequest(user_id=uid, proposal_id=pid), timeout=30)
        assert reply.execution.status == pb.EXECUTION_STATUS_FILLED
        assert exchange.post_count() == 1


def test_the_scanner_may_not_touch_policies_or_kill_switches(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        for call in (
            lambda: ex.scanner.UpdatePolicy(pb.UpdatePolicyRequest(policy=permissive_policy(uid))),
            lambda: ex.scanner.SetTradingEnabled(
                pb.SetTradingEnabledRequest(scope=pb.KILL_SWITCH_SCOPE_GLOBAL, enabled=False)
            ),
            lambda: ex.scanner.ReconcileExecutions(pb.ReconcileExecutionsRequest()),
        ):
            report = failure(call)
            assert report.code is grpc.StatusCode.PERMISSION_DENIED
            assert report.reason == "METHOD_NOT_ALLOWED"
