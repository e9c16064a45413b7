"""``oraclectl budget usage|set-limits``: LLM calls, tokens and cost per window, and the limits
the budget service enforces (a read-modify-write: flags not given keep their value)."""

from __future__ import annotations

from typing import Annotated

import typer
from oracle.budget.v1 import budget_service_pb2 as budget_pb2

from oraclectl import arguments, output
from oraclectl.options import DEFAULT_USER, JsonOption, UserOption, use

app = typer.Typer(help="The LLM budget: usage per window and its limits.", no_args_is_help=True)


@app.command("usage")
def usage(ctx: typer.Context, user: UserOption = DEFAULT_USER, json_flag: JsonOption = False) -> None:
    """Show used, limit, remaining and reset time of every budget window."""
    session, out = use(ctx, json_flag)
    reply = session.call("budget", session.budget().GetUsage, budget_pb2.GetUsageRequest(user_id=user))
    out.result(reply, output.usage_table(reply), output.limits_detail(reply.limits))


@app.command("set-limits")
def set_limits(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    daily_calls: Annotated[int | None, typer.Option(min=0, help="LLM calls per UTC day.")] = None,
    hourly_calls: Annotated[int | None, typer.Option(min=0, help="LLM calls per rolling hour.")] = None,
    daily_tokens: Annotated[int | None, typer.Option(min=0, help="Tokens per UTC day (0: no limit).")] = None,
    daily_cost_usd: Annotated[str | None, typer.Option(help="USD per UTC day, e.g. 2.50 (0: no limit).")] = None,
    json_flag: JsonOption = False,
) -> None:
    """Set a user's limits; limits not given keep their current value."""
    if daily_calls is None and hourly_calls is None and daily_tokens is None and daily_cost_usd is None:
        raise typer.BadParameter("nothing to change: give at least one limit")
    session, out = use(ctx, json_flag)
    stub = session.budget()
    limits = budget_pb2.Limits()
    limits.CopyFrom(session.call("budget", stub.GetUsage, budget_pb2.GetUsageRequest(user_id=user)).limits)
    if daily_calls is not None:
        limits.daily_calls = daily_calls
    if hourly_calls is not None:
        limits.hourly_calls = hourly_calls
    if daily_tokens is not None:
        limits.daily_tokens = daily_tokens
    if daily_cost_usd is not None:
        limits.daily_cost_micros = arguments.usd_micros(daily_cost_usd)
    reply = session.call("budget", stub.SetLimits, budget_pb2.SetLimitsRequest(user_id=user, limits=limits))
    out.result(reply, output.limits_detail(reply.limits))
