"""The client of the budget service that every LLM caller goes through, so no step is forgotten.

    budget = BudgetClient("budget:50051", token)
    with budget.call(user_id, "scan:BTC-EUR", "gpt-4o-mini", estimated_prompt_tokens=900,
                     requested_max_tokens=400) as grant:       # reserved (or BudgetExhausted)
        request = build_request(max_tokens=grant.max_tokens)  # never more than granted
        grant.started()                                        # right before the request leaves
        answer = llm.complete(request)
        grant.record(answer.prompt_tokens, answer.completion_tokens)
    # leaving the block settles the reservation:
    #   usage recorded                         -> CommitCall (even if the block then raised)
    #   nothing recorded, started() not called -> ReleaseCall (the LLM was never reached)
    #   started() called, nothing recorded     -> left reserved: it expires and keeps counting,
    #                                             because the call may have happened

Errors (shared.errors tree):

    OracleError
     └── BudgetError                 the budget service refused or failed (``report`` has details)
          ├── BudgetExhausted        also a ResourceExhausted: windows, violations, retry_after
          └── BudgetUnavailable      also an Unavailable: unreachable or timed out; make no call

A failure to settle (commit/release) is logged and never raised: the reservation then expires
and keeps counting its estimate, which is the safe side. ``Grant.outcome`` tells what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta
from enum import StrEnum

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from shared.channel import Credential, open_channel
from shared.errors import ErrorReport, OracleError, QuotaViolation, ResourceExhausted, Unavailable, from_rpc_error
from shared.tls import TlsFiles

log = logging.getLogger(__name__)


class BudgetError(OracleError):
    """The budget service refused a request or failed; ``report`` holds what it answered."""

    report: ErrorReport | None = None


class BudgetExhausted(BudgetError, ResourceExhausted):
    """No budget for this call now. ``windows`` names the exhausted windows (e.g.
    ``hourly_calls``); ``retry_after`` says when they free up (None: not by time alone)."""

    @property
    def windows(self) -> tuple[str, ...]:
        """The exhausted windows, from the quota subjects ``user:<id>/<window>``."""
        return tuple(v.subject.rsplit("/", 1)[-1] for v in self.violations)


class BudgetUnavailable(BudgetError, Unavailable):
    """The budget service could not be reached or did not answer in time."""


class Outcome(StrEnum):
    """How a grant was settled when its block ended."""

    OPEN = "open"  # the block is still running
    COMMITTED = "committed"
    RELEASED = "released"
    LEFT_RESERVED = "left_reserved"  # started but no usage recorded: expires and keeps counting
    UNSETTLED = "unsettled"  # commit or release failed: expires and keeps counting


class Grant:
    """One reserved LLM call. Use at most ``max_tokens`` completion tokens."""

    def __init__(self, reservation: pb.Reservation) -> None:
        self.reservation_id: str = reservation.reservation_id
        self.user_id: str = reservation.user_id
        self.model: str = reservation.model
        self.max_tokens: int = reservation.max_tokens
        self.expires_at = reservation.expires_at.ToDatetime(tzinfo=UTC)
        self.outcome = Outcome.OPEN
        self._started = False
        self._usage: tuple[int, int, int] | None = None

    @property
    def is_started(self) -> bool:
        """True once :meth:`started` (or :meth:`record`) was called."""
        return self._started

    @property
    def usage(self) -> tuple[int, int, int] | None:
        """(prompt_tokens, completion_tokens, cost_micros) once recorded."""
        return self._usage

    def started(self) -> None:
        """Mark that the LLM request is about to leave: from now on the call may happen, so the
        reservation is never released, only committed or left to expire (and count)."""
        self._check_open()
        self._started = True

    def record(self, prompt_tokens: int, completion_tokens: int, cost_micros: int = 0) -> None:
        """The usage the LLM reported; committed when the block ends. ``cost_micros`` (micros of
        USD) 0 lets the budget service compute it from the model's price."""
        self._check_open()
        if self._usage is not None:
            raise RuntimeError("usage was already recorded for this grant")
        for name, value in (
            ("prompt_tokens", prompt_tokens),
            ("completion_tokens", completion_tokens),
            ("cost_micros", cost_micros),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        self._started = True
        self._usage = (prompt_tokens, completion_tokens, cost_micros)

    def _check_open(self) -> None:
        if self.outcome is not Outcome.OPEN:
            raise RuntimeError("this grant was already settled")


class BudgetClient:
    """A connection to the budget service, for reserving and settling LLM calls."""

    def __init__(
        self, target: str, token: Credential, *, timeout_seconds: float = 5.0, tls: TlsFiles | None = None
    ) -> None:
        self._channel = open_channel(target, token, tls=tls)
        self._stub = pb_grpc.BudgetServiceStub(self._channel)
        self._timeout = timeout_seconds

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    @contextmanager
    def call(
        self,
        user_id: str,
        purpose: str,
        model: str,
        estimated_prompt_tokens: int,
        requested_max_tokens: int,
    ) -> Iterator[Grant]:
        """Reserve one LLM call for the block, and settle it when the block ends (see the module
        docstring). Raises BudgetExhausted / BudgetUnavailable / BudgetError before the block runs
        when no reservation was granted."""
        request = pb.ReserveCallRequest(
            user_id=user_id,
            purpose=purpose,
            model=model,
            estimated_prompt_tokens=estimated_prompt_tokens,
            requested_max_tokens=requested_max_tokens,
        )
        try:
            reply = self._stub.ReserveCall(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise budget_error(exc) from None
        grant = Grant(reply.reservation)
        try:
            yield grant
        except BaseException as exc:
            self._settle(grant, failure=exc)
            raise
        self._settle(grant, failure=None)

    def _settle(self, grant: Grant, *, failure: BaseException | None) -> None:
        try:
            if grant.usage is not None:
                prompt, completion, cost = grant.usage
                self._stub.CommitCall(
                    pb.CommitCallRequest(
                        user_id=grant.user_id,
                        reservation_id=grant.reservation_id,
                        prompt_tokens=prompt,
                        completion_tokens=completion,
                        cost_micros=cost,
                    ),
                    timeout=self._timeout,
                )
                grant.outcome = Outcome.COMMITTED
            elif not grant.is_started:
                reason = "not used" if failure is None else f"failed before the LLM call: {type(failure).__name__}"
                self._stub.ReleaseCall(
                    pb.ReleaseCallRequest(user_id=grant.user_id, reservation_id=grant.reservation_id, reason=reason),
                    timeout=self._timeout,
                )
                grant.outcome = Outcome.RELEASED
            else:
                grant.outcome = Outcome.LEFT_RESERVED
                log.warning(
                    "LLM call started without recorded usage: the reservation stays and will expire counting",
                    extra={"reservation_id": grant.reservation_id, "failed": failure is not None},
                )
        except grpc.RpcError as exc:
            grant.outcome = Outcome.UNSETTLED
            error = budget_error(exc)
            log.error(
                "could not settle a budget reservation; it will expire and keep counting",
                extra={"reservation_id": grant.reservation_id, "reason": error.reason},
            )


def budget_error(exc: grpc.RpcError) -> BudgetError:
    """The typed error for a failed budget call."""
    report = from_rpc_error(exc)
    reason = report.reason or report.code.name
    error: BudgetError
    if report.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        violations = report.quota_violations or (QuotaViolation("unknown", report.message),)
        error = BudgetExhausted(violations, retry_after=report.retry_after, reason=reason, metadata=report.metadata)
    elif report.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        error = BudgetUnavailable(
            f"budget service unavailable: {report.message}",
            reason=reason,
            retry_after=report.retry_after or timedelta(seconds=1),
        )
    else:
        error = BudgetError(
            f"budget service refused the request: {report.message}", reason=reason, metadata=report.metadata
        )
    error.report = report
    return error
