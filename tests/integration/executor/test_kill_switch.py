"""The kill switches stop everything that has not left yet, including an execution claimed just
before the switch flipped (it is re-read under the lock before SUBMITTING)."""

from __future__ import annotations

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.execution import Hooks
from services.executor.model import Execution
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    in_process_executor,
    payload,
    seed_proposal,
    user,
    violation_types,
)


@pytest.mark.parametrize("scope", ["global", "user"])
def test_a_switch_flipped_between_claim_and_submit_sends_nothing(
    postgres: Postgres, exchange: Exchange, scope: str
) -> None:
    uid = user()
    flipped: list[str] = []
    holder: list[Executor] = []

    def flip_now(execution: Execution) -> None:  # runs after the claim committed, before SUBMITTING
        holder[0].kill_switch(enabled=False, user_id=uid if scope == "user" else "")
        flipped.append(execution.execution_id)

    with in_process_executor(postgres, exchange.url, hooks=Hooks(after_claim=flip_now)) as ex:
        holder.append(ex)
        ex.set_policy(uid)
        try:
            execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        finally:
            ex.kill_switch(enabled=True, user_id=uid if scope == "user" else "")
        assert flipped == [execution.execution_id]
        assert execution.status == pb.EXECUTION_STATUS_FAILED
        assert execution.error_code == "TRADING_DISABLED"
        assert exchange.post_count() == 0
        transitions = [payload(e) for e in ex.audit(uid, execution.execution_id) if e.kind == "execution.transition"]
        assert [(t["from"], t["to"]) for t in transitions] == [("CLAIMED", "FAILED")]


def test_while_disabled_nothing_is_claimed_and_enabling_again_resumes(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        ex.kill_switch(enabled=False)
        try:
            report = ex.refused(uid, pid)
            assert report.code is grpc.StatusCode.FAILED_PRECONDITION
            assert violation_types(report) == ["TRADING_DISABLED"]
            policy = ex.operator.GetPolicy(pb.GetPolicyRequest(user_id=uid))
            assert not policy.account.trading_enabled
        finally:
            ex.kill_switch(enabled=True)
        assert ex.execute(uid, pid).status == pb.EXECUTION_STATUS_FILLED
        assert exchange.post_count() == 1
        system = [e.kind for e in ex.audit("_system")]
        assert system.count("kill_switch.global") >= 2
