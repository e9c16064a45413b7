"""What an operator sees of the whole stack, started as ``make run`` starts it (every service its
own process) with each service exporting spans over OTLP to a receiver inside this test:

* one scan cycle that ends in an execution is ONE trace — scanner → budget → LLM → executor →
  exchange — with every parent/child link intact across the processes;
* each service's /metrics serves every series the alert rules and the dashboard read;
* no secret of any process (exchange keys and secrets, principal tokens, the LLM key) nor a
  request signature reaches a log line, a span attribute or a metric.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from shared.logs import secret_values
from tests.e2e.conftest import RunningStack, start_stack, stop_quietly
from tests.harness import Metrics, scrape
from tests.unit.deploy.monitoring import PROMETHEUS_SERIES, expressions, metric_names

pytestmark = pytest.mark.e2e

SERVICES = ("scanner", "executor", "budget")
EXECUTE = "/oracle.executor.v1.ExecutorService/ExecuteProposal"
RESERVE = "/oracle.budget.v1.BudgetService/ReserveCall"
# An HMAC-SHA256 in hex (a Bitvavo request signature); trace ids are 32 hex digits, span ids 16.
SIGNATURE_SHAPE = re.compile(r"\b[0-9a-f]{64}\b")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Span:
    """One received span, as the receiver saw it."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = threading.Condition()

    def Export(self, request: Any, context: Any) -> Any:
        with self.arrived:
            for resource_spans in request.resource_spans:
                attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            Span(
                                service=str(attrs.get("service.name", "")),
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                attributes={a.key: _value(a.value) for a in span.attributes},
                            )
                        )
            self.arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, found: Callable[[list[Span]], Any], timeout: float = 120.0) -> Any:
        """Wait until ``found(spans)`` is truthy (spans come in batches); return it."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                result = found(list(self.spans))
                if result or time.monotonic() > deadline:
                    return result
                self.arrived.wait(timeout=1.0)


@dataclass
class Observed:
    stack: RunningStack
    receiver: Receiver

    def metrics(self, service: str) -> Metrics:
        url = self.stack.status()["addresses"][f"{service}-metrics"]
        match = re.fullmatch(r"http://([\d.]+):(\d+)/metrics", url)
        assert match, url
        return scrape(int(match.group(2)), match.group(1))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {}
    for service in SERVICES:
        prefix = service.upper()
        env[f"{prefix}_TRACE_EXPORTER"] = "otlp"
        env[f"{prefix}_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    stack = start_stack(
        tmp_path_factory.mktemp("observed"), "--cycles", "1", "--keep-serving", "--interval", "3600", env=env
    )
    try:
        stack.wait_for(cycles=1)
        yield Observed(stack, receiver)
    finally:
        stop_quietly(stack)
        server.stop(5)


def _order_trace(spans: list[Span]) -> list[Span] | None:
    """The spans of the trace in which the executor placed an order, once they all arrived
    (each process exports in batches of its own): a root, the LLM call, a span of every
    service, and every span's parent."""
    orders = [s for s in spans if s.attributes.get("exchange.endpoint") == "POST /order"]
    for order in orders:
        trace = [s for s in spans if s.trace_id == order.trace_id]
        ids = {s.span_id for s in trace}
        arrived = (
            any(not s.parent_id for s in trace)
            and any(s.name == "llm.chat" for s in trace)
            and {s.service for s in trace} >= {f"oracle-{service}" for service in SERVICES}
            and all(not s.parent_id or s.parent_id in ids for s in trace)
        )
        if arrived:
            return trace
    return None


def _order_traces(spans: list[Span]) -> list[list[Span]]:
    """Every trace with an order, complete or not (what a failure shows)."""
    ids = {s.trace_id for s in spans if s.attributes.get("exchange.endpoint") == "POST /order"}
    return [[s for s in spans if s.trace_id == i] for i in ids]


def _ancestry(span: Span, trace: list[Span]) -> list[Span]:
    by_id = {s.span_id: s for s in trace}
    chain = [span]
    while chain[-1].parent_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain


