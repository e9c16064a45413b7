"""The benchmark's figures from rounds (bench/report.py): the figure of a scenario is the median of
its rounds' throughputs, service vs floor is the median of the per-round ratios of each pair of
rounds run back to back, the history ratio is median over median, and every figure carries the
min–max of its rounds into BENCHMARKS.md.

No database, no services: the scenarios are built the way a run builds them (``bench.load.Run``
rounds of timed samples, ``bench.results.Scenario.to_json``) with throughputs chosen so the
expected figures are known, and go through the real report functions.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import Run, Sample, merge
from bench.machine import merge_cpu
from bench.report import figures, markdown, paired_ratios, postgres_per_task, round_rates, spread
from bench.results import Scenario

TASKS_PER_ROUND = 12


def _round(per_second: float) -> Run:
    """A round of TASKS_PER_ROUND successful tasks whose wall time gives ``per_second``."""
    samples = [Sample(0.01 * (k + 1), "ok", {}) for k in range(TASKS_PER_ROUND)]
    return Run(4, TASKS_PER_ROUND, TASKS_PER_ROUND / per_second, samples, False, False)


def _scenario(
    benchmark: str, kind: str, history: int, rates: list[float], *, name: str = "many-users"
) -> dict[str, Any]:
    runs = [_round(r) for r in rates]
    pooled = merge(runs, planned=TASKS_PER_ROUND * len(runs), threads=4)
    return Scenario(
        benchmark=benchmark,
        name=name,
        unit="task",
        parameters={},
        summary=pooled.summary(),
        checks=[],
        cpu={},
        history=history,
        kind=kind,
        rounds=[r.brief() for r in runs],
    ).to_json()


def _document(scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "started": "20261130T000000",
        "argv": ["python", "-m", "bench"],
        "machine": {"cores": 2},
        "versions": {},
        "sizes": {"threads": 4, "history": sorted({sc["history"] for sc in scenarios})},
        "passed": True,
        "total_seconds": 1.0,
        "scenarios": scenarios,
        "storms": [],
    }


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    [row] = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return row


def test_a_scenarios_figure_is_the_median_of_its_rounds_with_their_range() -> None:
    service = _scenario("execute-live", "service", 0, [50.0, 100.0, 60.0])
    assert round_rates(service) == [50.0, 100.0, 60.0]
    # the pooled rate (all tasks over all wall time) is dragged by the fast round; the median is not
    assert service["summary"]["ok_per_second"] == pytest.approx(36 / (12 / 50 + 12 / 100 + 12 / 60), abs=0.01)
    assert spread(round_rates(service)) == {"median": 60.0, "min": 50.0, "max": 100.0}


def test_one_stalled_round_moves_the_median_by_one_rank_at_most() -> None:
    steady = _scenario("budget", "service", 0, [300.0, 310.0, 305.0, 295.0, 302.0])
    stalled = _scenario("budget", "service", 0, [300.0, 310.0, 80.0, 295.0, 302.0])
    assert spread(round_rates(steady))["median"] == 302.0
    assert spread(round_rates(stalled)) == {"median": 300.0, "min": 80.0, "max": 310.0}
    # pooled over the wall time, the one stalled round would have cost the figure a quarter
    assert stalled["summary"]["ok_per_second"] < 0.8 * steady["summary"]["ok_per_second"]


def test_service_vs_floor_is_the_median_of_the_paired_round_ratios() -> None:
    # a slow moment of the machine hits the second pair on both sides: pairing cancels it, the
    # ratio of the medians (45 / 90) does not
    service = _scenario("execute-live", "service", 0, [60.0, 30.0, 45.0])
    floor = _scenario("execute-live", "floor", 0, [100.0, 50.0, 90.0])
    assert paired_ratios(service, floor) == pytest.approx([0.6, 0.6, 0.5])
    row = _row(figures(_document([service, floor]))["service_vs_floor"], benchmark="execute-live")
    assert (row["ratio"], row["ratio_min"], row["ratio_max"]) == (0.6, 0.5, 0.6)
    assert row["ratio_of_medians"] == 0.5
    assert (row["service_per_s"], row["service_per_s_min"], row["service_per_s_max"]) == (45.0, 30.0, 60.0)
    assert (row["floor_per_s"], row["floor_per_s_min"], row["floor_per_s_max"]) == (90.0, 50.0, 100.0)
    assert row["rounds"] == 3


def test_without_pairs_the_ratio_is_median_over_median() -> None:
    service = _scenario("budget", "service", 0, [30.0, 40.0, 50.0])
    floor = _scenario("budget", "floor", 0, [100.0])
    assert paired_ratios(service, floor) == [0.4]


def test_a_run_recorded_before_rounds_reads_as_one_round() -> None:
    service = _scenario("execute-paper", "service", 0, [70.0])
    floor = _scenario("execute-paper", "floor", 0, [140.0])
    for sc in (service, floor):
        del sc["rounds"]
    assert round_rates(service) == [70.0]
    row = _row(figures(_document([service, floor]))["service_vs_floor"], benchmark="execute-paper")
    assert (row["ratio"], row["ratio_min"], row["ratio_max"]) == (0.5, 0.5, 0.5)


def _history_run() -> dict[str, Any]:
    return _document(
        [
            _scenario("execute-live", "service", 0, [60.0, 50.0, 70.0]),
            _scenario("execute-live", "floor", 0, [120.0, 100.0, 140.0]),
            _scenario("execute-live", "service", 1_000_000, [54.0, 45.0, 63.0]),
            _scenario("execute-live", "floor", 1_000_000, [84.0, 70.0, 98.0]),
        ]
    )


def test_the_history_ratio_is_median_over_median_with_the_widest_range_the_rounds_allow() -> None:
    figs = figures(_history_run())
    largest = _row(figs["history"], kind="service", history=1_000_000)
    assert largest["vs_smallest"] == 0.9  # 54 / 60
    assert largest["vs_smallest_min"] == round(45 / 70, 3)
    assert largest["vs_smallest_max"] == round(63 / 50, 3)
    assert _row(figs["history"], kind="floor", history=1_000_000)["vs_smallest"] == 0.7  # 84 / 120
    [target] = [t for t in figs["targets"] if t["target"].startswith("live throughput at the largest history")]
    assert target["measured"] == 0.9
    assert target["met"] is True
    assert "0.64–1.26" in target["over_rounds"]
    assert "the floor's own: 0.70" in target["over_rounds"]


def test_the_targets_read_the_medians_and_show_the_rounds_spread() -> None:
    figs = figures(
        _document(
            [
                _scenario("execute-live", "service", 0, [60.0, 30.0, 45.0]),
                _scenario("execute-live", "floor", 0, [100.0, 50.0, 90.0]),
            ]
        )
    )
    [target] = [t for t in figs["targets"] if t["target"] == "ExecuteProposal live / its floor"]
    assert (target["measured"], target["met"]) == (0.6, True)
    assert target["over_rounds"] == "0.50–0.60 over 3 rounds"


def test_benchmarks_md_shows_each_median_with_its_range_and_the_floor_beside_the_service() -> None:
    document = _history_run()
    text = markdown(document, figures(document))
    assert "| execute-live | many-users | 0 | 3 | 60.0 (50.0–70.0) | 120.0 (100.0–140.0) | 0.50 |" in text
    # history: one row per size, the service and the floor each with its ratio to the smallest size
    # (the paired ratios at 1 000 000 agree to two digits, so no range is shown for them)
    assert (
        "| execute-live | many-users | 1,000,000 | 54.0 (45.0–63.0) | 0.90 (0.64–1.26) |"
        " 84.0 (70.0–98.0) | 0.70 (0.50–0.98) | 0.64 |"
    ) in text
    assert "| 60.0, 50.0, 70.0 |" in text  # every round of every scenario, in "Every scenario"


def test_rounds_pool_into_the_summary_and_their_cpu_adds_up() -> None:
    runs = [_round(60.0), _round(30.0)]
    pooled = merge(runs, planned=24, threads=4)
    assert pooled.summary()["ok"] == 24
    assert pooled.wall_seconds == pytest.approx(12 / 60 + 12 / 30)
    assert [r.brief()["ok_per_second"] for r in runs] == [60.0, 30.0]
    cpu = merge_cpu(
        [
            {"wall_seconds": 1.0, "machine_busy_pct": 50.0, "cpu_seconds": {"postgres": 0.5}},
            {"wall_seconds": 3.0, "machine_busy_pct": 90.0, "cpu_seconds": {"postgres": 1.25, "bench client": 0.1}},
        ]
    )
    assert cpu == {
        "wall_seconds": 4.0,
        "machine_busy_pct": 80.0,
        "cpu_seconds": {"postgres": 1.75, "bench client": 0.1},
    }


def test_postgres_per_task_sets_service_and_floor_side_by_side_at_each_size() -> None:
    """PostgreSQL's CPU per task comes from the run's CPU probe (seconds over successful tasks)
    and the WAL from the scenario's extra figure; a scenario measured at one size only is left out."""
    scenarios = []
    for history, (service_pg, floor_pg) in {0: (0.12, 0.06), 1_000: (0.24, 0.12)}.items():
        for kind, pg in (("service", service_pg), ("floor", floor_pg)):
            sc = _scenario("execute-live", kind, history, [10.0])
            sc["cpu"] = {"cpu_seconds": {"postgres": pg}}
            sc["cpu_ms_per_ok_task"] = {"postgres": round(1000 * pg / TASKS_PER_ROUND, 2)}
            sc["extra"] = {"WAL kB per execution": 3.5 if kind == "service" else 2.5}
            scenarios.append(sc)
    scenarios.append(_scenario("budget", "service", 0, [10.0]))  # one size: no row
    assert postgres_per_task(scenarios) == [
        ("execute-live", "many-users", "0", 10.0, 3.5, 5.0, 2.5),
        ("execute-live", "many-users", "1,000", 20.0, 3.5, 10.0, 2.5),
    ]
    assert "| execute-live | many-users | 1,000 | 20.0 | 3.5 | 10.0 | 2.5 |" in markdown(
        _document(scenarios), figures(_document(scenarios))
    )
