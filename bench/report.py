"""The figures a run is judged by, and the two files it leaves for people: ``bench/results.json``
(everything, machine-readable) and ``BENCHMARKS.md`` (the tables, generated, never hand-edited).

Every throughput is the **median over the scenario's rounds** with their min–max (the loaded
scenarios run in rounds alternating with their floors: bench/README.md, "Rounds and medians");
p50/p99 are pooled over every task of every round.

* **service vs floor**: for every measurement that has a floor (``bench.floors``,
  ``bench.scanjobs``), throughput and p50/p99 of both and ``ratio = service / floor``, the median
  of the per-round ratios of each service round and the floor round run right after it;
* **history**: for every figure measured at several history sizes (service and floor), its
  throughput at each size and the ratio of its median to the median at the smallest size;
* **side by side** (``bench.source_design``): per storm and side, requests, what should have been
  refused but was not (per run and in total), and throughput.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _key(sc: Mapping[str, Any]) -> tuple[str, str, int]:
    return (sc["benchmark"], sc["name"], int(sc.get("history", 0)))


def round_rates(sc: Mapping[str, Any]) -> list[float]:
    """Throughput of each round of a scenario, in the order run; a scenario without rounds (or
    from a run before rounds were recorded) counts as one round of its pooled figure."""
    rounds = sc.get("rounds") or []
    return [float(r["ok_per_second"]) for r in rounds] or [float(sc["summary"]["ok_per_second"])]


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of per-round values (the median is the figure; min–max shows the noise)."""
    if not values:
        raise ValueError("no rounds to summarize")
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def paired_ratios(service: Mapping[str, Any], floor: Mapping[str, Any]) -> list[float]:
    """service / floor for each pair of rounds (service round i and the floor round run right
    after it, bench/README.md "Rounds and medians"). Without as many rounds on both sides there
    are no pairs: the one ratio is then median / median."""
    s, f = round_rates(service), round_rates(floor)
    if len(s) == len(f):
        return [a / b for a, b in zip(s, f, strict=True) if b > 0]
    median_floor = statistics.median(f)
    return [statistics.median(s) / median_floor] if median_floor > 0 else []


