"""The real parts a benchmark runs on, started for the run and stopped whatever happens.

* PostgreSQL: an embedded cluster (``shared.db.embedded.EmbeddedCluster``) in a temporary folder,
  migrated with ``shared.db.migrate`` — the same schema, roles and row-level security as
  production; each service connects as its own least-privilege role.
* The Bitvavo simulator as its own process (``python -m sim.bitvavo --port 0``).
* Services as their own processes (``python -m services.<name>``), started with
  ``stack.processes.spawn`` as ``make run`` starts them: own session (Ctrl-C reaches only this
  process, which then stops them), SIGTERM when this process dies, output in a log file.

Everything binds to 127.0.0.1. :class:`Infra` is a context manager: leaving it — normally, on an
exception or on Ctrl-C — stops the services, then the simulator, then PostgreSQL, and removes
the temporary folder. Tokens are random per run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psycopg

from bench.machine import tree_seconds
from shared.db.embedded import SERVICE_ROLES, EmbeddedCluster, role_url
from shared.db.migrate import migrate
from stack.environments import PASSED_THROUGH
from stack.processes import Child, listening_port, printed_url, spawn, wait_serving

STOP_SECONDS = 15.0


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens of this run's principals (random, never reused)."""

    operator: str
    scanner: str

    @classmethod
    def new(cls) -> Tokens:
        return cls(operator=secrets.token_urlsafe(24), scanner=secrets.token_urlsafe(24))

    @property
    def principal_tokens(self) -> str:
        return f"operator:{self.operator},scanner:{self.scanner}"


@dataclass(frozen=True)
class Service:
    """A running service process."""

    name: str
    child: Child

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.child.ready_value}"

    def cpu_seconds(self) -> float:
        return tree_seconds(self.child.pid)


class Infra:
    """Owns every process and folder a benchmark run starts (see the module docstring)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.tokens = Tokens.new()
        self._stack = contextlib.ExitStack()
        self._workdir: Path | None = None
        self._cluster: EmbeddedCluster | None = None
        self.admin_url = ""

    def __enter__(self) -> Infra:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything started, newest first."""
        self._stack.close()

    # ------------------------------------------------------------------ PostgreSQL

    def database(self) -> str:
        """Start and migrate the embedded PostgreSQL; returns the superuser URL."""
        self._workdir = Path(tempfile.mkdtemp(prefix="oracle-bench-"))
        self._stack.callback(shutil.rmtree, self._workdir, ignore_errors=True)
        cluster = EmbeddedCluster(self._workdir / "pgdata")
        self._cluster = cluster
        self._stack.callback(_quietly, cluster.stop)
        self.admin_url = cluster.start()
        migrate(self.admin_url)
        return self.admin_url

    def role_url(self, service: str) -> str:
        """``service``'s own least-privilege role on the benchmark database."""
        return role_url(self.admin_url, SERVICE_ROLES[service])

    def postgres_cpu_seconds(self) -> float:
        """CPU seconds of the postmaster and its current backends."""
        if self._cluster is None:
            return 0.0
        try:
            pid = int((self._cluster.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        return tree_seconds(pid)

    def wal_position(self) -> int:
        """Where PostgreSQL's write-ahead log is (bytes since its start): the difference between
        two readings is the WAL written in between, at once (the statistics views lag by up to a
        second)."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        return int(row[0]) if row is not None else 0

    # ------------------------------------------------------------------ processes

    def simulator(self, *, seed: int = 42) -> Service:
        """``python -m sim.bitvavo`` on a free loopback port; its base URL is ``ready_value``."""
        argv = [sys.executable, "-m", "sim.bitvavo", "--host", "127.0.0.1", "--port", "0", "--seed", str(seed)]
        child = spawn("bitvavo-sim", argv, _base_env(), self.logs / "bitvavo-sim.log", ready=printed_url)
        self._own([child])
        return Service("bitvavo-sim", child)

    def services(self, module: str, envs: Sequence[Mapping[str, str]], *, name: str) -> list[Service]:
        """Start one ``python -m module`` process per environment and wait until each answers its
        health check. They stop when the enclosing :meth:`group` closes.

        Started one after the other from this (the main) thread on purpose: a child gets SIGTERM
        when the *thread* that started it ends (PR_SET_PDEATHSIG), so a pool thread must not."""
        started: list[Service] = []
        for index, env in enumerate(envs):
            label = f"{name}-{index}"
            argv = [sys.executable, "-m", module]
            child = spawn(label, argv, {**_base_env(), **env}, self.logs / f"{label}.log", ready=listening_port)
            self._own([child])
            started.append(Service(label, child))
        for service in started:
            wait_serving(service.target)
        return started

    def group(self) -> contextlib.ExitStack:
        """A nested scope: processes started inside it stop when it closes (e.g. one benchmark's
        services), the rest keeps running."""
        outer = self._stack
        inner = contextlib.ExitStack()
        self._stack = inner

        def restore() -> None:
            self._stack = outer

        inner.callback(restore)
        outer.push(inner)  # stopped by the outer scope too should the inner one never close
        return inner

    def _own(self, children: Sequence[Child]) -> None:
        self._stack.callback(stop_all, list(children))


def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM to all, then wait for each (SIGKILL after STOP_SECONDS)."""
    for child in children:
        child.terminate()
    for child in children:
        _quietly(functools.partial(child.wait, STOP_SECONDS))


def _base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _quietly(action: Callable[[], object]) -> None:
    """Run a clean-up step; a failure must not keep the next ones from running."""
    with contextlib.suppress(Exception):
        action()
