"""The one error hierarchy of the project, and how each error becomes a gRPC status.

Servicers and domain code raise these; the server interceptor (shared.server) turns each into a
status code with exactly one ``google.rpc.ErrorInfo`` (UPPER_SNAKE ``reason``, ``domain``,
``metadata``) plus the detail that fits. Tests assert the code and the reason, never the text.

    OracleError                       -> INTERNAL (the base; never raised itself)
     ├── InvariantBroken              -> INTERNAL            (a bug: traceback logged, bare reason sent)
     ├── InvalidArgument              -> INVALID_ARGUMENT    + BadRequest (field violations)
     ├── NotFound                     -> NOT_FOUND           + ResourceInfo (both via _ResourceError)
     ├── AlreadyExists                -> ALREADY_EXISTS      + ResourceInfo (+ extra messages)
     ├── FailedPrecondition           -> FAILED_PRECONDITION + PreconditionFailure
     ├── ResourceExhausted            -> RESOURCE_EXHAUSTED  + QuotaFailure + RetryInfo
     ├── Aborted                      -> ABORTED             (retry the read-modify-write)
     ├── Unauthenticated              -> UNAUTHENTICATED
     ├── PermissionDenied             -> PERMISSION_DENIED
     └── Unavailable                  -> UNAVAILABLE         + RetryInfo (retry this call)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "oracle.autoinvest"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: its path (e.g. ``policy.min_order_eur``) and what is wrong."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One failed precondition: ``type`` is the reason code, ``subject`` what it is about."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One exhausted quota: ``subject`` names the window, e.g. ``user:alice/hourly_calls``."""

    subject: str
    description: str


class OracleError(Exception):
    """Base of every domain error; INTERNAL unless a subclass says otherwise."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        extra: Sequence[Message] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        # Messages packed as extra status details (e.g. the existing execution on ALREADY_EXISTS).
        self.extra: tuple[Message, ...] = tuple(extra)

    def details(self) -> list[Message]:
        """The detail messages after the ErrorInfo."""
        return []

    def to_status(self) -> status_pb2.Status:
        """The google.rpc.Status sent to the caller."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        packed = []
        for message in [info, *self.details(), *self.extra]:
            detail = any_pb2.Any()
            detail.Pack(message)
            packed.append(detail)
        return status_pb2.Status(code=_CODE_NUMBERS[self.code], message=self.message, details=packed)


class InvariantBroken(OracleError):
    """Something the code or the database guarantees did not hold: a bug, never the caller's fault.

    The explicit form of an ``assert`` (which ``python -O`` strips): the interceptor logs the
    traceback and the message; the caller gets INTERNAL with the bare reason, as for any
    unexpected exception."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        status.message = "internal error"  # what broke (ids, state) stays in the log
        return status


class InvalidArgument(OracleError):
    """The request is malformed. Names every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        text = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(
            f"invalid argument: {text}",
            reason=reason,
            metadata={"fields": ",".join(v.field for v in violations)},
        )
        self.violations = tuple(violations)

    @classmethod
    def one(cls, field_name: str, description: str) -> InvalidArgument:
        """The common case: one bad field."""
        return cls([FieldViolation(field_name, description)])

    def details(self) -> list[Message]:
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in self.violations
                ]
            )
        ]


class _ResourceError(OracleError):
    """An error about one named resource: ResourceInfo detail and resource metadata."""

    verb = ""

    def __init__(
        self,
        resource_type: str,
        resource_name: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        extra: Sequence[Message] = (),
    ) -> None:
        meta = {"resource_type": resource_type, "resource_name": resource_name, **(metadata or {})}
        super().__init__(f"{resource_type} {resource_name} {self.verb}", reason=reason, metadata=meta, extra=extra)
        self.resource_type = resource_type
        self.resource_name = resource_name

    def details(self) -> list[Message]:
        return [error_details_pb2.ResourceInfo(resource_type=self.resource_type, resource_name=self.resource_name)]