def ratios(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Service vs floor, one row per measurement that has both: each side's median throughput over
    its rounds with their min and max, and ``ratio``, the median of the paired per-round ratios
    (with their min and max); p50/p99 pooled over every task of every round."""
    floors = {_key(sc): sc for sc in scenarios if sc.get("kind") == "floor"}
    rows = []
    for sc in scenarios:
        if sc.get("kind", "service") != "service" or _key(sc) not in floors:
            continue
        fl = floors[_key(sc)]
        s, f = sc["summary"], fl["summary"]
        service, floor = spread(round_rates(sc)), spread(round_rates(fl))
        paired = paired_ratios(sc, fl)
        ratio = spread(paired) if paired else None
        p99s = [float(r["p99_ms"]) for r in sc.get("rounds") or [] if r.get("p99_ms") is not None]
        rows.append(
            {
                "benchmark": sc["benchmark"],
                "scenario": sc["name"],
                "history": int(sc.get("history", 0)),
                "rounds": len(round_rates(sc)),
                "service_per_s": round(service["median"], 2),
                "service_per_s_min": round(service["min"], 2),
                "service_per_s_max": round(service["max"], 2),
                "floor_per_s": round(floor["median"], 2),
                "floor_per_s_min": round(floor["min"], 2),
                "floor_per_s_max": round(floor["max"], 2),
                "ratio": None if ratio is None else round(ratio["median"], 3),
                "ratio_min": None if ratio is None else round(ratio["min"], 3),
                "ratio_max": None if ratio is None else round(ratio["max"], 3),
                "ratio_of_medians": round(service["median"] / floor["median"], 3) if floor["median"] else None,
                "service_p50_ms": s["latency_ms"].get("p50"),
                "service_p99_ms": s["latency_ms"].get("p99"),
                "service_p99_ms_min": min(p99s) if p99s else None,
                "service_p99_ms_max": max(p99s) if p99s else None,
                "floor_p50_ms": f["latency_ms"].get("p50"),
                "floor_p99_ms": f["latency_ms"].get("p99"),
            }
        )
    return rows


def history_scaling(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Throughput at each history size relative to the smallest, per (benchmark, scenario, kind):
    ``vs_smallest`` = median / median at the smallest size; ``vs_smallest_min`` and ``_max`` are
    the widest the rounds allow (slowest round here / fastest there, and the other way round)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for sc in scenarios:
        groups.setdefault((sc["benchmark"], sc["name"], sc.get("kind", "service")), []).append(sc)
    rows = []
    for (benchmark, name, kind), group in groups.items():
        if len({int(sc.get("history", 0)) for sc in group}) < 2:
            continue
        ordered = sorted(group, key=lambda sc: int(sc.get("history", 0)))
        base = spread(round_rates(ordered[0]))
        for sc in ordered:
            here = spread(round_rates(sc))
            rows.append(
                {
                    "benchmark": benchmark,
                    "scenario": name,
                    "kind": kind,
                    "history": int(sc.get("history", 0)),
                    "rounds": len(round_rates(sc)),
                    "per_s": round(here["median"], 2),
                    "per_s_min": round(here["min"], 2),
                    "per_s_max": round(here["max"], 2),
                    "p50_ms": sc["summary"]["latency_ms"].get("p50"),
                    "p99_ms": sc["summary"]["latency_ms"].get("p99"),
                    "vs_smallest": round(here["median"] / base["median"], 3) if base["median"] else None,
                    "vs_smallest_min": round(here["min"] / base["max"], 3) if base["max"] else None,
                    "vs_smallest_max": round(here["max"] / base["min"], 3) if base["min"] else None,
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


def _range(low: float | None, high: float | None, digits: int = 2) -> str:
    return "" if low is None or high is None else f"{low:.{digits}f}–{high:.{digits}f}"


def _target_value(how: str, figs: Mapping[str, Any]) -> tuple[float | None, str]:
    """The measured value of one target (None when the run did not measure it) and what the
    rounds say about it: the range of the per-round values, and for the history ratio the
    floor's own ratio (a service ratio that follows the floor's is the machine or PostgreSQL)."""
    kind, _, rest = how.partition(" ")
    vs_floor = figs["service_vs_floor"]
    if kind == "ratio" and rest.startswith("scan-claims"):
        rows = [
            r for r in vs_floor if r["benchmark"] == "scan-claims" and r["scenario"].startswith(rest.split()[1] + " ")
        ]
        return (float(rows[0]["ratio"]) if rows and rows[0]["ratio"] is not None else None), ""
    if kind in ("ratio", "p99"):
        rows = [r for r in vs_floor if r["benchmark"] == rest and r["scenario"] == "many-users"]
        rows.sort(key=lambda r: r["history"])
        if not rows:
            return None, ""
        row = rows[0]
        if kind == "ratio":
            value, low, high, digits = row["ratio"], row.get("ratio_min"), row.get("ratio_max"), 2
        else:
            value, low, high, digits = (
                row["service_p99_ms"],
                row.get("service_p99_ms_min"),
                row.get("service_p99_ms_max"),
                0,
            )
        rounds = int(row.get("rounds", 1))
        note = f"{_range(low, high, digits)} over {rounds} rounds" if rounds > 1 else ""
        return (None if value is None else float(value)), note
    if kind == "history":
        rows = [r for r in figs["history"] if r["benchmark"] == rest and r["scenario"] == "many-users"]
        service = [r for r in rows if r["kind"] == "service"]
        if len(service) < 2:
            return None, ""
        largest = max(service, key=lambda r: r["history"])
        floor = [r for r in rows if r["kind"] == "floor" and r["history"] == largest["history"]]
        notes = []
        if int(largest.get("rounds", 1)) > 1:
            notes.append(f"{_range(largest.get('vs_smallest_min'), largest.get('vs_smallest_max'))} from the rounds")
        if floor and floor[0]["vs_smallest"] is not None:
            notes.append(f"the floor's own: {floor[0]['vs_smallest']:.2f}")
        return float(largest["vs_smallest"]), "; ".join(notes)
    ours = [r for r in figs["side_by_side"] if r["side"] == "ours"]
    return (float(sum(r["not_refused"] for r in ours)) if ours else None), ""


def targets(figs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value, whether the run met it, and what the rounds say."""
    rows = []
    for name, how, bound, at_least in TARGETS:
        value, over_rounds = _target_value(how, figs)
        met = None if value is None else (value >= bound if at_least else value <= bound)
        rows.append(
            {
                "target": name,
                "bound": f"{'>=' if at_least else '<='} {bound:g}",
                "measured": value,
                "met": met,
                "over_rounds": over_rounds,
            }
        )
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


