"""A closed-loop load generator and the statistics of what it measured.

``run`` starts N client threads that are released together (a barrier) and take tasks from one
shared list until it is empty, a deadline passes or the run is stopped (Ctrl-C). Every task is
timed on the client with ``time.perf_counter``; a task returns an :class:`Outcome` whose label is
``"ok"`` for a success (anything else is counted as a failure of that kind), and may report the
time of its parts (e.g. ``reserve`` and ``commit``). A gRPC error becomes ``CODE/REASON``.

Closed loop means each thread waits for its answer before it sends the next request: the
throughput is what the system sustains with that many callers, and the latency is what each of
them saw. There is no think time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from shared.errors import from_rpc_error

OK = "ok"


@dataclass(frozen=True)
class Outcome:
    """What one task did: ``label`` ("ok" or the kind of failure) and the seconds of its parts."""

    label: str = OK
    parts: Mapping[str, float] = field(default_factory=dict)


Task = Callable[[], Outcome]


@dataclass(frozen=True)
class Sample:
    """One timed task."""

    seconds: float
    label: str
    parts: Mapping[str, float]


@dataclass
class Run:
    """Everything one load run measured."""

    threads: int
    planned: int
    wall_seconds: float
    samples: list[Sample]
    cut_by_deadline: bool
    interrupted: bool
    started_at: float = 0.0
    """Wall clock (``time.time``) when the threads were released: comparable between processes,
    so the report can show that a scenario's rounds alternated with its floor's."""
    ended_at: float = 0.0
    """Wall clock when the last thread finished."""

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.label == OK]

    @property
    def failures(self) -> Counter[str]:
        return Counter(s.label for s in self.samples if s.label != OK)

    @property
    def ok_per_second(self) -> float:
        return len(self.ok) / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """The run as plain JSON values (latencies in milliseconds, of successful tasks)."""
        ok = self.ok
        parts: dict[str, dict[str, float]] = {}
        for name in sorted({p for s in ok for p in s.parts}):
            parts[name] = latency_ms([s.parts[name] for s in ok if name in s.parts])
        return {
            "threads": self.threads,
            "planned": self.planned,
            "completed": len(self.samples),
            "ok": len(ok),
            "failures": dict(self.failures),
            "wall_seconds": round(self.wall_seconds, 3),
            "ok_per_second": round(self.ok_per_second, 2),
            "latency_ms": latency_ms([s.seconds for s in ok]),
            # Did it slow down as the run went on (e.g. as rows piled up)? In completion order.
            "p50_ms_first_quarter": _p50_ms([s.seconds for s in ok[: len(ok) // 4]]),
            "p50_ms_last_quarter": _p50_ms([s.seconds for s in ok[len(ok) - len(ok) // 4 :]]),
            "parts_latency_ms": parts,
            "cut_by_deadline": self.cut_by_deadline,
            "interrupted": self.interrupted,
        }

    def brief(self) -> dict[str, Any]:
        """The run as one round of a scenario measured in rounds (``bench.report`` takes the
        median over them): successes, wall seconds, throughput, p50 and p99 in milliseconds."""
        latency = latency_ms([s.seconds for s in self.ok])
        return {
            "ok": len(self.ok),
            "wall_seconds": round(self.wall_seconds, 3),
            "ok_per_second": round(self.ok_per_second, 2),
            "p50_ms": latency.get("p50"),
            "p99_ms": latency.get("p99"),
            "started_at": round(self.started_at, 3),
            "ended_at": round(self.ended_at, 3),
        }


def merge(runs: Sequence[Run], *, planned: int, threads: int) -> Run:
    """Rounds as one run: their samples together (the pooled latencies), their wall times added up."""
    return Run(
        threads=threads,
        planned=planned,
        wall_seconds=sum(r.wall_seconds for r in runs),
        samples=[s for r in runs for s in r.samples],
        cut_by_deadline=any(r.cut_by_deadline for r in runs),
        interrupted=any(r.interrupted for r in runs),
        started_at=min((r.started_at for r in runs), default=0.0),
        ended_at=max((r.ended_at for r in runs), default=0.0),
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ascending values, linearly interpolated between ranks."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def latency_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99 and max of durations given in seconds, in milliseconds."""
    values = sorted(seconds)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(1000 * sum(values) / len(values), 2),
        "p50": round(1000 * percentile(values, 50), 2),
        "p95": round(1000 * percentile(values, 95), 2),
        "p99": round(1000 * percentile(values, 99), 2),
        "max": round(1000 * values[-1], 2),
    }


def _p50_ms(seconds: Sequence[float]) -> float | None:
    return round(1000 * percentile(sorted(seconds), 50), 2) if seconds else None


def failure_label(exc: BaseException) -> str:
    """``CODE/REASON`` for a gRPC error, the exception's type name otherwise."""
    if isinstance(exc, grpc.RpcError):
        try:
            report = from_rpc_error(exc)
        except Exception:  # a status we cannot even decode is still a failure
            return "RPC_ERROR"
        return f"{report.code.name}/{report.reason}"
    return type(exc).__name__


def run(tasks: Sequence[Task], *, threads: int, deadline_seconds: float, stop: threading.Event) -> Run:
    """Run ``tasks`` from ``threads`` closed-loop client threads; see the module docstring."""
    samples: list[Sample] = []
    lock = threading.Lock()
    cursor = 0
    started = 0.0
    started_at = 0.0
    finished = [0.0] * threads
    cut = threading.Event()

    def mark_start() -> None:
        nonlocal started, started_at
        started = time.perf_counter()
        started_at = time.time()

    barrier = threading.Barrier(threads, action=mark_start)

    def take() -> Task | None:
        nonlocal cursor
        with lock:
            if cursor >= len(tasks) or stop.is_set():
                return None
            if time.perf_counter() - started > deadline_seconds:
                cut.set()
                return None
            task = tasks[cursor]
            cursor += 1
            return task

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            return
        while (task := take()) is not None:
            t0 = time.perf_counter()
            try:
                outcome = task()
            except Exception as exc:  # every failure is counted, none stops the run
                outcome = Outcome(failure_label(exc))
            elapsed = time.perf_counter() - t0
            with lock:
                samples.append(Sample(elapsed, outcome.label, outcome.parts))
        finished[index] = time.perf_counter()

    workers = [
        threading.Thread(target=worker, args=(i,), name=f"bench-client-{i}", daemon=True) for i in range(threads)
    ]
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():  # a timed join lets Ctrl-C through
                w.join(0.2)
    except KeyboardInterrupt:
        stop.set()  # the workers stop after their current call
        barrier.abort()
        raise
    wall = max(finished) - started if started else 0.0
    return Run(threads, len(tasks), wall, samples, cut.is_set(), stop.is_set(), started_at, started_at + wall)
