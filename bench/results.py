"""What a benchmark run produced: scenarios with their numbers and correctness checks, shown as
rich tables and stored as JSON.

A scenario whose checks fail is reported as failed and makes ``python -m bench`` exit non-zero:
a throughput number that silently lost or duplicated work is worthless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.machine import OTHERS


@dataclass(frozen=True)
class Check:
    """One correctness check: ``observed`` must equal ``expected``."""

    name: str
    expected: Any
    observed: Any

    @property
    def passed(self) -> bool:
        return bool(self.expected == self.observed)


@dataclass(frozen=True)
class Scenario:
    """One measured scenario of a benchmark."""

    benchmark: str
    name: str
    unit: str
    parameters: Mapping[str, Any]
    summary: Mapping[str, Any]
    checks: Sequence[Check]
    cpu: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)
    history: int = 0
    """Past executions in the database while it ran (``bench.history``)."""
    kind: str = "service"
    """``service`` (through gRPC and the service's code) or ``floor`` (``bench.floors``)."""
    rounds: Sequence[Mapping[str, Any]] = field(default_factory=list)
    """One entry per round it ran in (``bench.load.Run.brief``): ``Sizes.rounds`` for the loaded
    scenarios measured alternately with their floors, one for the others; empty where the
    benchmark does not record rounds (scan-job claims). ``summary`` pools the rounds."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [{**asdict(c), "passed": c.passed} for c in self.checks]
        data["passed"] = self.passed
        data["cpu_ms_per_ok_task"] = self.cpu_ms_per_ok_task()
        return data

    def cpu_ms_per_ok_task(self) -> dict[str, float]:
        """CPU milliseconds each process group spent per successful task (the cost that does not
        depend on how busy the machine was)."""
        ok = int(self.summary.get("ok", 0))
        spent: Mapping[str, float] = self.cpu.get("cpu_seconds", {})
        if not ok:
            return {}
        ours = {k: v for k, v in spent.items() if k != OTHERS}
        per_task = {k: round(1000 * v / ok, 2) for k, v in ours.items()}
        per_task["all of the above"] = round(1000 * sum(ours.values()) / ok, 2)
        return per_task


TITLES = {
    "budget": "budget: ReserveCall → CommitCall (2 budget processes)",
    "execute-live": "executor: ExecuteProposal, live, real orders at the simulator (2 executor processes)",
    "execute-paper": "executor: ExecuteProposal, paper, nothing sent (2 executor processes)",
}


def machine_table(machine: Mapping[str, Any], sizes: Mapping[str, Any]) -> Table:
    table = Table(title="machine", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("cores", str(machine.get("cores")))
    table.add_row("cpu", str(machine.get("cpu_model")))
    table.add_row("memory", f"{machine.get('memory_gib')} GiB")
    table.add_row("python", f"{machine.get('implementation')} {machine.get('python')}")
    table.add_row("load average at start", str(machine.get("load_average_at_start")))
    dirty = " (uncommitted changes)" if machine.get("git_dirty") else ""
    table.add_row("commit", f"{machine.get('git_commit')}{dirty}")
    table.add_row("client threads", str(sizes.get("threads")))
    return table


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:,.1f}"


def benchmark_table(benchmark: str, scenarios: Sequence[Scenario]) -> Table:
    """One table per benchmark: a row per scenario, then a row per timed part of its task."""
    table = Table(title=TITLES.get(benchmark, benchmark), title_justify="left", caption_justify="left")
    for name in ("scenario", "users", "ok / planned", "failed", "wall s", "per s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    table.add_column("max ms", justify="right")
    captions: list[str] = []
    for sc in scenarios:
        s = sc.summary
        lat = s["latency_ms"]
        failed = sum(s["failures"].values())
        label = f"{sc.name} · {sc.kind} · history {sc.history:,}"
        table.add_row(
            f"[bold]{label}[/] ({sc.unit})",
            str(sc.parameters.get("users", "")),
            f"{s['ok']} / {s['planned']}",
            f"[red]{failed}[/]" if failed else "0",
            f"{s['wall_seconds']:.2f}",
            f"[bold]{s['ok_per_second']:,.1f}[/]",
            _ms(lat.get("p50")),
            _ms(lat.get("p95")),
            _ms(lat.get("p99")),
            _ms(lat.get("max")),
        )
        for part, pl in s["parts_latency_ms"].items():
            table.add_row(
                f"  └ {part}",
                "",
                "",
                "",
                "",
                "",
                _ms(pl.get("p50")),
                _ms(pl.get("p95")),
                _ms(pl.get("p99")),
                _ms(pl.get("max")),
            )
        captions.append(_caption(sc))
    table.caption = "\n".join(captions)
    return table


def _caption(sc: Scenario) -> str:
    s = sc.summary
    lines = [f"[bold]{sc.name} · {sc.kind} · history {sc.history:,}[/]"]
    if s["failures"]:
        lines.append("  failures: " + ", ".join(f"{k} x{v}" for k, v in s["failures"].items()))
    if s.get("cut_by_deadline"):
        lines.append("  [yellow]stopped by its deadline before every planned task ran[/]")
    for check in sc.checks:
        mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
        lines.append(f"  {mark} {check.name}: expected {check.expected}, observed {check.observed}")
    cpu = sc.cpu
    if cpu:
        spent = ", ".join(f"{k} {v:.1f}" for k, v in cpu.get("cpu_seconds", {}).items())
        lines.append(
            f"  CPU over {cpu.get('wall_seconds')} s: machine {cpu.get('machine_busy_pct')}% busy; CPU s: {spent}"
        )
        per_task = ", ".join(f"{k} {v:.1f}" for k, v in sc.cpu_ms_per_ok_task().items())
        lines.append(f"  CPU ms per successful {sc.unit}: {per_task}")
    if s.get("p50_ms_first_quarter") is not None:
        lines.append(
            f"  p50 ms of the first / last quarter of the run: {s['p50_ms_first_quarter']} / {s['p50_ms_last_quarter']}"
        )
    for key, value in sc.extra.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def show(console: Console, machine: Mapping[str, Any], sizes: Mapping[str, Any], scenarios: Sequence[Scenario]) -> None:
    console.print(machine_table(machine, sizes))
    for benchmark in dict.fromkeys(sc.benchmark for sc in scenarios):
        console.print()
        console.print(benchmark_table(benchmark, [sc for sc in scenarios if sc.benchmark == benchmark]))


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
