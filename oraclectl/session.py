"""One oraclectl invocation's connection to the services: addresses, the operator token, the
call timeout, and the one place a failed RPC becomes an :class:`RpcFailure`.

Channels open lazily (a command that only talks to the executor never dials the scanner) and
carry the token as ``authorization: Bearer …`` through :func:`shared.channel.open_channel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import grpc
from google.protobuf.message import Message
from oracle.budget.v1 import budget_service_pb2_grpc as budget_grpc
from oracle.executor.v1 import executor_service_pb2_grpc as executor_grpc
from oracle.scanner.v1 import scanner_service_pb2_grpc as scanner_grpc

from oraclectl.exitcodes import ExitCode, for_status
from oraclectl.formatting import is_unreachable, unreachable
from shared.channel import open_channel
from shared.errors import ErrorReport, from_rpc_error
from shared.tls import TlsFiles

M = TypeVar("M", bound=Message)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Req_contra = TypeVar("Req_contra", bound=Message, contravariant=True)
Resp_co = TypeVar("Resp_co", bound=Message, covariant=True)


class UnaryMethod(Protocol[Req_contra, Resp_co]):
    """A unary stub method, as the generated stubs declare them."""

    def __call__(self, request: Req_contra, *, timeout: float | None = ...) -> Resp_co: ...


class CliError(Exception):
    """A failure oraclectl reports with one line on stderr and ``exit_code``."""

    def __init__(self, exit_code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


class RpcFailure(CliError):
    """A call that failed at (or on the way to) a service, with the status details read back."""

    def __init__(self, service: str, report: ErrorReport) -> None:
        super().__init__(for_status(report.code), report.message or report.code.name)
        self.service = service
        self.report = report

    def details_of(self, kind: type[M]) -> list[M]:
        """The status details of type ``kind`` (e.g. the existing Execution of ALREADY_EXISTS)."""
        found: list[M] = []
        for detail in self.report.details:
            if detail.TypeName() == kind.DESCRIPTOR.full_name:
                message = kind()
                detail.Unpack(message)
                found.append(message)
        return found


class Unreachable(RpcFailure):
    """Nothing answered at the service's address: no stack running, or a wrong address."""

    def __init__(self, service: str, address: str, report: ErrorReport) -> None:
        super().__init__(service, report)
        self.address = address
        self.message = unreachable(service, address)


T = TypeVar("T")


def read_modify_write(update: Callable[[], T], *, expected_version: int | None, attempts: int) -> T:
    """Run ``update`` (read, change, write at the version read) up to ``attempts`` times: a
    conflict (ABORTED: someone wrote in between) re-runs it, unless the caller pinned
    ``expected_version``, for whom the conflict is the answer."""
    for _ in range(attempts - 1):
        try:
            return update()
        except RpcFailure as failure:
            if failure.exit_code is not ExitCode.CONFLICT or expected_version is not None:
                raise
    return update()  # the last attempt: a conflict now is the answer


@dataclass
class Session:
    """Where the services are, who we are to them, and how long a call may take."""

    scanner_addr: str
    executor_addr: str
    budget_addr: str
    token: str | None = field(repr=False)
    timeout: float = 30.0
    json: bool = False
    tls: TlsFiles | None = None  # the client certificate, key and CA bundle; None: plaintext (loopback)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict, repr=False)

    def _channel(self, target: str) -> grpc.Channel:
        if target not in self._channels:
            self._channels[target] = open_channel(target, self.token, tls=self.tls)
        return self._channels[target]

    def scanner(self) -> scanner_grpc.ScannerServiceStub:
        return scanner_grpc.ScannerServiceStub(self._channel(self.scanner_addr))

    def executor(self) -> executor_grpc.ExecutorServiceStub:
        return executor_grpc.ExecutorServiceStub(self._channel(self.executor_addr))

    def budget(self) -> budget_grpc.BudgetServiceStub:
        return budget_grpc.BudgetServiceStub(self._channel(self.budget_addr))

    def call(self, service: str, method: UnaryMethod[Req, Resp], request: Req) -> Resp:
        """Call ``method``; a failed call raises :class:`RpcFailure` naming ``service``."""
        if not self.token:
            raise CliError(
                ExitCode.DENIED,
                "no operator token: set ORACLE_TOKEN or --token-file, or start the local stack with 'make run'",
            )
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            report = from_rpc_error(exc)
            if is_unreachable(report):
                raise Unreachable(service, self.address(service), report) from None
            raise RpcFailure(service, report) from None

    def address(self, service: str) -> str:
        """Where ``service`` ("scanner", "executor", "budget") is dialled."""
        return {"scanner": self.scanner_addr, "executor": self.executor_addr, "budget": self.budget_addr}[service]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
