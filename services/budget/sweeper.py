"""The expiry sweeper: a background thread that marks reservations past their TTL as expired.

An expired reservation keeps counting (its call may have happened); expiry only records that
nobody settled it. Any replica may sweep: the update is one idempotent statement, so replicas
sweeping at once do no harm. A failed sweep is logged and retried at the next interval.
"""

from __future__ import annotations

import logging
import threading

from services.budget.ledger import Ledger
from shared.errors import OracleError

log = logging.getLogger(__name__)


class ExpirySweeper:
    """Calls :meth:`Ledger.expire_stale` every ``interval_seconds`` until stopped."""

    def __init__(self, ledger: Ledger, interval_seconds: float) -> None:
        self._ledger = ledger
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="budget-expiry-sweeper", daemon=True)

    def start(self) -> None:
        """Start sweeping in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (at most one sweep's time)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def sweep_once(self) -> int:
        """One sweep now; returns how many reservations expired."""
        expired = self._ledger.expire_stale()
        if expired:
            log.warning("reservations expired unsettled", extra={"expired": expired})
        return expired

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sweep_once()
            except OracleError as exc:
                log.warning("expiry sweep failed; retrying next interval", extra={"reason": exc.reason})
            except Exception:
                log.exception("expiry sweep failed unexpectedly; retrying next interval")
