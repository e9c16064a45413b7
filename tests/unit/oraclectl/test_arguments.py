"""Parsing of oraclectl's values: durations, markets, decimals, USD amounts, and how they show."""

from __future__ import annotations

import pytest
import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import arguments
from oraclectl.formatting import format_seconds, label


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2h", 7200)])
def test_durations(text: str, seconds: int) -> None:
    assert arguments.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        arguments.seconds(text)


def test_markets_are_split_upper_cased_and_deduplicated() -> None:
    assert arguments.markets(["btc-eur,ETH-EUR", "btc-eur", " sol-eur "]) == ["BTC-EUR", "ETH-EUR", "SOL-EUR"]
    assert arguments.markets([""]) == []
    with pytest.raises(typer.BadParameter):
        arguments.markets(["BTC-USD"])


def test_decimals_and_usd() -> None:
    assert arguments.decimal_text("10.50", "x") == "10.50"
    assert arguments.decimal_text("1e1", "x") == "10"
    assert arguments.usd_micros("2.5") == 2_500_000
    for bad in ("-1", "abc", "NaN", "Infinity"):
        with pytest.raises(typer.BadParameter):
            arguments.decimal_text(bad, "x")
    with pytest.raises(typer.BadParameter):
        arguments.usd_micros("0.0000001")


def test_how_values_show() -> None:
    assert format_seconds(0) == "0s"
    assert format_seconds(5400) == "1h30m"
    execution = executor_pb2.Execution(
        side=executor_pb2.SIDE_BUY, status=executor_pb2.EXECUTION_STATUS_PARTIALLY_FILLED
    )
    assert label(execution, "side") == "buy"
    assert label(execution, "status") == "partially_filled"
