"""The access line every service writes per call ("rpc", shared.server.CallInterceptor), as an
operator's log pipeline reads it from a service process's stdout: exactly these fields, the
call's principal and status code, the call's trace ids, and nothing logging adds on its own
(source file and line, thread, process)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from tests.harness import OPERATOR_TOKEN, VIEWER_TOKEN, Postgres, channel, new_user_id, running_process, wait_serving
from tests.integration.foundation.conftest import service_env

FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "service",
    "rpc_method",
    "principal",
    "code",
    "duration_ms",
    "trace_id",
    "span_id",
}
GET_USAGE = "/oracle.budget.v1.BudgetService/GetUsage"
SET_LIMITS = "/oracle.budget.v1.BudgetService/SetLimits"


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a printed span spans several lines
    return out


def test_each_call_writes_one_access_line_with_its_fields(
    postgres: Postgres, exchange_url: str, tmp_path: Path
) -> None:
    env = service_env("budget", postgres, exchange_url)
    with running_process("services.budget", env, tmp_path / "budget.log") as proc:
        wait_serving(proc.target)
        user = new_user_id("access")
        with channel(proc.port, OPERATOR_TOKEN) as operator, channel(proc.port, VIEWER_TOKEN) as viewer:
            pb_grpc.BudgetServiceStub(operator).GetUsage(pb.GetUsageRequest(user_id=user), timeout=30)
            try:
                pb_grpc.BudgetServiceStub(viewer).SetLimits(pb.SetLimitsRequest(user_id=user), timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.PERMISSION_DENIED
        assert proc.terminate() == 0
        lines = [r for r in json_lines(proc.logs()) if r.get("message") == "rpc"]

    calls = [(r["rpc_method"], r["principal"], r["code"]) for r in lines if r["rpc_method"] in (GET_USAGE, SET_LIMITS)]
    assert calls == [(GET_USAGE, "operator", "OK"), (SET_LIMITS, "viewer", "PERMISSION_DENIED")]
    for record in lines:
        assert set(record) == FIELDS, sorted(set(record) ^ FIELDS)
        assert (record["service"], record["level"], record["logger"]) == ("budget", "INFO", "shared.server")
        assert isinstance(record["duration_ms"], float | int) and record["duration_ms"] >= 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", record["time"])
        assert re.fullmatch(r"[0-9a-f]{32}", record["trace_id"]) and record["trace_id"] != "0" * 32
        assert re.fullmatch(r"[0-9a-f]{16}", record["span_id"])
    assert lines[0]["trace_id"] != lines[-1]["trace_id"]  # each call its own trace
