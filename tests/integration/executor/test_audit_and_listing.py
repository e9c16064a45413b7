"""ListAuditEvents and ListExecutions: paged, in order, and the audit trail is a hash chain."""

from __future__ import annotations

import itertools

from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import Exchange, in_process_executor, seed_proposal, user


def test_the_audit_trail_pages_in_order_and_chains(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid, min_confidence=100)
        price = exchange.price("BTC-EUR")
        rejected = seed_proposal(postgres, uid, price=price)
        ex.refused(uid, rejected)
        ex.set_policy(uid)
        execution = ex.execute(uid, rejected)

        events: list[pb.AuditEvent] = []
        token = ""
        while True:
            page = ex.operator.ListAuditEvents(pb.ListAuditEventsRequest(user_id=uid, page_size=2, page_token=token))
            assert len(page.events) <= 2
            events.extend(page.events)
            token = page.next_page_token
            if not token:
                break
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert [e.kind for e in events] == [
            "policy.updated",
            "execution.rejected",
            "policy.updated",
            "execution.claimed",
            "execution.transition",
            "execution.transition",
        ]
        assert events[0].prev_hash == ""
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        assert {e.subject_id for e in events[3:]} == {execution.execution_id}
        assert [e.kind for e in ex.audit(uid, subject_id=rejected)] == ["execution.rejected"]


def test_executions_page_newest_first(postgres: Postgres, exchange: Exchange) -> None:
    uid = user()
    with in_process_executor(postgres, exchange.url) as ex:
        ex.set_policy(uid)
        price = exchange.price("BTC-EUR")
        done = [ex.execute(uid, seed_proposal(postgres, uid, price=price)).execution_id for _ in range(5)]
        seen: list[str] = []
        token = ""
        while True:
            page = ex.operator.ListExecutions(pb.ListExecutionsRequest(user_id=uid, page_size=2, page_token=token))
            seen.extend(e.execution_id for e in page.executions)
            token = page.next_page_token
            if not token:
                break
        assert seen == list(reversed(done))
        filled = ex.operator.ListExecutions(
            pb.ListExecutionsRequest(user_id=uid, status=pb.EXECUTION_STATUS_FAILED)
        ).executions
        assert list(filled) == []
        assert ex.get(uid, done[0]).execution_id == done[0]
