"""Policies: deny by default, optimistic concurrency, validation against the exchange's markets."""

from __future__ import annotations

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    account_cap,
    failure,
    in_process_executor,
    payload,
    permissive_policy,
    storm,
    user,
)


def test_a_user_without_a_policy_is_denied_everything(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex, account_cap(ex, "750") as account:
        reply = ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid))
        assert reply.policy.version == 0
        assert list(reply.policy.allowed_markets) == []
        assert reply.policy.user_id == uid
        assert reply.account.daily_notional_cap_eur == "750"
        assert reply.account.version == account.version


def test_update_policy_is_optimistic(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        created = ex.operator.UpdatePolicy(pb.UpdatePolicyRequest(policy=permissive_policy(uid), expected_version=0))
        assert created.policy.version == 1
        updated = ex.operator.UpdatePolicy(
            pb.UpdatePolicyRequest(policy=permissive_policy(uid, min_confidence=75), expected_version=1)
        )
        assert updated.policy.version == 2
        assert updated.policy.min_confidence == 75
        for stale in (1, 0, 3):
            request = pb.UpdatePolicyRequest(policy=permissive_policy(uid), expected_version=stale)
            report = failure(lambda request=request: ex.operator.UpdatePolicy(request))  # type: ignore[misc]
            assert report.code is grpc.StatusCode.ABORTED
            assert report.reason == "POLICY_VERSION_CONFLICT"
        assert ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid)).policy.min_confidence == 75
        assert [payload(e)["version"] for e in ex.audit(uid) if e.kind == "policy.updated"] == [1, 2]


def test_concurrent_updates_of_one_version_let_exactly_one_win(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        calls = [
            lambda i=i: ex.operator.UpdatePolicy(
                pb.UpdatePolicyRequest(policy=permissive_policy(uid, max_order_eur=str(100 + i)), expected_version=1)
            )
            for i in range(10)
        ]
        results = storm(calls)
        winners = [r for r in results if isinstance(r, pb.UpdatePolicyResponse)]
        assert len(winners) == 1
        assert all(r.code is grpc.StatusCode.ABORTED for r in results if r not in winners)
        assert ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid)).policy.version == 2


def test_update_policy_keeps_the_users_kill_switch(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.kill_switch(enabled=False, user_id=uid)
        policy = ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid)).policy
        assert not policy.trading_enabled and policy.version == 1
        stored = ex.set_policy(uid, trading_enabled=True)
        assert not stored.trading_enabled
        ex.kill_switch(enabled=True, user_id=uid)
        assert ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid)).policy.trading_enabled


def test_markets_the_exchange_does_not_list_are_refused(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        report = failure(lambda: ex.set_policy(uid, allowed_markets=["BTC-EUR", "NOPE-EUR"]))
        assert report.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in report.field_violations] == ["policy.allowed_markets"]
        assert ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid)).policy.version == 0
