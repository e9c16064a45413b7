"""services.scanner.budget_client against a real budget server: reserve → call → commit, release when the
block fails before the LLM call started, and never a release once it may have started."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta

import grpc
import pytest

from services.scanner.budget_client import BudgetClient, BudgetError, BudgetExhausted, BudgetUnavailable, Outcome
from shared.errors import ResourceExhausted
from tests.harness import SCANNER_TOKEN, VIEWER_TOKEN, new_user_id
from tests.integration.budget.servers import Budget


class LLMDown(Exception):
    """What the (pretend) LLM call raises."""


@pytest.fixture
def client(budget: Budget) -> Iterator[BudgetClient]:
    # As the scanner: the principal that uses this client in production.
    with closing(BudgetClient(budget.target, SCANNER_TOKEN)) as c:
        yield c


def _statuses(budget: Budget, user: str) -> list[str]:
    return [r["status"] for r in budget.rows(user)]


def test_reserve_call_commit(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with client.call(user, "scan:BTC-EUR", "gpt-4o-mini", 900, 400) as grant:
        assert grant.max_tokens == 400
        assert _statuses(budget, user) == ["reserved"]
        grant.started()
        grant.record(880, 120, cost_micros=345)
    assert grant.outcome is Outcome.COMMITTED
    [row] = budget.rows(user)
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"], row["cost_micros"]) == (
        "committed",
        880,
        120,
        345,
    )


def test_an_exception_before_the_call_releases_and_propagates(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with pytest.raises(ValueError, match="prompt too long"), client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        raise ValueError("prompt too long")
    assert grant.outcome is Outcome.RELEASED
    assert _statuses(budget, user) == ["released"]


def test_a_block_that_never_calls_releases(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        pass
    assert grant.outcome is Outcome.RELEASED
    assert _statuses(budget, user) == ["released"]


def test_no_release_once_the_call_started(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with pytest.raises(LLMDown), client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        grant.started()
        raise LLMDown("connection reset after the request was sent")
    assert grant.outcome is Outcome.LEFT_RESERVED
    assert _statuses(budget, user) == ["reserved"]  # expires later and keeps counting


def test_usage_recorded_is_committed_even_if_the_block_fails_afterwards(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with pytest.raises(KeyError), client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        grant.started()
        grant.record(10, 5)
        raise KeyError("unparseable answer")
    assert grant.outcome is Outcome.COMMITTED
    [row] = budget.rows(user)
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("committed", 10, 5)
    assert row["cost_micros"] == 10 * 15 // 100 + 5 * 60 // 100 + 1  # priced by the service, rounded up


def test_exhaustion_raises_before_the_block_runs(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    budget.set_limits(user, daily=5, hourly=1)
    with client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        grant.record(1, 1)
    ran = False
    with pytest.raises(BudgetExhausted) as caught, client.call(user, "scan", "gpt-4o-mini", 10, 10):
        ran = True
    assert not ran
    assert caught.value.windows == ("hourly_calls",)
    assert caught.value.retry_after == timedelta(minutes=60)
    assert caught.value.reason == "BUDGET_EXHAUSTED"
    assert isinstance(caught.value, ResourceExhausted)  # maps to RESOURCE_EXHAUSTED if re-raised
    assert len(budget.rows(user)) == 1


def test_refusals_and_outages_are_typed(budget: Budget) -> None:
    with closing(BudgetClient(budget.target, VIEWER_TOKEN)) as viewer:  # may read usage, not reserve
        with pytest.raises(BudgetError) as refused, viewer.call(new_user_id(), "scan", "m", 1, 1):
            pass
        assert refused.value.reason == "METHOD_NOT_ALLOWED"
        assert refused.value.report is not None
        assert refused.value.report.code is grpc.StatusCode.PERMISSION_DENIED

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with closing(BudgetClient(f"127.0.0.1:{port}", SCANNER_TOKEN, timeout_seconds=2)) as down:
        with pytest.raises(BudgetUnavailable), down.call(new_user_id(), "scan", "m", 1, 1):
            pass


def test_record_validates_and_is_once(budget: Budget, client: BudgetClient) -> None:
    user = new_user_id("client")
    with client.call(user, "scan", "gpt-4o-mini", 10, 10) as grant:
        with pytest.raises(ValueError, match="prompt_tokens"):
            grant.record(-1, 0)
        grant.record(1, 2)
        with pytest.raises(RuntimeError):
            grant.record(1, 2)
    with pytest.raises(RuntimeError):
        grant.started()  # settled grants are closed
