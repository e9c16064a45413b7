"""OpenTelemetry: one tracer provider per process, gRPC server and client spans, psycopg spans.

The exporter is chosen by configuration: none (spans are still made, so log lines carry trace
ids), console, or OTLP. Instrumentation patches grpc globally, so :func:`setup_tracing` runs
before any server or channel is created.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from shared.config import TraceExporter

_done = threading.Lock()
_installed = False


def setup_tracing(service: str, exporter: TraceExporter, otlp_endpoint: str = "") -> None:
    """Install the tracer provider and the gRPC/psycopg instrumentation once per process."""
    global _installed
    with _done:
        if _installed:
            return
        # Without an exporter spans are not recorded (ids are still made and propagated, so log
        # lines and downstream calls carry the trace id) — recording them would only cost CPU.
        sampler = ParentBased(ALWAYS_OFF) if exporter is TraceExporter.NONE else ParentBased(ALWAYS_ON)
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
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        GrpcInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
        GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
        # Statement text only, never parameters: parameters can hold user data.
        PsycopgInstrumentor().instrument(enable_commenter=False)
        _installed = True
