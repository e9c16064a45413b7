"""One scan: market snapshots → an analyst per market → proposals → auto-execute.

A job's scan (scheduled, or RunScan on a job) writes everything in ONE fenced transaction
(lease.py): its proposals and their audit events, the job's rescheduling (``next_run_at = now +
interval``, failure count cleared, lease released) and the ``scan.completed`` audit event that
records the run (instance, fencing token, due time, start and end). So a run's results exist
exactly once per due time, or not at all: a zombie writes nothing, a crash leaves the job due.

No network call happens inside a transaction: market data and the analysts run before it, the
executor is called after it. When the user's *live* policy (read inside the transaction) has
auto-execute on, each new proposal goes to ExecutorService.ExecuteProposal without overrides;
the answers are recorded in the audit trail and on the job (token-fenced again).

A failing scan (market data unavailable or rate-limited, database trouble, a bug) counts a
failure on the job and backs off exponentially (jobs.retry_delay), never before a rate-limit
reset. Per-market reasons that are not failures (HOLD, BUDGET_EXHAUSTED, LLM_INVALID_JSON,
MARKET_NOT_TRADING, NO_POLICY …) are outcomes of a successful scan.

One market never sinks the others: an analyst that raises is that market's ``ANALYST_ERROR``;
every decision passes ``analyst.storable`` (``INVALID_IDEA`` for an idea no proposal may carry);
and each proposal is written under its own savepoint, so a row the database still refuses
(:data:`ROW_REFUSED`: a data, CHECK or NOT NULL error) is that market's ``PROPOSAL_NOT_STORED``
while the run's other proposals and its rescheduling commit. Only trouble with the database
itself (connection, timeout, conflict) still fails the scan.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

import psycopg

from services.scanner import proposals, repository
from services.scanner.analyst import AnalysisRequest, Analyst, Decision, NoTrade, OrderBounds, TradeIdea, storable
from services.scanner.jobs import ScanJob, retry_delay
from services.scanner.lease import Fence, Lease, LeaseLost
from services.scanner.market_data import MarketData, MarketDataError, MarketSnapshot
from services.scanner.outcomes import NOT_ASKED, AutoExecution, MarketOutcome
from services.scanner.proposals import Proposal
from services.scanner.repository import Row
from shared import audit
from shared.clock import Clock
from shared.db import Conn, Database

log = logging.getLogger(__name__)

SERVICE = "scanner"
SCHEDULER_PRINCIPAL = "scanner-scheduler"

# What the database (or psycopg, before sending) answers about one row's content: a value it
# cannot hold (numeric overflow, NUL in text or jsonb, an unencodable string) or a CHECK / NOT
# NULL it breaks. Anything else (connection, timeout, lock, conflict) is the database's trouble.
ROW_REFUSED: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.errors.CheckViolation,
    psycopg.errors.NotNullViolation,
    UnicodeError,
)


class ProposalExecutor(Protocol):
    """ExecutorService.ExecuteProposal without overrides (executor_client.py)."""

    def execute(self, user_id: str, proposal_id: str) -> AutoExecution: ...


@dataclass(frozen=True)
class ScanResult:
    """What one scan made."""

    run_id: str
    proposals: tuple[Proposal, ...]
    outcomes: tuple[MarketOutcome, ...]


class ScanFailed(Exception):
    """The scan could not run (it was recorded as a failure and backs off)."""

    def __init__(self, reason: str, detail: str, *, retry_at: datetime | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_at = retry_at


@dataclass(frozen=True)
class Backoff:
    """Retry delays of a failing job."""

    base_seconds: float
    max_seconds: float


def order_bounds(policy: Row, snapshot: MarketSnapshot) -> OrderBounds | None:
    """The policy's size bounds, the minimum raised to the market's; None when nothing fits."""
    minimum = max(Decimal(policy["min_order_eur"]), snapshot.min_order_quote)
    maximum = Decimal(policy["max_order_eur"])
    if minimum > maximum or maximum <= 0:
        return None
    return OrderBounds(min_eur=minimum, max_eur=maximum, min_confidence=int(policy["min_confidence"]))


class ScanRunner:
    """Runs scans for jobs (under a lease) and on demand (no job)."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        fence: Fence,
        market_data: MarketData,
        analysts: Mapping[str, Analyst],
        executor: ProposalExecutor,
        proposal_ttl: timedelta,
        backoff: Backoff,
        instance: str,
    ) -> None:
        self._db = db
        self._clock = clock
        self._fence = fence
        self.market_data = market_data
        self._analysts = analysts
        self._executor = executor
        self._ttl = proposal_ttl
        self._backoff = backoff
        self._instance = instance

    # ---------------------------------------------------------------------------- jobs
    def load(self, lease: Lease) -> ScanJob:
        """The leased job as it is now (LeaseLost when it is not ours any more)."""
        with self._fence.write(lease) as (_, row):
            return ScanJob.from_row(row)

    def run_job(
        self,
        lease: Lease,
        job: ScanJob,
        snapshots: Mapping[str, MarketSnapshot | MarketDataError],
        *,
        trigger: str,
        principal: str = SCHEDULER_PRINCIPAL,
    ) -> ScanResult:
        """Run one leased job on this cycle's snapshots. Raises LeaseLost (nothing written) or
        ScanFailed (the failure was recorded and the job backs off)."""
        started = self._clock.now()
        run_id = str(uuid.uuid4())
        record = {
            "run_id": run_id,
            "trigger": trigger,
            "instance": self._instance,
            "fencing_token": lease.fencing_token,
            "due_at": job.next_run_at.isoformat(),
            "started_at": started.isoformat(),
        }
        try:
            decisions = self._analyse(job.user_id, job.markets, job.analyst, snapshots, lease)
            with self._fence.write(lease) as (conn, _):
                made, outcomes, auto = self._write(
                    conn,
                    user_id=job.user_id,
                    job_id=job.job_id,
                    analyst=job.analyst,
                    decisions=decisions,
                    snapshots=snapshots,
                    fencing_token=lease.fencing_token,
                    principal=principal,
                )
                finished = self._clock.now()
                repository.finish_job(
                    conn,
                    job_id=job.job_id,
                    next_run_at=finished + job.interval,
                    last_run_at=started,
                    outcomes=[o.to_json() for o in outcomes],
                )
                audit.append(
                    conn,
                    service=SERVICE,
                    kind="scan.completed",
                    subject_id=job.job_id,
                    principal=principal,
                    payload={
                        **record,
                        "finished_at": finished.isoformat(),
                        "outcomes": [o.to_json() for o in outcomes],
                    },
                )
        except LeaseLost:
            raise
        except ScanFailed as exc:
            self._record_failure(
                lease=lease,
                job=job,
                record=record,
                reason=exc.reason,
                detail=exc.detail,
                retry_at=exc.retry_at,
                principal=principal,
            )
            raise
        except Exception as exc:
            log.exception("scan of job %s failed", job.job_id)
            self._record_failure(
                lease=lease,
                job=job,
                record=record,
                reason="SCAN_ERROR",
                detail=f"{type(exc).__name__}: {exc}",
                retry_at=None,
                principal=principal,
            )
            raise ScanFailed("SCAN_ERROR", type(exc).__name__) from exc
        outcomes = self._auto_execute(
            user_id=job.user_id,
            made=made,
            outcomes=outcomes,
            auto=auto,
            lease=lease,
            job_id=job.job_id,
            principal=principal,
        )
        return ScanResult(run_id, tuple(made), tuple(outcomes))

    def _record_failure(
        self,
        *,
        lease: Lease,
        job: ScanJob,
        record: dict[str, object],
        reason: str,
        detail: str,
        retry_at: datetime | None,
        principal: str,
    ) -> None:
        try:
            with self._fence.write(lease) as (conn, row):
                attempts = int(row["attempts"]) + 1
                now = self._clock.now()
                next_run_at = now + retry_delay(attempts, self._backoff.base_seconds, self._backoff.max_seconds)
                if retry_at is not None and retry_at > next_run_at:
                    next_run_at = retry_at
                error = f"{reason}: {detail}"[:4000]
                repository.fail_job(
                    conn, job_id=job.job_id, attempts=attempts, last_error=error, next_run_at=next_run_at
                )
                audit.append(
                    conn,
                    service=SERVICE,
                    kind="scan.failed",
                    subject_id=job.job_id,
                    principal=principal,
                    payload={
                        **record,
                        "finished_at": now.isoformat(),
                        "error": error,
                        "attempts": attempts,
                        "next_run_at": next_run_at.isoformat(),
                    },
                )
        except LeaseLost:
            log.warning("scan failure not recorded: lease lost", extra={"job_id": job.job_id})
        except Exception:
            log.exception("scan failure of job %s not recorded; its lease will expire", job.job_id)

    # ---------------------------------------------------------------------------- on demand
    def run_markets(self, user_id: str, markets: Sequence[str], analyst: str, *, principal: str) -> ScanResult:
        """Scan ``markets`` now for ``user_id`` without a job. Raises ScanFailed (nothing written)."""
        snapshots = self.market_data.snapshots(markets)
        started = self._clock.now()
        run_id = str(uuid.uuid4())
        decisions = self._analyse(user_id, markets, analyst, snapshots, None)
        with self._db.transaction(user_id) as conn:
            made, outcomes, auto = self._write(
                conn,
                user_id=user_id,
                job_id=None,
                analyst=analyst,
                decisions=decisions,
                snapshots=snapshots,
                fencing_token=None,
                principal=principal,
            )
            audit.append(
                conn,
                service=SERVICE,
                kind="scan.completed",
                subject_id=run_id,
                principal=principal,
                payload={
                    "run_id": run_id,
                    "trigger": "on_demand",
                    "instance": self._instance,
                    "started_at": started.isoformat(),
                    "finished_at": self._clock.now().isoformat(),
                    "outcomes": [o.to_json() for o in outcomes],
                },
            )
        outcomes = self._auto_execute(
            user_id=user_id, made=made, outcomes=outcomes, auto=auto, lease=None, job_id=None, principal=principal
        )
        return ScanResult(run_id, tuple(made), tuple(outcomes))

    # ---------------------------------------------------------------------------- steps
    def _analyse(
        self,
        user_id: str,
        markets: Sequence[str],
        analyst_kind: str,
        snapshots: Mapping[str, MarketSnapshot | MarketDataError],
        lease: Lease | None,
    ) -> dict[str, Decision]:
        """One decision per market; ScanFailed (before any analyst runs) when market data is
        transiently missing; LeaseLost as soon as the lease is known to be lost."""
        for market in markets:
            data = snapshots.get(market)
            if data is None:
                raise ScanFailed("MARKET_DATA_UNAVAILABLE", f"no data fetched for {market}")
            if isinstance(data, MarketDataError) and data.transient:
                raise ScanFailed(data.reason, data.detail, retry_at=data.retry_at)
        with self._db.transaction(user_id) as conn:
            policy = repository.get_policy(conn, user_id)
        analyst = self._analysts.get(analyst_kind)
        decisions: dict[str, Decision] = {}
        for market in markets:
            if lease is not None and lease.lost.is_set():
                raise LeaseLost(lease)
            data = snapshots[market]
            if isinstance(data, MarketDataError):
                decisions[market] = NoTrade(data.reason, data.detail)
            elif policy is None:
                decisions[market] = NoTrade("NO_POLICY", "the user has no trading policy")
            elif analyst is None:
                decisions[market] = NoTrade("ANALYST_NOT_CONFIGURED", f"no {analyst_kind} analyst in this scanner")
            else:
                decisions[market] = self._analyse_one(analyst, user_id, policy, data)
        return decisions

    @staticmethod
    def _analyse_one(analyst: Analyst, user_id: str, policy: Row, data: MarketSnapshot) -> Decision:
        """One market's decision, fit to store; whatever goes wrong is this market's reason."""
        try:
            bounds = order_bounds(policy, data)
            if bounds is None:
                return NoTrade(
                    "ORDER_SIZE_UNSATISFIABLE",
                    f"policy max {policy['max_order_eur']} EUR is below the minimum order {data.min_order_quote} EUR",
                )
            return storable(analyst.analyse(AnalysisRequest(user_id, data, bounds)))
        except Exception as exc:
            log.exception("analysing %s failed", data.market)
            return NoTrade("ANALYST_ERROR", type(exc).__name__)

    def _write(
        self,
        conn: Conn,
        *,
        user_id: str,
        job_id: str | None,
        analyst: str,
        decisions: Mapping[str, Decision],
        snapshots: Mapping[str, MarketSnapshot | MarketDataError],
        fencing_token: int | None,
        principal: str,
    ) -> tuple[list[Proposal], list[MarketOutcome], bool]:
        """Proposals for the trade ideas (in the caller's transaction); whether to auto-execute."""
        policy = repository.get_policy(conn, user_id)  # live, inside the writing transaction
        now = self._clock.now()
        made: list[Proposal] = []
        outcomes: list[MarketOutcome] = []
        for market, decision in decisions.items():
            data = snapshots[market]
            if isinstance(decision, TradeIdea) and policy is not None and isinstance(data, MarketSnapshot):
                try:
                    with conn.transaction():  # a savepoint: a refused row undoes only itself
                        proposal = proposals.write(
                            conn,
                            user_id=user_id,
                            job_id=job_id,
                            idea=decision,
                            analyst=analyst,
                            snapshot=data,
                            policy=policy,
                            now=now,
                            ttl=self._ttl,
                            fencing_token=fencing_token,
                            principal=principal,
                        )
                except ROW_REFUSED as exc:
                    # the row, not the database: this market only (connection trouble still fails the scan)
                    log.exception("proposal for %s not stored", market)
                    sqlstate = getattr(exc, "sqlstate", None) or "-"
                    outcomes.append(
                        MarketOutcome(
                            market, skipped_reason="PROPOSAL_NOT_STORED", detail=f"{type(exc).__name__} ({sqlstate})"
                        )
                    )
                    continue
                made.append(proposal)
                outcomes.append(MarketOutcome(market, proposal_id=proposal.proposal_id))
            elif isinstance(decision, NoTrade):
                outcomes.append(MarketOutcome(market, skipped_reason=decision.reason, detail=decision.detail))
            else:
                outcomes.append(MarketOutcome(market, skipped_reason="NO_POLICY", detail="the policy was removed"))
        auto = bool(policy is not None and policy["auto_execute"])
        return made, outcomes, auto

    def _auto_execute(
        self,
        *,
        user_id: str,
        made: list[Proposal],
        outcomes: list[MarketOutcome],
        auto: bool,
        lease: Lease | None,
        job_id: str | None,
        principal: str,
    ) -> list[MarketOutcome]:
        """Ask the executor for each new proposal when auto-execute is on; record the answers."""
        if not made:
            return outcomes
        answers: dict[str, AutoExecution] = {}
        for proposal in made:
            answers[proposal.proposal_id] = self._executor.execute(user_id, proposal.proposal_id) if auto else NOT_ASKED
        result = [
            replace(o, auto_execution=answers[o.proposal_id]) if o.proposal_id in answers else o for o in outcomes
        ]
        if not auto:
            return result
        try:
            if lease is not None and job_id is not None:
                with self._fence.write(lease) as (conn, _):
                    repository.set_last_outcomes(conn, job_id=job_id, outcomes=[o.to_json() for o in result])
                    self._audit_answers(conn, answers, principal)
            else:
                with self._db.transaction(user_id) as conn:
                    self._audit_answers(conn, answers, principal)
        except LeaseLost:
            log.warning("auto-execute answers not recorded on the job: it was claimed again", extra={"job_id": job_id})
        return result

    @staticmethod
    def _audit_answers(conn: Conn, answers: Mapping[str, AutoExecution], principal: str) -> None:
        for proposal_id, answer in answers.items():
            audit.append(
                conn,
                service=SERVICE,
                kind="proposal.auto_execute",
                subject_id=proposal_id,
                principal=principal,
                payload=answer.to_json(),
            )
