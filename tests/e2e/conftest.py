"""The whole stack, started exactly as ``make run`` starts it (``python -m stack run``), with its
own embedded PostgreSQL in a temporary state folder and free ports; driven from the outside with
the ``oraclectl`` console script and the real ``grpcurl`` binary, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stack.layout import read_status
from tests.harness import PROJECT_ROOT

BIN = Path(sys.executable).parent
ORACLECTL = BIN / "oraclectl"
GRPCURL = BIN / "grpcurl"


def stack_environment() -> dict[str, str]:
    """The test's environment without anything that would point the stack elsewhere."""
    dropped = ("SCANNER_", "EXECUTOR_", "BUDGET_", "ORACLE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k != "DATABASE_URL"}
    env["COLUMNS"] = "160"
    return env


@dataclass
class RunningStack:
    """A ``python -m stack run`` process and what it wrote to its state folder."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    output: Path
    tls: bool = False  # started with --tls: clients present the operator's certificate

    @property
    def certs(self) -> Path:
        return self.state_dir / "certs"

    def status(self) -> dict[str, Any]:
        return read_status(self.state_dir) or {}

    def wait_for(self, cycles: int, timeout: float = 150.0) -> dict[str, Any]:
        """Wait until the stack has shown ``cycles`` cycles; fail with its output if it stops."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status.get("cycles", 0) >= cycles and status.get("state") == "running":
                return status
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        pytest.fail(f"the stack did not show {cycles} cycle(s) (exit {self.proc.poll()}):\n{self.text()}")

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def client_env(self) -> dict[str, str]:
        """What a user exports to reach this stack (the stack prints it)."""
        addresses = self.status()["addresses"]
        return {
            **stack_environment(),
            "ORACLE_SCANNER_ADDR": addresses["scanner"],
            "ORACLE_EXECUTOR_ADDR": addresses["executor"],
            "ORACLE_BUDGET_ADDR": addresses["budget"],
            "ORACLE_TOKEN_FILE": str(self.state_dir / "operator.token"),
            **(
                {
                    "ORACLE_TLS_CERT": str(self.certs / "operator.crt"),
                    "ORACLE_TLS_KEY": str(self.certs / "operator.key"),
                    "ORACLE_TLS_CA": str(self.certs / "ca-bundle.crt"),
                }
                if self.tls
                else {}
            ),
        }

    def oraclectl(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed console script (``token``: instead of the token file); never raises
        on a non-zero exit."""
        env = self.client_env() | ({"ORACLE_TOKEN": token} if token else {})
        return subprocess.run([str(ORACLECTL), *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    def oraclectl_json(self, *args: str) -> Any:
        done = self.oraclectl("--json", *args)
        assert done.returncode == 0, f"oraclectl {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return json.loads(done.stdout)

    def grpcurl(self, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
        header: Sequence[str] = ()
        if token:
            value = (self.state_dir / "operator.token").read_text().strip()
            header = ("-H", f"authorization: Bearer {value}")
        return subprocess.run(
            [str(GRPCURL), *self.grpcurl_transport(), *header, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def grpcurl_transport(self) -> list[str]:
        """grpcurl's flags for this stack: -plaintext, or the TLS files (as the README shows)."""
        if not self.tls:
            return ["-plaintext"]
        certs = self.certs
        return [
            "-cacert",
            str(certs / "ca-bundle.crt"),
            "-cert",
            str(certs / "operator.crt"),
            "-key",
            str(certs / "operator.key"),
        ]

    def interrupt(self, timeout: float = 90.0) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the stack's whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)


def start_stack(
    state_dir: Path, *args: str, ports: str = "auto", tls: bool = False, env: dict[str, str] | None = None
) -> RunningStack:
    """``python -m stack run --state-dir … --ports auto …`` in a process group of its own
    (``ports``: ``scanner,executor,budget`` instead of free ones; ``tls``: with ``--tls``;
    ``env``: the operator's own service variables, ``SCANNER_…`` and so on, passed to that service)."""
    argv = [sys.executable, "-m", "stack", "run", "--state-dir", str(state_dir), "--ports", ports]
    argv += ["--tls"] if tls else []
    state_dir.mkdir(parents=True, exist_ok=True)
    output = state_dir / "stack-output.txt"
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            [*argv, *args],
            cwd=PROJECT_ROOT,
            env=stack_environment() | (env or {}),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningStack(proc, state_dir, output, tls)


def stop_quietly(stack: RunningStack) -> None:
    if stack.proc.poll() is None:
        try:
            stack.interrupt(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait(10)


@pytest.fixture(scope="module", params=["plaintext", "tls"])
def demo_stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    """One stack per mode for the module (plaintext on loopback as ``make run``, and ``--tls``):
    one cycle shown, then serving until the test interrupts it."""
    tls = request.param == "tls"
    stack = start_stack(
        tmp_path_factory.mktemp("stack"), "--cycles", "1", "--keep-serving", "--interval", "10", tls=tls
    )
    try:
        stack.wait_for(cycles=1)
        yield stack
    finally:
        stop_quietly(stack)
