"""``oraclectl execute``, ``executions list|show``, ``reconcile`` and ``audit``: the executor's
side — executing a proposal (with the audited override flags), the executions with their
validator reports, the reconciler, and the append-only audit trail."""

from __future__ import annotations

from collections import deque
from typing import Annotated

import typer
from oracle.executor.v1 import executor_service_pb2 as executor_pb2

from oraclectl import output
from oraclectl.options import DEFAULT_USER, JsonOption, LimitOption, PageTokenOption, ReasonOption, UserOption, use
from oraclectl.session import Session

app = typer.Typer(help="Executions: claimed proposals and their orders.", no_args_is_help=True)

_STATUS = {
    name.removeprefix("EXECUTION_STATUS_").lower(): number
    for name, number in executor_pb2.ExecutionStatus.items()
    if number != executor_pb2.EXECUTION_STATUS_UNSPECIFIED
}
_AUDIT_PAGES = 20  # a subject's trail is short; this only bounds a runaway listing
_AUDIT_PAGE_SIZE = 1000  # the executor's largest page


def execute(
    ctx: typer.Context,
    proposal_id: Annotated[str, typer.Argument(help="The proposal to execute.")],
    *,
    user: UserOption = DEFAULT_USER,
    override_cooldown: Annotated[
        bool, typer.Option("--override-cooldown", help="Skip the cooldown validator (audited).")
    ] = False,
    override_anti_flip: Annotated[
        bool, typer.Option("--override-anti-flip", help="Skip the anti-flip validator (audited).")
    ] = False,
    reason: ReasonOption = "",
    json_flag: JsonOption = False,
) -> None:
    """Execute a proposal: every validator runs against the live policy; at most one order.

    A rejection exits 4 and lists every failed validator with its reason code; a proposal that was executed before exits 5 and shows that execution.
    """
    if (override_cooldown or override_anti_flip) and not reason.strip():
        raise typer.BadParameter("an override needs --reason (it goes into the audit trail)", param_hint="--reason")
    session, out = use(ctx, json_flag)
    request = executor_pb2.ExecuteProposalRequest(
        user_id=user,
        proposal_id=proposal_id,
        override_cooldown=override_cooldown,
        override_anti_flip=override_anti_flip,
        override_reason=reason,
    )
    reply = session.call("executor", session.executor().ExecuteProposal, request)
    out.result(reply, output.execution_detail(reply.execution, out.exchange), about_orders=True)


@app.command("list")
def list_executions(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    status: Annotated[str, typer.Option(help="Only this status: " + ", ".join(_STATUS) + ".")] = "",
    limit: LimitOption = 50,
    page_token: PageTokenOption = "",
    json_flag: JsonOption = False,
) -> None:
    """List executions, newest first."""
    if status and status.lower() not in _STATUS:
        raise typer.BadParameter("must be one of " + ", ".join(_STATUS), param_hint="--status")
    session, out = use(ctx, json_flag)
    request = executor_pb2.ListExecutionsRequest(
        user_id=user,
        page_size=limit,
        page_token=page_token,
        status=_STATUS[status.lower()] if status else executor_pb2.EXECUTION_STATUS_UNSPECIFIED,
    )
    reply = session.call("executor", session.executor().ListExecutions, request)
    out.result(reply, *output.executions_table(reply, out.exchange), about_orders=True)


@app.command("show")
def show_execution(
    ctx: typer.Context,
    execution_id: Annotated[str, typer.Argument(help="The execution's id.")],
    *,
    user: UserOption = DEFAULT_USER,
    json_flag: JsonOption = False,
) -> None:
    """Show one execution with its full validator report and its audit trail."""
    session, out = use(ctx, json_flag)
    request = executor_pb2.GetExecutionRequest(user_id=user, execution_id=execution_id)
    execution = session.call("executor", session.executor().GetExecution, request).execution
    events = audit_trail(session, user, execution.execution_id, execution.proposal_id)
    data = {"execution": output.to_dict(execution), "audit_events": [output.to_dict(e) for e in events]}
    out.result(data, output.execution_detail(execution, out.exchange), output.audit_table(events), about_orders=True)


def audit_trail(session: Session, user: str, *subjects: str) -> list[executor_pb2.AuditEvent]:
    """Every audit event about any of ``subjects``, in chain order."""
    found: dict[int, executor_pb2.AuditEvent] = {}
    for subject in filter(None, subjects):
        token = ""
        for _ in range(_AUDIT_PAGES):
            request = executor_pb2.ListAuditEventsRequest(user_id=user, subject_id=subject, page_token=token)
            reply = session.call("executor", session.executor().ListAuditEvents, request)
            found.update((event.sequence, event) for event in reply.events)
            token = reply.next_page_token
            if not token:
                break
    return [found[sequence] for sequence in sorted(found)]


def reconcile(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    all_users: Annotated[bool, typer.Option("--all", help="Every user's executions, not one user's.")] = False,
    json_flag: JsonOption = False,
) -> None:
    """Resolve UNKNOWN, stale SUBMITTING and open executions at the exchange (never sends an order)."""
    session, out = use(ctx, json_flag)
    request = executor_pb2.ReconcileExecutionsRequest(user_id="" if all_users else user)
    reply = session.call("executor", session.executor().ReconcileExecutions, request)
    out.result(reply, *output.reconcile_result(reply, out.exchange), about_orders=True)


def latest_events(session: Session, user: str, subject: str, limit: int) -> list[executor_pb2.AuditEvent]:
    """The ``limit`` latest audit events (about ``subject`` when given), newest first.

    The executor lists a trail oldest first, page by page; the latest are on the last page, so
    every page is read and only the last ``limit`` events are kept."""
    latest: deque[executor_pb2.AuditEvent] = deque(maxlen=limit)
    token = ""
    while True:
        request = executor_pb2.ListAuditEventsRequest(
            user_id=user, subject_id=subject, page_size=_AUDIT_PAGE_SIZE, page_token=token
        )
        reply = session.call("executor", session.executor().ListAuditEvents, request)
        latest.extend(reply.events)
        token = reply.next_page_token
        if not token:
            return sorted(latest, key=lambda event: event.sequence, reverse=True)


def audit(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    subject: Annotated[str, typer.Option(help="Only events about this execution, proposal or reservation.")] = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="How many of the latest events.")] = 20,
    json_flag: JsonOption = False,
) -> None:
    """List the latest events of the user's append-only, hash-chained audit trail, newest first."""
    session, out = use(ctx, json_flag)
    events = latest_events(session, user, subject, limit)
    title = f"audit trail of {user}: the latest {len(events)} event(s), newest first"
    out.result({"events": [output.to_dict(e) for e in events]}, output.audit_table(events, title=title))
