"""TEST-ONLY entry point: ``python -m tests.support.budget_with_hooks [--reserve-delay-ms N]
[--clock-skew-seconds S]``.

Runs the budget service exactly as ``python -m services.budget`` does (same settings, same
``shared.bootstrap.run_main``, same ``services.budget.app.build``), except that
``--reserve-delay-ms`` builds the Ledger with a hook that sleeps N ms between counting a user's
usage and inserting the granted reservation, with the user's lock held — the zero-overshoot
storm's way to widen the race window — and ``--clock-skew-seconds`` runs this process's own
clock S seconds off the machine's (tests/support/skewed_clock.py), as on a replica whose clock
drifted. It lives under tests/, which the service image does not contain, so no production
process can be slowed down or skewed by its environment.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from services.budget.app import build
from services.budget.config import BudgetSettings, load_settings
from services.budget.ledger import Hooks
from shared.bootstrap import run_main
from shared.db import Database
from shared.server import ServiceBinding
from tests.support.skewed_clock import skew_system_clock


def delay_hooks(delay_ms: int) -> Hooks:
    """Ledger hooks that hold each granted reservation ``delay_ms`` before its insert."""
    return Hooks(before_insert=lambda: time.sleep(delay_ms / 1000))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.budget_with_hooks", description=__doc__)
    parser.add_argument("--reserve-delay-ms", type=int, default=0)
    parser.add_argument("--clock-skew-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not 0 <= args.reserve_delay_ms <= 10_000:
        parser.error("--reserve-delay-ms must be within 0..10000")
    hooks = delay_hooks(args.reserve_delay_ms) if args.reserve_delay_ms else None
    if args.clock_skew_seconds:
        skew_system_clock(args.clock_skew_seconds)

    def build_with_hooks(
        settings: BudgetSettings, db: Database
    ) -> tuple[Sequence[ServiceBinding], Sequence[Callable[[], None]]]:
        return build(settings, db, hooks)

    return run_main("budget", load_settings, build_with_hooks, role="oracle_budget")


if __name__ == "__main__":
    sys.exit(main())
