"""The README's commands, run in the order the READMEs give them, against a stack this test
starts (free ports): each does what the text beside it says.

The commands are read from the READMEs themselves (README.md "Using it: oraclectl" and "Reaching
the services with grpcurl"; stack/README.md "Using it: oraclectl" and "Using it: grpcurl"), so
a README that changes runs changed here. The only substitutions are what a user would type: the
stack's addresses for the fixed ports, and real ids for ``<execution id>`` / ``<proposal id>``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oraclectl import defaults
from sim.bitvavo.admin import SimulatorAdmin
from tests.e2e.conftest import BIN, RunningStack, start_stack, stop_quietly
from tests.harness import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]

SECTIONS = (
    ("README.md", "## Using it: oraclectl"),
    ("README.md", "## Reaching the services with grpcurl"),
    ("stack/README.md", "## Using it: oraclectl"),
    ("stack/README.md", "## Using it: grpcurl"),
)


def readme_commands(path: str, heading: str) -> list[str]:
    """The commands of the first bash block under ``heading``: continuation lines joined,
    comments kept (they are the text a command must live up to)."""
    text = (PROJECT_ROOT / path).read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    block = section[section.index("```bash\n") + len("```bash\n") :]
    block = block[: block.index("```")]
    commands, pending = [], ""
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            commands.append(pending.strip())
            pending = ""
    return commands


@dataclass
class Ran:
    command: str
    code: int
    out: str
    err: str


class User:
    """A user in a shell in the folder of the stack's .stack/ (as in the project root)."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        addresses = stack.status()["addresses"]
        self.replace = {
            defaults.SCANNER_ADDR: addresses["scanner"],
            defaults.EXECUTOR_ADDR: addresses["executor"],
            defaults.BUDGET_ADDR: addresses["budget"],
        }
        env = stack.client_env()
        env.pop("ORACLE_TOKEN_FILE")  # found as .stack/operator.token from the folder, like the README says
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        self.env = env
        self.cwd = stack.state_dir.parent

    def run(self, command: str, **ids: str) -> Ran:
        for fixed, actual in self.replace.items():
            command = command.replace(fixed, actual)
        for name, value in ids.items():
            command = command.replace(f"<{name.replace('_', ' ')}>", value)
        assignment = re.match(r"^([A-Z_]+)=\$\(", command)
        script = command + (f'\nprintf %s "${assignment.group(1)}"' if assignment else "")
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        if assignment and done.returncode == 0:
            self.env[assignment.group(1)] = done.stdout
        return Ran(command, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def readme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # The state folder is called .stack, as make run's: the README's relative paths hold.
    stack = start_stack(
        tmp_path_factory.mktemp("project") / ".stack", "--cycles", "1", "--keep-serving", "--interval", "10"
    )
    try:
        stack.wait_for(cycles=1)
        yield stack
    finally:
        stop_quietly(stack)


def _ids(stack: RunningStack) -> dict[str, str]:
    """An execution to show and a proposal the live policy refuses (the README's placeholders)."""
    executions = stack.oraclectl_json("executions", "list")["executions"]
    events = stack.oraclectl_json("audit", "--limit", "1000")["events"]
    refused = next(
        e["subject_id"]
        for e in events
        if e["kind"] == "execution.rejected"
        and any(v.get("reason") == "MARKET_NOT_ALLOWLISTED" for v in e["payload"].get("validators", []))
    )
    return {"execution_id": executions[0]["execution_id"], "proposal_id": refused}


def _orders(stack: RunningStack) -> list[dict[str, Any]]:
    admin = SimulatorAdmin(stack.status()["addresses"]["exchange-sim"])
    try:
        return admin.orders()
    finally:
        admin.close()


def _json(ran: Ran) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ran.out)
    return data


def _execute_does_what_the_text_says(stack: RunningStack, ran: Ran) -> None:
    """stack/README.md: AlreadyExists with the existing execution, FailedPrecondition with every
    failed validator, or the new execution whose order is at the exchange."""
    printed = ran.out + ran.err
    if ran.code == 0:
        execution = _json(ran)["execution"]
        assert isinstance(execution, dict)
        at_exchange = [o["order"]["clientOrderId"] for o in _orders(stack)]
        assert at_exchange.count(execution["client_order_id"]) == 1, (execution, at_exchange)
    elif "Code: AlreadyExists" in printed:
        assert "oracle.executor.v1.Execution" in printed, printed
    else:
        assert "Code: FailedPrecondition" in printed and "PreconditionFailure" in printed, printed


def _assert_all(ran: Ran, *needles: str | tuple[str, ...]) -> None:
    assert ran.code == 0, (ran.command, ran.code, ran.err)
    for needle in needles:
        options = needle if isinstance(needle, tuple) else (needle,)
        assert any(n in ran.out for n in options), (ran.command, needle, ran.out)


def _refused(ran: Ran) -> None:
    """ "a refusal exits 4 and lists every failed validator"."""
    assert ran.code == 4, (ran.command, ran.code, ran.out, ran.err)
    first, *rest = ran.err.splitlines()
    assert first.startswith("oraclectl: executor: FAILED_PRECONDITION"), first
    assert "failed precondition" not in first  # said once
    assert any(line.strip().startswith("rejected: MARKET_NOT_ALLOWLISTED") for line in rest), ran.err


def _latest_five(stack: RunningStack, ran: Ran) -> None:
    """ "the latest five audit events, newest first"."""
    _assert_all(ran, "newest first")
    every = stack.oraclectl_json("audit", "--limit", "10000")["events"]
    newest = sorted((int(e["sequence"]) for e in every), reverse=True)
    five = stack.oraclectl_json("audit", "--limit", "5")["events"]
    shown = [int(e["sequence"]) for e in five]
    # the trail may grow between the two reads: the five are the newest of what was there, in order
    assert shown == sorted(shown, reverse=True) and len(shown) == 5
    assert shown[-1] >= newest[4], (shown, newest[:5])


