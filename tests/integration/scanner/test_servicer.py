"""ScannerService over real gRPC: every bad field is INVALID_ARGUMENT naming it, unknown things are
NOT_FOUND, rights follow the principal table, and per-market reasons come back in RunScan."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from oracle.scanner.v1 import scanner_service_pb2 as pb
from oracle.scanner.v1 import scanner_service_pb2_grpc as pb_grpc

from shared.errors import ErrorReport, from_rpc_error
from tests.harness import SCANNER_TOKEN, VIEWER_TOKEN, Postgres, channel, new_user_id
from tests.integration.scanner.kit import Exchange, ScannerServer, in_process_scanner, seed_policy

RULES = pb.ANALYST_KIND_RULES
MISSING = "7d0b7b8e-2c1e-4d0a-9a43-5a3c33d2a001"


@pytest.fixture
def scanner(postgres: Postgres, exchange: Exchange) -> Iterator[ScannerServer]:
    with in_process_scanner(postgres, exchange.url) as server:
        yield server


def failure(call: Callable[[], Any]) -> ErrorReport:
    try:
        call()
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    raise AssertionError("the call succeeded but was expected to fail")


def bad_field(call: Callable[[], Any]) -> str:
    report = failure(call)
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT, report
    (violation,) = report.field_violations
    return violation.field


def create_request(user: str, markets: list[str], seconds: int | None = 60, analyst: int = RULES) -> Any:
    request = pb.CreateScanJobRequest(user_id=user, markets=markets, analyst=analyst)  # type: ignore[arg-type]
    if seconds is not None:
        request.interval.FromTimedelta(timedelta(seconds=seconds))
    return request


@pytest.mark.parametrize(
    ("user", "markets", "seconds", "analyst", "field"),
    [
        ("", ["BTC-EUR"], 60, RULES, "user_id"),
        ("bad user", ["BTC-EUR"], 60, RULES, "user_id"),
        ("u", [], 60, RULES, "markets"),
        ("u", ["btc-eur"], 60, RULES, "markets[0]"),
        ("u", ["BTC-EUR", "BTC-USD"], 60, RULES, "markets[1]"),
        ("u", ["BTC-EUR", "BTC-EUR"], 60, RULES, "markets"),
        ("u", [f"M{i}-EUR" for i in range(51)], 60, RULES, "markets"),
        ("u", ["BTC-EUR"], None, RULES, "interval"),
        ("u", ["BTC-EUR"], 9, RULES, "interval"),
        ("u", ["BTC-EUR"], 8 * 86400, RULES, "interval"),
        ("u", ["BTC-EUR"], 60, 0, "analyst"),
        ("u", ["BTC-EUR"], 60, 9, "analyst"),
    ],
)
def test_create_scan_job_names_the_bad_field(
    scanner: ScannerServer, user: str, markets: list[str], seconds: int | None, analyst: int, field: str
) -> None:
    assert bad_field(lambda: scanner.stub.CreateScanJob(create_request(user, markets, seconds, analyst))) == field


@pytest.mark.parametrize("seconds", [2**63 - 1, -(2**63), -1])
def test_an_overflowing_interval_is_invalid_argument_not_internal(scanner: ScannerServer, seconds: int) -> None:
    request = create_request("u", ["BTC-EUR"], None)
    request.interval.seconds = seconds
    assert bad_field(lambda: scanner.stub.CreateScanJob(request)) == "interval"


def test_other_bad_fields_are_named(scanner: ScannerServer) -> None:
    stub = scanner.stub
    assert bad_field(lambda: stub.PauseScanJob(pb.PauseScanJobRequest(user_id="u", job_id="nope"))) == "job_id"
    assert bad_field(lambda: stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id="u"))) == "job_id"
    assert bad_field(lambda: stub.GetProposal(pb.GetProposalRequest(user_id="u", proposal_id="x"))) == "proposal_id"
    assert bad_field(lambda: stub.ListProposals(pb.ListProposalsRequest(user_id="u", status=7))) == "status"  # type: ignore[arg-type]
    assert bad_field(lambda: stub.ListProposals(pb.ListProposalsRequest(user_id="u", page_size=501))) == "page_size"
    assert bad_field(lambda: stub.ListScanJobs(pb.ListScanJobsRequest(user_id="u", page_token="zz"))) == "page_token"
    assert bad_field(lambda: stub.RunScan(pb.RunScanRequest(user_id="u"))) == "markets"
    assert (
        bad_field(lambda: stub.RunScan(pb.RunScanRequest(user_id="u", job_id=MISSING, markets=["BTC-EUR"])))
        == "markets"
    )
    assert bad_field(lambda: stub.RunScan(pb.RunScanRequest(user_id="u", job_id="1"))) == "job_id"
    assert bad_field(lambda: stub.RunScan(pb.RunScanRequest(user_id="u", markets=["BTC-EUR"], analyst=5))) == "analyst"  # type: ignore[arg-type]


def test_every_bad_field_is_named_at_once(scanner: ScannerServer) -> None:
    report = failure(lambda: scanner.stub.CreateScanJob(create_request("bad user", ["btc"], 1, 0)))
    assert report.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in report.field_violations] == ["user_id", "markets[0]", "interval", "analyst"]


def test_unknown_things_are_not_found(scanner: ScannerServer) -> None:
    stub = scanner.stub
    for call in (
        lambda: stub.GetProposal(pb.GetProposalRequest(user_id="u", proposal_id=MISSING)),
        lambda: stub.PauseScanJob(pb.PauseScanJobRequest(user_id="u", job_id=MISSING, paused=True)),
        lambda: stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id="u", job_id=MISSING)),
        lambda: stub.RunScan(pb.RunScanRequest(user_id="u", job_id=MISSING)),
    ):
        assert failure(call).code is grpc.StatusCode.NOT_FOUND


def test_jobs_are_created_listed_paused_and_deleted_per_user(scanner: ScannerServer) -> None:
    user, other = new_user_id("jobs"), new_user_id("other")
    stub = scanner.stub
    created = [scanner.create_job(user, ["BTC-EUR", "ETH-EUR"], analyst=RULES, interval_s=60 + i) for i in range(3)]
    try:
        first = created[0]
        assert first.markets == ["BTC-EUR", "ETH-EUR"]
        assert first.interval.seconds == 60
        assert first.next_run_at == first.created_at, "a new job is due at once"
        assert first.fencing_token == 0 and not first.paused and first.locked_by == ""

        page1 = stub.ListScanJobs(pb.ListScanJobsRequest(user_id=user, page_size=2))
        page2 = stub.ListScanJobs(pb.ListScanJobsRequest(user_id=user, page_size=2, page_token=page1.next_page_token))
        assert [j.job_id for j in [*page1.jobs, *page2.jobs]] == [j.job_id for j in created]
        assert page2.next_page_token == ""
        assert scanner.jobs(other) == []

        paused = stub.PauseScanJob(pb.PauseScanJobRequest(user_id=user, job_id=first.job_id, paused=True)).job
        assert paused.paused
        not_yours = failure(lambda: stub.PauseScanJob(pb.PauseScanJobRequest(user_id=other, job_id=first.job_id)))
        assert not_yours.code is grpc.StatusCode.NOT_FOUND
    finally:
        for job in created:
            stub.DeleteScanJob(pb.DeleteScanJobRequest(user_id=user, job_id=job.job_id))
    assert scanner.jobs(user) == []


def test_rights_follow_the_principal(scanner: ScannerServer) -> None:
    with channel(scanner.port, VIEWER_TOKEN) as viewer_channel, channel(scanner.port, SCANNER_TOKEN) as scanner_channel:
        viewer = pb_grpc.ScannerServiceStub(viewer_channel)
        viewer.ListProposals(pb.ListProposalsRequest(user_id="u"))
        run = pb.RunScanRequest(user_id="u", markets=["BTC-EUR"])
        assert failure(lambda: viewer.RunScan(run)).code is grpc.StatusCode.PERMISSION_DENIED
        itself = pb_grpc.ScannerServiceStub(scanner_channel)
        assert failure(lambda: itself.ListProposals(pb.ListProposalsRequest(user_id="u"))).code is (
            grpc.StatusCode.PERMISSION_DENIED
        )
    with channel(scanner.port, None) as anonymous_channel:
        anonymous = pb_grpc.ScannerServiceStub(anonymous_channel)
        assert failure(lambda: anonymous.ListProposals(pb.ListProposalsRequest(user_id="u"))).code is (
            grpc.StatusCode.UNAUTHENTICATED
        )


def test_run_scan_says_why_per_market(postgres: Postgres, scanner: ScannerServer, exchange: Exchange) -> None:
    exchange.admin.halt_market("SOL-EUR")
    exchange.trend_up("BTC-EUR")
    nobody = new_user_id("nopolicy")
    assert [o.skipped_reason for o in scanner.run(nobody, ["BTC-EUR"], analyst=RULES).outcomes] == ["NO_POLICY"]

    user = new_user_id("why")
    seed_policy(postgres, user)
    reply = scanner.run(user, ["FOO-EUR", "SOL-EUR", "BTC-EUR"], analyst=RULES)
    reasons = {o.market: o.skipped_reason for o in reply.outcomes}
    assert reasons == {"FOO-EUR": "MARKET_UNKNOWN", "SOL-EUR": "MARKET_NOT_TRADING", "BTC-EUR": ""}
    (proposal,) = reply.proposals
    assert proposal.market == "BTC-EUR"
    assert proposal.model == "rules-v1"
    assert proposal.market_snapshot["price"] == str(exchange.admin.prices()["BTC-EUR"])
    got = scanner.stub.GetProposal(pb.GetProposalRequest(user_id=user, proposal_id=proposal.proposal_id)).proposal
    assert got == proposal
    listed = scanner.stub.ListProposals(pb.ListProposalsRequest(user_id=user, status=pb.PROPOSAL_STATUS_OPEN))
    assert [p.proposal_id for p in listed.proposals] == [proposal.proposal_id]


def test_run_scan_is_unavailable_while_the_exchange_is_down(scanner: ScannerServer, exchange: Exchange) -> None:
    exchange.admin.refuse_connections(10)
    report = failure(lambda: scanner.run(new_user_id("down"), ["BTC-EUR"], analyst=RULES))
    assert report.code is grpc.StatusCode.UNAVAILABLE
    assert report.reason == "MARKET_DATA_UNAVAILABLE"
