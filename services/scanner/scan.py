"""One scan: market snapshots → an analyst per market → proposals → auto-execute.

:meth:`ScanRunner.run_leased` owns a job's run, whether the scheduler or RunScan claimed it. It
starts from the row the claim returned (no second read) and writes everything in ONE fenced
transaction (lease.py): its proposals and their audit events, the job's rescheduling (``next_run_at = now +
interval``, failure count cleared, lease released) and the ``scan.completed`` audit event that
records the run (instance, fencing token, due time, start and end). So a run's results exist
exactly once per due time, or not at all: a zombie writes nothing, a crash leaves the job due.

No network call happens inside a transaction: market data and the analysts run before it, the
executor is called after it. When the user's *live* policy (read inside the transaction) has
auto-execute on, each new proposal goes to ExecutorService.ExecuteProposal without overrides;
the answers are recorded in the audit trail and on the job (token-fenced again).

While the user's trading is off (their policy, or the global kill switch in account_settings)
a job's run analyses nothing: no LLM call, no rule-based proposal, every market recorded as
``TRADING_DISABLED`` saying how to turn trading on, unless the job was created with
``keep_proposing``. A scan on demand without a job (RunScan with markets) is a person asking
now, so it runs the analysts either way (the executor refuses the proposals while trading is off).

A failing scan (market data unavailable or rate-limited, database trouble, a bug) counts a
failure on the job and backs off exponentially (jobs.retry_delay), never before a rate-limit
reset. Per-market reasons that are not failures (HOLD, BUDGET_EXHAUSTED, LLM_INVALID_JSON,
MARKET_NOT_TRADING, NO_POLICY, TRADING_DISABLED …) are outcomes of a successful scan.

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
from typing import Protocol

import psycopg

from services.scanner import SERVICE, metrics, proposals, repository
from services.scanner.analyst import AnalysisRequest, Analyst, Decision, NoTrade, OrderBounds, storable
from services.scanner.jobs import ScanJob, retry_delay
from services.scanner.lease import Fence, Lease, LeaseLost
from services.scanner.market_data import MarketData, MarketDataError, MarketSnapshot
from services.scanner.outcomes import NOT_ASKED, AutoExecution, MarketOutcome
from services.scanner.proposals import Proposal
from shared import audit
from shared.clock import Clock
from shared.db import Conn, Database
from shared.order_size import OrderSizeLimits
from shared.policy import Policy

log = logging.getLogger(__name__)

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


def order_bounds(policy: Policy, snapshot: MarketSnapshot) -> OrderBounds | None:
    """The policy's size bounds narrowed to the market's (shared/order_size.py, the rule the
    executor validates by); None when nothing fits."""
    limits = OrderSizeLimits(
        policy_min_eur=policy.min_order_eur,
        policy_max_eur=policy.max_order_eur,
        market_min_eur=snapshot.min_order_quote,
    )
    span = limits.bounds()
    if span is None:
        return None
    return OrderBounds(min_eur=span[0], max_eur=span[1], min_confidence=policy.min_confidence)


@dataclass(frozen=True)
class _Run:
    """One scan as it is recorded: for whom, of what, who asked, and (for a job) under which lease."""

    run_id: str
    user_id: str
    markets: tuple[str, ...]
    analyst: str
    trigger: str
    principal: str
    instance: str
    started: datetime
    keep_proposing: bool  # analyse even while the user's trading is off
    lease: Lease | None = None
    job: ScanJob | None = None

    @property
    def job_id(self) -> str | None:
        return None if self.job is None else self.job.job_id

    @property
    def fencing_token(self) -> int | None:
        return None if self.lease is None else self.lease.fencing_token

    def record(self) -> dict[str, object]:
        """The fields every audit event of this run carries."""
        record: dict[str, object] = {"run_id": self.run_id, "trigger": self.trigger, "instance": self.instance}
        if self.job is not None:
            record["fencing_token"] = self.fencing_token
            record["due_at"] = self.job.next_run_at.isoformat()
        record["started_at"] = self.started.isoformat()
        return record


def _policy(conn: Conn, user_id: str) -> Policy | None:
    row = repository.get_policy(conn, user_id)
    return None if row is None else Policy.from_row(row)


def _trading_off(conn: Conn, policy: Policy) -> str | None:
    """Why the user's trading is off (their policy, the global kill switch), or None when it is on."""
    scopes = []
    if not policy.trading_enabled:
        scopes.append(f"for this user (their policy; turn it on with `oraclectl trading on --user {policy.user_id}`)")
    if not repository.global_trading_enabled(conn):
        scopes.append("for the whole account (turn it on with `oraclectl trading on --global`)")
    if not scopes:
        return None
    return (
        f"trading is off {' and '.join(scopes)}: the analysis was skipped (no LLM call); "
        "a scan job created with keep_proposing proposes anyway"
    )


