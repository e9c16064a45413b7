"""Where oraclectl looks for the services and the operator token when nothing is configured.

These are the local stack's fixed defaults (``make run`` listens on these ports and writes the
token file), so on a developer machine oraclectl needs no flags at all. The stack imports them
from here so the two cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

SCANNER_PORT = 50060
EXECUTOR_PORT = 50061
BUDGET_PORT = 50062

SCANNER_ADDR = f"127.0.0.1:{SCANNER_PORT}"
EXECUTOR_ADDR = f"127.0.0.1:{EXECUTOR_PORT}"
BUDGET_ADDR = f"127.0.0.1:{BUDGET_PORT}"

STATE_DIR_NAME = ".stack"
TOKEN_FILE_NAME = "operator.token"  # noqa: S105 -- a file name, not a token
STATUS_FILE_NAME = "status.json"  # what the running stack says about itself (no secret in it)
DEMO_USER = "demo"

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_token_file(start: Path | None = None) -> Path | None:
    """The nearest ``.stack/operator.token`` from ``start`` (default: the current directory)
    upwards, else the one of the project oraclectl is installed from; None when neither exists."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents, PROJECT_ROOT):
        candidate = folder / STATE_DIR_NAME / TOKEN_FILE_NAME
        if candidate.is_file():
            return candidate
    return None
