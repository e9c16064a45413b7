"""``oraclectl policy show|update`` and ``oraclectl trading off|on``: a user's trading policy
(read-modify-write on its version) and the kill switch, per user or for the whole account."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import arguments, output
from oraclectl.options import (
    DEFAULT_USER,
    ExpectedVersionOption,
    GlobalOption,
    JsonOption,
    ReasonOption,
    UserOption,
    scope_fields,
    use,
)
from oraclectl.session import Session, read_modify_write

policy_app = typer.Typer(help="A user's trading policy (the executor's validators read it live).", no_args_is_help=True)

_ATTEMPTS = 3  # an ABORTED update is re-read and re-applied this often before giving up


@policy_app.command("show")
def show_policy(ctx: typer.Context, user: UserOption = DEFAULT_USER, json_flag: JsonOption = False) -> None:
    """Show the live policy and the account-wide settings."""
    session, out = use(ctx, json_flag)
    reply = session.call("executor", session.executor().GetPolicy, executor_pb2.GetPolicyRequest(user_id=user))
    out.result(reply, output.policy_detail(reply))


@policy_app.command("update")
def update_policy(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    allowed_markets: Annotated[
        str | None, typer.Option(help="Replace the allowlist: comma-separated markets ('' denies everything).")
    ] = None,
    add_market: Annotated[list[str] | None, typer.Option(help="Add a market to the allowlist (repeatable).")] = None,
    remove_market: Annotated[
        list[str] | None, typer.Option(help="Remove a market from the allowlist (repeatable).")
    ] = None,
    min_order_eur: Annotated[str | None, typer.Option(help="Smallest order in EUR.")] = None,
    max_order_eur: Annotated[str | None, typer.Option(help="Largest order in EUR.")] = None,
    min_confidence: Annotated[int | None, typer.Option(help="One of 0, 25, 50, 75, 100.")] = None,
    cooldown: Annotated[str | None, typer.Option(help="No second trade on a market within this (e.g. 5m).")] = None,
    anti_flip_window: Annotated[
        str | None, typer.Option(help="No opposite-side trade on a market within this (e.g. 1h).")
    ] = None,
    daily_trade_cap: Annotated[int | None, typer.Option(min=0, help="Trades per UTC day.")] = None,
    hourly_trade_cap: Annotated[int | None, typer.Option(min=0, help="Trades per rolling hour.")] = None,
    daily_notional_cap_eur: Annotated[str | None, typer.Option(help="EUR traded per UTC day.")] = None,
    price_guard_pct: Annotated[
        str | None, typer.Option(help="Refuse when the price moved more than this % since the proposal.")
    ] = None,
    auto_execute: Annotated[
        bool | None,
        typer.Option("--auto-execute/--no-auto-execute", help="Let the scanner execute without an operator."),
    ] = None,
    max_daily_loss_eur: Annotated[
        str | None, typer.Option(help="Loss breaker: today's loss that moves the user to REDUCING ('' = no limit).")
    ] = None,
    max_drawdown_eur: Annotated[
        str | None, typer.Option(help="Loss breaker: P&L fall from its peak that moves to REDUCING ('' = no limit).")
    ] = None,
    expected_version: ExpectedVersionOption = None,
    json_flag: JsonOption = False,
) -> None:
    """Change some fields of a policy; every other field keeps its value.

    Reads the policy, applies the flags and writes it back with the version it read; when a concurrent update wins it reads again and re-applies (unless --expected-version is given).
    """
    scalars: dict[str, object] = {
        "min_order_eur": None if min_order_eur is None else arguments.decimal_text(min_order_eur, "--min-order-eur"),
        "max_order_eur": None if max_order_eur is None else arguments.decimal_text(max_order_eur, "--max-order-eur"),
        "min_confidence": min_confidence,
        "daily_trade_cap": daily_trade_cap,
        "hourly_trade_cap": hourly_trade_cap,
        "daily_notional_cap_eur": None
        if daily_notional_cap_eur is None
        else arguments.decimal_text(daily_notional_cap_eur, "--daily-notional-cap-eur"),
        "price_guard_pct": None
        if price_guard_pct is None
        else arguments.decimal_text(price_guard_pct, "--price-guard-pct"),
        "auto_execute": auto_execute,
        "max_daily_loss_eur": _optional_limit(max_daily_loss_eur, "--max-daily-loss-eur"),
        "max_drawdown_eur": _optional_limit(max_drawdown_eur, "--max-drawdown-eur"),
    }
    durations = {
        "cooldown": None if cooldown is None else arguments.seconds(cooldown),
        "anti_flip_window": None if anti_flip_window is None else arguments.seconds(anti_flip_window),
    }
    changes = _Changes(
        allowed=None if allowed_markets is None else arguments.markets([allowed_markets]),
        add=arguments.markets(add_market or []),
        remove=arguments.markets(remove_market or []),
        scalars={k: v for k, v in scalars.items() if v is not None},
        durations={k: v for k, v in durations.items() if v is not None},
    )
    if changes.empty():
        raise typer.BadParameter("nothing to change: give at least one field flag")
    session, out = use(ctx, json_flag)
    reply = read_modify_write(
        lambda: _update_once(session, user, changes, expected_version),
        expected_version=expected_version,
        attempts=_ATTEMPTS,
    )
    out.result(reply, output.policy_detail(reply))


def _optional_limit(value: str | None, flag: str) -> str | None:
    """A limit flag: None (not given), "" (no limit) or a decimal amount."""
    if value is None or value == "":
        return value
    return arguments.decimal_text(value, flag)


@dataclass(frozen=True)
class _Changes:
    """The fields an update sets; everything else keeps its stored value."""

    allowed: list[str] | None  # None: keep the allowlist (then add / remove)
    add: list[str]
    remove: list[str]
    scalars: dict[str, object]  # proto field name -> new value
    durations: dict[str, int]  # proto Duration field name -> seconds

    def empty(self) -> bool:
        return self.allowed is None and not self.add and not self.remove and not self.scalars and not self.durations

    def apply(self, policy: executor_pb2.Policy) -> None:
        markets = list(policy.allowed_markets) if self.allowed is None else list(self.allowed)
        markets += [m for m in self.add if m not in markets]
        markets = [m for m in markets if m not in self.remove]
        del policy.allowed_markets[:]
        policy.allowed_markets.extend(markets)
        for name, value in self.scalars.items():
            setattr(policy, name, value)
        for name, seconds in self.durations.items():
            getattr(policy, name).FromSeconds(seconds)


def _update_once(
    session: Session, user: str, changes: _Changes, expected_version: int | None
) -> executor_pb2.UpdatePolicyResponse:
    stub = session.executor()
    current = session.call("executor", stub.GetPolicy, executor_pb2.GetPolicyRequest(user_id=user)).policy
    policy = executor_pb2.Policy()
    policy.CopyFrom(current)
    policy.user_id = user
    changes.apply(policy)
    version = current.version if expected_version is None else expected_version
    request = executor_pb2.UpdatePolicyRequest(policy=policy, expected_version=version)
    reply: executor_pb2.UpdatePolicyResponse = session.call("executor", stub.UpdatePolicy, request)
    return reply


class Switch(StrEnum):
    """The kill switch's two positions."""

    ON = "on"
    OFF = "off"


def trading(
    ctx: typer.Context,
    state: Annotated[Switch, typer.Argument(help="off stops trading (the kill switch); on allows it again.")],
    *,
    user: UserOption = DEFAULT_USER,
    everyone: GlobalOption = False,
    reason: ReasonOption = "",
    json_flag: JsonOption = False,
) -> None:
    """Stop (off) or allow (on) trading for one user, or with --global for the whole account."""
    session, out = use(ctx, json_flag)
    request = executor_pb2.SetTradingEnabledRequest(
        **scope_fields(everyone, user),
        enabled=state is Switch.ON,
        reason=reason,
    )
    reply = session.call("executor", session.executor().SetTradingEnabled, request)
    out.result(reply, output.kill_switch_result(reply))
