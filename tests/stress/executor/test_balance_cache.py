"""A cached balance is exactly as conservative as a fresh one, across processes: two executor
processes each reuse the balance they read before the storm (EXECUTOR_BALANCE_CACHE_SECONDS), and
ten users' BUYs of 10 EUR against 35 EUR send exactly 3 orders — every execution claimed or settled
since the balance was read is counted against it (oracle.account_in_flight_eur since the balance's
database time), whichever process made it. Counted at the simulator: no GET /balance during the
storm, 3 POST /order, none refused for balance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from oracle.executor.v1 import executor_service_pb2 as pb

from tests.harness import Postgres
from tests.integration.executor.kit import Exchange, running_exchange, seed_proposal, user, violation_types
from tests.stress.executor.test_storms import USERS, executor_pair, fire_users, split, users_with_a_proposal

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    with running_exchange(eur="1000000") as ex:
        yield ex


def test_cached_balances_storm_across_processes(private_postgres: Postgres, exchange: Exchange, tmp_path: Path) -> None:
    with executor_pair(private_postgres, exchange, tmp_path, balance_cache_seconds="60") as pair:
        attempts = users_with_a_proposal(pair, private_postgres, exchange)
        exchange.admin.set_balance("EUR", "35")
        # each process reads (and keeps) the balance: an attempt refused by a validator still
        # fetches it (a user without a policy: ALLOWLIST_EMPTY_DENY_BY_DEFAULT)
        for executor in pair:
            stranger = user()
            pid = seed_proposal(private_postgres, stranger, amount="10.00", price=exchange.price("BTC-EUR"))
            assert executor.refused(stranger, pid).code is grpc.StatusCode.FAILED_PRECONDITION
        reads = exchange.admin.request_count("/balance")
        posts = exchange.post_count()
        try:
            executed, refused = split(fire_users(pair, attempts))
            uid, pid = (
                attempts[0][0],
                seed_proposal(private_postgres, attempts[0][0], amount="10.00", price=exchange.price("BTC-EUR")),
            )
            after = pair[1].refused(uid, pid)
        finally:
            exchange.admin.set_balance("EUR", "1000000")

    assert exchange.admin.request_count("/balance") == reads  # every check used a cached balance
    assert len(executed) == 3  # 3 x 10 <= 35 < 4 x 10
    assert all(e.status == pb.EXECUTION_STATUS_FILLED for e in executed)  # none refused for balance (216)
    assert len(refused) == USERS - 3
    assert all(violation_types(r) == ["INSUFFICIENT_BALANCE"] for r in refused)
    assert exchange.post_count() - posts == 3
    # still cached (35 EUR, read before the storm) and still right: the 30 EUR spent since count
    assert violation_types(after) == ["INSUFFICIENT_BALANCE"]
