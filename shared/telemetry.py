"""OpenTelemetry: one tracer provider per process; gRPC server and client spans, psycopg spans,
exchange request spans (shared.exchange.instrumentation).

The exporter is chosen by configuration: none (spans are still made, so log lines carry trace
ids), console, or OTLP. Instrumentation patches grpc globally, so :func:`setup_tracing` runs
before any server or channel is created.

Without an exporter the psycopg instrumentation is not installed at all: its spans would never be
recorded, yet its wrapper would still run on every statement. gRPC and exchange requests stay
instrumented whatever the exporter: the gRPC spans carry the trace id across processes and into
log lines, and the exchange request hooks feed the exchange metrics.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler

from shared.config import TraceExporter

_done = threading.Lock()
_installed = False


def sampler_for(exporter: TraceExporter) -> Sampler:
    """What a process records.

    Without an exporter nothing is recorded (ids are still made and propagated, so log lines and
    downstream calls carry the trace id) — recording would only cost CPU. With one, every span
    is recorded, whatever the caller's sampled flag says: a caller that does not export (flag
    off) must not silence a service that does, or the executor's spans of a scan started by a
    non-exporting scanner would be lost. The trace id and parent still come from the caller.
    """
    return ALWAYS_OFF if exporter is TraceExporter.NONE else ALWAYS_ON


def setup_tracing(service: str, exporter: TraceExporter, otlp_endpoint: str = "") -> None:
    """Install the tracer provider and the gRPC/requests instrumentation once per process, and the
    psycopg instrumentation when spans are exported."""
    global _installed
    with _done:
        if _installed:
            return
        sampler = sampler_for(exporter)
        provider = TracerProvider(resource=Resource.create({"service.name": f"oracle-{service}"}), sampler=sampler)
        span_exporter: SpanExporter | None = None
        if exporter is TraceExporter.CONSOLE:
            span_exporter = ConsoleSpanExporter()
        elif exporter is TraceExporter.OTLP:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter(endpoint=otlp_endpoint, insecure=otlp_endpoint.startswith("http://"))
        if span_exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(span_exporter))
        trace.set_tracer_provider(provider)

        from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        from shared.exchange import instrumentation

        GrpcInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
        GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        if span_exporter is not None:
            from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

            # Statement text only, never parameters: parameters can hold user data.
            PsycopgInstrumentor().instrument(enable_commenter=False)
        # Exchange requests (the official SDK sends them with requests): a span each, named and
        # counted by shared.exchange.instrumentation; request headers (key, signature) are never
        # captured.
        RequestsInstrumentor().instrument(
            request_hook=instrumentation.request_hook, response_hook=instrumentation.response_hook
        )
        _installed = True
