"""The scanner's metrics and spans: scan-job claim lag (due → claimed), run duration by result,
lease takeovers and fenced writes refused, and the LLM calls (by outcome, with latency and a
span each).

Instruments live here and nowhere else; the scheduler, the leases, the runner and the LLM
analyst call the one-line functions and decorators below. A job run is one span,
``scan.job`` (:func:`scan_run`): run by the scheduler's worker thread, which has no context of
its own, it is the root of the run's trace — the budget and executor calls, the LLM call and the
executor's exchange requests are its descendants; run by RunScan it is a child of that call.
Labels are results, outcomes and the configured model name, never a user, job or proposal id;
span attributes never carry the prompt, an answer's text or a key.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import openai
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.exchange import instrumentation as exchange
from shared.metrics import LATENCY_BUCKETS, meter

_meter = meter("scanner")
_tracer = trace.get_tracer("oracle.scanner")

P = ParamSpec("P")
R = TypeVar("R")

CLAIM_LAG = _meter.create_histogram(
    "oracle_scanner_claim_lag",
    unit="s",
    description="How late a scan job was claimed after it fell due",
    explicit_bucket_boundaries_advisory=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
RUN_DURATION = _meter.create_histogram(
    "oracle_scanner_run_duration",
    unit="s",
    description="How long a scan job's run took, by result (ok, failed, lease_lost, error)",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
LEASE_TAKEOVERS = _meter.create_counter(
    "oracle_scanner_lease_takeovers",
    unit="{lease}",
    description="Leases of this instance that another claim took over (counted once, when first noticed)",
)
FENCED_WRITES_REFUSED = _meter.create_counter(
    "oracle_scanner_fenced_writes_refused",
    unit="{write}",
    description="Writes refused because the job's fencing token had moved on",
)
LLM_CALLS = _meter.create_counter(
    "oracle_scanner_llm_calls", unit="{call}", description="LLM requests sent, by outcome and model"
)
LLM_DURATION = _meter.create_histogram(
    "oracle_scanner_llm_duration",
    unit="s",
    description="Time an LLM request took, by outcome and model",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)

RUN_RESULTS = ("ok", "failed", "lease_lost", "error")
LLM_OUTCOMES = ("ok", "timeout", "http_error", "unavailable", "error")


def claimed(due: Iterable[datetime], now: datetime) -> None:
    """Jobs claimed at ``now`` that were due at ``due``."""
    for at in due:
        CLAIM_LAG.record(max((now - at).total_seconds(), 0.0))


def fenced_write_refused(*, first: bool) -> None:
    """A job's write found its fencing token moved on; ``first``: the lease was not yet known lost."""
    FENCED_WRITES_REFUSED.add(1)
    if first:
        LEASE_TAKEOVERS.add(1)


def scan_run(run: Callable[P, R]) -> Callable[P, R]:
    """Decorates ``ScanRunner.run_leased``: one ``scan.job`` span and one duration per run."""

    @functools.wraps(run)
    def observed(*args: P.args, **kwargs: P.kwargs) -> R:
        from services.scanner.lease import LeaseLost  # the lease module calls this one
        from services.scanner.scan import ScanFailed

        lease = args[1] if len(args) > 1 else kwargs.get("lease")
        job = getattr(lease, "job", None)
        attributes = {"scan.trigger": str(kwargs.get("trigger", "schedule"))}
        if job is not None:
            attributes["scan.markets"] = ",".join(job.markets)
            attributes["scan.analyst"] = job.analyst
        started, result = time.monotonic(), "error"
        with _tracer.start_as_current_span("scan.job", attributes=attributes) as span:
            try:
                value = run(*args, **kwargs)
                result = "ok"
                return value
            except LeaseLost:
                result = "lease_lost"
                raise
            except ScanFailed as exc:
                result = "failed"
                span.set_attribute("scan.failure_reason", exc.reason)
                raise
            finally:
                span.set_attribute("scan.result", result)
                RUN_DURATION.record(time.monotonic() - started, {"result": result})

    return observed


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a step with a span of its own (e.g. a batch's market data)."""

    def decorate(step: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(step)
        def observed(*args: P.args, **kwargs: P.kwargs) -> R:
            with _tracer.start_as_current_span(name):
                return step(*args, **kwargs)

        return observed

    return decorate


def llm_call(create: Callable[..., Any], **request: Any) -> Any:
    """``create(**request)`` (a chat completion) inside an ``llm.chat`` client span, counted.

    The span names the model, max_tokens, the outcome, the tokens used and the finish reason;
    never the messages or the answer's text.
    """
    model = str(request.get("model", ""))
    attributes: dict[str, Any] = {"llm.model": model, "llm.max_tokens": int(request.get("max_tokens") or 0)}
    started, outcome = time.monotonic(), "error"
    with _tracer.start_as_current_span("llm.chat", kind=SpanKind.CLIENT, attributes=attributes) as span:
        try:
            completion = create(**request)
            outcome = "ok"
        except openai.APITimeoutError:
            outcome = "timeout"
            raise
        except openai.APIStatusError as exc:
            outcome = "http_error"
            span.set_attribute("llm.status_code", exc.status_code)
            raise
        except openai.APIConnectionError:
            outcome = "unavailable"
            raise
        finally:
            span.set_attribute("llm.outcome", outcome)
            if outcome != "ok":
                span.set_status(Status(StatusCode.ERROR, outcome))
            labels = {"outcome": outcome, "model": model}
            LLM_CALLS.add(1, labels)
            LLM_DURATION.record(time.monotonic() - started, labels)
        usage = getattr(completion, "usage", None)
        if usage is not None:
            span.set_attribute("llm.prompt_tokens", int(usage.prompt_tokens))
            span.set_attribute("llm.completion_tokens", int(usage.completion_tokens))
        choices = getattr(completion, "choices", None) or []
        if choices:
            span.set_attribute("llm.finish_reason", str(choices[0].finish_reason))
        return completion


def start(model: str) -> None:
    """Make the series the alert rules read exist at 0."""
    LEASE_TAKEOVERS.add(0)
    exchange.start()
    FENCED_WRITES_REFUSED.add(0)
    for outcome in LLM_OUTCOMES:
        LLM_CALLS.add(0, {"outcome": outcome, "model": model})
