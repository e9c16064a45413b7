"""Real budget servers for the budget tests: in-process or as processes.

In-process servers are built exactly as ``python -m services.budget`` builds them
(``services.budget.app.build`` + ``shared.bootstrap.start_service``). The service has no clock of
its own: tests move the database's (tests/support/database_clock.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from oracle.budget.v1 import budget_service_pb2 as pb
from oracle.budget.v1 import budget_service_pb2_grpc as pb_grpc

from services.budget.app import build
from services.budget.config import load_settings
from shared.bootstrap import open_database, start_service
from shared.errors import ErrorReport, from_rpc_error
from tests.harness import OPERATOR_TOKEN, PRINCIPAL_TOKENS, Postgres, channel
from tests.support.database_clock import DatabaseClock, database_clock

# A fixed, ordinary moment for tests that move time themselves.
NOON = datetime(2031, 3, 12, 12, 0, tzinfo=UTC)


def service_env(postgres: Postgres, **overrides: str) -> dict[str, str]:
    """The budget service's environment for tests; ``overrides`` by field name (no prefix)."""
    env = {
        "BUDGET_DATABASE_URL": postgres.url("budget"),
        "BUDGET_PRINCIPAL_TOKENS": PRINCIPAL_TOKENS,
        "BUDGET_DB_HEALTH_INTERVAL_SECONDS": "5",
        "BUDGET_SWEEP_INTERVAL_SECONDS": "3600",  # tests that sweep ask for it
    }
    env.update({f"BUDGET_{name.upper()}": value for name, value in overrides.items()})
    return env


@dataclass
class Budget:
    """A running in-process budget server, the database's clock and a stub (operator principal)."""

    stub: pb_grpc.BudgetServiceStub
    clock: DatabaseClock
    port: int
    postgres: Postgres
    health_port: int | None = None  # the plaintext health port, when one is configured

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_limits(self, user_id: str, daily: int, hourly: int, tokens: int = 0, cost: int = 0) -> None:
        self.stub.SetLimits(
            pb.SetLimitsRequest(
                user_id=user_id,
                limits=pb.Limits(daily_calls=daily, hourly_calls=hourly, daily_tokens=tokens, daily_cost_micros=cost),
            )
        )

    def reserve(
        self, user_id: str, *, prompt: int = 100, max_tokens: int = 200, model: str = "gpt-4o-mini"
    ) -> pb.Reservation:
        reply: pb.ReserveCallResponse = self.stub.ReserveCall(
            pb.ReserveCallRequest(
                user_id=user_id,
                purpose="test",
                model=model,
                estimated_prompt_tokens=prompt,
                requested_max_tokens=max_tokens,
            )
        )
        return reply.reservation

    def refused(self, user_id: str, **kwargs: Any) -> ErrorReport:
        """Reserve, expecting a refusal; returns what the server answered."""
        return failure(lambda: self.reserve(user_id, **kwargs))

    def usage(self, user_id: str) -> dict[int, pb.WindowUsage]:
        """GetUsage by window."""
        reply = self.stub.GetUsage(pb.GetUsageRequest(user_id=user_id))
        return {w.window: w for w in reply.windows}

    def rows(self, user_id: str) -> list[dict[str, Any]]:
        """The user's usage log rows, read as the superuser (not through the service)."""
        with self.postgres.admin() as conn:
            cur = conn.execute(
                "SELECT reservation_id::text AS reservation_id, status, max_tokens, estimated_tokens,"
                " estimated_cost_micros, prompt_tokens, completion_tokens, cost_micros, reserved_at, expires_at,"
                " committed_at, released_at FROM oracle.gpt_usage_log WHERE user_id = %s ORDER BY reserved_at",
                (user_id,),
            )
            names = [c.name for c in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def failure(call: Any) -> ErrorReport:
    """Run ``call``, which must fail with a gRPC error; returns the decoded error."""
    try:
        call()
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    raise AssertionError("the call succeeded but was expected to fail")


@contextmanager
def in_process_budget(postgres: Postgres, **overrides: str) -> Iterator[Budget]:
    """A budget server in this process, built like the real one, with the database's clock
    frozen at NOON (released afterwards)."""
    settings = load_settings(service_env(postgres, **overrides))
    with database_clock(postgres.admin_url, NOON) as clock:
        db = open_database(settings, service="budget", role="oracle_budget")
        bindings, hooks = build(settings, db)
        running = start_service(service="budget", settings=settings, db=db, bindings=bindings)
        running.on_shutdown.extend(hooks)
        chan = channel(running.port, OPERATOR_TOKEN)
        try:
            yield Budget(pb_grpc.BudgetServiceStub(chan), clock, running.port, postgres, running.health_port)
        finally:
            chan.close()
            running.grace_seconds = 0
            running.shutdown()
