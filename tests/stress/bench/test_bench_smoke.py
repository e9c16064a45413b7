"""The benchmark in its smallest configuration (``python -m bench --smoke``): it runs to the end on
real parts and its correctness columns say what they must. Nothing here is timed: speed is the
benchmark's business, correctness is the test's.

* every scenario's checks passed (every success accounted for at the database and the exchange,
  no job finished twice, nothing left reserved or leased), service and floor alike;
* the loaded scenarios ran in rounds alternating with their floors', and their figures are the
  medians of those rounds;
* side by side with the source design: ours let nothing through that should have been refused,
  in every storm and every run; the source design's job claim (2-minute TTL, cleanup, unfenced
  finish) wrote a stalled run a second time, as its design predicts, in every run. (The budget and
  executor storms of the source design race on timing, so their overshoot is reported by the
  benchmark, not asserted here.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.machine import PROJECT_ROOT

# the whole smoke run happens in the first test's fixture: a few minutes on a loaded machine
pytestmark = [pytest.mark.stress, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    [path] = out.glob("results-*.json")
    document: dict[str, Any] = json.loads(Path(path).read_text())
    document["_stdout"] = done.stdout[-4000:] + done.stderr[-4000:]
    document["_returncode"] = done.returncode
    return document


def test_the_smoke_run_completes_and_every_check_passes(results: dict[str, Any]) -> None:
    assert results["error"] == "", results["_stdout"]
    assert results["complete"], results["_stdout"]
    failed = [
        (sc["benchmark"], sc["name"], sc["kind"], c)
        for sc in results["scenarios"]
        for c in sc["checks"]
        if not c["passed"]
    ]
    assert failed == []
    assert results["_returncode"] == 0, results["_stdout"]


def test_every_measurement_has_its_floor(results: dict[str, Any]) -> None:
    ratios = results["figures"]["service_vs_floor"]
    measured = {(r["benchmark"], r["history"]) for r in ratios}
    for history in results["sizes"]["history"]:
        for benchmark in ("budget", "execute-live", "execute-paper"):
            assert (benchmark, history) in measured
    assert {r["scenario"] for r in ratios if r["benchmark"] == "scan-claims"} == {
        f"{n} instance(s)" for n in results["sizes"]["scan_instances"]
    }
    assert all(r["ratio"] is not None and r["ratio"] > 0 for r in ratios)


def test_loaded_scenarios_alternate_with_their_floors_round_by_round(results: dict[str, Any]) -> None:
    """service round 1, floor round 1, service round 2, ... at every size, and the figures are the
    medians of those rounds (bench/README.md, "Rounds and medians")."""
    rounds = results["sizes"]["rounds"]
    assert rounds >= 2
    loaded = {
        (sc["benchmark"], sc["history"], sc["kind"]): sc
        for sc in results["scenarios"]
        if sc["name"] == "many-users" and sc["benchmark"] in ("budget", "execute-live", "execute-paper")
    }
    for history in results["sizes"]["history"]:
        for benchmark in ("budget", "execute-live", "execute-paper"):
            service = loaded[(benchmark, history, "service")]["rounds"]
            floor = loaded[(benchmark, history, "floor")]["rounds"]
            assert len(service) == len(floor) == rounds
            times = [
                t for pair in zip(service, floor, strict=True) for r in pair for t in (r["started_at"], r["ended_at"])
            ]
            assert times == sorted(times), (benchmark, history)
            assert sum(r["ok"] for r in service) == loaded[(benchmark, history, "service")]["summary"]["ok"]
            [row] = [
                r
                for r in results["figures"]["service_vs_floor"]
                if (r["benchmark"], r["scenario"], r["history"]) == (benchmark, "many-users", history)
            ]
            assert row["rounds"] == rounds
            assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
            assert row["service_per_s_min"] <= row["service_per_s"] <= row["service_per_s_max"]


def test_history_was_seeded_and_measured_at_each_size(results: dict[str, Any]) -> None:
    sizes = {r["history"] for r in results["figures"]["history"] if r["benchmark"] == "execute-live"}
    assert sizes == set(results["sizes"]["history"])


def test_ours_lets_nothing_through_that_the_source_design_does(results: dict[str, Any]) -> None:
    storms = results["storms"]
    runs = results["sizes"]["storm_runs"]
    ours = [r for r in storms if r["side"] == "ours"]
    source = [r for r in storms if r["side"] == "source design"]
    assert {r["storm"] for r in ours} == {r["storm"] for r in source}
    assert len({r["storm"] for r in ours}) == 5
    assert [(r["storm"], r["run"], r["not_refused"]) for r in ours if r["not_refused"] != 0] == []
    assert all(r["requests"] > 0 for r in storms)
    doubles = [r["not_refused"] for r in source if r["storm"] == "job claims"]
    assert len(doubles) == runs and all(n > 0 for n in doubles)
