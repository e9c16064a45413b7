"""The exit codes oraclectl promises to scripts, and how a gRPC status becomes one.

One table, :data:`BY_STATUS`, decides; ``oraclectl --help`` prints :data:`HELP` from it, so the
documentation cannot drift from the behaviour.
"""

from __future__ import annotations

from enum import IntEnum

import grpc


class ExitCode(IntEnum):
    """What a script can rely on after ``oraclectl …``."""

    OK = 0
    ERROR = 1  # an unexpected error (a broken invariant at a service, a bug)
    USAGE = 2  # bad command line, or the service said INVALID_ARGUMENT
    NOT_FOUND = 3
    REJECTED = 4  # FAILED_PRECONDITION: validators refused, kill switch off, proposal expired …
    ALREADY_EXISTS = 5  # e.g. the proposal was executed already
    UNAVAILABLE = 6  # the service or one of its dependencies is down, or the call timed out: retry later
    DENIED = 7  # UNAUTHENTICATED or PERMISSION_DENIED: check the token
    EXHAUSTED = 8  # RESOURCE_EXHAUSTED: a budget limit is reached
    CONFLICT = 9  # ABORTED: a concurrent change won; read again and retry


BY_STATUS: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.OK: ExitCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REJECTED,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.DENIED,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitCode.EXHAUSTED,
    grpc.StatusCode.ABORTED: ExitCode.CONFLICT,
}


def for_status(code: grpc.StatusCode) -> ExitCode:
    """The exit code for a failed call's status (ERROR for anything unexpected)."""
    return BY_STATUS.get(code, ExitCode.ERROR)


_MEANING = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "unexpected error (INTERNAL, UNKNOWN, a bug)",
    ExitCode.USAGE: "usage error or INVALID_ARGUMENT",
    ExitCode.NOT_FOUND: "NOT_FOUND",
    ExitCode.REJECTED: "FAILED_PRECONDITION: rejected by validators, kill switch, expired proposal",
    ExitCode.ALREADY_EXISTS: "ALREADY_EXISTS: e.g. the proposal was executed already",
    ExitCode.UNAVAILABLE: "UNAVAILABLE or DEADLINE_EXCEEDED: service down or slow; retry later",
    ExitCode.DENIED: "UNAUTHENTICATED or PERMISSION_DENIED: check the token",
    ExitCode.EXHAUSTED: "RESOURCE_EXHAUSTED: a budget limit is reached",
    ExitCode.CONFLICT: "ABORTED: a concurrent change won; read again and retry",
}

HELP = "Exit codes: " + "; ".join(f"{code.value} {_MEANING[code]}" for code in ExitCode) + "."