def with_range(median: float | None, low: float | None, high: float | None, digits: int = 1) -> str:
    """``61.9 (55.2–64.0)``: a median with the min–max of its rounds (just the median when the
    rounds agree or there was one)."""
    if median is None:
        return "-"
    text = f"{median:,.{digits}f}"
    if low is None or high is None or f"{low:,.{digits}f}" == f"{high:,.{digits}f}":
        return text
    return f"{text} ({low:,.{digits}f}–{high:,.{digits}f})"


def show_figures(console: Console, figs: Mapping[str, Any]) -> None:
    table = Table(
        title="service vs floor: medians over the rounds (min–max); ratio = median of paired service / floor",
        title_justify="left",
    )
    for col in ("benchmark", "scenario", "history", "rounds", "service /s", "floor /s", "ratio", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col in ("benchmark", "scenario") else "right")
    for r in figs["service_vs_floor"]:
        table.add_row(
            r["benchmark"],
            r["scenario"],
            f"{r['history']:,}",
            str(r.get("rounds", 1)),
            with_range(r["service_per_s"], r.get("service_per_s_min"), r.get("service_per_s_max")),
            with_range(r["floor_per_s"], r.get("floor_per_s_min"), r.get("floor_per_s_max")),
            with_range(r["ratio"], r.get("ratio_min"), r.get("ratio_max"), 2),
            str(r["service_p50_ms"]),
            str(r["service_p99_ms"]),
        )
    console.print(table)
    table = Table(title="throughput as history grows (medians; vs the smallest history)", title_justify="left")
    for col in (*HISTORY_COLUMNS, "service / floor"):
        table.add_column(col, justify="left" if col in ("benchmark", "scenario") else "right")
    for row in _history_pairs(figs):
        table.add_row(*(str(c) for c in row))
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


HISTORY_COLUMNS = (
    "benchmark",
    "scenario",
    "history",
    "service /s",
    "service vs smallest",
    "floor /s",
    "floor vs smallest",
)


