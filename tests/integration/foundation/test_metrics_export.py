"""Each service serves its metrics on the plaintext Prometheus endpoint it names in its
"listening" line, and also pushes them over OTLP when ``<PREFIX>_METRICS_OTLP`` is set (to a
receiver inside this test); with ``<PREFIX>_METRICS_ADDR=off`` it serves no endpoint."""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.harness import Postgres, running_process, wait_serving
from tests.integration.foundation.conftest import service_env


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC metrics receiver: the names of every metric it was sent."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.arrived = threading.Condition()

    def Export(self, request: Any, context: Any) -> Any:  # the gRPC method's name
        with self.arrived:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    self.names |= {m.name for m in scope.metrics}
            self.arrived.notify_all()
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.mark.parametrize("service", ["budget", "executor", "scanner"])
def test_metrics_are_scraped_and_pushed_over_otlp(
    postgres: Postgres, exchange_url: str, tmp_path: Path, service: str
) -> None:
    receiver = MetricsReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    prefix = service.upper()
    env = service_env(service, postgres, exchange_url) | {
        f"{prefix}_METRICS_OTLP": "true",
        f"{prefix}_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",  # milliseconds (the SDK's own variable)
    }
    try:
        with running_process(f"services.{service}", env, tmp_path / f"{service}.log") as proc:
            wait_serving(proc.target)
            scraped = proc.metrics()
            assert scraped.value("oracle_service_ready", service=service) == 1
            with receiver.arrived:
                receiver.arrived.wait_for(lambda: "oracle_service_ready" in receiver.names, timeout=60)
            assert "oracle_service_ready" in receiver.names
    finally:
        server.stop(2)


def test_metrics_off_serves_no_endpoint(postgres: Postgres, exchange_url: str, tmp_path: Path) -> None:
    env = service_env("budget", postgres, exchange_url) | {"BUDGET_METRICS_ADDR": "off"}
    with running_process("services.budget", env, tmp_path / "budget.log") as proc:
        wait_serving(proc.target)
        assert proc.metrics_port is None
