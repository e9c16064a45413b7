"""A stale claim is judged on the database's clock, which stamped it: a reconciler replica whose
own clock runs ahead fails no claim that another replica is still about to send
(docs/design.md#one-clock-per-decision).

Claims are written as SUBMITTING now; a committed CLAIMED row is what a replica of an earlier
version (still running during a rolling upgrade) leaves between its claim and its SUBMITTING
step, so the test writes one as that replica did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.executor.execution import client_order_id
from tests.harness import Postgres
from tests.integration.executor.kit import (
    Exchange,
    executions,
    in_process_executor,
    running_exchange,
    seed_proposal,
    user,
)


class _AheadClock:
    """This replica's own clock, an hour ahead of everyone else's."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange() as ex:
        yield ex


def _claimed_by_an_earlier_replica(postgres: Postgres, uid: str, pid: str) -> None:
    """A CLAIMED row stamped with the database's clock, as the earlier version's claim wrote it."""
    with postgres.admin() as conn:
        conn.execute(
            "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side,"
            " amount_quote, status, client_order_id, principal, preflight, claimed_at, updated_at)"
            " SELECT gen_random_uuid(), user_id, proposal_id, 'live', market, side, amount_quote, 'CLAIMED', %s,"
            " 'operator', '{}', clock_timestamp(), clock_timestamp()"
            " FROM oracle.trade_proposals WHERE proposal_id = %s",
            (client_order_id(uid, pid), pid),
        )


def test_a_replica_running_ahead_does_not_judge_a_fresh_claim_stale(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    # The kit's stale age is 60 s: the ahead replica's own clock says this claim is an hour old.
    with in_process_executor(postgres, exchange.url, clock=_AheadClock()) as ex:
        ex.set_policy(uid)
        _claimed_by_an_earlier_replica(postgres, uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        [claimed] = executions(postgres, uid)
        assert claimed["status"] == "CLAIMED"

        reply = ex.reconcile(uid)
        assert reply.examined == 1  # looked at, judged fresh: left to its claimer
        [after] = executions(postgres, uid)
        assert after["status"] == "CLAIMED"
    assert exchange.post_count() == 0
