"""Fault injection: what the next matching requests suffer instead of (or after) normal handling.

Kinds:

* ``drop``   – handle the request (``process=True``: e.g. place the order) or not, then close the
  connection without any answer; the client sees the connection end with no response;
* ``hang``   – handle it or not, then answer nothing until ``seconds`` pass or the client gives up,
  then close;
* ``error``  – handle it or not, then answer ``http_status`` with ``{"errorCode", "error"}``
  (e.g. 500/101, 503/107, 503/109);
* ``garbage`` – handle it or not, then answer ``http_status`` with an HTML page instead of JSON,
  as a proxy or load balancer in front of the exchange would (the SDK's ``r.json()`` then raises);
* ``latency`` – sleep ``seconds`` before normal handling (stacks with the others);
* ``stall`` – the request arrives ``seconds`` after it was signed and sent, without anyone waiting:
  its access window is judged against the exchange's clock plus ``seconds`` (a request that spent
  longer than its window between signing and arrival — a GC pause, a frozen VM — is refused with
  304, exactly as the exchange refuses it; stacks with the others);
* ``drop_before_read`` – close the next ``count`` accepted connections before reading a byte
  (any path, the admin API included: it cannot tell them apart unread).

Filters (``None`` matches anything): ``method``, ``path`` (an endpoint template such as
``/order`` or ``/{market}/candles``, or a concrete path after ``/v2`` such as ``/BTC-EUR/candles``),
``market``, ``key``. ``count`` is how many requests it hits (``None``: until cleared).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("drop", "hang", "error", "garbage", "latency", "stall", "drop_before_read")


@dataclass
class Fault:
    kind: str
    count: int | None = 1
    method: str | None = "POST"
    path: str | None = "/order"
    market: str | None = None
    key: str | None = None
    process: bool = True
    http_status: int = 503
    error_code: int = 109
    message: str | None = None
    seconds: float = 30.0
    fault_id: int = 0
    hits: int = 0

    def matches(self, method: str, template: str, path: str, market: str | None, key: str | None) -> bool:
        return (
            (self.method is None or self.method == method)
            and (self.path is None or self.path in (template, path))
            and (self.market is None or self.market == market)
            and (self.key is None or self.key == key)
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> Fault:
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        allowed = {f for f in cls.__dataclass_fields__ if f not in ("fault_id", "hits")}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**spec)
        if fault.count is not None and fault.count < 1:
            raise ValueError("count must be ≥ 1 (or null for until cleared)")
        return fault


class FaultBook:
    """The armed faults; each request takes what matches it, atomically."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.fault_id = next(self._ids)
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def _consume(self, fault: Fault) -> None:
        fault.hits += 1
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self._faults.remove(fault)

    def take(
        self, method: str, template: str, path: str, market: str | None, key: str | None
    ) -> tuple[float, int, Fault | None]:
        """Seconds of latency to add, milliseconds of stall before arrival, and the one
        answer-changing fault (first armed wins)."""
        with self._lock:
            latency = 0.0
            stall_ms = 0
            chosen: Fault | None = None
            for fault in list(self._faults):
                if fault.kind == "drop_before_read" or not fault.matches(method, template, path, market, key):
                    continue
                if fault.kind == "latency":
                    latency += fault.seconds
                    self._consume(fault)
                elif fault.kind == "stall":
                    stall_ms += round(fault.seconds * 1000)
                    self._consume(fault)
                elif chosen is None:
                    chosen = fault
                    self._consume(fault)
            return latency, stall_ms, chosen

    def take_connection_drop(self) -> bool:
        with self._lock:
            for fault in self._faults:
                if fault.kind == "drop_before_read":
                    self._consume(fault)
                    return True
            return False
