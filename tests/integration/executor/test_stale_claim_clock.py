"""A stale claim is judged on the database's clock, which stamped it: a reconciler replica whose
own clock runs ahead fails no claim that another replica is still about to send
(docs/design.md#one-clock-per-decision)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from services.executor.execution import Hooks
from services.executor.model import Execution
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


class _AheadClock:
    """This replica's own clock, an hour ahead of everyone else's."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)


class _StopAfterClaim(Exception):
    """The claiming replica stops between the claim and SUBMITTING (it is still alive)."""


def _stop(_execution: Execution) -> None:
    raise _StopAfterClaim


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange() as ex:
        yield ex


def test_a_replica_running_ahead_does_not_judge_a_fresh_claim_stale(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    # The kit's stale age is 60 s: the ahead replica's own clock says this claim is an hour old.
    with in_process_executor(postgres, exchange.url, clock=_AheadClock(), hooks=Hooks(after_claim=_stop)) as ex:
        ex.set_policy(uid)
        failure(lambda: ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))))
        [claimed] = executions(postgres, uid)
        assert claimed["status"] == "CLAIMED"

        reply: pb.ReconcileExecutionsResponse = ex.reconcile(uid)
        assert reply.examined == 1  # looked at, judged fresh: left to its claimer
        [after] = executions(postgres, uid)
        assert after["status"] == "CLAIMED"
    assert exchange.post_count() == 0
