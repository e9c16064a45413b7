"""``oraclectl positions``, ``oraclectl status`` and ``oraclectl state``: the money view.

``positions`` shows every user's books at current prices (holdings, average cost, realized and
unrealized P&L) and what the one shared account holds beyond them (unattributed); ``status``
says, per user and for the account, the figures the limits read (P&L, daily loss and drawdown
against the loss breaker's limits, EUR and trades today against the caps), the trading state
(kill switches included) and the LLM calls left, then the operator's figures (executions not
final with the oldest age, the reconciler's health, the exchange weight left:
GetOperatorFigures); ``state`` moves a user or the account between
ACTIVE and REDUCING (the loss breaker's state; ``trading off|on`` is the kill switch).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from rich.text import Text

from oraclectl import output
from oraclectl.commands.account import read_settings
from oraclectl.options import DEFAULT_USER, GlobalOption, JsonOption, ReasonOption, UserOption, scope_fields, use
from oraclectl.session import CliError, Session

AllUsersOption = Annotated[str, typer.Option("--user", "-u", help="Only this user (default: every user with a book).")]


def positions(
    ctx: typer.Context,
    *,
    user: AllUsersOption = "",
    check: Annotated[
        bool, typer.Option("--check", help="Also compare the books with a rebuild from the fills.")
    ] = False,
    json_flag: JsonOption = False,
) -> None:
    """Every user's holdings, average cost and P&L, and the account's unattributed coins."""
    session, out = use(ctx, json_flag)
    reply = _positions(session, user, check=check)
    out.result(reply, *output.positions_view(reply))


def status(ctx: typer.Context, *, user: AllUsersOption = "", json_flag: JsonOption = False) -> None:
    """Per user and for the account: P&L, loss limits, caps, trading state and LLM calls left;
    then the operator's figures: executions not final, the reconciler, the exchange weight left."""
    session, out = use(ctx, json_flag)
    reply = _positions(session, user, check=False)
    account = read_settings(session)
    usages = {u.user_id: _usage(session, u.user_id) for u in reply.users}
    figures: executor_pb2.GetOperatorFiguresResponse = session.call(
        "executor", session.executor().GetOperatorFigures, executor_pb2.GetOperatorFiguresRequest()
    )
    lines = [Text(output.account_status_line(reply.account, account.trading_enabled))]
    lines += [Text(output.user_status_line(u, output.calls_left(usages[u.user_id]))) for u in reply.users]
    lines += output.operator_status_lines(figures)
    data = {
        "positions": output.to_dict(reply),
        "account_settings": output.to_dict(account),
        "llm_usage": {uid: output.to_dict(u) if u is not None else None for uid, u in usages.items()},
        "operator": output.to_dict(figures),
    }
    out.result(data, *lines)


class State(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"


def state(
    ctx: typer.Context,
    new: Annotated[State, typer.Argument(help="active lets BUYs through again; reducing allows only SELLs.")],
    *,
    user: UserOption = DEFAULT_USER,
    everyone: GlobalOption = False,
    reason: ReasonOption = "",
    json_flag: JsonOption = False,
) -> None:
    """Move a user (or with --global the account) between ACTIVE and REDUCING, deliberately."""
    session, out = use(ctx, json_flag)
    request = executor_pb2.SetTradingStateRequest(
        **scope_fields(everyone, user),
        state=executor_pb2.TRADING_STATE_ACTIVE if new is State.ACTIVE else executor_pb2.TRADING_STATE_REDUCING,
        reason=reason,
    )
    reply = session.call("executor", session.executor().SetTradingState, request)
    out.result(reply, output.trading_state_result(reply, "the account" if everyone else f"user {user}"))


def _positions(session: Session, user: str, *, check: bool) -> executor_pb2.GetPositionsResponse:
    request = executor_pb2.GetPositionsRequest(user_id=user, check_books=check)
    reply: executor_pb2.GetPositionsResponse = session.call("executor", session.executor().GetPositions, request)
    return reply


def _usage(session: Session, user: str) -> budget_pb2.GetUsageResponse | None:
    try:
        usage: budget_pb2.GetUsageResponse = session.call(
            "budget", session.budget().GetUsage, budget_pb2.GetUsageRequest(user_id=user)
        )
    except CliError:
        return None  # the budget service unreachable: the money view still shows
    return usage
