"""The scanner as its own OS process: key separation (docs/design.md#key-separation) and crash recovery.

``python -m services.scanner`` refuses to start with a trade key in its environment (naming the
variable) or with an exchange key that can trade; a running scanner holds no trade key, and the
exchange refuses an order signed with its key. A scanner killed with SIGKILL while holding jobs
loses them to another instance once the lease runs out, with no cleanup step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from python_bitvavo_api.bitvavo import Bitvavo

from services.scanner.config import trade_key_variables
from sim.bitvavo import DEFAULT_TRADE_KEY, DEFAULT_TRADE_SECRET, DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET
from tests.harness import PROJECT_ROOT, Postgres, eventually, new_user_id, running_process, start_process
from tests.integration.scanner.kit import Exchange, assembled, insert_due_job, rows, scan_runs, scanner_env

MODULE = "services.scanner"


def run_to_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    "variable",
    ["EXECUTOR_BITVAVO_API_KEY", "EXECUTOR_BITVAVO_API_SECRET", "SCANNER_TRADE_KEY", "bitvavo_trade_secret"],
)
def test_refuses_to_start_with_a_trade_key_in_its_environment(
    postgres: Postgres, exchange: Exchange, variable: str
) -> None:
    env = scanner_env(postgres, exchange.url)
    env[variable] = DEFAULT_TRADE_KEY
    result = run_to_exit(env)
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr
    assert DEFAULT_TRADE_KEY not in result.stderr + result.stdout, "the key itself must never be printed"


def test_refuses_to_start_when_its_own_key_can_trade(postgres: Postgres, exchange: Exchange) -> None:
    env = scanner_env(
        postgres, exchange.url, bitvavo_api_key=DEFAULT_TRADE_KEY, bitvavo_api_secret=DEFAULT_TRADE_SECRET
    )
    result = run_to_exit(env)
    assert result.returncode == 3, result.stderr
    assert "SCANNER_BITVAVO_API_KEY" in result.stderr
    assert exchange.admin.order_count() == 0


def test_the_running_scanner_has_no_trade_key_and_its_key_cannot_trade(
    postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    env = scanner_env(postgres, exchange.url, bitvavo_api_key=DEFAULT_VIEW_KEY, bitvavo_api_secret=DEFAULT_VIEW_SECRET)
    with running_process(MODULE, env, tmp_path / "scanner.log") as proc:
        raw = Path(f"/proc/{proc.proc.pid}/environ").read_bytes()
        environ = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        assert trade_key_variables(environ) == []
        assert not [name for name in environ if name.startswith("EXECUTOR_")]
        assert not [
            name for name, value in environ.items() if DEFAULT_TRADE_KEY in value or DEFAULT_TRADE_SECRET in value
        ]
        scanner_key = environ["SCANNER_BITVAVO_API_KEY"]
        scanner_secret = environ["SCANNER_BITVAVO_API_SECRET"]

    sdk = Bitvavo({"restUrl": exchange.url, "apikey": scanner_key, "apisecret": scanner_secret, "timeout": 5})
    answer = sdk.placeOrder("BTC-EUR", "buy", "market", {"amountQuote": "10", "operatorId": 1})
    assert answer.get("errorCode") == 310, answer
    assert exchange.admin.post_order_count(scanner_key) == 1  # it arrived, and was refused
    assert exchange.admin.order_count() == 0


def test_a_killed_instance_loses_its_jobs_to_another_after_the_lease(
    private_postgres: Postgres, exchange: Exchange, tmp_path: Path
) -> None:
    pg = private_postgres
    now = datetime.now(UTC)
    jobs = [insert_due_job(pg, new_user_id("crash"), ["BTC-EUR"], due=now) for _ in range(6)]
    # The first market-data request of instance A hangs: A is then mid-cycle, holding every job.
    exchange.admin.add_latency(30, path="/markets", count=1)
    env = scanner_env(
        pg,
        exchange.url,
        scheduler_enabled="true",
        instance_id="crash-a",
        lease_seconds="3",
        heartbeat_interval_seconds="0.5",
        exchange_timeout_seconds="60",
        bitvavo_api_key=DEFAULT_VIEW_KEY,
        bitvavo_api_secret=DEFAULT_VIEW_SECRET,
    )

    def held_by_a() -> list[dict[str, Any]]:
        return rows(pg, "SELECT * FROM oracle.scan_jobs WHERE locked_by = 'crash-a'")

    proc = start_process(MODULE, env, tmp_path / "crash-a.log")
    try:
        assert eventually(lambda: len(held_by_a()) == len(jobs)), proc.logs()
        assert eventually(lambda: exchange.count("/markets") >= 1)
        claimed_until = {r["job_id"]: r["lock_expires_at"] for r in held_by_a()}
        # A is stuck on the hung request: only its heartbeats can move the leases forward.
        assert eventually(lambda: all(r["lock_expires_at"] > claimed_until[r["job_id"]] for r in held_by_a())), (
            "no heartbeat"
        )
    finally:
        proc.kill()
    held = {str(r["job_id"]): r for r in held_by_a()}
    assert set(held) == set(jobs)

    with assembled(pg, exchange.url, instance_id="crash-b", lease_seconds="3") as b:
        claimed = b.scheduler.run_once()
        # Right after the kill A's leases are live and B claims nothing; on a slow machine B may
        # take longer than the 3 s lease to start, and then it may claim what has expired since
        # (never a live lease: every run's start is checked against its lease below).
        first_expiry = min(r["lock_expires_at"] for r in held.values())
        assert claimed == 0 or datetime.now(UTC) >= first_expiry, "B claimed a live lease"
        deadline = time.monotonic() + 120  # bounds a failing test only: the loop ends when all ran
        while time.monotonic() < deadline and len(scan_runs(pg)) < len(jobs):
            b.scheduler.run_once()
            time.sleep(0.2)

    runs = {r["job_id"]: r for r in scan_runs(pg)}
    assert set(runs) == set(jobs)
    for job_id, run in runs.items():
        assert run["instance"] == "crash-b"
        assert run["fencing_token"] == held[job_id]["fencing_token"] + 1
        assert datetime.fromisoformat(str(run["started_at"])) >= held[job_id]["lock_expires_at"]
    assert not [r for r in rows(pg, "SELECT * FROM oracle.scan_jobs") if r["locked_by"] is not None]
