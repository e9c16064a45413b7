"""shared.metrics.Tally exports what a synchronous OpenTelemetry Counter of the same name,
unit, description and additions would: compared point by point through the SDK's in-memory
reader, on a meter provider of the test's own."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint, Sum

from shared.metrics import Tally


def _exported(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, dict[str, Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                sum_ = metric.data
                assert isinstance(sum_, Sum)
                out[metric.name] = {
                    "kind": type(sum_).__name__,
                    "monotonic": sum_.is_monotonic,
                    "temporality": sum_.aggregation_temporality,
                    "unit": metric.unit,
                    "description": metric.description,
                    "points": sorted(
                        (tuple(sorted((p.attributes or {}).items())), p.value)
                        for p in sum_.data_points
                        if isinstance(p, NumberDataPoint)
                    ),
                }
    return out


def test_a_tally_exports_what_a_counter_would() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    counter = meter.create_counter("counted", unit="{call}", description="calls")
    tally = Tally(meter, "tallied", ("method", "code"), unit="{call}", description="calls")
    additions = [(1, "/a", "OK"), (1, "/a", "OK"), (1, "/a", "INTERNAL"), (5, "/b", "OK"), (0, "/c", "OK")]
    for amount, method, code in additions:
        counter.add(amount, {"method": method, "code": code})
        tally.add(amount, method, code)
    first = _exported(reader)
    assert first["tallied"] == first["counted"]
    assert dict(first["tallied"]["points"]) == {
        (("code", "OK"), ("method", "/a")): 2,
        (("code", "INTERNAL"), ("method", "/a")): 1,
        (("code", "OK"), ("method", "/b")): 5,
        (("code", "OK"), ("method", "/c")): 0,
    }
    # Cumulative: the next collection reports totals, not what was added since.
    counter.add(1, {"method": "/a", "code": "INTERNAL"})
    tally.add(1, "/a", "INTERNAL")
    second = _exported(reader)
    assert second["tallied"] == second["counted"]
    assert dict(second["tallied"]["points"])[(("code", "INTERNAL"), ("method", "/a"))] == 2


def test_a_tally_refuses_what_a_counter_refuses() -> None:
    reader = InMemoryMetricReader()
    tally = Tally(MeterProvider(metric_readers=[reader]).get_meter("t"), "t", ("code",), unit="", description="")
    tally.add(2, "OK")
    tally.add(-1, "OK")  # a counter only grows
    tally.add(1, "OK", "extra")  # one value per label
    assert _exported(reader)["t"]["points"] == [((("code", "OK"),), 2)]
