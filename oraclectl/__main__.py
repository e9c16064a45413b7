"""Entry point of the ``oraclectl`` console script (and ``python -m oraclectl``).

Every failure ends here: one line on stderr and the exit code of :mod:`oraclectl.exitcodes`.
Set ORACLE_DEBUG=1 to get the traceback of an unexpected error instead.
"""

from __future__ import annotations

import os
import sys

from oraclectl.cli import app
from oraclectl.exitcodes import ExitCode
from oraclectl.options import State
from oraclectl.output import Output
from oraclectl.session import CliError


def main(argv: list[str] | None = None) -> None:
    """Run oraclectl; exits with the documented code."""
    state = State()
    try:
        app(args=argv, obj=state, prog_name="oraclectl")
    except CliError as error:
        Output(state.json).failure(error)
        sys.exit(int(error.exit_code))
    except Exception as error:
        if os.environ.get("ORACLE_DEBUG"):
            raise
        Output(state.json).failure(CliError(ExitCode.ERROR, f"unexpected error: {type(error).__name__}: {error}"))
        sys.exit(int(ExitCode.ERROR))
    finally:
        state.close()


if __name__ == "__main__":
    main()
