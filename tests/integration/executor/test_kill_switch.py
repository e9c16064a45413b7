"""The kill switches stop everything that has not been claimed yet, including an execution whose
market data was fetched just before the switch flipped: the switches are read under the locks
that the claim — written directly as SUBMITTING — holds until it commits."""

from __future__ import annotations

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.execution import Hooks
from services.executor.model import Proposal
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    Executor,
    executions,
    in_process_executor,
    payload,
    seed_proposal,
    user,
    violation_types,
)


@pytest.mark.parametrize("scope", ["global", "user"])
def test_a_switch_flipped_after_the_fetch_claims_and_sends_nothing(
    postgres: Postgres, exchange: Exchange, scope: str
) -> None:
    uid = user()
    flipped: list[str] = []
    holder: list[Executor] = []

    def flip_now(proposal: Proposal) -> None:  # runs after the network reads, before the claim's lock
        if not flipped:
            holder[0].kill_switch(enabled=False, user_id=uid if scope == "user" else "")
            flipped.append(proposal.proposal_id)

    with in_process_executor(postgres, exchange.url, hooks=Hooks(after_fetch=flip_now)) as ex:
        holder.append(ex)
        ex.set_policy(uid)
        pid = seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))
        try:
            report = ex.refused(uid, pid)
        finally:
            ex.kill_switch(enabled=True, user_id=uid if scope == "user" else "")
        assert flipped == [pid]
        assert report.code is grpc.StatusCode.FAILED_PRECONDITION
        assert violation_types(report) == ["TRADING_DISABLED"]
        assert executions(postgres, uid) == []  # nothing claimed
        assert exchange.post_count() == 0
        # not consumed: with the switch on again the same proposal executes, claimed and moved to
        # SUBMITTING in one transaction (both events, in this order)
        execution = ex.execute(uid, pid)
        assert execution.status == pb.EXECUTION_STATUS_FILLED
        kinds = [e.kind for e in ex.audit(uid, execution.execution_id)]
        assert kinds[:2] == ["execution.claimed", "execution.transition"]
        transitions = [payload(e) for e in ex.audit(uid, execution.execution_id) if e.kind == "execution.transition"]
        assert (transitions[0]["from"], transitions[0]["to"]) == ("CLAIMED", "SUBMITTING")
        assert exchange.post_count() == 1


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
