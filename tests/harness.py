"""Test harness: real PostgreSQL clusters, real gRPC servers, real processes.

Nothing here mocks our own database or services: it starts them. Tokens below are test-only
principal tokens (never used outside tests).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.channel import open_channel
from shared.db.embedded import SERVICE_ROLES, EmbeddedCluster, role_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]

OPERATOR_TOKEN = "test-operator-token-0123456789abcdef"
SCANNER_TOKEN = "test-scanner-token-0123456789abcdef"
VIEWER_TOKEN = "test-viewer-token-0123456789abcdef"
PRINCIPAL_TOKENS = f"operator:{OPERATOR_TOKEN},scanner:{SCANNER_TOKEN},viewer:{VIEWER_TOKEN}"


@dataclass
class Postgres:
    """A migrated PostgreSQL: the admin URL and one URL per service role."""

    admin_url: str
    cluster: EmbeddedCluster | None

    def url(self, service: str) -> str:
        """The URL of ``service``'s own least-privilege role."""
        return role_url(self.admin_url, SERVICE_ROLES[service])

    def admin(self) -> psycopg.Connection[Any]:
        """A superuser connection (autocommit) for seeding and inspection in tests."""
        return psycopg.connect(self.admin_url, autocommit=True)


# The account daily notional cap of every test database (oracle.account_settings; migration 0021
# starts it at 1000 EUR). Tests share one database and one UTC day, and together claim more than
# 1000 EUR: with the cap far above that, only a test that lowers it (through UpdateAccountSettings,
# and back after: tests/integration/executor/kit.account_cap) meets the account-wide limit.
TEST_ACCOUNT_CAP_EUR = "1000000"

# The longest lifetime a proposal may be given (oracle.database_settings; migration 0095 starts
# it at 1 hour): window tests keep one proposal open across an hour they move through; the test
# of the cap itself sets its own.
TEST_PROPOSAL_MAX_LIFETIME = "1 day"


def prepare_test_database(admin_url: str) -> None:
    """What a freshly migrated test database gets besides the migrations: the test account cap
    and the test proposal lifetime cap."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("UPDATE oracle.account_settings SET daily_notional_cap_eur = %s WHERE id", (TEST_ACCOUNT_CAP_EUR,))
        conn.execute(
            "UPDATE oracle.database_settings SET proposal_max_lifetime = %s::interval WHERE id",
            (TEST_PROPOSAL_MAX_LIFETIME,),
        )


def new_user_id(prefix: str = "u") -> str:
    """A user id no other test uses: tests share one database, never one user."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_serving(target: str, service: str = "", timeout: float = 60.0) -> None:
    """Wait until the standard health check of ``target`` answers SERVING."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{target} not SERVING after {timeout}s: {last}")


def channel(port: int, token: str | None = OPERATOR_TOKEN) -> grpc.Channel:
    """A channel to a local server, as the given principal."""
    return open_channel(f"127.0.0.1:{port}", token)


@dataclass
class ServiceProcess:
    """A service started as its own OS process, as in production."""

    proc: subprocess.Popen[str]
    port: int
    log_path: Path
    metrics_port: int | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> Metrics:
        """The process's /metrics, scraped now."""
        assert self.metrics_port is not None, "this process serves no /metrics"
        return scrape(self.metrics_port)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_process(
    module: str, env: Mapping[str, str], log_path: Path, timeout: float = 30.0, args: Sequence[str] = ()
) -> ServiceProcess:
    """Run ``python -m module *args`` with ``env`` (plus PATH); wait for its "listening" log line."""
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1", **env}
    log_file = log_path.open("w", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    port = 0
    metrics_port: int | None = None
    while time.monotonic() < deadline and port == 0:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        log_file.write(line)
        log_file.flush()
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "listening":
            port = int(record["port"])
            metrics_port = record.get("metrics_port")
    if port == 0:
        proc.kill()
        rest = proc.stdout.read() if proc.stdout else ""
        log_file.write(rest)
        log_file.close()
        raise RuntimeError(f"{module} did not start:\n{log_path.read_text()}")
    _drain(proc, log_file)
    return ServiceProcess(proc, port, log_path, metrics_port)


def _drain(proc: subprocess.Popen[str], log_file: Any) -> None:
    import threading

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            log_file.flush()
        log_file.close()

    threading.Thread(target=pump, daemon=True).start()


@contextmanager
def running_process(
    module: str, env: Mapping[str, str], log_path: Path, args: Sequence[str] = ()
) -> Iterator[ServiceProcess]:
    """A service process for the duration of a with-block (terminated, then killed)."""
    service = start_process(module, env, log_path, args=args)
    try:
        yield service
    finally:
        try:
            service.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()


def eventually(check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.1) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns the last result.

    The deadline only bounds a test that is failing anyway: a passing one returns as soon as the
    event happened. It is long so that a busy machine (``make test-under-load``) is not mistaken
    for a missing event."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class Metrics:
    """One scrape of a Prometheus endpoint: every sample, and the text as served."""

    samples: tuple[tuple[str, dict[str, str], float], ...]
    text: str

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        return sum(v for n, lab, v in self.samples if n == name and labels.items() <= lab.items())

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}


def scrape(port: int, host: str = "127.0.0.1") -> Metrics:
    """GET http://host:port/metrics and parse it (prometheus_client's own parser)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=30) as answer:
        text = answer.read().decode("utf-8")
    samples = tuple(
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )
    return Metrics(samples, text)
