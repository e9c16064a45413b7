"""A user principal overrides validators on its own proposals, and only on its own."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from shared.channel import open_channel
from shared.clock import ManualClock
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    executions,
    failure,
    in_process_executor,
    running_exchange,
    seed_proposal,
    user,
)
from tests.integration.trust.pki import Pki


def test_a_user_overrides_the_cooldown_on_its_own_proposal_only(postgres: Postgres, pki: Pki) -> None:
    with running_exchange() as exchange:
        _user_overrides(postgres, exchange, pki)


def _user_overrides(postgres: Postgres, exchange: Exchange, pki: Pki) -> None:
    clock = ManualClock(datetime(2033, 6, 3, 10, 0, tzinfo=UTC))
    alice, bob = user(), user()
    with in_process_executor(postgres, exchange.url, clock=clock, **pki.user_token_settings()) as ex:
        ex.set_policy(alice, cooldown=3600)
        ex.set_policy(bob, cooldown=3600)
        price = exchange.price("BTC-EUR")
        with open_channel(ex.target, pki.user_token(alice)) as chan:
            as_alice = pb_grpc.ExecutorServiceStub(chan)

            def execute(owner: str, proposal: str, **flags: object) -> pb.Execution:
                request = pb.ExecuteProposalRequest(user_id=owner, proposal_id=proposal, **flags)  # type: ignore[arg-type]
                reply: pb.ExecuteProposalResponse = as_alice.ExecuteProposal(request, timeout=30)
                return reply.execution

            first = execute(alice, seed_proposal(postgres, alice, price=price, now=clock.now()))
            assert first.status == pb.EXECUTION_STATUS_FILLED
            second = seed_proposal(postgres, alice, price=price, now=clock.now())
            cooled = failure(lambda: execute(alice, second))
            assert cooled.code is grpc.StatusCode.FAILED_PRECONDITION  # the cooldown holds ...
            overridden = execute(alice, second, override_cooldown=True, override_reason="mine, on purpose")
            assert overridden.status == pb.EXECUTION_STATUS_FILLED  # ... until its own user overrides it

            # Bob's proposal: refused before anything is looked at, override or not.
            theirs = seed_proposal(postgres, bob, price=price, now=clock.now())
            denied = failure(lambda: execute(bob, theirs, override_cooldown=True, override_reason="not mine"))
            assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_OWN_USER")
            assert executions(postgres, bob) == []
