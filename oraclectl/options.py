"""The options every oraclectl command shares, and the per-invocation state behind them.

Connection options (addresses, token, timeout) are global: ``oraclectl --executor-addr … execute
ID``. ``--json`` works in both places (``oraclectl --json proposals list`` and ``oraclectl
proposals list --json``); ``--user`` belongs to each command that acts for a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import defaults, localstack
from oraclectl.output import Output
from oraclectl.session import Session


@dataclass
class State:
    """What the root callback parsed; main() reads ``json`` to render a failure."""

    session: Session | None = None
    json: bool = False
    status_file: Path | None = None  # the local stack's status.json, when oraclectl uses its token

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def use(ctx: typer.Context, json_flag: bool = False) -> tuple[Session, Output]:
    """The invocation's session and output (``json_flag``: the command's own --json)."""
    state: State = ctx.find_root().obj
    state.json = state.json or json_flag
    if state.session is None:  # only when a command is invoked without the root callback (tests)
        raise RuntimeError("oraclectl session not initialised")
    exchange = localstack.executor_exchange(state.status_file, state.session.executor_addr)
    return state.session, Output(state.json, exchange=exchange)


UserOption = Annotated[
    str,
    typer.Option(
        "--user",
        "-u",
        envvar="ORACLE_USER",
        show_envvar=True,
        help="The user to act for.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as protobuf JSON (for scripts).")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=500, help="Page size.")]
ExpectedVersionOption = Annotated[
    int | None, typer.Option(help="Fail (exit 9) unless the stored version is this; default: read it first.")
]
PageTokenOption = Annotated[str, typer.Option("--page-token", help="Continue from a previous page.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; recorded in the audit trail.")]
GlobalOption = Annotated[bool, typer.Option("--global", help="The whole account (every user), not one user.")]


def scope_fields(everyone: bool, user: str) -> dict[str, Any]:
    """The ``scope`` and ``user_id`` of a kill-switch or trading-state request (``everyone``: --global)."""
    if everyone:
        return {"scope": executor_pb2.KILL_SWITCH_SCOPE_GLOBAL, "user_id": ""}
    return {"scope": executor_pb2.KILL_SWITCH_SCOPE_USER, "user_id": user}


DEFAULT_USER = defaults.DEMO_USER
