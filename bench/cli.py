"""The command line: choose benchmarks and sizes, run them on freshly started parts, show the
tables, store the JSON, and stop everything whatever happens.

Exit codes: 0 every scenario ran and passed its checks; 1 a check failed or the run broke
(the JSON says which); 2 bad arguments; 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from bench.budget import run_budget
from bench.executor import run_executor, start_exchange
from bench.infra import Infra
from bench.machine import PROJECT_ROOT, describe
from bench.results import Scenario, show, write_json
from bench.sizes import FULL, QUICK, Sizes

BENCHMARKS = ("budget", "execute-live", "execute-paper")
DEFAULT_OUT = PROJECT_ROOT / "bench" / ".results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the hot paths on real parts.")
    parser.add_argument("--quick", action="store_true", help="fewer tasks and shorter deadlines (under a minute)")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only NAME (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--threads", type=int, help="client threads (default 16)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results-<time>.json and logs-<time>/")
    args = parser.parse_args(argv)
    if args.threads is not None and not 1 <= args.threads <= 256:
        parser.error("--threads must be between 1 and 256")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    sizes = QUICK if args.quick else FULL
    if args.threads:
        sizes = dataclasses.replace(sizes, threads=args.threads)
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    out = Console()
    if not out.is_terminal:  # a log file or a pipe: wide enough for the tables
        out = Console(width=160)
    progress = Console(stderr=True, highlight=False)
    started = time.monotonic()

    def say(text: str) -> None:
        progress.print(f"[dim]{time.monotonic() - started:6.1f}s  {text}[/]")

    stamp = time.strftime("%Y%m%dT%H%M%S")
    logs = args.out / f"logs-{stamp}"
    machine = describe()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    scenarios: list[Scenario] = []
    error = ""
    interrupted = False
    try:
        _run(logs, selected, sizes, into=scenarios, stop=stop, say=say)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        progress.print("[yellow]interrupted: every process this run started was stopped[/]")
    except Exception:
        error = traceback.format_exc()
        progress.print(f"[red]the benchmark broke:[/]\n{error}")
        progress.print(f"[red]service logs: {logs}[/]")
    say("done")

    document: dict[str, Any] = {
        "started": stamp,
        "argv": ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "quick": args.quick,
        "selected": selected,
        "machine": machine,
        "sizes": dataclasses.asdict(sizes),
        "scenarios": [sc.to_json() for sc in scenarios],
        "complete": not error and not interrupted and len(scenarios) == _expected(selected),
        "passed": bool(scenarios) and all(sc.passed for sc in scenarios) and not error,
        "error": error,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    if scenarios:
        show(out, machine, document["sizes"], scenarios)
    path = args.out / f"results-{stamp}.json"
    write_json(path, document)
    out.print(f"\nresults: {path}\nservice logs: {logs}\ntotal {document['total_seconds']} s")
    if interrupted:
        return 130
    if not document["passed"] or not document["complete"]:
        out.print("[red]FAILED: see the checks above and the JSON[/]")
        return 1
    return 0


def _run(
    logs: Path,
    selected: list[str],
    sizes: Sizes,
    *,
    into: list[Scenario],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """Start the parts the selected benchmarks need and run them, appending to ``into``."""
    with Infra(logs) as infra:
        say("embedded PostgreSQL in a temporary folder, migrations")
        infra.database()
        if "budget" in selected:
            run_budget(infra, sizes, into=into, stop=stop, say=say)
        modes = [m for m in ("live", "paper") if f"execute-{m}" in selected]
        if modes:
            say("Bitvavo simulator")
            exchange = start_exchange(infra)
            try:
                for mode in modes:
                    run_executor(infra, exchange, mode, sizes, into=into, stop=stop, say=say)
            finally:
                exchange.admin.close()
        say("stopping everything")


def _expected(selected: list[str]) -> int:
    """Scenarios a complete run produces: three for the budget, two per executor mode."""
    return sum(3 if b == "budget" else 2 for b in selected)
