"""Entry point: ``python -m services.executor`` (wiring only; see shared.bootstrap.run_main)."""

import sys

from services.executor.app import StartupRefused, build
from services.executor.config import load_settings
from shared.bootstrap import run_main


def main() -> int:
    try:
        return run_main("executor", load_settings, build, role="oracle_executor")
    except StartupRefused as exc:
        sys.stderr.write(f"executor: refusing to start: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
