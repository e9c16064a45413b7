"""oracle.budget.v1.BudgetService: proto ↔ domain translation, nothing else.

Every request is validated here before the ledger (and the database) sees it; every bad field is
named in one INVALID_ARGUMENT. The rules themselves live in ledger.py and windows.py.
"""

from __future__ import annotations

from typing import Any

from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from services.budget.ledger import CallRequest, CallUsage, Ledger
from services.budget.reservations import Reservation, Status
from services.budget.windows import Limits, Window, WindowReport
from shared import fields, messages
from shared.principals import current_principal

MAX_NAME = 200  # purpose and model (the usage log's column limits)
MAX_REASON = 500
MAX_TOKENS = 10_000_000  # per call: far above any model's context
MAX_COST_MICROS = 10**12  # per call: one million USD
MAX_CALLS = 10**9
MAX_TOKENS_PER_DAY = 10**15
MAX_COST_PER_DAY = 10**15

_STATUS = {
    Status.RESERVED: pb.RESERVATION_STATUS_RESERVED,
    Status.COMMITTED: pb.RESERVATION_STATUS_COMMITTED,
    Status.RELEASED: pb.RESERVATION_STATUS_RELEASED,
    Status.EXPIRED: pb.RESERVATION_STATUS_EXPIRED,
}
_WINDOW = {
    Window.DAILY_CALLS: pb.WINDOW_DAILY_CALLS,
    Window.HOURLY_CALLS: pb.WINDOW_HOURLY_CALLS,
    Window.DAILY_TOKENS: pb.WINDOW_DAILY_TOKENS,
    Window.DAILY_COST: pb.WINDOW_DAILY_COST,
}


class BudgetServicer(pb_grpc.BudgetServiceServicer):
    """The gRPC face of the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def ReserveCall(self, request: pb.ReserveCallRequest, context: Any) -> pb.ReserveCallResponse:
        checks = fields.FieldErrors()
        call = CallRequest(
            user_id=checks.check(lambda: fields.user_id(request.user_id), ""),
            purpose=checks.check(lambda: fields.text(request.purpose, "purpose", max_len=MAX_NAME, required=True), ""),
            model=checks.check(lambda: fields.text(request.model, "model", max_len=MAX_NAME, required=True), ""),
            estimated_prompt_tokens=checks.integer(
                request.estimated_prompt_tokens, "estimated_prompt_tokens", minimum=1, maximum=MAX_TOKENS
            ),
            requested_max_tokens=checks.integer(
                request.requested_max_tokens, "requested_max_tokens", minimum=1, maximum=MAX_TOKENS
            ),
        )
        checks.raise_if_any()
        row = self._ledger.reserve(call, principal=current_principal())
        return pb.ReserveCallResponse(reservation=_reservation(row))

    def CommitCall(self, request: pb.CommitCallRequest, context: Any) -> pb.CommitCallResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        reservation_id = checks.check(lambda: fields.uuid_str(request.reservation_id, "reservation_id"), "")
        usage = CallUsage(
            prompt_tokens=checks.integer(request.prompt_tokens, "prompt_tokens", minimum=0, maximum=MAX_TOKENS),
            completion_tokens=checks.integer(
                request.completion_tokens, "completion_tokens", minimum=0, maximum=MAX_TOKENS
            ),
            cost_micros=checks.integer(request.cost_micros, "cost_micros", minimum=0, maximum=MAX_COST_MICROS) or None,
        )
        checks.raise_if_any()
        row = self._ledger.commit(user_id, reservation_id, usage, principal=current_principal())
        return pb.CommitCallResponse(reservation=_reservation(row))

    def ReleaseCall(self, request: pb.ReleaseCallRequest, context: Any) -> pb.ReleaseCallResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        reservation_id = checks.check(lambda: fields.uuid_str(request.reservation_id, "reservation_id"), "")
        reason = checks.check(lambda: fields.text(request.reason, "reason", max_len=MAX_REASON), "")
        checks.raise_if_any()
        row = self._ledger.release(user_id, reservation_id, reason, principal=current_principal())
        return pb.ReleaseCallResponse(reservation=_reservation(row))

    def GetUsage(self, request: pb.GetUsageRequest, context: Any) -> pb.GetUsageResponse:
        user_id = fields.user_id(request.user_id)
        usage = self._ledger.usage(user_id)
        return pb.GetUsageResponse(windows=[_window(w) for w in usage.windows], limits=_limits(usage.limits))

    def SetLimits(self, request: pb.SetLimitsRequest, context: Any) -> pb.SetLimitsResponse:
        checks = fields.FieldErrors()
        user_id = checks.check(lambda: fields.user_id(request.user_id), "")
        if not request.HasField("limits"):
            checks.add("limits", "is required")
            checks.raise_if_any()
        given = request.limits
        limits = Limits(
            daily_calls=checks.integer(given.daily_calls, "limits.daily_calls", minimum=0, maximum=MAX_CALLS),
            hourly_calls=checks.integer(given.hourly_calls, "limits.hourly_calls", minimum=0, maximum=MAX_CALLS),
            daily_tokens=checks.integer(
                given.daily_tokens, "limits.daily_tokens", minimum=0, maximum=MAX_TOKENS_PER_DAY
            ),
            daily_cost_micros=checks.integer(
                given.daily_cost_micros, "limits.daily_cost_micros", minimum=0, maximum=MAX_COST_PER_DAY
            ),
        )
        if not checks.violations:
            for name, why in limits.problems():
                checks.add(f"limits.{name}", why)
        checks.raise_if_any()
        stored = self._ledger.set_limits(user_id, limits, principal=current_principal())
        return pb.SetLimitsResponse(limits=_limits(stored))


def _reservation(row: Reservation) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=row.reservation_id,
        user_id=row.user_id,
        purpose=row.purpose,
        model=row.model,
        status=_STATUS[row.status],
        max_tokens=row.max_tokens,
        estimated_tokens=row.estimated_tokens,
        estimated_cost_micros=row.estimated_cost_micros,
        prompt_tokens=row.prompt_tokens or 0,
        completion_tokens=row.completion_tokens or 0,
        cost_micros=row.cost_micros or 0,
        reserved_at=messages.timestamp(row.reserved_at),
        expires_at=messages.timestamp(row.expires_at),
    )


def _limits(limits: Limits) -> pb.Limits:
    return pb.Limits(
        daily_calls=limits.daily_calls,
        hourly_calls=limits.hourly_calls,
        daily_tokens=limits.daily_tokens,
        daily_cost_micros=limits.daily_cost_micros,
    )


def _window(report: WindowReport) -> pb.WindowUsage:
    out = pb.WindowUsage(
        window=_WINDOW[report.window],
        used=report.used,
        limit=report.limit,
        remaining=report.remaining,
        unlimited=report.unlimited,
    )
    if report.resets_at is not None:
        out.resets_at.CopyFrom(messages.timestamp(report.resets_at))
    return out
