"""Faults the LLM simulator can be told to inject (through ``/_admin/faults``).

Answer faults replace the next answers' content: ``invalid_json`` (not JSON at all),
``confidence_30`` (a confidence outside 0/25/50/75/100), ``negative_amount``, ``zero_amount``,
``huge_amount`` (``"1E+30"``: a decimal no proposal can hold), ``above_max_amount`` (one cent
above the prompt's ``max_order_eur``), ``unknown_side``. ``nul_model`` keeps the answer but
reports a model name with a NUL and control characters in it. ``http_500`` answers the next
requests with an OpenAI-style server error.
``latency`` delays the next answers by ``seconds`` (it combines with the others). ``count`` is how
many requests a fault affects; ``null`` means until the faults are cleared.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

ANSWER_FAULTS = frozenset(
    {
        "invalid_json",
        "confidence_30",
        "negative_amount",
        "zero_amount",
        "huge_amount",
        "above_max_amount",
        "unknown_side",
    }
)
KINDS = ANSWER_FAULTS | {"nul_model", "http_500", "latency"}


@dataclass
class Fault:
    """One armed fault."""

    fault_id: int
    kind: str
    count: int | None
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.fault_id, "kind": self.kind, "count": self.count, "seconds": self.seconds}


@dataclass(frozen=True)
class Effects:
    """What the faults do to one request."""

    delay_seconds: float = 0.0
    kind: str | None = None  # an answer fault, nul_model or http_500; None: answer normally


class FaultBook:
    """Armed faults, consumed request by request; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, kind: str, count: int | None, seconds: float) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(KINDS)}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or null for until cleared)")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        with self._lock:
            fault = Fault(self._next_id, kind, count, seconds)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take(self) -> Effects:
        """Consume what applies to one request: every latency fault and the first other fault."""
        with self._lock:
            delay = 0.0
            kind: str | None = None
            for fault in self._faults:
                if fault.kind == "latency":
                    delay += fault.seconds
                elif kind is None:
                    kind = fault.kind
                else:
                    continue
                if fault.count is not None:
                    fault.count -= 1
            self._faults = [f for f in self._faults if f.count is None or f.count > 0]
            return Effects(delay, kind)
