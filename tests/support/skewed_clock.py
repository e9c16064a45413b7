"""TEST-ONLY: skew a service process's own clock.

Every local time the project reads comes from ``shared.clock.SystemClock`` (the services' default
``Clock``). ``skew_system_clock`` makes every SystemClock of this process run ``seconds`` ahead
(or behind, when negative) of the machine's clock, as on a replica whose clock drifted. Only the
test-only entry points under tests/support call it (the service image does not contain tests/),
so no production process can be skewed by its environment.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from shared.clock import SystemClock

log = logging.getLogger(__name__)


def skew_system_clock(seconds: float) -> None:
    """From now on, SystemClock.now() in this process is the machine's time + ``seconds``."""
    skew = timedelta(seconds=seconds)

    def skewed_now(_self: SystemClock) -> datetime:
        return datetime.now(UTC) + skew

    SystemClock.now = skewed_now  # type: ignore[method-assign,assignment]
    log.warning("TEST-ONLY: this process's clock is skewed by %+.3f s", seconds)
