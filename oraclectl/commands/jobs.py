"""``oraclectl jobs list|create|pause|resume|delete`` and ``oraclectl scan``: the scanner's
recurring scan jobs, and a scan on demand."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf import duration_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.text import Text

from oraclectl import arguments, output
from oraclectl.options import DEFAULT_USER, JsonOption, LimitOption, PageTokenOption, UserOption, use

app = typer.Typer(help="Recurring scan jobs at the scanner.", no_args_is_help=True)

_ANALYST = {
    "default": scanner_pb2.ANALYST_KIND_UNSPECIFIED,
    "rules": scanner_pb2.ANALYST_KIND_RULES,
    "llm": scanner_pb2.ANALYST_KIND_LLM,
}
MarketsOption = Annotated[
    list[str] | None, typer.Option("--market", "-m", help="A market like BTC-EUR; repeat or comma-separate.")
]
AnalystOption = Annotated[str, typer.Option(help="rules (built in) or llm.")]


def _analyst(name: str, allow_default: bool) -> scanner_pb2.AnalystKind.ValueType:
    choices = [k for k in _ANALYST if allow_default or k != "default"]
    if name not in choices:
        raise typer.BadParameter("must be " + " or ".join(choices), param_hint="--analyst")
    return _ANALYST[name]


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    *,
    user: UserOption = DEFAULT_USER,
    limit: LimitOption = 50,
    page_token: PageTokenOption = "",
    json_flag: JsonOption = False,
) -> None:
    """List the user's scan jobs."""
    session, out = use(ctx, json_flag)
    request = scanner_pb2.ListScanJobsRequest(user_id=user, page_size=limit, page_token=page_token)
    reply = session.call("scanner", session.scanner().ListScanJobs, request)
    out.result(reply, output.jobs_table(reply.jobs), *output.more_hint(reply.next_page_token))


@app.command("create")
def create_job(
    ctx: typer.Context,
    *,
    market: MarketsOption = None,
    interval: Annotated[str, typer.Option(help="How often, e.g. 60s, 5m (at least 10s).")] = "5m",
    analyst: AnalystOption = "rules",
    keep_proposing: Annotated[
        bool,
        typer.Option(
            "--keep-proposing",
            help="Analyse and propose even while the user's trading is off (by default such runs skip the "
            "analysis and spend no LLM call).",
        ),
    ] = False,
    user: UserOption = DEFAULT_USER,
    json_flag: JsonOption = False,
) -> None:
    """Schedule a recurring scan of some markets (due at once)."""
    markets = arguments.markets(market or [])
    if not markets:
        raise typer.BadParameter("give at least one market", param_hint="--market")
    kind = _analyst(analyst, allow_default=False)
    session, out = use(ctx, json_flag)
    request = scanner_pb2.CreateScanJobRequest(
        user_id=user,
        markets=markets,
        interval=duration_pb2.Duration(seconds=arguments.seconds(interval)),
        analyst=kind,
        keep_proposing=keep_proposing,
    )
    reply = session.call("scanner", session.scanner().CreateScanJob, request)
    out.result(reply, output.jobs_table([reply.job], title="scan job created"))


def _pause(ctx: typer.Context, job_id: str, user: str, paused: bool, json_flag: bool) -> None:
    session, out = use(ctx, json_flag)
    request = scanner_pb2.PauseScanJobRequest(user_id=user, job_id=job_id, paused=paused)
    reply = session.call("scanner", session.scanner().PauseScanJob, request)
    out.result(reply, output.jobs_table([reply.job], title="scan job paused" if paused else "scan job resumed"))


JobArgument = Annotated[str, typer.Argument(help="The job's id.")]


@app.command("pause")
def pause_job(
    ctx: typer.Context, job_id: JobArgument, user: UserOption = DEFAULT_USER, json_flag: JsonOption = False
) -> None:
    """Pause a scan job."""
    _pause(ctx, job_id, user, True, json_flag)


@app.command("resume")
def resume_job(
    ctx: typer.Context, job_id: JobArgument, user: UserOption = DEFAULT_USER, json_flag: JsonOption = False
) -> None:
    """Resume a paused scan job."""
    _pause(ctx, job_id, user, False, json_flag)


@app.command("delete")
def delete_job(
    ctx: typer.Context, job_id: JobArgument, user: UserOption = DEFAULT_USER, json_flag: JsonOption = False
) -> None:
    """Delete a scan job (its proposals stay)."""
    session, out = use(ctx, json_flag)
    request = scanner_pb2.DeleteScanJobRequest(user_id=user, job_id=job_id)
    reply = session.call("scanner", session.scanner().DeleteScanJob, request)
    out.result(reply, Text(f"scan job {job_id} deleted"))


def scan(
    ctx: typer.Context,
    *,
    job: Annotated[str, typer.Option(help="Run this job's scan now (its markets and analyst).")] = "",
    market: MarketsOption = None,
    analyst: AnalystOption = "default",
    user: UserOption = DEFAULT_USER,
    json_flag: JsonOption = False,
) -> None:
    """Scan now, on demand: a job's markets (--job) or the given markets; shows each market's outcome."""
    markets = arguments.markets(market or [])
    if bool(job) == bool(markets):
        raise typer.BadParameter("give either --job or at least one --market")
    kind = _analyst(analyst, allow_default=True)
    session, out = use(ctx, json_flag)
    request = scanner_pb2.RunScanRequest(user_id=user, job_id=job, markets=markets, analyst=kind)
    reply = session.call("scanner", session.scanner().RunScan, request)
    out.result(reply, output.scan_result(reply))
