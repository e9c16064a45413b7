"""``oraclectl proposals list|show``: the trades the analyst proposed (read from the scanner)."""

from __future__ import annotations

from typing import Annotated

import typer
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2

from oraclectl import output
from oraclectl.options import DEFAULT_USER, JsonOption, LimitOption, PageTokenOption, UserOption, use

app = typer.Typer(help="Trade proposals made by the scanner's analyst.", no_args_is_help=True)

_STATUS = {
    "all": scanner_pb2.PROPOSAL_STATUS_UNSPECIFIED,
    "open": scanner_pb2.PROPOSAL_STATUS_OPEN,
    "expired": scanner_pb2.PROPOSAL_STATUS_EXPIRED,
}


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
    """List proposals, newest first."""
    if status not in _STATUS:
        raise typer.BadParameter("must be all, open or expired", param_hint="--status")
    session, out = use(ctx, json_flag)
    request = scanner_pb2.ListProposalsRequest(
        user_id=user, status=_STATUS[status], page_size=limit, page_token=page_token
    )
    reply = session.call("scanner", session.scanner().ListProposals, request)
    out.result(reply, *output.proposals_table(reply))


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
