"""The scheduler: claims due jobs in batches and runs each batch as one market-data cycle.

Any number of scanner instances run this loop against one database. Each loop turn claims up to
``batch_size`` due jobs (lease.py: SKIP LOCKED, lease, fencing token), keeps their leases alive
with the heartbeat while the batch runs, reads the batch's market data once (market_data.py) and
runs the jobs ``concurrency`` at a time (each run is ``ScanRunner.run_leased``, scan.py). When
nothing was due it waits ``poll_interval``. RunScan on a job claims that one job the same way (:meth:`Scheduler.run_job_now`),
so an on-demand run and a scheduled run of one job never overlap either.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from services.scanner.jobs import ScanJobs
from services.scanner.lease import Heartbeat, Lease, LeaseLost, Leases
from services.scanner.market_data import MarketDataError, MarketSnapshot
from services.scanner.scan import ScanFailed, ScanResult, ScanRunner
from shared.errors import Aborted, FailedPrecondition, OracleError, PreconditionViolation, Unavailable

log = logging.getLogger(__name__)


def unavailable(exc: ScanFailed) -> Unavailable:
    """The RPC error for a scan that could not run."""
    return Unavailable(f"scan failed: {exc.reason}: {exc.detail}", reason=exc.reason)


class Scheduler:
    """The claim loop of one scanner instance."""

    def __init__(
        self,
        *,
        leases: Leases,
        heartbeat: Heartbeat,
        runner: ScanRunner,
        jobs: ScanJobs,
        batch_size: int,
        concurrency: int,
        poll_interval_seconds: float,
    ) -> None:
        self._leases = leases
        self._heartbeat = heartbeat
        self._runner = runner
        self._jobs = jobs
        self._batch = batch_size
        self._poll = poll_interval_seconds
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="scanner-job")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Claim one batch and run it; returns how many jobs were claimed."""
        claimed = self._leases.claim_due(self._batch)
        if not claimed:
            return 0
        with ExitStack() as held:
            for lease in claimed:
                held.enter_context(self._heartbeat.hold(lease))
            snapshots = self._runner.snapshots(claimed)
            futures = [self._pool.submit(self._process, lease, snapshots) for lease in claimed]
            for future in futures:
                future.result()
        return len(claimed)

    def _process(self, lease: Lease, snapshots: dict[str, MarketSnapshot | MarketDataError]) -> None:
        try:
            self._runner.run_leased(lease, snapshots)
        except LeaseLost:
            log.warning("lease lost: the job's results were not written", extra={"job_id": lease.job_id})
        except ScanFailed as exc:
            log.info("scan failed, backing off: %s", exc.reason, extra={"job_id": lease.job_id})
        except Exception:
            log.exception("unexpected error running job %s", lease.job_id)

    def run_job_now(self, user_id: str, job_id: str, *, principal: str) -> ScanResult:
        """RunScan on a job: claim it (or refuse while another instance runs it) and run it now."""
        lease = self._leases.claim(user_id, job_id)
        if lease is None:
            self._jobs.get(user_id, job_id)  # NotFound when it does not exist
            raise FailedPrecondition(
                [
                    PreconditionViolation(
                        "SCAN_JOB_BUSY", f"scan_job/{job_id}", "another run of this job holds its lease"
                    )
                ]
            )
        with self._heartbeat.hold(lease):
            try:
                return self._runner.run_leased(lease, trigger="on_demand", principal=principal)
            except LeaseLost:
                raise Aborted("the job was claimed by another run meanwhile", reason="SCAN_JOB_LEASE_LOST") from None
            except ScanFailed as exc:
                raise unavailable(exc) from None

    def start(self) -> None:
        """Run the claim loop in a background thread."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    claimed = self.run_once()
                except OracleError as exc:
                    log.warning("scheduler turn failed: %s", exc.reason)
                    claimed = 0
                except Exception:
                    log.exception("scheduler turn failed")
                    claimed = 0
                if claimed < self._batch:
                    self._stop.wait(self._poll)

        self._thread = threading.Thread(target=loop, name="scanner-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; the batch in flight finishes (its leases are released by its runs)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._pool.shutdown(wait=True)