def _history_pairs(figs: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The history figures, service and floor side by side: one row per (benchmark, scenario,
    history) with each side's median (min–max) and its ratio to the smallest history, and the
    service / floor ratio at that size."""
    by_key: dict[tuple[str, str, int], dict[str, Mapping[str, Any]]] = {}
    for r in figs["history"]:
        by_key.setdefault((r["benchmark"], r["scenario"], r["history"]), {})[r["kind"]] = r
    vs_floor = {(r["benchmark"], r["scenario"], r["history"]): r for r in figs["service_vs_floor"]}
    rows = []
    for key, sides in by_key.items():
        cells: list[Any] = [key[0], key[1], f"{key[2]:,}"]
        for kind in ("service", "floor"):
            r = sides.get(kind)
            if r is None:
                cells += ["-", "-"]
                continue
            cells.append(with_range(r["per_s"], r.get("per_s_min"), r.get("per_s_max")))
            cells.append(with_range(r["vs_smallest"], r.get("vs_smallest_min"), r.get("vs_smallest_max"), 2))
        pair = vs_floor.get(key)
        cells.append(
            "-" if pair is None else with_range(pair["ratio"], pair.get("ratio_min"), pair.get("ratio_max"), 2)
        )
        rows.append(tuple(cells))
    return rows


def postgres_per_task(scenarios: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """PostgreSQL's CPU and write-ahead log per successful task of each loaded scenario measured at
    more than one history size, service and floor side by side: what the database itself costs as
    its tables grow, whoever issues the statements."""
    rows: dict[tuple[str, str, int], dict[str, Mapping[str, Any]]] = {}
    for sc in scenarios:
        rows.setdefault((sc["benchmark"], sc["name"], int(sc.get("history", 0))), {})[sc.get("kind", "service")] = sc
    sizes: dict[tuple[str, str], set[int]] = {}
    for benchmark, name, history in rows:
        sizes.setdefault((benchmark, name), set()).add(history)
    out = []
    for (benchmark, name, history), sides in sorted(rows.items()):
        if len(sizes[(benchmark, name)]) < 2:
            continue
        cells: list[Any] = [benchmark, name, f"{history:,}"]
        for kind in ("service", "floor"):
            side: Mapping[str, Any] = sides.get(kind) or {}
            cpu = side.get("cpu_ms_per_ok_task", {}).get("postgres")
            wal = side.get("extra", {}).get("WAL kB per execution")
            cells += ["-" if cpu is None else round(cpu, 1), "-" if wal is None else wal]
        out.append(tuple(cells))
    return out


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
        " measured in the same run with the same threads and tasks. The loaded scenarios run in short rounds,"
        " service and floor alternating (service, floor, service, floor, …): throughput is the median over the"
        " rounds, with their min–max in brackets; ratio = the median of the per-round ratios service / floor of"
        " each pair of rounds run back to back (min–max in brackets); p50 and p99 are over every task of every"
        ' round. Scan-job claims run once per instance count (bench/README.md, "Rounds and medians").',
        "",
        _md_table(
            (
                "benchmark",
                "scenario",
                "history",
                "rounds",
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
                    r.get("rounds", 1),
                    with_range(r["service_per_s"], r.get("service_per_s_min"), r.get("service_per_s_max")),
                    with_range(r["floor_per_s"], r.get("floor_per_s_min"), r.get("floor_per_s_max")),
                    with_range(r["ratio"], r.get("ratio_min"), r.get("ratio_max"), 2),
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
        "Medians over the rounds (min–max in brackets) at each history size, and each median relative to the"
        " median at the smallest size (in brackets: the widest range the rounds allow, slowest round here over"
        " the fastest there and the other way round). The floor's own ratio stands next to the service's: where"
        " they fall together, the cost is the machine's or PostgreSQL's, not the service code's. The last column"
        " is the service / floor ratio at that size (as in the table above).",
        "",
        _md_table((*HISTORY_COLUMNS, "service / floor"), _history_pairs(figs)),
        "",
        "PostgreSQL's own cost per successful task at each size (CPU of the postmaster and its"
        " backends, exited ones included; the write-ahead log written during the rounds), for the service"
        " and for its floor, which issues the same statements:",
        "",
        _md_table(
            (
                "benchmark",
                "scenario",
                "history",
                "service: postgres CPU ms",
                "service: WAL kB",
                "floor: postgres CPU ms",
                "floor: WAL kB",
            ),
            postgres_per_task(document.get("scenarios", [])),
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
        " smallest history, the history ratio at the largest, all from the medians over the rounds); the last"
        " column shows how far the rounds spread. Where one is missed, the profile below says where the time goes.",
        "",
        _md_table(
            ("target", "bound", "measured", "met", "over the rounds"),
            [
                (
                    t["target"],
                    t["bound"],
                    "-" if t["measured"] is None else round(t["measured"], 3),
                    "-" if t["met"] is None else ("yes" if t["met"] else "**no**"),
                    t.get("over_rounds") or "-",
                )
                for t in figs.get("targets", [])
            ],
        ),
        "",
        *_profile_section(),
        "## Every scenario",
        "",
        _md_table(
            (
                "benchmark",
                "scenario",
                "kind",
                "history",
                "ok / planned",
                "per s (pooled)",
                "per s, each round",
                "p50 ms",
                "p99 ms",
                "checks",
            ),
            [
                (
                    sc["benchmark"],
                    sc["name"],
                    sc.get("kind", "service"),
                    f"{int(sc.get('history', 0)):,}",
                    f"{sc['summary']['ok']} / {sc['summary']['planned']}",
                    sc["summary"]["ok_per_second"],
                    ", ".join(f"{r:.1f}" for r in round_rates(sc)),
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