class NotFound(_ResourceError):
    """The named resource does not exist for this user."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"
    verb = "not found"


class AlreadyExists(_ResourceError):
    """The resource exists already; ``extra`` may carry it."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"
    verb = "already exists"


class FailedPrecondition(OracleError):
    """The system is not in a state that allows this; do not retry until it changes."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        violations: Sequence[PreconditionViolation],
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        extra: Sequence[Message] = (),
    ) -> None:
        if not violations:
            raise ValueError("FailedPrecondition needs at least one violation")
        text = "; ".join(f"{v.type}: {v.description}" for v in violations)
        meta = {"violations": ",".join(v.type for v in violations), **(metadata or {})}
        super().__init__(
            f"failed precondition: {text}",
            reason=reason or (violations[0].type if len(violations) == 1 else None),
            metadata=meta,
            extra=extra,
        )
        self.violations = tuple(violations)

    def details(self) -> list[Message]:
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in self.violations
                ]
            )
        ]


class ResourceExhausted(OracleError):
    """A quota is used up; ``retry_after`` says when it frees up."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        violations: Sequence[QuotaViolation],
        *,
        retry_after: timedelta | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        if not violations:
            raise ValueError("ResourceExhausted needs at least one violation")
        text = "; ".join(f"{v.subject}: {v.description}" for v in violations)
        super().__init__(f"resource exhausted: {text}", reason=reason, metadata=metadata)
        self.violations = tuple(violations)
        self.retry_after = retry_after

    def details(self) -> list[Message]:
        out: list[Message] = [
            error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
                    for v in self.violations
                ]
            )
        ]
        if self.retry_after is not None:
            out.append(_retry_info(self.retry_after))
        return out


class Aborted(OracleError):
    """A concurrent change won; re-read and retry the read-modify-write."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unauthenticated(OracleError):
    """The caller presented no valid principal."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(OracleError):
    """The principal is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unavailable(OracleError):
    """A dependency (database, exchange) is down; retry this call later."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: timedelta = timedelta(seconds=1),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after

    def details(self) -> list[Message]:
        return [_retry_info(self.retry_after)]


@dataclass(frozen=True)
class ErrorReport:
    """What a client reads back from a failed call (see ``from_rpc_error``)."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    precondition_violations: tuple[PreconditionViolation, ...] = ()
    quota_violations: tuple[QuotaViolation, ...] = ()
    retry_after: timedelta | None = None
    details: tuple[any_pb2.Any, ...] = ()


def from_rpc_error(error: grpc.RpcError) -> ErrorReport:
    """Read the code, ErrorInfo reason and details of a failed call (client side)."""
    from grpc_status import rpc_status

    call = error  # a grpc.Call as well as an RpcError
    code: grpc.StatusCode = call.code()  # type: ignore[attr-defined]
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    report = ErrorReport(code=code, reason="", message=call.details() or "")  # type: ignore[attr-defined]
    if status is None:
        return report
    reason, metadata = "", {}
    fields: list[FieldViolation] = []
    pre: list[PreconditionViolation] = []
    quota: list[QuotaViolation] = []
    retry: timedelta | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            pf = error_details_pb2.PreconditionFailure()
            detail.Unpack(pf)
            pre += [PreconditionViolation(v.type, v.subject, v.description) for v in pf.violations]
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            qf = error_details_pb2.QuotaFailure()
            detail.Unpack(qf)
            quota += [QuotaViolation(v.subject, v.description) for v in qf.violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            detail.Unpack(ri)
            retry = ri.retry_delay.ToTimedelta()
    return ErrorReport(
        code=code,
        reason=reason,
        message=status.message,
        metadata=metadata,
        field_violations=tuple(fields),
        precondition_violations=tuple(pre),
        quota_violations=tuple(quota),
        retry_after=retry,
        details=tuple(status.details),
    )


def _retry_info(delay: timedelta) -> error_details_pb2.RetryInfo:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(delay)
    return error_details_pb2.RetryInfo(retry_delay=duration)


_CODE_NUMBERS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
}
