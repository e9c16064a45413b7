"""TEST-ONLY entry point: ``python -m tests.support.executor_with_hooks [--crash-at POINT]
[--clock-skew-seconds S] [--hold-before-claim-until PATH]``.

Runs the executor exactly as ``python -m services.executor`` does (same settings, same
``shared.bootstrap.run_main``, same ``services.executor.app.build``), except that
``--crash-at`` builds the Executor with a hook that SIGKILLs the process at POINT — the
crash-recovery tests' way to die between two steps — and ``--clock-skew-seconds`` runs this
process's own clock S seconds off the machine's (tests/support/skewed_clock.py), as on a replica
whose clock drifted, and ``--hold-before-claim-until`` holds every execution after its network
reads, right before its claim's transaction, until the file PATH exists. It lives
under tests/, which the service image does not contain, so no
production process can be made to kill itself or skew its clock by its environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

from services.executor import SERVICE
from services.executor.app import build
from services.executor.config import ExecutorSettings, load_settings
from services.executor.execution import Hooks
from services.executor.model import Execution, Proposal
from shared.bootstrap import run_main
from shared.db import Database
from shared.server import ServiceBinding
from tests.support.skewed_clock import skew_system_clock

log = logging.getLogger(__name__)


class CrashPoint(StrEnum):
    """Where the process kills itself."""

    BEFORE_SEND = "before_send"  # right after the claim committed as SUBMITTING, before signing
    AFTER_SEND = "after_send"  # right after the exchange answered, before the answer is stored


def crash_hooks(point: CrashPoint) -> Hooks:
    """Executor hooks that SIGKILL this process at ``point``."""

    def die(execution: Execution) -> None:
        log.critical("TEST-ONLY crash at %s", point.value, extra={"execution_id": execution.execution_id})
        os.kill(os.getpid(), signal.SIGKILL)

    if point is CrashPoint.BEFORE_SEND:
        return Hooks(before_send=die)
    return Hooks(after_send=die)


def hold_hooks(release: Path) -> Hooks:
    """Executor hooks that hold each execution after its network reads, before its claim's
    transaction, until ``release`` exists; each held proposal is announced by a file
    ``held-<proposal_id>`` beside ``release``."""

    def hold(proposal: Proposal) -> None:
        log.warning("TEST-ONLY hold before the claim", extra={"proposal_id": proposal.proposal_id})
        release.with_name(f"held-{proposal.proposal_id}").touch()
        released = threading.Event()
        while not release.exists():
            released.wait(0.01)

    return Hooks(after_fetch=hold)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.executor_with_hooks", description=__doc__)
    parser.add_argument("--crash-at", choices=[p.value for p in CrashPoint])
    parser.add_argument("--clock-skew-seconds", type=float, default=0.0)
    parser.add_argument("--hold-before-claim-until", type=Path)
    args = parser.parse_args(argv)
    hooks = crash_hooks(CrashPoint(args.crash_at)) if args.crash_at else None
    if args.hold_before_claim_until is not None:
        hooks = hold_hooks(args.hold_before_claim_until)
    if args.clock_skew_seconds:
        skew_system_clock(args.clock_skew_seconds)

    def build_with_hooks(
        settings: ExecutorSettings, db: Database
    ) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
        return build(settings, db, hooks=hooks)

    return run_main(SERVICE, load_settings, build_with_hooks, role="oracle_executor")


if __name__ == "__main__":
    sys.exit(main())
