"""``oraclectl proposals list|show``: the trades the analyst proposed (read from the scanner)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2

from oraclectl import output
from oraclectl.options import DEFAULT_USER, JsonOption, LimitOption, PageTokenOption, UserOption, use
from oraclectl.session import Session

app = typer.Typer(help="Trade proposals made by the scanner's analyst.", no_args_is_help=True)

_STATUS = {
    "all": scanner_pb2.PROPOSAL_STATUS_UNSPECIFIED,
    "open": scanner_pb2.PROPOSAL_STATUS_OPEN,
    "expired": scanner_pb2.PROPOSAL_STATUS_EXPIRED,
}
_EXECUTION_PAGES = 10  # executions are read newest first; proposals older than 5000 executions show no outcome


@app.command("list")
def list_proposals(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    status: Annotated[str, typer.Option(help="all, open or expired.")] = "all",
    limit: LimitOption = 50,
    page_token: PageTokenOption = "",
    json_flag: JsonOption = False,
) -> None:
    """List proposals, newest first, each with its outcome: the execution's status, the reasons it
    was refused, or "not executed" (still open, or expired)."""
    if status not in _STATUS:
        raise typer.BadParameter("must be all, open or expired", param_hint="--status")
    session, out = use(ctx, json_flag)
    request = scanner_pb2.ListProposalsRequest(
        user_id=user, status=_STATUS[status], page_size=limit, page_token=page_token
    )
    reply = session.call("scanner", session.scanner().ListProposals, request)
    outcomes = proposal_outcomes(session, user, [p.proposal_id for p in reply.proposals])
    out.result(output.to_dict(reply) | {"outcomes": outcomes}, *output.proposals_table(reply, outcomes))


def proposal_outcomes(session: Session, user: str, proposal_ids: Sequence[str]) -> dict[str, str]:
    """What the executor did with each proposal: its execution's status, else the reasons of its
    last refused attempt; proposals never tried are left out. Read from the executor's own
    records (ListExecutions, newest first like the proposals; ListAuditEvents per proposal)."""
    wanted = set(proposal_ids)
    found: dict[str, str] = {}
    token = ""
    for _ in range(_EXECUTION_PAGES):
        request = executor_pb2.ListExecutionsRequest(user_id=user, page_size=500, page_token=token)
        page = session.call("executor", session.executor().ListExecutions, request)
        for execution in page.executions:
            if execution.proposal_id in wanted:
                found.setdefault(execution.proposal_id, output.execution_outcome(execution))
        token = page.next_page_token
        if not token or wanted <= found.keys():
            break
    for proposal_id in proposal_ids:
        if proposal_id in found:
            continue
        trail = executor_pb2.ListAuditEventsRequest(user_id=user, subject_id=proposal_id, page_size=1000)
        events = session.call("executor", session.executor().ListAuditEvents, trail).events
        refused = [event for event in events if event.kind == "execution.rejected"]
        if refused:
            found[proposal_id] = output.refusal_outcome(refused[-1])
    return found


@app.command("show")
def show_proposal(
    ctx: typer.Context,
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id.")],
    *,
    user: UserOption = DEFAULT_USER,
    json_flag: JsonOption = False,
) -> None:
    """Show one proposal with the market and policy snapshots the analyst saw."""
    session, out = use(ctx, json_flag)
    request = scanner_pb2.GetProposalRequest(user_id=user, proposal_id=proposal_id)
    reply = session.call("scanner", session.scanner().GetProposal, request)
    out.result(reply, output.proposal_detail(reply.proposal))
