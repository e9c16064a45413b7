"""Back-off of failing jobs, and the outcome records' round trip through JSON."""

from __future__ import annotations

from datetime import timedelta

from services.scanner.jobs import retry_delay
from services.scanner.outcomes import AutoExecuteStatus, AutoExecution, MarketOutcome


def test_back_off_doubles_up_to_the_maximum() -> None:
    delays = [retry_delay(n, 30, 600) for n in range(1, 8)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 600, 600)]
    assert retry_delay(10_000, 30, 600) == timedelta(seconds=600)


def test_outcomes_round_trip() -> None:
    outcomes = [
        MarketOutcome(
            "BTC-EUR",
            proposal_id="p",
            auto_execution=AutoExecution(AutoExecuteStatus.REJECTED, reasons=("COOLDOWN_ACTIVE",)),
        ),
        MarketOutcome("ETH-EUR", skipped_reason="BUDGET_EXHAUSTED", detail="hourly_calls"),
    ]
    assert [MarketOutcome.from_json(o.to_json()) for o in outcomes] == outcomes
