"""A CPU-bound neighbour for ``make test-under-load``: spins one core until it is stopped.

``python -m tests.load.busy`` loops on arithmetic forever; SIGTERM (what the make target sends
when the suite ends, passes or fails) or Ctrl-C ends it. It owns nothing else: no files, no
sockets, so stopping it never leaves anything behind.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def spin() -> None:
    """Burn one core: a tight loop that allocates nothing."""
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    try:
        spin()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
