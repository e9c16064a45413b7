"""How oraclectl says values to a person: money with two decimals and its currency, coin amounts
naming their coin, fees, USD budget amounts, one time format, errors that say each thing once,
and help texts a person can read."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest
import typer.main
from google.protobuf import timestamp_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from typer._click.core import Command as TyperCommand
from typer.testing import CliRunner

from oraclectl import formatting
from oraclectl.cli import app
from oraclectl.options import State
from oraclectl.output import filled_text, mode_text, one_line
from oraclectl.session import RpcFailure, Unreachable
from shared.errors import ErrorReport, FieldViolation, PreconditionViolation
from tests.harness import PROJECT_ROOT


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("10", "10.00 EUR"),
        ("10.00", "10.00 EUR"),
        ("25.5", "25.50 EUR"),
        ("0.0249999957025", "0.02 EUR"),
        ("1000", "1000.00 EUR"),
        ("0.004", "<0.01 EUR"),
        ("0", "0.00 EUR"),
        (Decimal("12.345"), "12.34 EUR"),  # banker's rounding, as Decimal does
        ("", "-"),
    ],
)
def test_money_is_eur_with_two_decimals(amount: str | Decimal, shown: str) -> None:
    assert formatting.eur(amount) == shown


def test_coin_amounts_are_exact_and_name_their_coin() -> None:
    assert formatting.coin("0.000210000", "BTC") == "0.00021 BTC"
    assert formatting.coin("1E-8", "BTC") == "0.00000001 BTC"
    assert formatting.coin("800", "XRP") == "800 XRP"
    assert formatting.base_of("DOGE-EUR") == "DOGE"


def test_fees_are_money_in_eur_and_coins_otherwise() -> None:
    assert formatting.fee("0.0249999957025", "EUR") == "0.02 EUR"
    assert formatting.fee("0.0000005", "BTC") == "0.0000005 BTC"
    assert formatting.fee("", "") == "-"


def test_an_execution_names_the_coin_it_filled_and_where_its_orders_went() -> None:
    execution = executor_pb2.Execution(
        market="BTC-EUR",
        filled_amount="0.000210000",
        filled_amount_quote="10",
        mode=executor_pb2.EXECUTION_MODE_LIVE,
    )
    assert filled_text(execution) == "0.00021 BTC for 10.00 EUR"
    assert filled_text(executor_pb2.Execution(market="BTC-EUR")) == "-"
    assert mode_text(execution, "simulated exchange") == "live (simulated exchange)"
    assert mode_text(execution) == "live"
    paper = executor_pb2.Execution(mode=executor_pb2.EXECUTION_MODE_PAPER)
    assert mode_text(paper, "simulated exchange") == "paper"


def test_usd_is_said_in_dollars() -> None:
    assert formatting.usd_micros(2_000_000) == "2.00 USD"
    assert formatting.usd_micros(4213) == "0.004213 USD"
    assert formatting.usd_micros(0) == "0.00 USD"


def test_every_time_reads_the_same_way() -> None:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString("2026-11-30T04:31:07.123456Z")
    assert formatting.moment(stamp) == "2026-11-30 04:31:07 UTC"
    assert formatting.moment(datetime(2026, 11, 30, 4, 31, 7, 999, tzinfo=UTC)) == "2026-11-30 04:31:07 UTC"
    assert formatting.when(executor_pb2.Execution(), "claimed_at") == ""


def test_an_error_says_code_reason_and_message_once() -> None:
    report = ErrorReport(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        reason="MARKET_NOT_ALLOWLISTED",
        message="failed precondition: MARKET_NOT_ALLOWLISTED: observed LTC-EUR; limit BTC-EUR",
        precondition_violations=(
            PreconditionViolation("MARKET_NOT_ALLOWLISTED", "allowlist", "observed LTC-EUR; limit BTC-EUR"),
        ),
    )
    line = one_line(RpcFailure("executor", report))
    assert line == "executor: FAILED_PRECONDITION MARKET_NOT_ALLOWLISTED"
    assert line.count("MARKET_NOT_ALLOWLISTED") == 1

    bad = ErrorReport(
        code=grpc.StatusCode.INVALID_ARGUMENT,
        reason="INVALID_ARGUMENT",
        message="invalid argument: proposal_id: must be a UUID",
        field_violations=(FieldViolation("proposal_id", "must be a UUID"),),
    )
    assert one_line(RpcFailure("scanner", bad)) == "scanner: INVALID_ARGUMENT"

    found = ErrorReport(code=grpc.StatusCode.NOT_FOUND, reason="NOT_FOUND", message="proposal p-1 not found")
    assert one_line(RpcFailure("scanner", found)) == "scanner: NOT_FOUND: proposal p-1 not found"


def test_an_unreachable_service_is_named_with_its_address() -> None:
    report = ErrorReport(code=grpc.StatusCode.UNAVAILABLE, reason="", message="failed to connect to all addresses")
    assert formatting.is_unreachable(report)
    failure = Unreachable("executor", "127.0.0.1:50061", report)
    assert one_line(failure) == "cannot reach the executor at 127.0.0.1:50061; is `make run` running?"
    assert int(failure.exit_code) == 6
    told = ErrorReport(code=grpc.StatusCode.UNAVAILABLE, reason="DATABASE_UNAVAILABLE", message="database down")
    assert not formatting.is_unreachable(told)


def _commands(command: TyperCommand, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], TyperCommand]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, (*path, name))
    return found


def test_no_help_text_shows_a_type_placeholder_like_bool() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 20  # every group and command, not only the root
    runner = CliRunner()
    for path, _ in commands:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"}, obj=State())
        assert shown.exit_code == 0 and "Usage:" in shown.output, (path, shown.output)
        assert "<bool>" not in shown.output, (path, shown.output)


def test_make_help_writes_no_colour_codes_into_a_pipe() -> None:
    done = subprocess.run(["make", "-s", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert "run" in done.stdout and "\x1b[" not in done.stdout
