"""The database goes down while a service runs: calls are UNAVAILABLE and health NOT_SERVING
meanwhile; both recover when it is back, without restarting the service."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import OPERATOR_TOKEN, Postgres, eventually, running_process
from tests.integration.foundation.conftest import service_env
from tests.integration.foundation.test_service_processes import FULL_NAMES, READ, code_of


def health(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            return int(
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            )
        except grpc.RpcError:
            return -1


@pytest.mark.parametrize("service", ["budget", "executor", "scanner"])
def test_database_down_then_back(service: str, private_postgres: Postgres, exchange_url: str, tmp_path: Path) -> None:
    assert private_postgres.cluster is not None
    env = service_env(service, private_postgres, exchange_url)
    with running_process(f"services.{service}", env, tmp_path / f"{service}.log") as proc:
        assert eventually(lambda: health(proc.port) == health_pb2.HealthCheckResponse.SERVING)
        assert code_of(READ[service], proc.port, OPERATOR_TOKEN)[0] is grpc.StatusCode.OK

        private_postgres.cluster.stop()
        assert eventually(lambda: health(proc.port) == health_pb2.HealthCheckResponse.NOT_SERVING)
        assert health(proc.port, FULL_NAMES[service]) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert health(proc.port, "liveness") == health_pb2.HealthCheckResponse.SERVING  # not restarted
        assert code_of(READ[service], proc.port, OPERATOR_TOKEN) == (
            grpc.StatusCode.UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
        )

        private_postgres.cluster.restart()
        assert eventually(lambda: health(proc.port) == health_pb2.HealthCheckResponse.SERVING)
        assert eventually(lambda: code_of(READ[service], proc.port, OPERATOR_TOKEN)[0] is grpc.StatusCode.OK)
        assert proc.proc.poll() is None  # the same process, never restarted
