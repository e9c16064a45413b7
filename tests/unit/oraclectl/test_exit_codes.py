"""oraclectl's promises to scripts: the exit code of every status, the one-line reason on stderr,
every failed validator of a rejection, and the JSON error object."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import grpc
import pytest
from google.protobuf import any_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import exitcodes
from oraclectl.__main__ import main
from oraclectl.exitcodes import ExitCode
from oraclectl.output import Output, error_dict, one_line
from oraclectl.session import CliError, RpcFailure
from shared.errors import ErrorReport, FieldViolation, PreconditionViolation, QuotaViolation


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 2),
        (grpc.StatusCode.NOT_FOUND, 3),
        (grpc.StatusCode.FAILED_PRECONDITION, 4),
        (grpc.StatusCode.ALREADY_EXISTS, 5),
        (grpc.StatusCode.UNAVAILABLE, 6),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 6),
        (grpc.StatusCode.UNAUTHENTICATED, 7),
        (grpc.StatusCode.PERMISSION_DENIED, 7),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 8),
        (grpc.StatusCode.ABORTED, 9),
        (grpc.StatusCode.INTERNAL, 1),
        (grpc.StatusCode.UNKNOWN, 1),
        (grpc.StatusCode.DATA_LOSS, 1),
    ],
)
def test_every_status_has_a_documented_exit_code(code: grpc.StatusCode, expected: int) -> None:
    assert exitcodes.for_status(code) == expected
    assert f"{expected} " in exitcodes.HELP


def test_help_documents_every_exit_code() -> None:
    for code in ExitCode:
        assert f"{code.value} " in exitcodes.HELP


def _rejection() -> RpcFailure:
    report = ErrorReport(
        code=grpc.StatusCode.FAILED_PRECONDITION,
        reason="VALIDATION_FAILED",
        message="failed precondition: MARKET_NOT_ALLOWLISTED: …; COOLDOWN_ACTIVE: …",
        precondition_violations=(
            PreconditionViolation("MARKET_NOT_ALLOWLISTED", "allowlist", "observed ADA-EUR; limit BTC-EUR"),
            PreconditionViolation("COOLDOWN_ACTIVE", "cooldown", "observed 12s ago; limit 120s"),
        ),
    )
    return RpcFailure("executor", report)


def test_a_rejection_is_one_line_then_every_failed_validator() -> None:
    out, err = io.StringIO(), io.StringIO()
    failure = _rejection()
    Output(json_mode=False, stdout=out, stderr=err).failure(failure)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("oraclectl: executor: FAILED_PRECONDITION VALIDATION_FAILED: ")
    assert any("MARKET_NOT_ALLOWLISTED" in line and "allowlist" in line for line in lines[1:])
    assert any("COOLDOWN_ACTIVE" in line and "cooldown" in line for line in lines[1:])
    assert out.getvalue() == ""
    assert failure.exit_code == ExitCode.REJECTED


def test_json_mode_puts_the_error_object_on_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    Output(json_mode=True, stdout=out, stderr=err).failure(_rejection())
    data = json.loads(out.getvalue())["error"]
    assert data["exit_code"] == 4
    assert data["code"] == "FAILED_PRECONDITION"
    assert [v["type"] for v in data["precondition_violations"]] == ["MARKET_NOT_ALLOWLISTED", "COOLDOWN_ACTIVE"]
    assert err.getvalue().count("\n") >= 1


def test_already_exists_carries_the_existing_execution() -> None:
    existing = executor_pb2.Execution(
        execution_id="e-1", client_order_id="c-1", status=executor_pb2.EXECUTION_STATUS_FILLED
    )
    packed = any_pb2.Any()
    packed.Pack(existing)
    failure = RpcFailure(
        "executor",
        ErrorReport(
            code=grpc.StatusCode.ALREADY_EXISTS, reason="EXECUTION_EXISTS", message="exists", details=(packed,)
        ),
    )
    assert failure.exit_code == ExitCode.ALREADY_EXISTS
    assert [e.execution_id for e in failure.details_of(executor_pb2.Execution)] == ["e-1"]
    data = error_dict(failure)
    assert data["execution"]["status"] == "EXECUTION_STATUS_FILLED"
    assert data["execution"]["client_order_id"] == "c-1"


def test_other_details_are_listed_too() -> None:
    report = ErrorReport(
        code=grpc.StatusCode.RESOURCE_EXHAUSTED,
        reason="BUDGET_EXHAUSTED",
        message="resource exhausted",
        field_violations=(FieldViolation("user_id", "is required"),),
        quota_violations=(QuotaViolation("user:demo/hourly_calls", "240 of 240 used"),),
        retry_after=timedelta(seconds=30),
    )
    err = io.StringIO()
    Output(json_mode=False, stdout=io.StringIO(), stderr=err).failure(RpcFailure("budget", report))
    text = err.getvalue()
    assert "user_id: is required" in text
    assert "user:demo/hourly_calls" in text
    assert "retry after 30s" in text


def test_a_message_is_kept_on_one_line() -> None:
    report = ErrorReport(code=grpc.StatusCode.UNAVAILABLE, reason="", message="down\n  for now")
    assert one_line(RpcFailure("scanner", report)) == "scanner: UNAVAILABLE: down for now"
    assert one_line(CliError(ExitCode.USAGE, "bad")) == "bad"


def test_no_token_exits_7_before_any_call(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.delenv("ORACLE_TOKEN", raising=False)
    monkeypatch.delenv("ORACLE_TOKEN_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("oraclectl.defaults.find_token_file", lambda start=None: None)
    with pytest.raises(SystemExit) as exited:
        main(["policy", "show"])
    assert exited.value.code == 7
    err = capsys.readouterr().err
    assert err.startswith("oraclectl: no operator token")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "create", "--market", "NOT A MARKET"],
        ["jobs", "create", "--market", "BTC-EUR", "--interval", "soon"],
        ["execute", "some-id", "--override-cooldown"],
        ["policy", "update"],
        ["account", "set"],
        ["account", "set", "--daily-notional-cap-eur", "lots"],
        ["account", "set", "--daily-notional-cap-eur", "-5"],
        ["executions", "list", "--status", "sideways"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