def _simulated_json(ran: Ran) -> None:
    assert ran.code == 0, ran.err
    data = _json(ran)
    assert data["exchange"] == "simulated exchange"
    assert {e["mode"] for e in data["executions"]} == {"EXECUTION_MODE_LIVE"}


def _grpcurl(stack: RunningStack, ran: Ran) -> None:
    """grpcurl lines: list/describe name the service; calls return what they are named for."""
    command = ran.command
    if "ExecutorService/ExecuteProposal" in command:
        _execute_does_what_the_text_says(stack, ran)
        return
    assert ran.code == 0, (command, ran.err)
    if command.endswith(" list"):
        assert "grpc.health.v1.Health" in ran.out
    elif " describe " in command:
        assert command.rsplit(".", 1)[1] in ran.out
    elif "/ListProposals" in command:
        assert _json(ran)["proposals"]
    elif "/ListAuditEvents" in command:
        kinds = {e["kind"] for e in _json(ran)["events"]}
        assert any(kind.startswith("execution.") for kind in kinds), kinds
    elif "/GetPolicy" in command:
        assert "allowed_markets" in _json(ran)["policy"]
    elif "/GetUsage" in command:
        assert _json(ran)["windows"]
    elif "Health/Check" in command:
        assert _json(ran)["status"] == "SERVING"
    else:
        pytest.fail(f"a README command this test does not know: {command}")


# What each README command's text promises, by how the command starts (first match wins).
Check = Callable[[RunningStack, Ran], None]
PROMISES: list[tuple[str, Check]] = [
    ("export PATH=", lambda s, r: None),
    ("oraclectl proposals list", lambda s, r: _assert_all(r, "outcome", "newest first", ("executed:", "refused:"))),
    ("oraclectl executions list", lambda s, r: _assert_all(r, "newest first", "live (simulated exchange)")),
    (
        "oraclectl executions show",
        lambda s, r: _assert_all(r, "validator report", "audit trail", "live (simulated exchange)"),
    ),
    ("oraclectl execute", lambda s, r: _refused(r)),
    ("oraclectl policy show", lambda s, r: _assert_all(r, "allowed markets")),
    ("oraclectl policy update --add-market ADA-EUR", lambda s, r: _assert_all(r, "ADA-EUR")),
    ("oraclectl budget usage", lambda s, r: _assert_all(r, "USD", "daily_calls")),
    ("oraclectl jobs list", lambda s, r: _assert_all(r, "scan job")),
    ("oraclectl trading off", lambda s, r: _assert_all(r, "trading DISABLED for user demo")),
    ("oraclectl trading on", lambda s, r: _assert_all(r, "trading ENABLED for user demo")),
    ("oraclectl account show", lambda s, r: _assert_all(r, "account daily notional cap", " EUR")),
    (
        "oraclectl status",
        lambda s, r: _assert_all(r, "account (live)", "daily loss", "executions not final", "reconciler: last pass"),
    ),
    ("oraclectl positions --check", lambda s, r: _assert_all(r, "positions", "the account's holdings")),
    ("oraclectl audit --limit 5", _latest_five),
    ("oraclectl --json executions list", lambda s, r: _simulated_json(r)),
    ("oraclectl --help", lambda s, r: _assert_all(r, "Exit codes", "UNAVAILABLE")),
]


def test_every_readme_command_does_what_its_text_says_in_order(readme_stack: RunningStack) -> None:
    user = User(readme_stack)
    ids = _ids(readme_stack)
    ran_any = 0
    for path, heading in SECTIONS:
        for command in readme_commands(path, heading):
            ran = user.run(command.split("  #", 1)[0].strip(), **ids)
            ran_any += 1
            if ran.command.startswith("grpcurl") or ran.command.startswith("PROPOSAL="):
                if ran.command.startswith("PROPOSAL="):
                    assert ran.code == 0 and user.env["PROPOSAL"], (ran.command, ran.err)
                else:
                    _grpcurl(readme_stack, ran)
                continue
            check = next((c for prefix, c in PROMISES if ran.command.startswith(prefix)), None)
            assert check is not None, f"{path}: a README command this test does not know: {command}"
            check(readme_stack, ran)
    assert ran_any >= 30


def test_the_readmes_list_trading_on_beside_trading_off() -> None:
    for path in ("README.md", "stack/README.md"):
        commands = readme_commands(path, "## Using it: oraclectl")
        off = next(i for i, c in enumerate(commands) if c.startswith("oraclectl trading off"))
        assert commands[off + 1].startswith("oraclectl trading on"), (path, commands)


def test_paper_mode_in_the_readme_is_what_the_executor_accepts() -> None:
    from services.executor.config import load_settings
    from shared.config import ConfigError

    text = (Path(PROJECT_ROOT) / "README.md").read_text(encoding="utf-8")
    assert "**no trade key**" in text and "EXECUTOR_MODE=paper" in text
    base = {
        "EXECUTOR_DATABASE_URL": "postgresql://oracle_executor@localhost/oracle",
        "EXECUTOR_PRINCIPAL_TOKENS": "operator:" + "x" * 32,
        "EXECUTOR_EXCHANGE_URL": "https://api.bitvavo.com/v2",
        "EXECUTOR_MODE": "paper",
    }
    load_settings(base)  # what the README says paper mode needs is enough
    with pytest.raises(ConfigError, match="EXECUTOR_BITVAVO_API_KEY"):
        load_settings(base | {"EXECUTOR_BITVAVO_API_KEY": "k" * 64, "EXECUTOR_BITVAVO_API_SECRET": "s" * 128})
