"""The stack's child processes: started with an explicit environment, their output kept in a
log file, known to be ready by what they print, and stopped with SIGTERM (SIGKILL only after a
grace period).

Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the children in order (services, simulators, database). On Linux
each child also gets SIGTERM should the supervisor die without cleaning up (PR_SET_PDEATHSIG),
so nothing outlives a killed ``make run``.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oraclectl.defaults import PROJECT_ROOT
from shared.channel import open_channel
from shared.errors import InvariantBroken
from shared.tls import TlsFiles

_PR_SET_PDEATHSIG = 1
try:  # loaded before any fork: the pre-exec hook must not import or allocate much
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class StartError(RuntimeError):
    """A child did not become ready; the message ends with the tail of its log."""


def listening_port(line: str) -> str | None:
    """The port of a service's ``{"event": "listening", "port": N}`` log line, else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("event") == "listening" and "port" in record:
        return str(record["port"])
    return None


def metrics_url(log_path: Path) -> str:
    """The Prometheus URL a service's last "listening" log line names ("" when it serves none)."""
    url = ""
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "listening":
            url = str(record.get("metrics_url", ""))
    return url


def printed_url(line: str) -> str | None:
    """A simulator's first stdout line: its base URL."""
    text = line.strip()
    return text if text.startswith(("http://", "https://")) else None


@dataclass
class Child:
    """A started child process."""

    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    ready_value: str = ""  # what the readiness line said: a URL or a port
    log_start: int = 0  # where this run's lines begin in the log (earlier runs' lines come before)
    _log: IO[str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) if it is still running."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; SIGKILL after ``timeout`` seconds. Returns the exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        return code

    def log_tail(self, lines: int = 12) -> str:
        """This run's part of the log, as a person wants it when the child failed: its error
        lines first (a traceback's last lines, ERROR records), then the last ``lines`` lines."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_start)
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        own = text.splitlines()
        errors = [line for line in own if _is_error(line)][-lines:]
        tail = [line for line in own[-lines:] if line not in errors]
        parts = []
        if errors:
            parts.append("error lines of this run:\n" + "\n".join(errors))
        if tail:
            parts.append("last lines of this run:\n" + "\n".join(tail))
        return "\n".join(parts) or "(nothing was logged in this run)"


def _is_error(line: str) -> bool:
    """A log line that says what went wrong: an ERROR/CRITICAL record or a Python exception line."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        return str(record.get("level", record.get("levelname", ""))).upper() in ("ERROR", "CRITICAL")
    stripped = line.strip()
    return stripped.startswith("Traceback") or bool(
        stripped and not line.startswith(" ") and ("Error" in stripped.split(":", 1)[0] or "Exception" in stripped)
    )


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    ready: Callable[[str], str | None],
    timeout: float = 60.0,
) -> Child:
    """Start ``argv`` and wait until one output line satisfies ``ready`` (whose value is kept).

    Output (stdout and stderr) is appended to ``log_path``; on failure the child is killed and
    :class:`StartError` carries the log's tail.
    """
    log = log_path.open("a", encoding="utf-8")
    log_start = log.tell()
    log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} stack: starting {name}\n")
    log.flush()
    proc = subprocess.Popen(  # noqa: S603 -- argv is ours: sys.executable -m <our module>
        list(argv),
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 -- only prctl, with libc loaded beforehand
    )
    output = proc.stdout
    if output is None:
        raise InvariantBroken("Popen(stdout=PIPE) returned no pipe")
    child = Child(name, proc, log_path, log_start=log_start, _log=log)
    found = threading.Event()

    def pump() -> None:
        for line in output:
            log.write(line)
            log.flush()
            if not found.is_set():
                value = ready(line)
                if value is not None:
                    child.ready_value = value
                    found.set()
        log.close()

    threading.Thread(target=pump, name=f"log-{name}", daemon=True).start()
    deadline = time.monotonic() + timeout
    try:
        while not found.wait(0.1):
            if not child.alive() or time.monotonic() > deadline:
                if child.alive():
                    child.proc.kill()
                child.proc.wait(10)
                time.sleep(0.2)  # let the pump write the last lines
                raise StartError(
                    f"{name} did not start (exit code {child.proc.returncode}); its log:\n{child.log_tail()}"
                )
    except KeyboardInterrupt:  # Ctrl-C while it starts: nobody else knows this child yet
        child.terminate()
        child.wait(10)
        raise
    return child


def wait_serving(target: str, timeout: float = 30.0, tls: TlsFiles | None = None) -> None:
    """Wait until ``target``'s standard health check answers SERVING (over TLS with ``tls``)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with open_channel(target, None, tls=tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = exc.code().name
            time.sleep(0.2)
    raise StartError(f"{target} is not SERVING after {timeout:.0f}s (last: {last})")
