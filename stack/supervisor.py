"""The supervisor: brings the stack up in order, shows the cycles, and takes it down in order.

Up: PostgreSQL (embedded in ``.pgdata/`` unless DATABASE_URL is set) → migrations → exchange and
LLM simulators → budget and executor → scanner (which needs both) → health checks → seeding.
Down (Ctrl-C, SIGTERM, or after ``--cycles N``): the scanner first so no new work starts, one
reconciler pass, executor and budget with SIGTERM (their graceful shutdown lets calls in flight
finish), then the simulators, then PostgreSQL with a fast shutdown, which keeps every committed
row. A second Ctrl-C during the shutdown is ignored: stopping halfway would be worse.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.console import Console

from oraclectl import defaults
from oraclectl.session import CliError, Session
from shared import certs
from shared.db.embedded import SERVICE_ROLES, EmbeddedCluster, role_url
from shared.db.migrate import migrate
from shared.errors import InvariantBroken
from shared.tls import TlsFiles
from sim.bitvavo.admin import SimulatorAdmin
from sim.llm import MODEL as SIM_LLM_MODEL
from stack import console as view
from stack import demo, environments
from stack.credentials import SIM_ACCOUNT, Credentials
from stack.cycles import CycleReport, CycleWatcher, Totals
from stack.layout import Layout
from stack.processes import Child, listening_port, metrics_url, printed_url, spawn, wait_serving

STOP_TIMEOUT = 20.0  # seconds a child may take after SIGTERM before it is killed


@dataclass(frozen=True)
class Options:
    """How ``python -m stack run`` was asked to run."""

    state_dir: Path | None = None
    pgdata: Path | None = None
    ports: tuple[int, int, int] | None = (defaults.SCANNER_PORT, defaults.EXECUTOR_PORT, defaults.BUDGET_PORT)
    cycles: int = 0  # 0: until Ctrl-C
    keep_serving: bool = False  # after --cycles N, keep the services up until Ctrl-C
    interval_seconds: int = 30
    user: str = defaults.DEMO_USER
    exchange_seed: int = 42
    tls: bool = False  # TLS with client certificates between every party (certificates made per run)


class StackError(RuntimeError):
    """The stack cannot start or keep running; the message says why."""


@dataclass
class Stack:
    """One run of the local stack."""

    options: Options
    console: Console
    environ: Mapping[str, str]
    layout: Layout = field(init=False)
    plan: environments.Plan = field(init=False)
    credentials: Credentials = field(default_factory=Credentials)
    cluster: EmbeddedCluster | None = None
    children: dict[str, Child] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    session: Session | None = None
    _last_table: tuple[int, tuple[tuple[str, str, int, str], ...]] | None = None  # the last cycle table shown
    _database: str = ""
    _admin_url: str = field(default="", repr=False)
    _job_id: str = ""
    _state: str = "starting"
    _started_at: float = field(default_factory=time.time)  # wall clock: scan runs are stamped in UTC

    def __post_init__(self) -> None:
        self.layout = Layout.make(self.options.state_dir, self.options.pgdata)
        self.plan = environments.Plan.of(self.environ)

    # ------------------------------------------------------------------ the whole life
    def run(self) -> int:
        """Start, show cycles, stop. Returns the process exit code."""
        self.layout.prepare()
        with _exclusive(self.layout.lock_file) as locked:
            if not locked:
                raise StackError(f"another stack is running with the state folder {self.layout.state_dir}")
            # Installed explicitly: a shell may start a background job with SIGINT ignored.
            previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
            try:
                self._start()
                self._show_cycles()
            except KeyboardInterrupt:
                self.console.print("\n[bold]Stopping the stack…[/bold]")
            finally:
                self._stop()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        self.console.print(view.summary_table(self.totals))
        return 0

    # ------------------------------------------------------------------ up
    def _start(self) -> None:
        self._write_status()
        self._check_ports()
        self._start_database()
        exchange_url = self._start_exchange_simulator() if self.plan.needs_exchange_simulator else ""
        llm_url = self._start_llm_simulator() if self.plan.needs_llm_simulator else ""
        self.console.print(view.banner(self.plan, exchange_url, llm_url, self._database))
        if self.options.tls:
            certs.write_all(self.layout.certs)  # a new CA and certificates each run, like the tokens
            self.console.print(f"TLS with client certificates: CA and certificates in {_shown(self.layout.certs)}")
        wiring = environments.Wiring(
            credentials=self.credentials,
            database_urls={s: self._role_url(s) for s in SERVICE_ROLES},
            exchange_url=exchange_url,
            llm_url=llm_url,
            llm_api_key=self.credentials.llm_api_key,
            llm_model=SIM_LLM_MODEL,
            certs=self.layout.certs if self.options.tls else None,
        )
        self.credentials.save_operator_token(self.layout)
        self._start_service("budget", environments.budget(self._listen(2), wiring, self.environ))
        self._start_service("executor", environments.executor(self._listen(1), wiring, self.environ, self.plan))
        scanner_env = environments.scanner(
            self._listen(0),
            wiring,
            self.environ,
            self.plan,
            budget_addr=self.addresses["budget"],
            executor_addr=self.addresses["executor"],
        )
        self._start_service("scanner", scanner_env)
        self.session = Session(
            scanner_addr=self.addresses["scanner"],
            executor_addr=self.addresses["executor"],
            budget_addr=self.addresses["budget"],
            token=self.credentials.operator_token,
            timeout=30.0,
            tls=self._operator_tls(),
        )
        seeded = demo.seed(self.session, user=self.options.user, interval_seconds=self.options.interval_seconds)
        self._announce(seeded, demo.live_policy(self.session, self.options.user))
        self._state = "running"
        self._job_id = seeded.job_id
        self._write_status()

    def _check_ports(self) -> None:
        """Fail fast, and say why, when a fixed port is taken."""
        if self.options.ports is None:
            return
        for name, port in zip(("scanner", "executor", "budget"), self.options.ports, strict=True):
            with socket.socket() as probe:
                # As the gRPC servers bind: a port whose last connections linger in TIME_WAIT
                # after a stop is free to them, so it is free here too.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise StackError(
                        f"port {port} ({name}) is in use: is another stack running? "
                        "Stop it, or start this one with --ports auto"
                    ) from None

    def _start_database(self) -> None:
        admin_url = self.environ.get("DATABASE_URL", "")
        with self.console.status("starting PostgreSQL…"):
            if admin_url:
                self._database = "DATABASE_URL"
            else:
                self.cluster = EmbeddedCluster(self.layout.pgdata, keep_running=True)
                admin_url = self.cluster.start()
                self._database = f"embedded, data in {_shown(self.layout.pgdata)}"
            applied = migrate(admin_url)
        self._admin_url = admin_url
        self.console.print(
            f"PostgreSQL ready ({self._database}); migrations: {len(applied)} applied"
            + (f" ({', '.join(applied)})" if applied else ", schema up to date")
        )

    def _role_url(self, service: str) -> str:
        return role_url(self._admin_url, SERVICE_ROLES[service])

    def _start_exchange_simulator(self) -> str:
        config = {
            "keys": self.credentials.exchange_keys(),
            "accounts": {SIM_ACCOUNT: {symbol: str(amount) for symbol, amount in demo.SIM_BALANCES.items()}},
        }
        self.layout.write_private(self.layout.exchange_keys_file, json.dumps(config, indent=2) + "\n")
        argv = [
            sys.executable, "-m", "sim.bitvavo", "--port", "0", "--no-default-keys",
            "--config", str(self.layout.exchange_keys_file), "--seed", str(self.options.exchange_seed),
        ]  # fmt: skip
        child = self._spawn("exchange-sim", argv, environments.simulator(self.environ), printed_url)
        self.addresses["exchange-sim"] = child.ready_value
        return child.ready_value

    def _start_llm_simulator(self) -> str:
        # The simulator takes its key on the command line (it guards nothing but a simulator); as
        # --api-key=KEY, since a token_urlsafe key may start with "-", which argparse reads as an option.
        argv = [sys.executable, "-m", "sim.llm", "--port", "0", f"--api-key={self.credentials.llm_api_key}"]
        child = self._spawn("llm-sim", argv, environments.simulator(self.environ), printed_url)
        self.addresses["llm-sim"] = child.ready_value
        return child.ready_value

    def _listen(self, index: int) -> str:
        port = 0 if self.options.ports is None else self.options.ports[index]
        return f"127.0.0.1:{port}"

    def _start_service(self, name: str, env: dict[str, str]) -> None:
        child = self._spawn(name, [sys.executable, "-m", f"services.{name}"], env, listening_port)
        self.addresses[name] = f"127.0.0.1:{child.ready_value}"
        self.addresses[f"{name}-metrics"] = metrics_url(child.log_path)
        self.console.print(f"{name} metrics (Prometheus): {self.addresses[f'{name}-metrics']}")
        with self.console.status(f"waiting for {name} to be SERVING…"):
            wait_serving(self.addresses[name], tls=self._operator_tls())
        self._write_status()

    def _operator_tls(self) -> TlsFiles | None:
        """The operator's certificate in TLS mode (what oraclectl and grpcurl present)."""
        if not self.options.tls:
            return None
        return TlsFiles(
            self.layout.certs / "operator.crt", self.layout.certs / "operator.key", self.layout.certs / "ca-bundle.crt"
        )

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str], ready: Callable[[str], str | None]) -> Child:
        log_path = self.layout.logs / f"{name}.log"
        with self.console.status(f"starting {name}…"):
            child = spawn(name, argv, env, log_path, ready=ready)
        self.children[name] = child
        self.console.print(f"{name} started (pid {child.pid})")
        self._write_status()
        return child

    def _announce(self, seeded: demo.Seeded, policy: executor_pb2.GetPolicyResponse) -> None:
        endpoints = [
            view.Endpoint(name, self.addresses.get(name, ""), child.pid, _shown(child.log_path))
            for name, child in self.children.items()
        ]
        if self.cluster is not None:
            endpoints.append(view.Endpoint("postgresql", "unix socket", _postmaster_pid(self.layout.pgdata), ""))
        self.console.print(view.endpoints_table(endpoints))
        self.console.print(view.going_live(), soft_wrap=True)
        self.console.print(view.scenario(policy))
        notice = view.trading_notice(policy)
        if notice is not None:
            self.console.print(notice, soft_wrap=True)
        what = "created" if seeded.policy_created else f"kept (version {seeded.policy_version})"
        job = "created" if seeded.job_created else "kept"
        self.console.print(f"Demo user '{seeded.user}': policy {what}, scan job {seeded.job_id} {job}.")
        if seeded.job_paused:
            self.console.print(
                f"[yellow]The demo scan job is paused: resume it with 'oraclectl jobs resume {seeded.job_id}'.[/yellow]"
            )
        default_layout = self.options.state_dir is None
        self.console.print(
            view.how_to_reach(
                self.addresses,
                _shown(self.layout.token_file),
                default_layout,
                seeded.user,
                certs=_shown(self.layout.certs) if self.options.tls else None,
            ),
            soft_wrap=True,
        )

    # ------------------------------------------------------------------ running
    def _operator(self) -> Session:
        """The operator's session, opened once every service is up (before any cycle is shown)."""
        if self.session is None:
            raise InvariantBroken("no operator session: the services are not up")
        return self.session

    def _show_cycles(self) -> None:
        session = self._operator()
        admin = SimulatorAdmin(self.addresses["exchange-sim"]) if "exchange-sim" in self.addresses else None

        def count_orders() -> int | None:
            try:
                return None if admin is None else admin.order_count()
            except Exception:  # the count is decoration: never stop the demo for it
                return None

        try:
            self._follow(CycleWatcher(session, self.options.user, self._job_id, count_orders, since=self._started_at))
        finally:
            if admin is not None:
                admin.close()

    def _follow(self, watcher: CycleWatcher) -> None:
        target = self.options.cycles
        with self.console.status("waiting for the first scan…") as status:
            while target == 0 or self.totals.cycles < target:
                self._check_children()
                try:
                    report = watcher.poll()
                except CliError as error:
                    status.update(f"the scanner did not answer ({error.message}); retrying…")
                    time.sleep(1)
                    continue
                if report is not None:
                    self._show(report)
                    continue
                wait = watcher.seconds_to_next_run()
                if watcher.job is None:
                    due = "the demo job was deleted; the next make run creates it again"
                else:
                    due = "paused" if wait is None else ("due now" if wait < 1 else f"next scan in {wait:.0f}s")
                status.update(f"cycle {self.totals.cycles + 1}: waiting for the scanner ({due})…")
                time.sleep(0.5)
        if self.options.keep_serving:
            self.console.print(f"{self.totals.cycles} cycle(s) shown; still serving. Ctrl-C stops everything.")
            while True:
                self._check_children()
                time.sleep(0.5)

    def _show(self, report: CycleReport) -> None:
        session = self._operator()
        proposals: dict[str, scanner_pb2.Proposal] = {}
        with contextlib.suppress(CliError):
            request = scanner_pb2.ListProposalsRequest(user_id=self.options.user, page_size=100)
            reply = session.call("scanner", session.scanner().ListProposals, request)
            proposals = {p.proposal_id: p for p in reply.proposals}
        notice = None
        kill_switch_on = True
        with contextlib.suppress(CliError):
            live = demo.live_policy(session, self.options.user)
            notice = view.trading_notice(live)
            kill_switch_on = live.account.trading_enabled
        # a cycle whose every market ended as the last shown table's did gets one line, not the table again
        same = self._last_table if self._last_table and self._last_table[1] == report.outcome_rows() else None
        if same is None:
            self._last_table = (report.number, report.outcome_rows())
        view_ = view.cycle_view(
            report, proposals, notice, same_as=None if same is None else same[0], kill_switch_on=kill_switch_on
        )
        self.console.print(view_, soft_wrap=True)
        self.totals.add(report)
        self._write_status()

    def _check_children(self) -> None:
        for name, child in self.children.items():
            if not child.alive():
                raise StackError(f"{name} exited (code {child.proc.returncode}); its log:\n{child.log_tail()}")

    # ------------------------------------------------------------------ down
    def _stop(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish the shutdown whatever happens
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self._state = "stopping"
        self._write_status()
        with self.console.status("stopping the stack…"):
            self._stop_group("scanner")
            self._reconcile()
            self._stop_group("executor", "budget")
            self._stop_group("llm-sim", "exchange-sim")
            if self.session is not None:
                self.session.close()
            if self.cluster is not None:
                try:
                    self.cluster.stop()
                    self.console.print("PostgreSQL stopped (data kept)")
                except Exception as exc:  # the server may never have started
                    self.console.print(f"PostgreSQL: {exc}")
        self._state = "stopped"
        self._write_status()

    def _stop_group(self, *names: str) -> None:
        group = [self.children[n] for n in names if n in self.children]
        for child in group:
            child.terminate()
        for child in group:
            code = child.wait(STOP_TIMEOUT)
            note = "" if code in (0, -signal.SIGTERM) else f" (exit code {code}; see {_shown(child.log_path)})"
            self.console.print(f"{child.name} stopped{note}")

    def _reconcile(self) -> None:
        """One reconciler pass before the executor stops, so no order is left unresolved."""
        if self.session is None or "executor" not in self.children or not self.children["executor"].alive():
            return
        with contextlib.suppress(CliError):
            reply = self.session.call(
                "executor", self.session.executor().ReconcileExecutions, executor_pb2.ReconcileExecutionsRequest()
            )
            self.console.print(
                f"reconciled: {reply.examined} examined, {reply.changed} changed, {reply.unresolved} unresolved"
            )

    # ------------------------------------------------------------------ status.json
    def _write_status(self) -> None:
        pids = {name: child.pid for name, child in self.children.items()}
        if self.cluster is not None:
            pids["postgresql"] = _postmaster_pid(self.layout.pgdata)
        self.layout.write_status(
            {
                "pid": os.getpid(),
                "state": self._state,
                "cycles": self.totals.cycles,
                "executed": self.totals.executed,
                "rejected": self.totals.rejected,
                "user": self.options.user,
                "job_id": self._job_id,
                "addresses": dict(self.addresses),
                "pids": pids,
                "token_file": str(self.layout.token_file),
                "tls_certs": str(self.layout.certs) if self.options.tls else None,
                # oraclectl says "live (simulated exchange)" from this (oraclectl/localstack.py)
                "executor_exchange": "real" if self.plan.real_exchange_executor else "simulator",
                "pgdata": None if self.cluster is None else str(self.layout.pgdata),
            }
        )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C (SIGINT) and SIGTERM: the same orderly stop."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """An advisory lock on ``path`` for as long as the block runs (released if we die)."""
    handle: IO[str] = path.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()


def _postmaster_pid(pgdata: Path) -> int:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _shown(path: Path) -> str:
    """A path as short as it can be said: relative to the project when inside it."""
    try:
        return str(path.relative_to(defaults.PROJECT_ROOT))
    except ValueError:
        return str(path)
