"""Database spans cost nothing when nobody exports them: without an exporter psycopg is not
wrapped at all (connections hand out psycopg's own cursors); with one, every statement run through
:class:`shared.db.Database` is a span in the caller's trace, its text without parameters.

Each case in its own process (the tracer provider and the instrumentation are process-wide), on
the real database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.harness import Postgres

SCRIPT = """
import json, sys
import psycopg
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shared.config import TraceExporter
from shared.db import Database
from shared.telemetry import setup_tracing

setup_tracing("t", TraceExporter(sys.argv[1]))
seen = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(seen))
db = Database(sys.argv[2], name="spans-test", min_size=1, max_size=1)
db.open()
with trace.get_tracer("t").start_as_current_span("rpc") as rpc:
    with db.transaction(None) as conn:
        conn.execute("SELECT %s::int AS answer", (42,)).fetchone()
        cursor = type(conn.cursor())
db.close()
spans = [
    {"trace_id": format(s.context.trace_id, "032x"), "attributes": {k: str(v) for k, v in s.attributes.items()}}
    for s in seen.get_finished_spans() if s.name != "rpc"
]
sys.stderr.write(json.dumps({
    "wrapped": hasattr(psycopg.connect, "__wrapped__") or hasattr(psycopg.Connection.connect, "__wrapped__"),
    "cursor": f"{cursor.__module__}.{cursor.__qualname__}",
    "trace_id": format(rpc.get_span_context().trace_id, "032x"),
    "spans": spans,
}) + "\\n")
"""


def run(exporter: str, url: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, exporter, url], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def test_without_an_exporter_psycopg_is_not_wrapped(postgres: Postgres) -> None:
    result = run("none", postgres.url("executor"))
    assert result["wrapped"] is False
    assert result["cursor"] == "psycopg.Cursor"
    assert result["spans"] == []


def test_with_an_exporter_each_statement_is_a_span_in_the_callers_trace(postgres: Postgres) -> None:
    result = run("console", postgres.url("executor"))
    assert result["wrapped"] is True
    statements = [
        (span["trace_id"], span["attributes"].get("db.statement") or span["attributes"].get("db.query.text"))
        for span in result["spans"]
    ]
    assert (result["trace_id"], "SELECT %s::int AS answer") in statements
    assert not any("42" in str(span["attributes"]) for span in result["spans"])  # never the parameters
