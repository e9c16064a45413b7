"""Database constraints that back the guarantees, checked directly."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.harness import Postgres, new_user_id


def seed_proposal(conn: psycopg.Connection[object], user: str, confidence: int = 50) -> str:
    proposal_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
        " analyst, model, market_snapshot, policy_snapshot, expires_at)"
        " VALUES (%s, %s, 'BTC-EUR', 'buy', 10, %s, 'rules', 'rules-v1', '{}', '{}', now() + interval '15 minutes')",
        (proposal_id, user, confidence),
    )
    return proposal_id


def insert_execution(conn: psycopg.Connection[object], user: str, proposal_id: str) -> None:
    conn.execute(
        "INSERT INTO oracle.trade_executions (execution_id, user_id, proposal_id, mode, market, side, amount_quote,"
        " status, client_order_id, principal, preflight, claimed_at, updated_at)"
        " VALUES (%s, %s, %s, 'live', 'BTC-EUR', 'buy', 10, 'CLAIMED', %s, 'operator', '[]', now(), now())",
        (str(uuid.uuid4()), user, proposal_id, str(uuid.uuid4())),
    )


def test_second_execution_for_one_proposal_is_refused(postgres: Postgres) -> None:
    user = new_user_id()
    with postgres.admin() as conn:
        proposal_id = seed_proposal(conn, user)
        insert_execution(conn, user, proposal_id)
        with pytest.raises(psycopg.errors.UniqueViolation, match="trade_executions_user_id_proposal_id_key"):
            insert_execution(conn, user, proposal_id)
        count = conn.execute(
            "SELECT count(*) FROM oracle.trade_executions WHERE proposal_id = %s", (proposal_id,)
        ).fetchone()
        assert count is not None and count[0] == 1


def test_confidence_outside_the_whitelist_is_refused(postgres: Postgres) -> None:
    with postgres.admin() as conn, pytest.raises(psycopg.errors.CheckViolation, match="confidence"):
        seed_proposal(conn, new_user_id(), confidence=30)


@pytest.mark.parametrize("confidence", [0, 25, 50, 75, 100])
def test_whitelisted_confidences_are_accepted(postgres: Postgres, confidence: int) -> None:
    with postgres.admin() as conn:
        seed_proposal(conn, new_user_id(), confidence=confidence)


def test_execution_must_reference_a_proposal_of_the_same_user(postgres: Postgres) -> None:
    with postgres.admin() as conn:
        proposal_id = seed_proposal(conn, new_user_id())
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            insert_execution(conn, new_user_id(), proposal_id)
