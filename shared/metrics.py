"""Metrics: the meter provider of a process, its Prometheus scrape endpoint, and the kernel's
instruments (gRPC server calls, exchange requests, readiness).

Every instrument of the project is made with the OpenTelemetry metrics API, in one module per
concern: this one for the kernel, ``services/<name>/metrics.py`` for each service. Call sites
stay one line (``metrics.something(...)``). A counter written on every call (the RPC counter,
the budget's) is a :class:`Tally`: exported exactly as a Counter, at a fraction of its cost per
call. Other instruments made before :func:`setup_metrics` runs are the API's proxies and start
counting once the provider exists; in a process that never calls it (a unit test) they count
nothing.

Names are Prometheus names already (``oracle_<area>_<what>``); the exporter adds ``_total`` to
counters and the unit (``_seconds``) to durations. Labels are bounded: method names, status
codes, reason codes, statuses, windows, models — never a user id, proposal id, clientOrderId or
market list. The endpoint is plaintext HTTP on its own port (``<PREFIX>_METRICS_ADDR``) and
carries nothing but these figures. With ``<PREFIX>_METRICS_OTLP=true`` the same figures are
also pushed over OTLP to the trace collector.

Figures read from the database (executions not final, the kill switch) are observable gauges:
:func:`observe` registers a callback that the scrape runs, through the SECURITY DEFINER
functions of migration 0091. Every replica exports them; the alert rules aggregate with max().
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

log = logging.getLogger(__name__)

# Buckets (seconds) for RPCs, exchange and LLM requests, scan runs: 5 ms .. 2 min.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Tally:
    """A counter whose counts are kept here and reported by an observable counter when the
    readers collect (a scrape, an OTLP push).

    What it exports is what a synchronous Counter of the same name would: a cumulative monotonic
    sum, one series per distinct set of label values, with the same name, unit and description
    (the Prometheus exporter adds ``_total``). What it saves is the SDK's work per call — a
    Measurement object, its attributes cleaned, copied and hashed, the exemplar filter asked, a
    reader's aggregation looked up and locked — about 7 µs of CPU on an idle machine and several
    times that under load, on every RPC. Here a call is one dict update under a lock. Unlike
    the SDK's proxies, counts made before :func:`setup_metrics` are kept: they are reported
    from the first collection on.
    """

    def __init__(
        self, meter_: metrics.Meter, name: str, labels: tuple[str, ...], *, unit: str, description: str
    ) -> None:
        self.name = name
        self._labels = labels
        self._counts: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        meter_.create_observable_counter(name, callbacks=[self._observe], unit=unit, description=description)

    def add(self, amount: int, *values: str) -> None:
        """Count ``amount`` (>= 0) for the series of ``values`` (one per label, in order)."""
        if amount < 0 or len(values) != len(self._labels):
            # As the SDK's Counter does with a negative amount: refused loudly, the call goes on.
            log.warning("tally %s: %s dropped (a counter only grows, one value per label)", self.name, amount)
            return
        with self._lock:
            self._counts[values] = self._counts.get(values, 0) + amount

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._counts.items())
        return [Observation(total, dict(zip(self._labels, values, strict=True))) for values, total in counts]


_meter = metrics.get_meter("oracle.kernel")

RPC_CALLS = Tally(
    _meter,
    "oracle_rpc_server_calls",
    ("service", "method", "code"),
    unit="{call}",
    description="gRPC calls served, by service, method and status code",
)
RPC_DURATION = _meter.create_histogram(
    "oracle_rpc_server_duration",
    unit="s",
    description="Time to serve a gRPC call, by service, method and status code",
    explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
)
SERVICE_READY = _meter.create_gauge(
    "oracle_service_ready", description="1 while the service reports SERVING (its database answers), else 0"
)


def meter(name: str) -> metrics.Meter:
    """The meter of one concern (``executor``, ``scanner``, ``budget``, ``exchange`` …)."""
    return metrics.get_meter(f"oracle.{name}")


def rpc_served(service: str, method: str, code: str, seconds: float) -> None:
    """One gRPC call served (the server interceptor calls this once per call)."""
    RPC_CALLS.add(1, service, method, code)
    RPC_DURATION.record(seconds, {"service": service, "method": method, "code": code})


def service_ready(service: str, ready: bool) -> None:
    """The service's readiness as its health service reports it."""
    SERVICE_READY.set(1 if ready else 0, {"service": service})


# ------------------------------------------------------------------ figures read at scrape time

Reading = Callable[[], Iterable[tuple[float, dict[str, str]]]]


@dataclass
class Observed:
    """An observable gauge whose values come from readings added at run time (one per built
    service; tests build several in one process). A reading that fails is skipped for that scrape."""

    name: str
    _readings: list[Reading] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, reading: Reading) -> Callable[[], None]:
        """Add ``reading``; returns what removes it again (a shutdown hook)."""
        with self._lock:
            self._readings.append(reading)

        def remove() -> None:
            with self._lock:
                if reading in self._readings:
                    self._readings.remove(reading)

        return remove

    def __call__(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            readings = list(self._readings)
        out: list[Observation] = []
        for reading in readings:
            try:
                out.extend(Observation(value, labels) for value, labels in reading())
            except Exception as exc:  # the database is down: the scrape goes on without it
                log.debug("metric %s not read: %s", self.name, type(exc).__name__)
        return out


def observe(meter_: metrics.Meter, name: str, *, description: str, unit: str = "") -> Observed:
    """An observable gauge named ``name`` on ``meter_``; add readings to it with ``.add``."""
    observed = Observed(name)
    meter_.create_observable_gauge(name, callbacks=[observed], unit=unit, description=description)
    return observed


# ------------------------------------------------------------------ the provider and endpoint

_setup_lock = threading.Lock()
_port: int | None = None
_installed = False


def setup_metrics(service: str, addr: str | None, *, otlp_endpoint: str | None = None) -> int | None:
    """Install the meter provider once per process; serve ``/metrics`` on ``addr`` (host:port,
    port 0 = a free one) unless it is None. Returns the bound port (None without an endpoint)."""
    global _port, _installed
    with _setup_lock:
        if _installed:
            return _port
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        readers: list[MetricReader] = []
        if addr:
            from prometheus_client import start_http_server

            # target_info and the scope labels would repeat the resource and the meter on every
            # series; the scrape's job/instance labels already say which pod answered.
            readers.append(PrometheusMetricReader(disable_target_info=True, scope_info_enabled=False))
            host, _, port = addr.rpartition(":")
            server, _thread = start_http_server(int(port), addr=host or "0.0.0.0")
            _port = int(server.server_port)
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            exporter = OTLPMetricExporter(endpoint=otlp_endpoint, insecure=otlp_endpoint.startswith("http://"))
            readers.append(PeriodicExportingMetricReader(exporter))
        provider = MeterProvider(
            metric_readers=readers, resource=Resource.create({"service.name": f"oracle-{service}"})
        )
        metrics.set_meter_provider(provider)
        _installed = True
        return _port
