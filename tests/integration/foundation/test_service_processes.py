"""Each service, as its own process: starts, answers health as SERVING, lists its service by
reflection, refuses calls without a valid principal (UNAUTHENTICATED) and outside its rights
(PERMISSION_DENIED), refuses undecodable request bytes on every RPC (INVALID_ARGUMENT, audited),
stops cleanly on SIGTERM, and never logs a secret from its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from oracle.budget.v1 import budget_service_pb2 as budget_pb
from oracle.budget.v1 import budget_service_pb2_grpc as budget_grpc
from oracle.executor.v1 import executor_service_pb2 as executor_pb
from oracle.executor.v1 import executor_service_pb2_grpc as executor_grpc
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb
from oracle.scanner.v1 import scanner_service_pb2_grpc as scanner_grpc

from shared.errors import from_rpc_error
from tests.harness import (
    OPERATOR_TOKEN,
    SCANNER_TOKEN,
    VIEWER_TOKEN,
    Postgres,
    channel,
    new_user_id,
    running_process,
    wait_serving,
)
from tests.integration.foundation.conftest import service_env

FULL_NAMES = {
    "budget": "oracle.budget.v1.BudgetService",
    "executor": "oracle.executor.v1.ExecutorService",
    "scanner": "oracle.scanner.v1.ScannerService",
}

# Per service: a read call any reader may make, and a write call outside the viewer's rights.
Call = Callable[[grpc.Channel], Any]
READ: dict[str, Call] = {
    "budget": lambda ch: budget_grpc.BudgetServiceStub(ch).GetUsage(
        budget_pb.GetUsageRequest(user_id=new_user_id()), timeout=10
    ),
    "executor": lambda ch: executor_grpc.ExecutorServiceStub(ch).GetPolicy(
        executor_pb.GetPolicyRequest(user_id=new_user_id()), timeout=10
    ),
    "scanner": lambda ch: scanner_grpc.ScannerServiceStub(ch).ListProposals(
        scanner_pb.ListProposalsRequest(user_id=new_user_id()), timeout=10
    ),
}
WRITE: dict[str, Call] = {
    "budget": lambda ch: budget_grpc.BudgetServiceStub(ch).SetLimits(
        budget_pb.SetLimitsRequest(user_id=new_user_id(), limits=budget_pb.Limits(daily_calls=5, hourly_calls=1)),
        timeout=10,
    ),
    "executor": lambda ch: executor_grpc.ExecutorServiceStub(ch).SetTradingEnabled(
        executor_pb.SetTradingEnabledRequest(
            scope=executor_pb.KILL_SWITCH_SCOPE_GLOBAL, enabled=False, reason="must never happen"
        ),
        timeout=10,
    ),
    "scanner": lambda ch: scanner_grpc.ScannerServiceStub(ch).CreateScanJob(
        scanner_pb.CreateScanJobRequest(user_id=new_user_id(), markets=["BTC-EUR"]), timeout=10
    ),
}


DESCRIPTORS: dict[str, ServiceDescriptor] = {
    "budget": budget_pb.DESCRIPTOR.services_by_name["BudgetService"],
    "executor": executor_pb.DESCRIPTOR.services_by_name["ExecutorService"],
    "scanner": scanner_pb.DESCRIPTOR.services_by_name["ScannerService"],
}
# Not a protobuf message: field 15 (the largest one-byte tag) with wire type 7, which does not exist.
GARBAGE = b"\x7f\xff\xff\xff"


def invalid_utf8(method_input: Any) -> bytes | None:
    """A message whose first string field holds bytes that are not UTF-8 (None: no string field)."""
    for field in method_input.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return bytes([field.number << 3 | 2, 2, 0xFF, 0xFE]) if field.number < 16 else None
    return None


def undecodable_codes(port: int, service: ServiceDescriptor) -> dict[str, set[grpc.StatusCode]]:
    """Per RPC of ``service`` (every one its descriptor lists): the codes answered to raw bytes
    that do not decode, sent as the operator (who may call everything)."""
    codes: dict[str, set[grpc.StatusCode]] = {}
    with channel(port, OPERATOR_TOKEN) as ch:
        for method in service.methods:
            call = ch.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            payloads = [GARBAGE]
            utf8 = invalid_utf8(method.input_type)
            if utf8 is not None:
                payloads.append(utf8)
            for payload in payloads:
                try:
                    call(payload, timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                codes.setdefault(method.name, set()).add(code)
    return codes


def reflected_services(port: int) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        return {s.name for reply in replies for s in reply.list_services_response.service}


def code_of(call: Call, port: int, token: str | None) -> tuple[grpc.StatusCode, str]:
    try:
        call(channel(port, token))
    except grpc.RpcError as exc:
        report = from_rpc_error(exc)
        return report.code, report.reason
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("service", sorted(FULL_NAMES))
def test_service_process_lifecycle(service: str, postgres: Postgres, exchange_url: str, tmp_path: Path) -> None:
    env = service_env(service, postgres, exchange_url)
    with running_process(f"services.{service}", env, tmp_path / f"{service}.log") as proc:
        wait_serving(proc.target)
        wait_serving(proc.target, FULL_NAMES[service])
        assert FULL_NAMES[service] in reflected_services(proc.port)
        assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= reflected_services(proc.port)

        assert code_of(READ[service], proc.port, OPERATOR_TOKEN) == (grpc.StatusCode.OK, "")
        assert code_of(READ[service], proc.port, VIEWER_TOKEN) == (grpc.StatusCode.OK, "")
        assert code_of(READ[service], proc.port, None) == (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_PRINCIPAL")
        assert code_of(READ[service], proc.port, "not-a-known-token-at-all") == (
            grpc.StatusCode.UNAUTHENTICATED,
            "UNKNOWN_PRINCIPAL",
        )
        assert code_of(WRITE[service], proc.port, VIEWER_TOKEN) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "METHOD_NOT_ALLOWED",
        )
        if service != "budget":  # the scanner principal may call budget reads
            assert code_of(READ[service], proc.port, SCANNER_TOKEN)[0] is grpc.StatusCode.PERMISSION_DENIED

        codes = undecodable_codes(proc.port, DESCRIPTORS[service])
        assert codes.keys() == {m.name for m in DESCRIPTORS[service].methods}
        assert codes == {name: {grpc.StatusCode.INVALID_ARGUMENT} for name in codes}

        assert proc.terminate(timeout=20) == 0
        assert '"stopped"' in proc.logs()

    # Every kind of refusal is in the service-wide audit chain.
    with postgres.admin() as conn:
        kinds = {
            r[0]
            for r in conn.execute(
                "SELECT kind FROM oracle.audit_events WHERE user_id = '_system' AND service = %s", (service,)
            )
        }
    assert {"auth.unauthenticated", "auth.permission_denied", "request.undecodable"} <= kinds


CANARY = "canary-pw-4f1d9a7c"


def test_secrets_never_reach_the_logs(postgres: Postgres, exchange_url: str, tmp_path: Path) -> None:
    """A live executor with a key and secret whose calls fail: neither appears in its output (log
    lines and the spans it prints) nor in its /metrics.

    Control: the exchange URL carries a password (the canary) and the executor logs that URL at
    startup, so a secret does travel towards the log — and must arrive redacted.
    """
    from sim.bitvavo import DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET

    host_and_path = exchange_url.split("://", 1)[1]
    env = service_env("executor", postgres, exchange_url) | {
        "EXECUTOR_EXCHANGE_URL": f"http://oracle:{CANARY}@{host_and_path}",
        "EXECUTOR_MODE": "live",
        "EXECUTOR_BITVAVO_API_KEY": DEFAULT_TRADE_KEY,
        "EXECUTOR_BITVAVO_API_SECRET": DEFAULT_TRADE_SECRET,
        "EXECUTOR_OPERATOR_ID": "1001",
        "EXECUTOR_LOG_LEVEL": "DEBUG",
        # Spans (with their attributes) printed to the same output: the startup's signed
        # exchange requests and the calls below each leave one.
        "EXECUTOR_TRACE_EXPORTER": "console",
    }
    with running_process("services.executor", env, tmp_path / "executor.log") as proc:
        wait_serving(proc.target)
        # Failing calls of every kind: bad input, unknown proposal, no principal.
        stub_calls: list[Call] = [
            lambda ch: executor_grpc.ExecutorServiceStub(ch).ExecuteProposal(
                executor_pb.ExecuteProposalRequest(user_id="", proposal_id="x"), timeout=10
            ),
            lambda ch: executor_grpc.ExecutorServiceStub(ch).ExecuteProposal(
                executor_pb.ExecuteProposalRequest(
                    user_id=new_user_id(), proposal_id="00000000-0000-4000-8000-000000000000"
                ),
                timeout=10,
            ),
        ]
        assert code_of(stub_calls[0], proc.port, OPERATOR_TOKEN)[0] is grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(stub_calls[1], proc.port, OPERATOR_TOKEN)[0] is grpc.StatusCode.NOT_FOUND
        assert code_of(stub_calls[1], proc.port, "wrong-token-0123456789")[0] is grpc.StatusCode.UNAUTHENTICATED
        metrics = proc.metrics().text
        proc.terminate()
        output = proc.logs()
    assert '"rpc"' in output  # calls were logged
    assert '"exchange.endpoint"' in output  # exchange request spans were printed
    assert "oracle_rpc_server_calls_total" in metrics
    for secret in (DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, OPERATOR_TOKEN, SCANNER_TOKEN, VIEWER_TOKEN, CANARY):
        assert secret not in metrics
    assert f"http://oracle:***@{host_and_path}" in output  # the URL was logged, its password redacted
    for secret in (DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, OPERATOR_TOKEN, SCANNER_TOKEN, VIEWER_TOKEN, CANARY):
        assert secret not in output


def test_a_service_without_its_database_url_refuses_to_start(
    postgres: Postgres, exchange_url: str, tmp_path: Path
) -> None:
    env = service_env("budget", postgres, exchange_url)
    del env["BUDGET_DATABASE_URL"]
    done = subprocess.run(
        [sys.executable, "-m", "services.budget"],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "BUDGET_DATABASE_URL" in done.stderr


def test_a_service_refuses_to_run_as_a_role_that_bypasses_row_level_security(
    postgres: Postgres, exchange_url: str, tmp_path: Path
) -> None:
    env = service_env("budget", postgres, exchange_url) | {"BUDGET_DATABASE_URL": postgres.admin_url}
    with running_process("services.budget", env, tmp_path / "budget.log") as proc:
        assert code_of(READ["budget"], proc.port, OPERATOR_TOKEN) == (
            grpc.StatusCode.UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
        )
        proc.terminate()
        assert "refusing a database connection as postgres" in proc.logs()
