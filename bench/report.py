"""The figures a run is judged by, and the two files it leaves for people: ``bench/results.json``
(everything, machine-readable) and ``BENCHMARKS.md`` (the tables, generated, never hand-edited).

* **service vs floor**: for every measurement that has a floor (``bench.floors``,
  ``bench.scanjobs``), throughput and p50/p99 of both and ``ratio = service / floor``;
* **history**: for every service figure measured at several history sizes, its throughput at
  each size and the ratio to its throughput at the smallest size;
* **side by side** (``bench.source_design``): per storm and side, requests, what should have been
  refused but was not (per run and in total), and throughput.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _key(sc: Mapping[str, Any]) -> tuple[str, str, int]:
    return (sc["benchmark"], sc["name"], int(sc.get("history", 0)))


def ratios(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Service vs floor, one row per measurement that has both."""
    floors = {_key(sc): sc for sc in scenarios if sc.get("kind") == "floor"}
    rows = []
    for sc in scenarios:
        if sc.get("kind", "service") != "service" or _key(sc) not in floors:
            continue
        fl = floors[_key(sc)]
        s, f = sc["summary"], fl["summary"]
        rows.append(
            {
                "benchmark": sc["benchmark"],
                "scenario": sc["name"],
                "history": int(sc.get("history", 0)),
                "service_per_s": s["ok_per_second"],
                "floor_per_s": f["ok_per_second"],
                "ratio": round(s["ok_per_second"] / f["ok_per_second"], 3) if f["ok_per_second"] else None,
                "service_p50_ms": s["latency_ms"].get("p50"),
                "service_p99_ms": s["latency_ms"].get("p99"),
                "floor_p50_ms": f["latency_ms"].get("p50"),
                "floor_p99_ms": f["latency_ms"].get("p99"),
            }
        )
    return rows


