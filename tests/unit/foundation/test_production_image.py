"""The service image holds no test switches: nothing under services/, shared/ or oraclectl/ sends
SIGKILL, reads a ``*_TEST_*`` variable or declares a ``test_*`` setting. Such switches live in the
test-only entry points under tests/support/ (executor_with_hooks.py, budget_with_hooks.py), which
build the services through their normal startup path with hooks."""

from __future__ import annotations

import re

from tests.harness import PROJECT_ROOT

# SIGKILL anywhere; an environment variable with a TEST_ part (EXECUTOR_TEST_CRASH_AT); a settings
# field named test_* (pydantic reads it from <PREFIX>_TEST_*).
SWITCH = re.compile(r"SIGKILL|_TEST_[A-Z]|^\s+test_\w+\s*:", re.MULTILINE)
IMAGE_FOLDERS = ("services", "shared", "oraclectl")


def test_no_production_code_reads_a_test_switch_or_can_kill_its_own_process() -> None:
    scanned = [path for folder in IMAGE_FOLDERS for path in (PROJECT_ROOT / folder).rglob("*.py")]
    assert any(path.is_relative_to(PROJECT_ROOT / "services" / "budget") for path in scanned)
    offenders = [
        str(path.relative_to(PROJECT_ROOT)) for path in scanned if SWITCH.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
