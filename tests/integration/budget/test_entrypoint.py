"""``python -m services.budget`` as its own process: it logs "listening", serves health and
reflection, answers calls, and stops cleanly on SIGTERM; bad configuration stops it at once."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from services.budget.app import build
from services.budget.config import load_settings
from shared.bootstrap import run_main
from tests.harness import Postgres, channel, new_user_id, start_process
from tests.integration.budget.servers import service_env

SERVICE = "oracle.budget.v1.BudgetService"


def test_the_service_process_serves_health_reflection_and_calls(postgres: Postgres, tmp_path: Path) -> None:
    service = start_process("services.budget", service_env(postgres), tmp_path / "budget.log")
    try:
        with grpc.insecure_channel(service.target) as plain:
            health = health_pb2_grpc.HealthStub(plain)
            reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(plain)
            answers = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            names = {s.name for answer in answers for s in answer.list_services_response.service}
            assert SERVICE in names
        with channel(service.port) as chan:
            user = new_user_id("proc")
            reservation = pb_grpc.BudgetServiceStub(chan).ReserveCall(
                pb.ReserveCallRequest(
                    user_id=user, purpose="p", model="gpt-4o-mini", estimated_prompt_tokens=1, requested_max_tokens=1
                ),
                timeout=10,
            )
            assert reservation.reservation.status == pb.RESERVATION_STATUS_RESERVED
    finally:
        code = service.terminate()
    assert code == 0
    assert '"event": "listening"' in service.logs()


def test_bad_configuration_names_every_bad_variable(capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"BUDGET_DEFAULT_DAILY_CALLS": "-1", "BUDGET_MODEL_PRICES": "gpt=free"}
    assert run_main("budget", load_settings, build, role="oracle_budget", environ=environ) == 2
    err = capsys.readouterr().err
    assert "BUDGET_DEFAULT_DAILY_CALLS" in err
    assert "BUDGET_MODEL_PRICES" in err
