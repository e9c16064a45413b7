"""``oraclectl account show|set``: the settings every user of the deployment's one exchange account
shares (the account daily notional cap), kept in the database so every executor replica enforces
the same value; read-modify-write on their version. The global kill switch is
``oraclectl trading off|on --global``."""

from __future__ import annotations

from typing import Annotated

import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import arguments, output
from oraclectl.defaults import DEMO_USER
from oraclectl.options import ExpectedVersionOption, JsonOption, use
from oraclectl.session import Session, read_modify_write

app = typer.Typer(
    help="Account-wide settings (the account daily notional cap), shared by every user.", no_args_is_help=True
)

_ATTEMPTS = 2  # an ABORTED update is re-read and re-applied once before giving up

# GetPolicy carries the account settings beside a user's policy; whichever user is named, the
# account part is the same, so any well-formed user id reads it.
_ANY_USER = DEMO_USER


def read_settings(session: Session) -> executor_pb2.AccountSettings:
    """The live account settings (with their version)."""
    reply = session.call("executor", session.executor().GetPolicy, executor_pb2.GetPolicyRequest(user_id=_ANY_USER))
    settings: executor_pb2.AccountSettings = reply.account
    return settings


@app.command("show")
def show_account(ctx: typer.Context, json_flag: JsonOption = False) -> None:
    """Show the account settings: global kill switch, account daily notional cap, version."""
    session, out = use(ctx, json_flag)
    reply = executor_pb2.UpdateAccountSettingsResponse(settings=read_settings(session))
    out.result(reply, output.account_detail(reply.settings))


@app.command("set")
def set_account(
    ctx: typer.Context,
    *,
    daily_notional_cap_eur: Annotated[
        str | None,
        typer.Option(help="EUR all users together may claim per UTC day (at most 2 decimals; 0 refuses every order)."),
    ] = None,
    daily_loss_limit_eur: Annotated[
        str | None,
        typer.Option(help="Loss breaker: the account's daily loss that moves it to REDUCING ('' = no limit)."),
    ] = None,
    expected_version: ExpectedVersionOption = None,
    json_flag: JsonOption = False,
) -> None:
    """Change account settings; every other setting keeps its value (audited; executions in
    flight finish first, every later claim enforces the new value).

    Reads the settings, applies the flags and writes them back with the version it read; when a concurrent change wins it reads again and re-applies once (unless --expected-version is given).
    """
    if daily_notional_cap_eur is None and daily_loss_limit_eur is None:
        raise typer.BadParameter("nothing to change: give at least one setting flag")
    cap = (
        None
        if daily_notional_cap_eur is None
        else arguments.decimal_text(daily_notional_cap_eur, "--daily-notional-cap-eur")
    )
    loss = (
        daily_loss_limit_eur
        if not daily_loss_limit_eur
        else arguments.decimal_text(daily_loss_limit_eur, "--daily-loss-limit-eur")
    )
    session, out = use(ctx, json_flag)
    reply = read_modify_write(
        lambda: _update_once(session, cap, loss, expected_version),
        expected_version=expected_version,
        attempts=_ATTEMPTS,
    )
    out.result(reply, output.account_detail(reply.settings))


def _update_once(
    session: Session, cap: str | None, loss: str | None, expected_version: int | None
) -> executor_pb2.UpdateAccountSettingsResponse:
    current = read_settings(session)
    settings = executor_pb2.AccountSettings()
    settings.CopyFrom(current)
    if cap is not None:
        settings.daily_notional_cap_eur = cap
    if loss is not None:
        settings.daily_loss_limit_eur = loss
    version = current.version if expected_version is None else expected_version
    request = executor_pb2.UpdateAccountSettingsRequest(settings=settings, expected_version=version)
    reply: executor_pb2.UpdateAccountSettingsResponse = session.call(
        "executor", session.executor().UpdateAccountSettings, request
    )
    return reply
