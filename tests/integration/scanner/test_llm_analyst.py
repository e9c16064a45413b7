"""The LLM analyst end to end: the official ``openai`` client against the LLM simulator, every call
reserved at the real budget service, every answer validated. What reached the LLM is counted at
the simulator; what the scanner decided is read from RunScan, the job and the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from oracle.scanner.v1 import scanner_service_pb2 as pb

from tests.harness import Postgres, new_user_id
from tests.integration.budget.servers import Budget, in_process_budget
from tests.integration.scanner.kit import (
    Exchange,
    Llm,
    ScannerServer,
    assembled,
    in_process_scanner,
    llm_overrides,
    proposals_of,
    rows,
    scan_runs,
    seed_policy,
)

LLM = pb.ANALYST_KIND_LLM


@pytest.fixture
def budget(postgres: Postgres) -> Iterator[Budget]:
    with in_process_budget(postgres) as server:
        yield server


@pytest.fixture
def scanner(postgres: Postgres, exchange: Exchange, llm: Llm, budget: Budget) -> Iterator[ScannerServer]:
    with in_process_scanner(postgres, exchange.url, config=llm_overrides(llm, budget.target)) as server:
        yield server


@pytest.fixture
def user(postgres: Postgres, exchange: Exchange) -> str:
    user_id = new_user_id("llm")
    seed_policy(postgres, user_id)
    exchange.trend_up("BTC-EUR")  # the simulated LLM answers buy
    return user_id


def completed_outcomes(postgres: Postgres, user_id: str) -> list[dict[str, object]]:
    found = rows(
        postgres,
        "SELECT payload FROM oracle.audit_events WHERE user_id = %s AND kind = 'scan.completed' ORDER BY sequence",
        user_id,
    )
    return [o for r in found for o in r["payload"]["outcomes"]]


def test_an_answer_that_validates_becomes_a_proposal(
    postgres: Postgres, scanner: ScannerServer, llm: Llm, budget: Budget, user: str
) -> None:
    reply = scanner.run(user, ["BTC-EUR"], analyst=LLM)
    (proposal,) = reply.proposals
    assert proposal.side == pb.SIDE_BUY
    assert proposal.analyst == LLM
    assert proposal.amount_quote == "10.00"  # the simulator proposes the smallest allowed order
    assert proposal.confidence in (50, 75, 100)
    assert proposal.market_snapshot["price"]
    assert llm.admin.completion_count() == 1
    (request,) = llm.admin.requests()
    assert request["response_format"] == {"type": "json_object"}
    assert request["max_tokens"] == scanner.settings.llm_max_tokens
    assert '"format":"oracle.scan.v1"' in request["messages"][-1]["content"]
    (row,) = budget.rows(user)
    assert row["status"] == "committed"
    assert row["completion_tokens"] > 0


def test_the_call_asks_for_no_more_tokens_than_the_budget_granted(
    postgres: Postgres, exchange: Exchange, llm: Llm, user: str
) -> None:
    with (
        in_process_budget(postgres, max_tokens_per_call="8") as small,
        in_process_scanner(postgres, exchange.url, config=llm_overrides(llm, small.target)) as scanner,
    ):
        reply = scanner.run(user, ["BTC-EUR"], analyst=LLM)
    (request,) = llm.admin.requests()
    assert request["max_tokens"] == 8
    # the simulator cuts its answer at 8 tokens: that is not valid JSON, so no proposal
    assert [o.skipped_reason for o in reply.outcomes] == ["LLM_INVALID_JSON"]
    assert proposals_of(postgres, user) == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("invalid_json", "LLM_INVALID_JSON"),
        ("confidence_30", "LLM_INVALID_CONFIDENCE"),
        ("negative_amount", "LLM_INVALID_AMOUNT"),
        ("zero_amount", "LLM_INVALID_AMOUNT"),
        ("huge_amount", "LLM_INVALID_AMOUNT"),
        ("above_max_amount", "LLM_INVALID_AMOUNT"),
        ("unknown_side", "LLM_INVALID_SIDE"),
    ],
)
def test_an_answer_that_does_not_validate_makes_no_proposal_and_says_why(
    postgres: Postgres, scanner: ScannerServer, llm: Llm, user: str, fault: str, reason: str
) -> None:
    job = scanner.create_job(user, ["BTC-EUR"], analyst=LLM)
    try:
        llm.admin.add_fault(fault, count=1)
        reply = scanner.run(user, job_id=job.job_id)
        assert list(reply.proposals) == []
        (outcome,) = reply.outcomes
        assert outcome.skipped_reason == reason
        assert outcome.proposal_id == ""
        assert llm.admin.completion_count() == 1  # the call was made (and paid for) ...
        assert proposals_of(postgres, user) == []  # ... but nothing was proposed
        (recorded,) = scanner.jobs(user)
        assert [o.skipped_reason for o in recorded.last_outcomes] == [reason]
        assert [o["skipped_reason"] for o in completed_outcomes(postgres, user)] == [reason]
    finally:
        scanner.stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id=user, job_id=job.job_id))


def test_an_exhausted_budget_makes_no_llm_call(
    postgres: Postgres, scanner: ScannerServer, llm: Llm, budget: Budget, user: str
) -> None:
    budget.set_limits(user, daily=0, hourly=0)
    job = scanner.create_job(user, ["BTC-EUR", "ETH-EUR"], analyst=LLM)
    try:
        reply = scanner.run(user, job_id=job.job_id)
        assert [o.skipped_reason for o in reply.outcomes] == ["BUDGET_EXHAUSTED", "BUDGET_EXHAUSTED"]
        assert list(reply.proposals) == []
        assert llm.admin.request_count() == 0, "a call reached the LLM without budget"
        (recorded,) = scanner.jobs(user)
        assert [o.skipped_reason for o in recorded.last_outcomes] == ["BUDGET_EXHAUSTED", "BUDGET_EXHAUSTED"]
        assert recorded.attempts == 0  # not a failure of the job: a reason per market
    finally:
        scanner.stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id=user, job_id=job.job_id))
    assert budget.rows(user) == []


def test_an_llm_server_error_makes_no_proposal(scanner: ScannerServer, llm: Llm, budget: Budget, user: str) -> None:
    llm.admin.add_fault("http_500", count=1)
    reply = scanner.run(user, ["BTC-EUR"], analyst=LLM)
    assert [o.skipped_reason for o in reply.outcomes] == ["LLM_ERROR"]
    # the request left: the reservation is kept (it expires and keeps counting), never released
    assert [r["status"] for r in budget.rows(user)] == ["reserved"]


def proposed_markets(postgres: Postgres, user_id: str) -> list[str]:
    return sorted(str(p["market"]) for p in proposals_of(postgres, user_id))  # one run: one created_at


@pytest.mark.parametrize("fault", ["huge_amount", "above_max_amount"])
def test_one_market_with_an_unstorable_amount_does_not_sink_the_jobs_other_markets(
    postgres: Postgres, scanner: ScannerServer, exchange: Exchange, llm: Llm, user: str, fault: str
) -> None:
    exchange.trend_up("ETH-EUR")  # both markets trend up: the simulated LLM proposes both
    job = scanner.create_job(user, ["BTC-EUR", "ETH-EUR"], analyst=LLM)
    try:
        llm.admin.add_fault(fault, count=1)  # the first market asked (BTC-EUR) gets the bad answer
        reply = scanner.run(user, job_id=job.job_id)
        assert [(o.market, o.skipped_reason) for o in reply.outcomes] == [
            ("BTC-EUR", "LLM_INVALID_AMOUNT"),
            ("ETH-EUR", ""),
        ]
        (proposal,) = reply.proposals
        assert proposal.market == "ETH-EUR" and reply.outcomes[1].proposal_id == proposal.proposal_id
        assert llm.admin.completion_count() == 2
        assert proposed_markets(postgres, user) == ["ETH-EUR"]
        (recorded,) = scanner.jobs(user)
        assert [o.skipped_reason for o in recorded.last_outcomes] == ["LLM_INVALID_AMOUNT", ""]
        assert recorded.attempts == 0 and recorded.last_error == ""  # a per-market reason, not a failure
        assert [o.get("skipped_reason") for o in completed_outcomes(postgres, user)] == ["LLM_INVALID_AMOUNT", None]
    finally:
        scanner.stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id=user, job_id=job.job_id))


def test_an_unclean_model_name_from_the_llm_server_is_not_stored(
    postgres: Postgres, scanner: ScannerServer, exchange: Exchange, llm: Llm, user: str
) -> None:
    exchange.trend_up("ETH-EUR")
    job = scanner.create_job(user, ["BTC-EUR", "ETH-EUR"], analyst=LLM)
    try:
        llm.admin.add_fault("nul_model", count=1)  # BTC-EUR's answer names a model with NUL and ESC
        reply = scanner.run(user, job_id=job.job_id)
        assert [o.skipped_reason for o in reply.outcomes] == ["", ""]
        assert [(p.market, p.model) for p in reply.proposals] == [
            ("BTC-EUR", "gpt-4o-mini"),  # the configured model name instead
            ("ETH-EUR", "gpt-4o-mini"),
        ]
        stored = rows(postgres, "SELECT model FROM oracle.trade_proposals WHERE user_id = %s", user)
        assert sorted(r["model"] for r in stored) == ["gpt-4o-mini", "gpt-4o-mini"]
    finally:
        scanner.stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id=user, job_id=job.job_id))


def test_an_on_demand_scan_with_an_unstorable_amount_answers_the_other_markets(
    postgres: Postgres, scanner: ScannerServer, exchange: Exchange, llm: Llm, user: str
) -> None:
    exchange.trend_up("ETH-EUR")
    llm.admin.add_fault("huge_amount", count=1)
    reply = scanner.run(user, ["BTC-EUR", "ETH-EUR"], analyst=LLM)  # no INTERNAL: an answer per market
    assert [o.skipped_reason for o in reply.outcomes] == ["LLM_INVALID_AMOUNT", ""]
    assert [p.market for p in reply.proposals] == ["ETH-EUR"]
    assert proposed_markets(postgres, user) == ["ETH-EUR"]


@pytest.mark.parametrize(("fault", "reason"), [("huge_amount", "LLM_INVALID_AMOUNT"), ("nul_model", "")])
def test_a_scheduled_run_writes_the_other_markets_despite_a_bad_answer(
    private_postgres: Postgres, exchange: Exchange, llm: Llm, fault: str, reason: str
) -> None:
    pg = private_postgres
    user = new_user_id("llmjob")
    seed_policy(pg, user)
    exchange.trend_up("BTC-EUR")
    exchange.trend_up("ETH-EUR")
    with (
        in_process_budget(pg) as budget,
        assembled(pg, exchange.url, config=llm_overrides(llm, budget.target)) as scanner,
    ):
        job = scanner.jobs.create(user, ["BTC-EUR", "ETH-EUR"], timedelta(hours=1), "llm", principal="test")
        llm.admin.add_fault(fault, count=1)  # BTC-EUR, asked first
        assert scanner.scheduler.run_once() == 1
        after = scanner.jobs.get(user, job.job_id)
    assert scan_runs(pg, "scan.failed") == [], "the run failed (and would back off and fail again)"
    assert [r["job_id"] for r in scan_runs(pg)] == [job.job_id]
    assert after.attempts == 0 and after.last_error == ""
    assert after.next_run_at > datetime.now(UTC) + timedelta(minutes=59)  # rescheduled, no back-off
    assert [(o.market, o.skipped_reason) for o in after.last_outcomes] == [("BTC-EUR", reason), ("ETH-EUR", "")]
    expected = ["ETH-EUR"] if reason else ["BTC-EUR", "ETH-EUR"]
    assert proposed_markets(pg, user) == expected
    models = rows(pg, "SELECT DISTINCT model FROM oracle.trade_proposals WHERE user_id = %s", user)
    assert [m["model"] for m in models] == ["gpt-4o-mini"]