def history_scaling(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Throughput at each history size relative to the smallest, per (benchmark, scenario, kind)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for sc in scenarios:
        groups.setdefault((sc["benchmark"], sc["name"], sc.get("kind", "service")), []).append(sc)
    rows = []
    for (benchmark, name, kind), group in groups.items():
        if len({int(sc.get("history", 0)) for sc in group}) < 2:
            continue
        ordered = sorted(group, key=lambda sc: int(sc.get("history", 0)))
        base = ordered[0]["summary"]["ok_per_second"]
        for sc in ordered:
            per_s = sc["summary"]["ok_per_second"]
            rows.append(
                {
                    "benchmark": benchmark,
                    "scenario": name,
                    "kind": kind,
                    "history": int(sc.get("history", 0)),
                    "per_s": per_s,
                    "p50_ms": sc["summary"]["latency_ms"].get("p50"),
                    "p99_ms": sc["summary"]["latency_ms"].get("p99"),
                    "vs_smallest": round(per_s / base, 3) if base else None,
                }
            )
    return rows


def side_by_side(storms: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per storm and side: runs, requests, not refused per run and in total, requests/s."""
    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in storms:
        grouped.setdefault((r["storm"], r["side"]), []).append(r)
    rows = []
    for (storm, side), runs in grouped.items():
        seconds = sum(r["seconds"] for r in runs)
        requests = sum(r["requests"] for r in runs)
        rows.append(
            {
                "storm": storm,
                "side": side,
                "runs": len(runs),
                "requests": requests,
                "should_have_been_refused": runs[0]["should_have_been_refused"],
                "not_refused_per_run": [r["not_refused"] for r in runs],
                "not_refused": sum(r["not_refused"] for r in runs),
                "requests_per_second": round(requests / seconds, 1) if seconds else 0.0,
            }
        )
    return rows


# The targets of "speed that lasts" (16 clients, simulated exchange at 0 ms): (figure, how it is
# read from the run, the bound, whether the bound is a floor (>=) or a ceiling (<=)).
TARGETS: tuple[tuple[str, str, float, bool], ...] = (
    ("ExecuteProposal live / its floor", "ratio execute-live", 0.5, True),
    ("ExecuteProposal paper / its floor", "ratio execute-paper", 0.25, True),
    ("live throughput at the largest history / at 0", "history execute-live", 0.9, True),
    ("ExecuteProposal live p99 (ms, history 0)", "p99 execute-live", 100.0, False),
    ("Reserve+Commit / its floor", "ratio budget", 0.5, True),
    ("scan-job claims with fenced finish, 4 instances / floor", "ratio scan-claims 4", 0.3, True),
    ("overshoot, double claims, extra orders (ours)", "ours", 0.0, False),
)


def _target_value(how: str, figs: Mapping[str, Any]) -> float | None:
    """The measured value of one target (None when the run did not measure it)."""
    kind, _, rest = how.partition(" ")
    vs_floor = figs["service_vs_floor"]
    if kind == "ratio" and rest.startswith("scan-claims"):
        rows = [
            r for r in vs_floor if r["benchmark"] == "scan-claims" and r["scenario"].startswith(rest.split()[1] + " ")
        ]
        return float(rows[0]["ratio"]) if rows and rows[0]["ratio"] is not None else None
    if kind in ("ratio", "p99"):
        rows = [r for r in vs_floor if r["benchmark"] == rest and r["scenario"] == "many-users"]
        rows.sort(key=lambda r: r["history"])
        if not rows:
            return None
        value = rows[0]["ratio"] if kind == "ratio" else rows[0]["service_p99_ms"]
        return None if value is None else float(value)
    if kind == "history":
        rows = [
            r
            for r in figs["history"]
            if r["benchmark"] == rest and r["scenario"] == "many-users" and r["kind"] == "service"
        ]
        return float(max(rows, key=lambda r: r["history"])["vs_smallest"]) if len(rows) > 1 else None
    ours = [r for r in figs["side_by_side"] if r["side"] == "ours"]
    return float(sum(r["not_refused"] for r in ours)) if ours else None


def targets(figs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether the run met it."""
    rows = []
    for name, how, bound, at_least in TARGETS:
        value = _target_value(how, figs)
        met = None if value is None else (value >= bound if at_least else value <= bound)
        rows.append({"target": name, "bound": f"{'>=' if at_least else '<='} {bound:g}", "measured": value, "met": met})
    return rows


def figures(document: Mapping[str, Any]) -> dict[str, Any]:
    scenarios = document.get("scenarios", [])
    figs: dict[str, Any] = {
        "service_vs_floor": ratios(scenarios),
        "history": history_scaling(scenarios),
        "side_by_side": side_by_side(document.get("storms", [])),
    }
    figs["targets"] = targets(figs)
    return figs


def show_figures(console: Console, figs: Mapping[str, Any]) -> None:
    table = Table(title="service vs floor (ratio = service / floor)", title_justify="left")
    for col in ("benchmark", "scenario", "history", "service /s", "floor /s", "ratio", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col in ("benchmark", "scenario") else "right")
    for r in figs["service_vs_floor"]:
        table.add_row(
            r["benchmark"],
            r["scenario"],
            f"{r['history']:,}",
            f"{r['service_per_s']:,.1f}",
            f"{r['floor_per_s']:,.1f}",
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
            str(r["service_p50_ms"]),
            str(r["service_p99_ms"]),
        )
    console.print(table)
    table = Table(title="side by side with the source design", title_justify="left")
    for col in ("storm", "side", "runs", "requests", "should have been refused", "not refused (per run)", "req/s"):
        table.add_column(col)
    for r in figs["side_by_side"]:
        table.add_row(
            r["storm"],
            r["side"],
            str(r["runs"]),
            str(r["requests"]),
            r["should_have_been_refused"],
            f"{r['not_refused']} ({', '.join(map(str, r['not_refused_per_run']))})",
            f"{r['requests_per_second']:,.1f}",
        )
    console.print(table)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


PROFILE = Path(__file__).with_name("profile.md")


def _profile_section() -> list[str]:
    """bench/profile.md (what a profile of the hot path found), when it exists."""
    if not PROFILE.exists():
        return []
    return ["## Where the time goes (profile)", "", PROFILE.read_text(encoding="utf-8").strip(), ""]


def markdown(document: Mapping[str, Any], figs: Mapping[str, Any], *, note: str = "") -> str:
    """BENCHMARKS.md: what ran where, then the figures."""
    m = document["machine"]
    out = ["# Benchmarks", ""]
    out += [
        "Generated by `python -m bench` (bench/report.py) — do not edit by hand. How it measures: bench/README.md.",
        "",
    ]
    if note:
        out += [note, ""]
    out += [
        "## Run",
        "",
        _md_table(
            ("", ""),
            [
                ("date", document.get("date_utc", document["started"])),
                ("command", " ".join(document["argv"])),
                ("commit", f"{m.get('git_commit')}{' (uncommitted changes)' if m.get('git_dirty') else ''}"),
                ("machine", f"{m.get('cores')} cores, {m.get('cpu_model')}, {m.get('memory_gib')} GiB"),
                ("load average at start", m.get("load_average_at_start")),
                ("platform", m.get("platform")),
                ("python", f"{m.get('implementation')} {m.get('python')}"),
                ("versions", ", ".join(f"{k} {v}" for k, v in document.get("versions", {}).items())),
                ("client threads", document["sizes"]["threads"]),
                ("history sizes", ", ".join(f"{h:,}" for h in document["sizes"]["history"])),
                ("parameters", ", ".join(f"{k} {v}" for k, v in document["sizes"].items() if k != "history")),
                ("all checks passed", document["passed"]),
                ("total seconds", document["total_seconds"]),
            ],
        ),
        "",
        "## Service vs floor",
        "",
        "The floor is the same work with no gRPC and no service code (bench/floors.py, bench/scanjobs.py),"
        " measured in the same run with the same threads and tasks; ratio = service / floor.",
        "",
        _md_table(
            (
                "benchmark",
                "scenario",
                "history",
                "service /s",
                "floor /s",
                "ratio",
                "service p50 ms",
                "service p99 ms",
                "floor p50 ms",
                "floor p99 ms",
            ),
            [
                (
                    r["benchmark"],
                    r["scenario"],
                    f"{r['history']:,}",
                    r["service_per_s"],
                    r["floor_per_s"],
                    r["ratio"],
                    r["service_p50_ms"],
                    r["service_p99_ms"],
                    r["floor_p50_ms"],
                    r["floor_p99_ms"],
                )
                for r in figs["service_vs_floor"]
            ],
        ),
        "",
        "## Throughput as history grows",
        "",
        _md_table(
            ("benchmark", "scenario", "kind", "history", "per s", "p50 ms", "p99 ms", "vs smallest history"),
            [
                (
                    r["benchmark"],
                    r["scenario"],
                    r["kind"],
                    f"{r['history']:,}",
                    r["per_s"],
                    r["p50_ms"],
                    r["p99_ms"],
                    r["vs_smallest"],
                )
                for r in figs["history"]
            ],
        ),
        "",
        "## Side by side with the source design",
        "",
        'Same storms, same database, same run (bench/source_design.py). "Not refused" counts what the'
        " rule should have refused: ours must be 0.",
        "",
        _md_table(
            ("storm", "side", "runs", "requests", "should have been refused", "not refused (per run)", "requests/s"),
            [
                (
                    r["storm"],
                    r["side"],
                    r["runs"],
                    r["requests"],
                    r["should_have_been_refused"],
                    f"{r['not_refused']} ({', '.join(map(str, r['not_refused_per_run']))})",
                    r["requests_per_second"],
                )
                for r in figs["side_by_side"]
            ],
        ),
        "",
        "## Targets",
        "",
        'The targets of issue 15 ("speed that lasts"), read from the figures above (live and paper at the'
        " smallest history, the history ratio at the largest); where one is missed, the profile below says"
        " where the time goes.",
        "",
        _md_table(
            ("target", "bound", "measured", "met"),
            [
                (
                    t["target"],
                    t["bound"],
                    "-" if t["measured"] is None else round(t["measured"], 3),
                    "-" if t["met"] is None else ("yes" if t["met"] else "**no**"),
                )
                for t in figs.get("targets", [])
            ],
        ),
        "",
        *_profile_section(),
        "## Every scenario",
        "",
        _md_table(
            ("benchmark", "scenario", "kind", "history", "ok / planned", "per s", "p50 ms", "p99 ms", "checks"),
            [
                (
                    sc["benchmark"],
                    sc["name"],
                    sc.get("kind", "service"),
                    f"{int(sc.get('history', 0)):,}",
                    f"{sc['summary']['ok']} / {sc['summary']['planned']}",
                    sc["summary"]["ok_per_second"],
                    sc["summary"]["latency_ms"].get("p50"),
                    sc["summary"]["latency_ms"].get("p99"),
                    "pass" if sc["passed"] else "FAIL",
                )
                for sc in document.get("scenarios", [])
            ],
        ),
        "",
    ]
    return "\n".join(out)
