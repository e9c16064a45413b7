"""``python -m services.scanner``: the scanner service process (wiring only).

Exits 2 naming the variable when the configuration is invalid or a trade key is in the
environment, and 3 when its exchange key can trade (or that cannot be ruled out): app.build
raises shared.bootstrap.StartupRefused with that code.
"""

from __future__ import annotations

import sys

from services.scanner.app import build
from services.scanner.config import load_settings
from shared.bootstrap import run_main

if __name__ == "__main__":
    sys.exit(run_main("scanner", load_settings, build, role="oracle_scanner"))
