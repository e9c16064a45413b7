"""``python -m services.executor`` as production runs it: it says its mode and refuses a
configuration that could move money wrongly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from oracle.executor.v1 import executor_service_pb2 as pb

from sim.bitvavo import DEFAULT_VIEW_KEY, DEFAULT_VIEW_SECRET
from tests.harness import PROJECT_ROOT, Postgres
from tests.integration.executor.kit import MODULE, Exchange, process_executor, seed_proposal, service_env, user


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", MODULE],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_mode_no_start(postgres: Postgres, exchange: Exchange) -> None:
    env = service_env(postgres, exchange.url, mode="")
    done = run_to_exit(env)
    assert done.returncode == 2
    assert "EXECUTOR_MODE" in done.stderr


def test_the_retired_account_cap_variable_refuses_to_start(postgres: Postgres, exchange: Exchange) -> None:
    """The account cap lives in the database: a leftover EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR
    stops the process with a message that says where the cap is set now, instead of being ignored."""
    env = service_env(postgres, exchange.url, account_daily_notional_cap_eur="25")
    done = run_to_exit(env)
    assert done.returncode == 2
    assert "configuration error: EXECUTOR_ACCOUNT_DAILY_NOTIONAL_CAP_EUR" in done.stderr
    assert "database" in done.stderr and "UpdateAccountSettings" in done.stderr
    assert "oraclectl account set --daily-notional-cap-eur" in done.stderr
    assert exchange.post_count() == 0


def test_live_with_a_view_only_key_refuses_to_start(postgres: Postgres, exchange: Exchange) -> None:
    env = service_env(
        postgres,
        exchange.url,
        bitvavo_api_key=DEFAULT_VIEW_KEY,
        bitvavo_api_secret=DEFAULT_VIEW_SECRET,
    )
    done = run_to_exit(env)
    assert done.returncode == 2
    assert "refusing to start" in done.stderr
    assert DEFAULT_VIEW_SECRET not in done.stderr + done.stdout
    assert exchange.post_count() == 0


def test_live_and_paper_processes_say_their_mode(postgres: Postgres, exchange: Exchange, tmp_path: Path) -> None:
    uid = user()
    with process_executor(postgres, exchange.url, tmp_path / "live.log") as (ex, proc):
        assert "EXECUTOR MODE: LIVE" in proc.logs()
        ex.set_policy(uid)
        assert ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR"))).mode == (
            pb.EXECUTION_MODE_LIVE
        )
    with process_executor(postgres, exchange.url, tmp_path / "paper.log", mode="paper") as (ex, proc):
        assert "EXECUTOR MODE: PAPER" in proc.logs()
        execution = ex.execute(uid, seed_proposal(postgres, uid, price=exchange.price("BTC-EUR")))
        assert execution.mode == pb.EXECUTION_MODE_PAPER
    assert exchange.post_count() == 1
