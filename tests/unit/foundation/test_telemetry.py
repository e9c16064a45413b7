"""Tracing: without an exporter spans are not recorded, yet trace ids exist and reach log lines;
with the console exporter spans are recorded. Each case in its own process (the provider is
global and installed once)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import io, json, logging, sys
from opentelemetry import trace
from shared.config import TraceExporter
from shared.logs import setup_logging
from shared.telemetry import setup_tracing
setup_tracing("t", TraceExporter(sys.argv[1]))
setup_logging("t", "INFO", {})
stream = io.StringIO()
logging.getLogger().handlers[0].setStream(stream)
with trace.get_tracer("t").start_as_current_span("s") as span:
    logging.getLogger("t").info("inside")
    ctx = span.get_span_context()
    recording = span.is_recording()
sys.stderr.write(json.dumps({"recording": recording, "trace_id": format(ctx.trace_id, "032x"),
                             "line": json.loads(stream.getvalue())}) + "\\n")
"""


def run(exporter: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, exporter], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def test_no_exporter_records_nothing_but_keeps_trace_ids() -> None:
    result = run("none")
    assert result["recording"] is False
    line = result["line"]
    assert isinstance(line, dict) and line["trace_id"] == result["trace_id"] != "0" * 32


def test_console_exporter_records_spans() -> None:
    assert run("console")["recording"] is True


def test_an_exporting_service_records_spans_its_non_exporting_caller_did_not_sample() -> None:
    """A scanner without an exporter propagates its trace id with the sampled flag off; the
    executor that exports must still record its spans, in that trace, under that parent."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from shared.config import TraceExporter
    from shared.telemetry import sampler_for

    caller = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler_for(TraceExporter.OTLP))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with provider.get_tracer("t").start_as_current_span(
        "executor", context=set_span_in_context(NonRecordingSpan(caller))
    ):
        pass
    [span] = exported.get_finished_spans()
    assert span.context is not None and span.context.trace_id == 0x1234
    assert span.parent is not None and span.parent.span_id == 0x99

    silent = TracerProvider(sampler=sampler_for(TraceExporter.NONE))
    with silent.get_tracer("t").start_as_current_span("scanner") as unrecorded:
        assert not unrecorded.is_recording() and unrecorded.get_span_context().is_valid
