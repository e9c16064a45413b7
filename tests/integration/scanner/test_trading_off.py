"""A job's run skips the analysis while the user's trading is off (their policy or the global kill
switch): no LLM call reaches the simulator, no reservation at the budget, no proposal, and every
market is recorded as TRADING_DISABLED on the job and in the audit trail — unless the job was
created with keep_proposing, which analyses and proposes as usual. Counts are taken at the LLM
simulator and in the database, never from the scanner's answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from oracle.scanner.v1 import scanner_service_pb2 as pb

from tests.harness import Postgres, new_user_id
from tests.integration.budget.servers import Budget, in_process_budget
from tests.integration.scanner.kit import (
    Exchange,
    Llm,
    ScannerServer,
    in_process_scanner,
    llm_overrides,
    proposals_of,
    rows,
    seed_policy,
)

MARKETS = ["BTC-EUR", "ETH-EUR"]


@pytest.fixture
def budget(postgres: Postgres) -> Iterator[Budget]:
    with in_process_budget(postgres) as server:
        yield server


@pytest.fixture
def scanner(postgres: Postgres, exchange: Exchange, llm: Llm, budget: Budget) -> Iterator[ScannerServer]:
    exchange.trend_up("BTC-EUR")  # both analysts would propose a buy on BTC-EUR
    with in_process_scanner(postgres, exchange.url, config=llm_overrides(llm, budget.target)) as server:
        yield server


@pytest.fixture
def global_switch_off(postgres: Postgres) -> Iterator[None]:
    """The global kill switch off for one test (account_settings is one row for every user)."""
    with postgres.admin() as conn:
        conn.execute("UPDATE oracle.account_settings SET trading_enabled = false, version = version + 1")
    try:
        yield
    finally:
        with postgres.admin() as conn:
            conn.execute("UPDATE oracle.account_settings SET trading_enabled = true, version = version + 1")


def create_job(
    scanner: ScannerServer, user_id: str, analyst: pb.AnalystKind.ValueType, *, keep_proposing: bool
) -> pb.ScanJob:
    request = pb.CreateScanJobRequest(user_id=user_id, markets=MARKETS, analyst=analyst, keep_proposing=keep_proposing)
    request.interval.FromTimedelta(timedelta(hours=1))
    job: pb.ScanJob = scanner.stub.CreateScanJob(request, timeout=10).job
    assert job.keep_proposing is keep_proposing
    return job


def recorded_reasons(postgres: Postgres, user_id: str, job_id: str) -> tuple[list[str], list[str]]:
    """The skip reasons on the job row and in the run's scan.completed event, read as the superuser."""
    (job,) = rows(postgres, "SELECT last_outcomes FROM oracle.scan_jobs WHERE job_id = %s", job_id)
    (event,) = rows(
        postgres,
        "SELECT payload FROM oracle.audit_events WHERE user_id = %s AND kind = 'scan.completed'",
        user_id,
    )
    return (
        [o.get("skipped_reason", "") for o in job["last_outcomes"]],
        [o.get("skipped_reason", "") for o in event["payload"]["outcomes"]],
    )


@pytest.mark.parametrize("analyst", [pb.ANALYST_KIND_LLM, pb.ANALYST_KIND_RULES], ids=["llm", "rules"])
def test_a_job_of_a_user_whose_trading_is_off_analyses_nothing_and_records_the_skip(
    postgres: Postgres, scanner: ScannerServer, llm: Llm, budget: Budget, analyst: pb.AnalystKind.ValueType
) -> None:
    user = new_user_id("off")
    seed_policy(postgres, user, trading_enabled=False)
    job = create_job(scanner, user, analyst, keep_proposing=False)

    reply = scanner.run(user, job_id=job.job_id)

    assert [(o.market, o.skipped_reason) for o in reply.outcomes] == [(m, "TRADING_DISABLED") for m in MARKETS]
    assert all(f"oraclectl trading on --user {user}" in o.detail for o in reply.outcomes)
    assert llm.admin.request_count() == 0  # not one request reached the LLM
    assert budget.rows(user) == []  # nor was a call reserved
    assert proposals_of(postgres, user) == []
    assert recorded_reasons(postgres, user, job.job_id) == (["TRADING_DISABLED"] * 2, ["TRADING_DISABLED"] * 2)


@pytest.mark.usefixtures("global_switch_off")
def test_the_global_kill_switch_skips_the_analysis_too(postgres: Postgres, scanner: ScannerServer, llm: Llm) -> None:
    user = new_user_id("global-off")
    seed_policy(postgres, user)  # the user's own trading is on
    job = create_job(scanner, user, pb.ANALYST_KIND_LLM, keep_proposing=False)

    reply = scanner.run(user, job_id=job.job_id)

    assert [o.skipped_reason for o in reply.outcomes] == ["TRADING_DISABLED"] * 2
    assert all("oraclectl trading on --global" in o.detail for o in reply.outcomes)
    assert llm.admin.request_count() == 0
    assert proposals_of(postgres, user) == []


def test_a_job_that_keeps_proposing_analyses_and_proposes_while_trading_is_off(
    postgres: Postgres, scanner: ScannerServer, llm: Llm, budget: Budget
) -> None:
    user = new_user_id("keep")
    seed_policy(postgres, user, trading_enabled=False)
    job = create_job(scanner, user, pb.ANALYST_KIND_LLM, keep_proposing=True)

    reply = scanner.run(user, job_id=job.job_id)

    assert llm.admin.completion_count() == len(MARKETS)  # every market was analysed
    assert "TRADING_DISABLED" not in [o.skipped_reason for o in reply.outcomes]
    (proposal,) = reply.proposals  # BTC-EUR trends up: a buy
    assert proposal.market == "BTC-EUR"
    assert [p["proposal_id"] for p in proposals_of(postgres, user)] == [proposal.proposal_id]
    assert len(budget.rows(user)) == len(MARKETS)


def test_a_job_of_a_user_whose_trading_is_on_analyses_as_usual(
    postgres: Postgres, scanner: ScannerServer, llm: Llm
) -> None:
    """The skip needs trading off: the same job for a user whose trading is on reaches the LLM."""
    user = new_user_id("on")
    seed_policy(postgres, user)
    job = create_job(scanner, user, pb.ANALYST_KIND_LLM, keep_proposing=False)

    reply = scanner.run(user, job_id=job.job_id)

    assert llm.admin.completion_count() == len(MARKETS)
    assert len(reply.proposals) == 1
