"""Entry point: ``python -m services.budget`` (wiring only; see shared.bootstrap.run_main)."""

import sys

from services.budget.app import build
from services.budget.config import load_settings
from shared.bootstrap import run_main

if __name__ == "__main__":
    sys.exit(run_main("budget", load_settings, build, role="oracle_budget"))
