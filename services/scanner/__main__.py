"""``python -m services.scanner``: the scanner service process (wiring only).

Exits 2 naming the variable when the configuration is invalid or a trade key is in the
environment, and 3 when its exchange key can trade (or that cannot be ruled out).
"""

from __future__ import annotations

import sys

from services.scanner.app import build
from services.scanner.config import load_settings
from shared.bootstrap import run_main
from shared.exchange.errors import ExchangeError, TradeCapableKeyError

EXIT_KEY_NOT_READONLY = 3


def main() -> int:
    try:
        return run_main("scanner", load_settings, build, role="oracle_scanner")
    except TradeCapableKeyError:
        sys.stderr.write("scanner: refusing to start: SCANNER_BITVAVO_API_KEY can trade; give it a view-only key\n")
        return EXIT_KEY_NOT_READONLY
    except ExchangeError as exc:
        sys.stderr.write(
            f"scanner: refusing to start: cannot prove SCANNER_BITVAVO_API_KEY is view-only ({type(exc).__name__})\n"
        )
        return EXIT_KEY_NOT_READONLY


if __name__ == "__main__":
    sys.exit(main())
