"""Proposals meet the real executor: RunScan on a fresh database makes proposals the executor
executes (by the operator, and by the scanner itself when the user's live policy says
auto-execute), and expired proposals are marked by the sweeper and refused by the executor.
Orders are counted at the exchange simulator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from oracle.executor.v1 import executor_service_pb2 as epb
from oracle.scanner.v1 import scanner_service_pb2 as pb

from tests.harness import SCANNER_TOKEN, Postgres, eventually, new_user_id
from tests.integration.executor.kit import in_process_executor
from tests.integration.scanner.kit import Exchange, in_process_scanner, proposals_of, rows, seed_policy
from tests.support.database_clock import DbClock

RULES = pb.ANALYST_KIND_RULES


def test_run_scan_on_a_fresh_database_makes_proposals_the_executor_executes(
    private_postgres: Postgres, exchange: Exchange
) -> None:
    pg = private_postgres
    user = new_user_id("e2e")
    for market in ("BTC-EUR", "ETH-EUR", "SOL-EUR"):
        exchange.trend_up(market)
    with (
        in_process_executor(pg, exchange.url) as executor,
        in_process_scanner(pg, exchange.url, executor_addr=executor.target, executor_token=SCANNER_TOKEN) as scanner,
    ):
        executor.set_policy(user, auto_execute=False)

        reply = scanner.run(user, ["BTC-EUR", "ETH-EUR"], analyst=RULES)
        assert len(reply.proposals) == 2, reply.outcomes
        assert [o.auto_execute for o in reply.outcomes] == [pb.AUTO_EXECUTE_STATUS_OFF] * 2
        assert exchange.admin.order_count() == 0, "auto-execute is off: nothing may be sent"
        for proposal in reply.proposals:
            assert proposal.policy_snapshot["auto_execute"] is False
            execution = executor.execute(user, proposal.proposal_id)
            assert execution.status == epb.EXECUTION_STATUS_FILLED, execution
            assert Decimal(execution.amount_quote) == Decimal(proposal.amount_quote)
        assert exchange.admin.order_count() == 2

        # The user turns auto-execute on: the scanner asks the executor itself, without overrides.
        executor.set_policy(user, auto_execute=True)
        reply = scanner.run(user, ["SOL-EUR"], analyst=RULES)
        (proposal,) = reply.proposals
        (outcome,) = reply.outcomes
        assert outcome.auto_execute == pb.AUTO_EXECUTE_STATUS_EXECUTED, outcome
        assert outcome.execution_status == "EXECUTION_STATUS_FILLED"
        execution = executor.get(user, outcome.execution_id)
        assert execution.proposal_id == proposal.proposal_id
        assert not execution.override_cooldown and not execution.override_anti_flip
        assert exchange.admin.order_count() == 3

    kinds = [r["kind"] for r in rows(pg, "SELECT kind FROM oracle.audit_events WHERE user_id = %s", user)]
    assert kinds.count("proposal.created") == 3
    assert kinds.count("proposal.auto_execute") == 1


def test_expired_proposals_are_marked_by_the_sweeper_and_refused_by_the_executor(
    db_clock: DbClock, postgres: Postgres, exchange: Exchange
) -> None:
    user = new_user_id("expiry")
    seed_policy(postgres, user, min_confidence=50)
    exchange.trend_up("BTC-EUR")
    clock = db_clock(datetime.now(UTC) - timedelta(hours=1))  # the scan happened an hour ago
    with in_process_scanner(
        postgres, exchange.url, clock, proposal_ttl_seconds="900", expiry_interval_seconds="0.1"
    ) as scanner:
        (proposal,) = scanner.run(user, ["BTC-EUR"], analyst=RULES).proposals
        assert proposal.status == pb.PROPOSAL_STATUS_OPEN
        assert proposal.expires_at.ToDatetime(tzinfo=UTC) == proposal.created_at.ToDatetime(tzinfo=UTC) + timedelta(
            minutes=15
        )

        clock.set(datetime.now(UTC))  # now it is past its expiry: the sweeper marks it
        assert eventually(lambda: [p["status"] for p in proposals_of(postgres, user)] == ["expired"])
        listed = scanner.stub.ListProposals(
            pb.ListProposalsRequest(user_id=user, status=pb.PROPOSAL_STATUS_EXPIRED)
        ).proposals
        assert [p.proposal_id for p in listed] == [proposal.proposal_id]

    with in_process_executor(postgres, exchange.url) as executor:
        refused = executor.refused(user, proposal.proposal_id)
        assert refused.code.name == "FAILED_PRECONDITION"
        assert refused.reason == "PROPOSAL_EXPIRED"
    assert exchange.admin.order_count() == 0
