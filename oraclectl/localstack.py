"""What oraclectl learns from the local stack (``make run``) it talks to: the stack's
``status.json``, written by the supervisor that started the services (stack/layout.py).

It answers one question a person cannot see in an execution: does this executor send its orders
to the exchange simulator? An execution says ``mode: live`` (the executor sends real orders), and
only the supervisor knows that the URL it gave that executor is the simulator's. The answer
counts only while that stack runs and its executor is the one oraclectl talks to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from oraclectl import defaults

SIMULATED_EXCHANGE = "simulated exchange"


def status_file(token_file: Path | None) -> Path | None:
    """The status file beside the operator token in use (the stack writes both in one folder)."""
    token = token_file or defaults.find_token_file()
    return None if token is None else token.parent / defaults.STATUS_FILE_NAME


def _running(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def executor_exchange(status: Path | None, executor_addr: str) -> str:
    """:data:`SIMULATED_EXCHANGE` when the running stack of ``status`` started the executor at
    ``executor_addr`` with the exchange simulator's URL; empty when that is not known."""
    if status is None:
        return ""
    try:
        data = json.loads(status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(data, dict) or data.get("state") != "running" or not _running(data.get("pid")):
        return ""
    addresses = data.get("addresses")
    if not isinstance(addresses, dict) or addresses.get("executor") != executor_addr:
        return ""
    return SIMULATED_EXCHANGE if data.get("executor_exchange") == "simulator" else ""
