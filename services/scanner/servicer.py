"""oracle.scanner.v1.ScannerService: proto ↔ domain translation, nothing else.

Every request field is checked here with shared.fields before the domain or the database sees it;
one INVALID_ARGUMENT names every bad field. The rules live in jobs.py, scheduler.py, scan.py and
proposals.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from oracle.scanner.v1 import scanner_service_pb2 as pb
from oracle.scanner.v1 import scanner_service_pb2_grpc as pb_grpc

from services.scanner.jobs import ScanJob, ScanJobs
from services.scanner.outcomes import AutoExecuteStatus, MarketOutcome
from services.scanner.proposals import Proposal, Proposals
from services.scanner.scan import ScanFailed, ScanResult, ScanRunner
from services.scanner.scheduler import Scheduler, unavailable
from shared import fields, messages
from shared.errors import InvalidArgument
from shared.principals import current_principal

MIN_INTERVAL = timedelta(seconds=10)
MAX_INTERVAL = timedelta(days=7)
MAX_MARKETS = 50

_ANALYST: dict[int, str] = {pb.ANALYST_KIND_RULES: "rules", pb.ANALYST_KIND_LLM: "llm"}
_ANALYST_PB = {"rules": pb.ANALYST_KIND_RULES, "llm": pb.ANALYST_KIND_LLM}
_SIDE_PB = {"buy": pb.SIDE_BUY, "sell": pb.SIDE_SELL}
_STATUS: dict[int, str] = {pb.PROPOSAL_STATUS_OPEN: "open", pb.PROPOSAL_STATUS_EXPIRED: "expired"}
_STATUS_PB = {"open": pb.PROPOSAL_STATUS_OPEN, "expired": pb.PROPOSAL_STATUS_EXPIRED}
_AUTO_PB = {
    AutoExecuteStatus.OFF: pb.AUTO_EXECUTE_STATUS_OFF,
    AutoExecuteStatus.EXECUTED: pb.AUTO_EXECUTE_STATUS_EXECUTED,
    AutoExecuteStatus.REJECTED: pb.AUTO_EXECUTE_STATUS_REJECTED,
    AutoExecuteStatus.DUPLICATE: pb.AUTO_EXECUTE_STATUS_DUPLICATE,
    AutoExecuteStatus.ERROR: pb.AUTO_EXECUTE_STATUS_ERROR,
}


def _markets(values: Any, field: str = "markets") -> list[str]:
    markets = [fields.market(m, f"{field}[{i}]") for i, m in enumerate(values)]
    if not markets:
        raise InvalidArgument.one(field, "at least one market is required")
    if len(markets) > MAX_MARKETS:
        raise InvalidArgument.one(field, f"at most {MAX_MARKETS} markets")
    if len(set(markets)) != len(markets):
        raise InvalidArgument.one(field, "must not repeat a market")
    return markets


def _interval(value: Duration, has: bool) -> timedelta:
    if not has:
        raise InvalidArgument.one("interval", "is required")
    return fields.duration(value, "interval", minimum=MIN_INTERVAL, maximum=MAX_INTERVAL)


def _user_and_id(user_id: str, ident: str, field: str) -> tuple[str, str]:
    """A user id and a UUID field, both checked (one INVALID_ARGUMENT naming each bad one)."""
    checks = fields.FieldErrors()
    user = checks.check(lambda: fields.user_id(user_id), "")
    uuid = checks.check(lambda: fields.uuid_str(ident, field), "")
    checks.raise_if_any()
    return user, uuid


def _struct(value: dict[str, Any]) -> Struct:
    struct = Struct()
    json_format.ParseDict(value, struct)
    return struct


def outcome_pb(outcome: MarketOutcome) -> pb.MarketOutcome:
    message = pb.MarketOutcome(
        market=outcome.market,
        proposal_id=outcome.proposal_id,
        skipped_reason=outcome.skipped_reason,
        detail=outcome.detail,
    )
    auto = outcome.auto_execution
    if auto is not None:
        message.auto_execute = _AUTO_PB[auto.status]
        message.execution_id = auto.execution_id
        message.execution_status = auto.execution_status
        message.execution_reasons.extend(auto.reasons)
    return message


def job_pb(job: ScanJob) -> pb.ScanJob:
    interval = Duration()
    interval.FromTimedelta(job.interval)
    return pb.ScanJob(
        job_id=job.job_id,
        user_id=job.user_id,
        markets=list(job.markets),
        interval=interval,
        analyst=_ANALYST_PB[job.analyst],
        paused=job.paused,
        next_run_at=messages.timestamp(job.next_run_at),
        attempts=job.attempts,
        last_error=job.last_error,
        last_run_at=messages.optional_timestamp(job.last_run_at),
        fencing_token=job.fencing_token,
        created_at=messages.timestamp(job.created_at),
        locked_by=job.locked_by or "",
        lock_expires_at=messages.optional_timestamp(job.lock_expires_at),
        last_outcomes=[outcome_pb(o) for o in job.last_outcomes],
        keep_proposing=job.keep_proposing,
    )


def proposal_pb(proposal: Proposal) -> pb.Proposal:
    return pb.Proposal(
        proposal_id=proposal.proposal_id,
        user_id=proposal.user_id,
        job_id=proposal.job_id or "",
        market=proposal.market,
        side=_SIDE_PB[proposal.side],
        amount_quote=str(proposal.amount_quote),
        confidence=proposal.confidence,
        rationale=proposal.rationale,
        analyst=_ANALYST_PB[proposal.analyst],
        model=proposal.model,
        status=_STATUS_PB[proposal.status],
        created_at=messages.timestamp(proposal.created_at),
        expires_at=messages.timestamp(proposal.expires_at),
        market_snapshot=_struct(proposal.market_snapshot),
        policy_snapshot=_struct(proposal.policy_snapshot),
    )


def _scan_pb(result: ScanResult) -> pb.RunScanResponse:
    return pb.RunScanResponse(
        proposals=[proposal_pb(p) for p in result.proposals],
        outcomes=[outcome_pb(o) for o in result.outcomes],
        run_id=result.run_id,
    )


class ScannerServicer(pb_grpc.ScannerServiceServicer):
    """The gRPC face of the scanner."""

    def __init__(
        self, *, jobs: ScanJobs, proposals: Proposals, runner: ScanRunner, scheduler: Scheduler, default_analyst: str
    ) -> None:
        self._jobs = jobs
        self._proposals = proposals
        self._runner = runner
        self._scheduler = scheduler
        self._default_analyst = default_analyst

    def CreateScanJob(self, request: pb.CreateScanJobRequest, context: Any) -> pb.CreateScanJobResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        markets: list[str] = checks.check(lambda: _markets(request.markets), [])
        interval = checks.check(lambda: _interval(request.interval, request.HasField("interval")), MIN_INTERVAL)
        analyst = checks.check(lambda: _ANALYST[fields.enum(request.analyst, "analyst", frozenset(_ANALYST))], "")
        checks.raise_if_any()
        job = self._jobs.create(
            user_id, markets, interval, analyst, principal=current_principal(), keep_proposing=request.keep_proposing
        )
        return pb.CreateScanJobResponse(job=job_pb(job))

    def ListScanJobs(self, request: pb.ListScanJobsRequest, context: Any) -> pb.ListScanJobsResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        size = checks.check(lambda: fields.page_size(request.page_size), 0)
        after = checks.check(lambda: messages.position(request.page_token), None)
        checks.raise_if_any()
        jobs, token = messages.page(
            self._jobs.list(user_id, after=after, limit=size + 1), size, lambda j: (j.created_at, j.job_id)
        )
        return pb.ListScanJobsResponse(jobs=[job_pb(j) for j in jobs], next_page_token=token)

    def PauseScanJob(self, request: pb.PauseScanJobRequest, context: Any) -> pb.PauseScanJobResponse:
        user_id, job_id = _user_and_id(request.user_id, request.job_id, "job_id")
        job = self._jobs.pause(user_id, job_id, request.paused, principal=current_principal())
        return pb.PauseScanJobResponse(job=job_pb(job))

    def DeleteScanJob(self, request: pb.DeleteScanJobRequest, context: Any) -> pb.DeleteScanJobResponse:
        user_id, job_id = _user_and_id(request.user_id, request.job_id, "job_id")
        self._jobs.delete(user_id, job_id, principal=current_principal())
        return pb.DeleteScanJobResponse()

    def RunScan(self, request: pb.RunScanRequest, context: Any) -> pb.RunScanResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        principal = current_principal()
        if request.job_id:
            job_id = checks.check(lambda: fields.uuid_str(request.job_id, "job_id"), "")
            if request.markets:
                checks.add("markets", "must be empty when job_id is set (the job's markets are used)")
            if request.analyst:
                checks.add("analyst", "must be unspecified when job_id is set (the job's is used)")
            checks.raise_if_any()
            return _scan_pb(self._scheduler.run_job_now(user_id, job_id, principal=principal))
        markets: list[str] = checks.check(lambda: _markets(request.markets), [])
        analyst = self._default_analyst
        if request.analyst:
            analyst = checks.check(lambda: _ANALYST[fields.enum(request.analyst, "analyst", frozenset(_ANALYST))], "")
        checks.raise_if_any()
        try:
            result = self._runner.run_markets(user_id, markets, analyst, principal=principal)
        except ScanFailed as exc:
            raise unavailable(exc) from None
        return _scan_pb(result)

    def ListProposals(self, request: pb.ListProposalsRequest, context: Any) -> pb.ListProposalsResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        status = None
        if request.status:
            status = checks.check(lambda: _STATUS[fields.enum(request.status, "status", frozenset(_STATUS))], None)
        size = checks.check(lambda: fields.page_size(request.page_size), 0)
        after = checks.check(lambda: messages.position(request.page_token), None)
        checks.raise_if_any()
        found, token = messages.page(
            self._proposals.list(user_id, status=status, after=after, limit=size + 1),
            size,
            lambda p: (p.created_at, p.proposal_id),
        )
        return pb.ListProposalsResponse(proposals=[proposal_pb(p) for p in found], next_page_token=token)

    def GetProposal(self, request: pb.GetProposalRequest, context: Any) -> pb.GetProposalResponse:
        user_id, proposal_id = _user_and_id(request.user_id, request.proposal_id, "proposal_id")
        return pb.GetProposalResponse(proposal=proposal_pb(self._proposals.get(user_id, proposal_id)))
