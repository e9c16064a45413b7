"""A child of the stack that fails to start: the supervisor shows this run's error lines first,
never the lines an earlier run appended to the same log."""

from __future__ import annotations

import json
import os
import sys

import pytest

from stack.processes import StartError, listening_port, spawn

pytestmark = pytest.mark.e2e

OLD_RUN = json.dumps({"level": "ERROR", "message": "an earlier run's failure"})
FAILING = (
    "import json, sys\n"
    "for n in range(40): print(json.dumps({'level': 'INFO', 'message': f'noise {n}'}))\n"
    "print(json.dumps({'level': 'ERROR', 'message': 'EXECUTOR_MODE: must be live or paper'}))\n"
    "print(json.dumps({'level': 'INFO', 'message': 'exiting'}))\n"
    "sys.exit(3)\n"
)


def test_a_failed_start_shows_this_runs_error_lines_first(tmp_path) -> None:
    log = tmp_path / "executor.log"
    log.write_text("".join(f"{OLD_RUN}\n" for _ in range(60)), encoding="utf-8")
    with pytest.raises(StartError) as failed:
        spawn("executor", [sys.executable, "-c", FAILING], dict(os.environ), log, ready=listening_port)
    message = str(failed.value)
    assert "earlier run" not in message
    lines = message.splitlines()
    assert lines[0].startswith("executor did not start (exit code 3)")
    errors = lines.index("error lines of this run:")
    assert "must be live or paper" in lines[errors + 1]
    assert message.index("must be live or paper") < message.index("noise 39")
    assert "noise 0" not in message  # the tail is short
    assert len(lines) < 20
