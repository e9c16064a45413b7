"""The oraclectl command tree and its global options (service addresses, token, timeout).

Defaults point at the local stack (``make run``): fixed ports on 127.0.0.1 and the token file
``.stack/operator.token``; flags and ORACLE_* variables point it anywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from oraclectl import defaults, exitcodes, localstack
from oraclectl.commands import account, budget, executions, jobs, money, policy, proposals
from oraclectl.exitcodes import ExitCode
from oraclectl.options import State
from oraclectl.session import CliError, Session
from shared.tls import TlsFiles

HELP = """Operate Auto Invest Oracle: proposals, executions, policies, account settings, the kill
switch, the LLM budget and scan jobs, over gRPC as the operator principal.

Output is a table by default; --json prints protobuf JSON (proto field names) for scripts.
A failure prints one line on stderr (plus every failed validator of a rejection)."""

app = typer.Typer(
    help=HELP,
    epilog=exitcodes.HELP
    + " Token: --token-file, ORACLE_TOKEN, ORACLE_TOKEN_FILE, else the nearest .stack/operator.token.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(proposals.app, name="proposals")
app.add_typer(executions.app, name="executions")
app.add_typer(policy.policy_app, name="policy")
app.add_typer(account.app, name="account")
app.add_typer(budget.app, name="budget")
app.add_typer(jobs.app, name="jobs")
app.command("execute")(executions.execute)
app.command("reconcile")(executions.reconcile)
app.command("audit")(executions.audit)
app.command("scan")(jobs.scan)
app.command("trading")(policy.trading)
app.command("positions")(money.positions)
app.command("status")(money.status)
app.command("state")(money.state)


def _read_token(token_file: Path | None) -> str | None:
    """The operator token: ORACLE_TOKEN wins over a file (given, or the stack's)."""
    if os.environ.get("ORACLE_TOKEN"):
        return os.environ["ORACLE_TOKEN"].strip()
    path = token_file or defaults.find_token_file()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise CliError(ExitCode.USAGE, f"cannot read the token file {path}: {exc.strerror}") from None


def _tls(cert: Path | None, key: Path | None, ca: Path | None) -> TlsFiles | None:
    """TLS with a client certificate when all three files are given; plaintext when none is."""
    given = [p for p in (cert, key, ca) if p is not None]
    if not given:
        return None
    if cert is None or key is None or ca is None:
        raise CliError(ExitCode.USAGE, "TLS needs --tls-cert, --tls-key and --tls-ca together")
    try:
        return TlsFiles(cert, key, ca)
    except (OSError, ValueError) as exc:
        raise CliError(ExitCode.USAGE, f"cannot use the TLS files: {exc}") from None


@app.callback()
def root(
    ctx: typer.Context,
    *,
    scanner_addr: Annotated[
        str, typer.Option(envvar="ORACLE_SCANNER_ADDR", show_envvar=True, help="Scanner host:port.")
    ] = defaults.SCANNER_ADDR,
    executor_addr: Annotated[
        str, typer.Option(envvar="ORACLE_EXECUTOR_ADDR", show_envvar=True, help="Executor host:port.")
    ] = defaults.EXECUTOR_ADDR,
    budget_addr: Annotated[
        str, typer.Option(envvar="ORACLE_BUDGET_ADDR", show_envvar=True, help="Budget host:port.")
    ] = defaults.BUDGET_ADDR,
    token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="ORACLE_TOKEN_FILE",
            show_envvar=True,
            dir_okay=False,
            help="File holding the operator token (ORACLE_TOKEN, if set, wins).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar="ORACLE_TLS_CERT", show_envvar=True, dir_okay=False, help="TLS client certificate (PEM)."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="ORACLE_TLS_KEY", show_envvar=True, dir_okay=False, help="Its private key (PEM)."),
    ] = None,
    tls_ca: Annotated[
        Path | None,
        typer.Option(envvar="ORACLE_TLS_CA", show_envvar=True, dir_okay=False, help="CA bundle the services chain to."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a call may take.")] = 30.0,
    json_flag: Annotated[bool, typer.Option("--json", help="Print results as protobuf JSON (for scripts).")] = False,
) -> None:
    state: State = ctx.obj
    state.json = json_flag
    state.status_file = localstack.status_file(token_file)
    state.session = Session(
        scanner_addr=scanner_addr,
        executor_addr=executor_addr,
        budget_addr=budget_addr,
        token=_read_token(token_file),
        timeout=timeout,
        tls=_tls(tls_cert, tls_key, tls_ca),
    )