class ScanRunner:
    """Runs scans: of a leased job (:meth:`run_leased`) and on demand without a job (:meth:`run_markets`)."""

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
        self._market_data = market_data
        self._analysts = analysts
        self._executor = executor
        self._ttl = proposal_ttl
        self._backoff = backoff
        self._instance = instance

    @metrics.traced("scan.market_data")
    def snapshots(self, leases: Sequence[Lease]) -> dict[str, MarketSnapshot | MarketDataError]:
        """The market data of every market of the leased jobs, read once for all of them."""
        return self._market_data.snapshots([m for lease in leases for m in _job_of(lease).markets])

    # ---------------------------------------------------------------------------- jobs
    @metrics.scan_run
    def run_leased(
        self,
        lease: Lease,
        snapshots: Mapping[str, MarketSnapshot | MarketDataError] | None = None,
        *,
        trigger: str = "schedule",
        principal: str = SCHEDULER_PRINCIPAL,
    ) -> ScanResult:
        """Run the leased job, on ``snapshots`` (a batch's) or on market data read now.

        Raises LeaseLost (nothing written) or ScanFailed (the failure was recorded and the job
        backs off). The job row is locked (under the lease's fencing token) once for the run's
        results, and once more only to record auto-execute answers.
        """
        job = _job_of(lease)
        if snapshots is None:
            snapshots = self._market_data.snapshots(job.markets)
        run = _Run(
            run_id=str(uuid.uuid4()),
            user_id=job.user_id,
            markets=job.markets,
            analyst=job.analyst,
            trigger=trigger,
            principal=principal,
            instance=self._instance,
            started=self._clock.now(),
            keep_proposing=job.keep_proposing,
            lease=lease,
            job=job,
        )
        try:
            decisions = self._analyse(run, snapshots)
            with self._fence.write(lease) as (conn, _):
                made, outcomes, auto = self._commit(conn, run, decisions, snapshots)
        except LeaseLost:
            raise
        except ScanFailed as exc:
            self._record_failure(run, lease, reason=exc.reason, detail=exc.detail, retry_at=exc.retry_at)
            raise
        except Exception as exc:
            log.exception("scan of job %s failed", job.job_id)
            self._record_failure(run, lease, reason="SCAN_ERROR", detail=f"{type(exc).__name__}: {exc}", retry_at=None)
            raise ScanFailed("SCAN_ERROR", type(exc).__name__) from exc
        return self._finish(run, made, outcomes, auto)

    def _record_failure(self, run: _Run, lease: Lease, *, reason: str, detail: str, retry_at: datetime | None) -> None:
        job_id = lease.job_id
        try:
            with self._fence.write(lease) as (conn, row):
                attempts = int(row["attempts"]) + 1
                now = self._clock.now()
                error = f"{reason}: {detail}"[:4000]
                next_run_at = repository.fail_job(
                    conn,
                    job_id=job_id,
                    attempts=attempts,
                    last_error=error,
                    delay=retry_delay(attempts, self._backoff.base_seconds, self._backoff.max_seconds),
                    not_before=retry_at,
                )
                audit.append(
                    conn,
                    service=SERVICE,
                    kind="scan.failed",
                    subject_id=job_id,
                    principal=run.principal,
                    payload={
                        **run.record(),
                        "finished_at": now.isoformat(),
                        "error": error,
                        "attempts": attempts,
                        "next_run_at": next_run_at.isoformat(),
                    },
                )
        except LeaseLost:
            log.warning("scan failure not recorded: lease lost", extra={"job_id": run.job_id})
        except Exception:
            log.exception("scan failure of job %s not recorded; its lease will expire", run.job_id)

    # ---------------------------------------------------------------------------- on demand
    def run_markets(self, user_id: str, markets: Sequence[str], analyst: str, *, principal: str) -> ScanResult:
        """Scan ``markets`` now for ``user_id`` without a job. Raises ScanFailed (nothing written)."""
        snapshots = self._market_data.snapshots(markets)
        run = _Run(
            run_id=str(uuid.uuid4()),
            user_id=user_id,
            markets=tuple(markets),
            analyst=analyst,
            trigger="on_demand",
            principal=principal,
            instance=self._instance,
            started=self._clock.now(),
            keep_proposing=True,  # a person asked for this scan now
        )
        decisions = self._analyse(run, snapshots)
        with self._db.transaction(user_id) as conn:
            made, outcomes, auto = self._commit(conn, run, decisions, snapshots)
        return self._finish(run, made, outcomes, auto)

    # ---------------------------------------------------------------------------- steps
    def _analyse(self, run: _Run, snapshots: Mapping[str, MarketSnapshot | MarketDataError]) -> dict[str, Decision]:
        """One decision per market; ScanFailed (before any analyst runs) when market data is
        transiently missing; LeaseLost as soon as the lease is known to be lost."""
        for market in run.markets:
            data = snapshots.get(market)
            if data is None:
                raise ScanFailed("MARKET_DATA_UNAVAILABLE", f"no data fetched for {market}")
            if isinstance(data, MarketDataError) and data.transient:
                raise ScanFailed(data.reason, data.detail, retry_at=data.retry_at)
        with self._db.transaction(run.user_id) as conn:
            policy = _policy(conn, run.user_id)
            trading_off = None if policy is None or run.keep_proposing else _trading_off(conn, policy)
        if trading_off is not None:
            log.info("scan skipped: %s", trading_off, extra={"user_id": run.user_id, "job_id": run.job_id})
        analyst = self._analysts.get(run.analyst)
        decisions: dict[str, Decision] = {}
        for market in run.markets:
            if run.lease is not None and run.lease.lost.is_set():
                raise LeaseLost(run.lease)
            data = snapshots[market]
            if isinstance(data, MarketDataError):
                decisions[market] = NoTrade(data.reason, data.detail)
            elif policy is None:
                decisions[market] = NoTrade("NO_POLICY", "the user has no trading policy")
            elif trading_off is not None:
                decisions[market] = NoTrade("TRADING_DISABLED", trading_off)
            elif analyst is None:
                decisions[market] = NoTrade("ANALYST_NOT_CONFIGURED", f"no {run.analyst} analyst in this scanner")
            else:
                decisions[market] = self._analyse_one(analyst, run.user_id, policy, data)
        return decisions

    @staticmethod
    def _analyse_one(analyst: Analyst, user_id: str, policy: Policy, data: MarketSnapshot) -> Decision:
        """One market's decision, fit to store; whatever goes wrong is this market's reason."""
        try:
            bounds = order_bounds(policy, data)
            if bounds is None:
                return NoTrade(
                    "ORDER_SIZE_UNSATISFIABLE",
                    f"policy max {policy.max_order_eur} EUR is below the minimum order {data.min_order_quote} EUR",
                )
            return storable(analyst.analyse(AnalysisRequest(user_id, data, bounds)))
        except Exception as exc:
            log.exception("analysing %s failed", data.market)
            return NoTrade("ANALYST_ERROR", type(exc).__name__)

    def _commit(
        self,
        conn: Conn,
        run: _Run,
        decisions: Mapping[str, Decision],
        snapshots: Mapping[str, MarketSnapshot | MarketDataError],
    ) -> tuple[list[Proposal], list[MarketOutcome], bool]:
        """A run's results in the caller's transaction: its proposals, the job's rescheduling (for
        a job) and the ``scan.completed`` event; whether to auto-execute (by the live policy)."""
        policy = _policy(conn, run.user_id)  # live, inside the writing transaction
        made: list[Proposal] = []
        outcomes: list[MarketOutcome] = []
        for market, decision in decisions.items():
            proposal, outcome = self._store(conn, run, market, decision=decision, data=snapshots[market], policy=policy)
            if proposal is not None:
                made.append(proposal)
            outcomes.append(outcome)
        finished = self._clock.now()
        if run.job is not None:
            repository.finish_job(
                conn,
                job_id=run.job.job_id,
                interval=run.job.interval,
                last_run_at=run.started,
                outcomes=[o.to_json() for o in outcomes],
            )
        audit.append(
            conn,
            service=SERVICE,
            kind="scan.completed",
            subject_id=run.run_id if run.job is None else run.job.job_id,
            principal=run.principal,
            payload={**run.record(), "finished_at": finished.isoformat(), "outcomes": [o.to_json() for o in outcomes]},
        )
        return made, outcomes, bool(policy is not None and policy.auto_execute)

    def _store(
        self,
        conn: Conn,
        run: _Run,
        market: str,
        *,
        decision: Decision,
        data: MarketSnapshot | MarketDataError,
        policy: Policy | None,
    ) -> tuple[Proposal | None, MarketOutcome]:
        """One market's outcome, with its proposal (stored under a savepoint) for a trade idea."""
        if isinstance(decision, NoTrade):
            return None, MarketOutcome(market, skipped_reason=decision.reason, detail=decision.detail)
        if policy is None or not isinstance(data, MarketSnapshot):
            return None, MarketOutcome(market, skipped_reason="NO_POLICY", detail="the policy was removed")
        try:
            with conn.transaction():  # a savepoint: a refused row undoes only itself
                proposal = proposals.write(
                    conn,
                    user_id=run.user_id,
                    job_id=run.job_id,
                    idea=decision,
                    analyst=run.analyst,
                    snapshot=data,
                    policy=policy,
                    ttl=self._ttl,
                    fencing_token=run.fencing_token,
                    principal=run.principal,
                )
        except ROW_REFUSED as exc:
            # the row, not the database: this market only (connection trouble still fails the scan)
            log.exception("proposal for %s not stored", market)
            sqlstate = getattr(exc, "sqlstate", None) or "-"
            detail = f"{type(exc).__name__} ({sqlstate})"
            return None, MarketOutcome(market, skipped_reason="PROPOSAL_NOT_STORED", detail=detail)
        return proposal, MarketOutcome(market, proposal_id=proposal.proposal_id)

    def _finish(self, run: _Run, made: list[Proposal], outcomes: list[MarketOutcome], auto: bool) -> ScanResult:
        """After the run's transaction: auto-execute its proposals, and the run's result."""
        return ScanResult(run.run_id, tuple(made), tuple(self._auto_execute(run, made, outcomes, auto)))

    def _auto_execute(
        self, run: _Run, made: list[Proposal], outcomes: list[MarketOutcome], auto: bool
    ) -> list[MarketOutcome]:
        """Ask the executor for each new proposal when auto-execute is on; record the answers."""
        if not made:
            return outcomes
        answers: dict[str, AutoExecution] = {}
        for proposal in made:
            answers[proposal.proposal_id] = (
                self._executor.execute(run.user_id, proposal.proposal_id) if auto else NOT_ASKED
            )
        result = [
            replace(o, auto_execution=answers[o.proposal_id]) if o.proposal_id in answers else o for o in outcomes
        ]
        if not auto:
            return result
        try:
            if run.lease is not None and run.job is not None:
                with self._fence.write(run.lease) as (conn, _):
                    repository.set_last_outcomes(conn, job_id=run.job.job_id, outcomes=[o.to_json() for o in result])
                    self._audit_answers(conn, answers, run.principal)
            else:
                with self._db.transaction(run.user_id) as conn:
                    self._audit_answers(conn, answers, run.principal)
        except LeaseLost:
            log.warning(
                "auto-execute answers not recorded on the job: it was claimed again", extra={"job_id": run.job_id}
            )
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


def _job_of(lease: Lease) -> ScanJob:
    """The job a claim returned with ``lease`` (a lease rebuilt from a token alone cannot run)."""
    if lease.job is None:
        raise ValueError(f"lease on job {lease.job_id} carries no job: only a claim's lease can run")
    return lease.job
