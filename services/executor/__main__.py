"""Entry point: ``python -m services.executor`` (wiring only; see shared.bootstrap.run_main)."""

import sys

from services.executor import SERVICE
from services.executor.app import build
from services.executor.config import load_settings
from shared.bootstrap import run_main

if __name__ == "__main__":
    sys.exit(run_main(SERVICE, load_settings, build, role="oracle_executor"))
