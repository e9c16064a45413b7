"""The scanner's client of ExecutorService.ExecuteProposal, for users whose live policy has
auto-execute on.

It asks with the scanner principal's token and never with an override flag (the executor
refuses those from the scanner anyway); the executor decides everything. The call is never
retried here: a lost answer is reported as an error, and the proposal stays executable (the
executor's ALREADY_EXISTS makes any later attempt safe).
"""

from __future__ import annotations

import logging

import grpc
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from services.scanner.outcomes import AutoExecuteStatus, AutoExecution
from shared.channel import Credential, open_channel
from shared.errors import from_rpc_error
from shared.tls import TlsFiles

log = logging.getLogger(__name__)


class ExecutorClient:
    """ExecuteProposal without overrides; every answer becomes an :class:`AutoExecution`."""

    def __init__(self, target: str, token: Credential, *, timeout_seconds: float, tls: TlsFiles | None = None) -> None:
        self._channel = open_channel(target, token, tls=tls)
        self._stub = pb_grpc.ExecutorServiceStub(self._channel)
        self._timeout = timeout_seconds

    def close(self) -> None:
        self._channel.close()

    def execute(self, user_id: str, proposal_id: str) -> AutoExecution:
        request = pb.ExecuteProposalRequest(user_id=user_id, proposal_id=proposal_id)
        try:
            reply = self._stub.ExecuteProposal(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            report = from_rpc_error(exc)
            if report.code is grpc.StatusCode.ALREADY_EXISTS:
                return AutoExecution(
                    AutoExecuteStatus.DUPLICATE,
                    execution_id=report.metadata.get("resource_name", ""),
                    execution_status=report.metadata.get("status", ""),
                    reasons=(report.reason,),
                )
            if report.code is grpc.StatusCode.FAILED_PRECONDITION:
                reasons = tuple(v.type for v in report.precondition_violations) or (report.reason,)
                return AutoExecution(AutoExecuteStatus.REJECTED, reasons=reasons)
            if report.code is grpc.StatusCode.UNAVAILABLE:
                reasons = ("EXECUTOR_UNAVAILABLE",)
            elif report.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                reasons = ("EXECUTOR_TIMEOUT",)  # the outcome is unknown: the executor may have executed
            else:
                reasons = (report.reason or report.code.name,)
            log.warning("auto-execute failed", extra={"proposal_id": proposal_id, "code": report.code.name})
            return AutoExecution(AutoExecuteStatus.ERROR, reasons=reasons)
        execution = reply.execution
        return AutoExecution(
            AutoExecuteStatus.EXECUTED,
            execution_id=execution.execution_id,
            execution_status=pb.ExecutionStatus.Name(execution.status),
        )


class NoExecutor:
    """Stands in when SCANNER_EXECUTOR_ADDR is unset: auto-execute reports why nothing happened."""

    def execute(self, user_id: str, proposal_id: str) -> AutoExecution:
        return AutoExecution(AutoExecuteStatus.ERROR, reasons=("EXECUTOR_NOT_CONFIGURED",))

    def close(self) -> None:
        pass