def test_one_cycle_is_one_trace_from_the_scan_to_the_exchange(observed: Observed) -> None:
    trace = observed.receiver.wait_for(_order_trace)
    shown = [[(s.service, s.name, s.span_id, s.parent_id) for s in t] for t in _order_traces(observed.receiver.spans)]
    assert trace, f"no trace from a root through every service to an order; traces with an order: {shown}"

    roots = [s for s in trace if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [("oracle-scanner", "scan.job")]
    root = roots[0]
    assert {s.service for s in trace} == {"oracle-scanner", "oracle-budget", "oracle-executor"}

    # scanner (scan.job) → executor (ExecuteProposal) → exchange (POST /order)
    order = next(s for s in trace if s.attributes.get("exchange.endpoint") == "POST /order")
    chain = [(s.service, s.name) for s in _ancestry(order, trace)]
    assert chain[0][0] == "oracle-executor"
    assert chain[1] == ("oracle-executor", EXECUTE)  # the server span of the call
    assert chain[2] == ("oracle-scanner", EXECUTE)  # the scanner's client span
    assert chain[-1] == ("oracle-scanner", "scan.job")
    assert order.attributes["exchange.error_code"] == "ok"
    assert order.attributes["exchange.market"] and order.attributes["exchange.clientOrderId"]

    # scanner → budget (ReserveCall) and → LLM, under the same root
    reserve = next(s for s in trace if s.service == "oracle-budget" and s.name == RESERVE)
    assert [(s.service, s.name) for s in _ancestry(reserve, trace)[:2]] == [
        ("oracle-budget", RESERVE),
        ("oracle-scanner", RESERVE),
    ]
    assert _ancestry(reserve, trace)[-1] == root
    llm = next(s for s in trace if s.name == "llm.chat")
    assert llm.service == "oracle-scanner" and _ancestry(llm, trace)[-1] == root
    assert llm.attributes["llm.outcome"] == "ok" and llm.attributes["llm.model"]
    assert llm.attributes["llm.prompt_tokens"] > 0


def served_names(observed: Observed) -> set[str]:
    """Every series name the three services serve now (histograms as _bucket/_sum/_count)."""
    names: set[str] = set()
    for service in SERVICES:
        names |= observed.metrics(service).names()
    return names


def test_every_alert_and_panel_reads_series_the_services_serve(observed: Observed) -> None:
    served = served_names(observed)
    missing = {
        where: sorted(metric_names(expr) - served - PROMETHEUS_SERIES)
        for where, expr in expressions().items()
        if metric_names(expr) - served - PROMETHEUS_SERIES
    }
    assert missing == {}


def test_the_cycle_shows_on_each_service_metrics(observed: Observed) -> None:
    executor, budget, scanner = (observed.metrics(s) for s in ("executor", "budget", "scanner"))
    assert executor.value("oracle_executor_executions_total", outcome="claimed") >= 1
    assert executor.value("oracle_rpc_server_calls_total", method=EXECUTE) >= 1
    assert executor.value("oracle_exchange_requests_total", endpoint="POST /order", code="ok") >= 1
    assert budget.value("oracle_budget_reservations_total", outcome="granted") >= 1
    assert budget.value("oracle_budget_tokens_total", kind="completion") > 0
    assert scanner.value("oracle_scanner_llm_calls_total", outcome="ok") >= 1
    assert scanner.value("oracle_scanner_run_duration_seconds_count", result="ok") >= 1
    assert scanner.value("oracle_scanner_claim_lag_seconds_count") >= 1
    for metrics in (executor, budget, scanner):
        assert metrics.value("oracle_service_ready") >= 1


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().partition("=")[::2] for entry in raw.split(b"\0") if b"=" in entry)


def test_no_secret_reaches_a_log_line_a_span_or_a_metric(observed: Observed) -> None:
    status = observed.stack.status()
    secrets: set[str] = set()
    for service in SERVICES:  # every secret each service was given: keys, secrets, tokens, URLs
        secrets |= set(secret_values(_environ(status["pids"][service])))
    llm_argv = Path(f"/proc/{status['pids']['llm-sim']}/cmdline").read_bytes().split(b"\0")
    [llm_key] = [a.split(b"=", 1)[1] for a in llm_argv if a.startswith(b"--api-key=")]  # the LLM key
    secrets.add(llm_key.decode())
    names = {"EXECUTOR_BITVAVO_API_SECRET", "SCANNER_BITVAVO_API_SECRET", "SCANNER_LLM_API_KEY"}
    assert all(any(n in _environ(status["pids"][s]) for s in SERVICES) for n in names)  # the canaries exist
    assert len(secrets) >= 8

    assert observed.receiver.wait_for(_order_trace), "the cycle's spans did not arrive"
    logs = "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in (observed.stack.state_dir / "logs").glob("*.log")
    )
    spans = json.dumps([s.attributes | {"name": s.name} for s in observed.receiver.spans])
    metrics = "\n".join(observed.metrics(s).text for s in SERVICES)
    assert '"rpc"' in logs
    assert "exchange.clientOrderId" in spans
    assert "oracle_rpc_server_calls_total" in metrics
    for where, text in (("logs", logs), ("span attributes", spans), ("metrics", metrics)):
        leaked = sorted(s[:4] + "…" for s in secrets if s in text)
        assert not leaked, f"secrets in the {where}: {leaked}"
    for where, text in (("span attributes", spans), ("metrics", metrics)):
        assert not SIGNATURE_SHAPE.search(text), f"a signature-shaped value in the {where}"
        assert "signature" not in text.lower() and "bitvavo-access" not in text.lower(), where
