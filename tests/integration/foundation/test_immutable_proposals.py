"""Proposals are immutable and stamped by the database (migration 0096; docs/database.md
"Proposals are immutable"): the scanner cannot change one or stretch its expiry, nobody can
change what it says, and its times are the database's clock with the lifetime capped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.harness import Postgres, new_user_id
from tests.support.database_clock import DbClock

INSERT = (
    "INSERT INTO oracle.trade_proposals (proposal_id, user_id, market, side, amount_quote, confidence,"
    " analyst, model, market_snapshot, policy_snapshot, created_at, expires_at)"
    " VALUES (%s, %s, 'BTC-EUR', 'buy', 10, 75, 'rules', 'rules-v1', '{\"price\": \"100\"}', '{}', %s, %s)"
    " RETURNING created_at, expires_at"
)


def _as_scanner(postgres: Postgres, user: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(postgres.url("scanner"), autocommit=True)
    conn.execute("SELECT set_config('app.user_id', %s, false)", (user,))
    return conn


def _insert(
    conn: psycopg.Connection[Any], user: str, created: datetime, expires: datetime
) -> tuple[str, tuple[datetime, datetime]]:
    proposal_id = str(uuid.uuid4())
    row = conn.execute(INSERT, (proposal_id, user, created, expires)).fetchone()
    assert row is not None
    return proposal_id, (row[0], row[1])


@pytest.mark.parametrize(
    "change",
    [
        "expires_at = expires_at + interval '1 day'",
        "created_at = created_at + interval '1 hour'",
        "side = 'sell'",
        "status = 'open'",
    ],
)
def test_the_scanner_cannot_update_a_proposal_or_stretch_its_expiry(postgres: Postgres, change: str) -> None:
    user = new_user_id("immutable")
    with _as_scanner(postgres, user) as conn:
        now = datetime.now(UTC)
        proposal_id, _ = _insert(conn, user, now, now + timedelta(minutes=15))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(f"UPDATE oracle.trade_proposals SET {change} WHERE proposal_id = %s", (proposal_id,))


@pytest.mark.parametrize(
    "change",
    [
        "market = 'ETH-EUR'",
        "side = 'sell'",
        "amount_quote = 999",
        "confidence = 100",
        'market_snapshot = \'{"price": "1"}\'',
        "policy_snapshot = '{\"x\": 1}'",
        "created_at = created_at - interval '1 minute'",
        "expires_at = expires_at + interval '1 minute'",
        "status = 'expired', expires_at = expires_at + interval '1 minute'",
    ],
)
def test_nobody_changes_what_a_proposal_says(postgres: Postgres, change: str) -> None:
    user = new_user_id("immutable")
    with postgres.admin() as conn:
        now = datetime.now(UTC)
        proposal_id, _ = _insert(conn, user, now, now + timedelta(minutes=15))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"):
            conn.execute(f"UPDATE oracle.trade_proposals SET {change} WHERE proposal_id = %s", (proposal_id,))
        # the one move a proposal makes (the expiry sweep's) is still allowed
        conn.execute("UPDATE oracle.trade_proposals SET status = 'expired' WHERE proposal_id = %s", (proposal_id,))


def test_the_database_stamps_a_proposal_and_caps_its_lifetime(postgres: Postgres, db_clock: DbClock) -> None:
    user = new_user_id("stamped")
    clock = db_clock(datetime(2034, 8, 1, 9, 30, tzinfo=UTC))
    with postgres.admin() as admin:
        (cap,) = admin.execute("SELECT proposal_max_lifetime FROM oracle.database_settings").fetchone() or (None,)
        admin.execute("UPDATE oracle.database_settings SET proposal_max_lifetime = interval '1 hour'")
    try:
        with _as_scanner(postgres, user) as conn:
            # the scanner's own clock is a year off: only the lifetime it asks for is used
            mine = datetime(2035, 8, 1, 9, 30, tzinfo=UTC)
            _, short = _insert(conn, user, mine, mine + timedelta(minutes=15))
            assert short == (clock.now(), clock.now() + timedelta(minutes=15))
            _, stretched = _insert(conn, user, mine, mine + timedelta(days=365))
            assert stretched == (clock.now(), clock.now() + timedelta(hours=1))
            with pytest.raises(psycopg.errors.CheckViolation, match="positive lifetime"):
                _insert(conn, user, mine, mine - timedelta(seconds=1))
    finally:
        with postgres.admin() as admin:
            admin.execute("UPDATE oracle.database_settings SET proposal_max_lifetime = %s", (cap,))


def test_no_service_role_moves_the_database_clock(postgres: Postgres) -> None:
    for service in ("scanner", "executor", "budget"):
        with psycopg.connect(postgres.url(service)) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute("UPDATE oracle.database_settings SET clock_offset = interval '1 hour'")
