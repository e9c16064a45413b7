"""Following the demo's scan cycles as they happen: the scanner's own scheduler runs the job
(lease, fencing token, auto-execute), and the supervisor only watches the job's last run and
reads its per-market outcomes, the budget left and the orders counted at the simulator.

:class:`CycleReport` is one finished run; :class:`Totals` adds them up for the summary table.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2

from oraclectl.formatting import moment
from oraclectl.session import CliError, Session
from stack.demo import find_job

AUTO = scanner_pb2.AutoExecuteStatus
ANSWER_WAIT_SECONDS = 60.0  # longest wait for the executor's answers to a run's proposals


@dataclass(frozen=True)
class BudgetLeft:
    """The LLM calls still allowed today and in the rolling hour."""

    daily: str
    hourly: str

    @classmethod
    def of(cls, usage: budget_pb2.GetUsageResponse | None) -> BudgetLeft:
        if usage is None:
            return cls("?", "?")
        left = {w.window: ("unlimited" if w.unlimited else f"{w.remaining}/{w.limit}") for w in usage.windows}
        return cls(left.get(budget_pb2.WINDOW_DAILY_CALLS, "?"), left.get(budget_pb2.WINDOW_HOURLY_CALLS, "?"))


@dataclass(frozen=True)
class CycleReport:
    """One finished run of the demo job."""

    number: int
    ran_at: str  # as oraclectl says times
    outcomes: tuple[scanner_pb2.MarketOutcome, ...]
    budget: BudgetLeft
    exchange_orders: int | None  # orders the simulated exchange holds in total (None: not counted)
    executions_total: int | None = None  # the user's executions in the database, every run (None: not counted)
    money: executor_pb2.GetPositionsResponse | None = None  # the user's and the account's figures (GetPositions)
    usage: budget_pb2.GetUsageResponse | None = None  # the user's LLM budget
    operator: executor_pb2.GetOperatorFiguresResponse | None = None  # executions not final, reconciler, weight

    def outcome_rows(self) -> tuple[tuple[str, str, int, str], ...]:
        """What the cycle table shows, comparable between cycles: market, proposal, answer."""
        return tuple((o.market, o.skipped_reason, o.auto_execute, ",".join(o.execution_reasons)) for o in self.outcomes)

    @property
    def proposals(self) -> int:
        return sum(1 for o in self.outcomes if o.proposal_id)

    @property
    def executed(self) -> int:
        return sum(1 for o in self.outcomes if o.auto_execute == AUTO.AUTO_EXECUTE_STATUS_EXECUTED)

    def rejections(self) -> Counter[str]:
        """Refused executions by reason code (one refusal may carry several)."""
        counts: Counter[str] = Counter()
        for o in self.outcomes:
            if o.auto_execute in (AUTO.AUTO_EXECUTE_STATUS_REJECTED, AUTO.AUTO_EXECUTE_STATUS_ERROR):
                counts.update(o.execution_reasons or ["UNKNOWN"])
        return counts

    @property
    def rejected(self) -> int:
        return sum(1 for o in self.outcomes if o.auto_execute == AUTO.AUTO_EXECUTE_STATUS_REJECTED)

    def skips(self) -> Counter[str]:
        """Markets without a proposal, by why (HOLD, BUDGET_EXHAUSTED, …)."""
        return Counter(o.skipped_reason or "NO_PROPOSAL" for o in self.outcomes if not o.proposal_id)


@dataclass
class Totals:
    """Everything the run has shown, for the summary table."""

    cycles: int = 0
    scanned: int = 0
    proposals: int = 0
    executed: int = 0
    rejected: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)
    last: CycleReport | None = None

    def add(self, report: CycleReport) -> None:
        self.cycles += 1
        self.scanned += len(report.outcomes)
        self.proposals += report.proposals
        self.executed += report.executed
        self.rejected += report.rejected
        self.rejections.update(report.rejections())
        self.skips.update(report.skips())
        self.last = report


class CycleWatcher:
    """Notices each new finished run of one scan job."""

    def __init__(
        self,
        session: Session,
        user: str,
        job_id: str,
        count_orders: Callable[[], int | None] = lambda: None,
        *,
        since: float = 0.0,
    ) -> None:
        self._session = session
        self._user = user
        self._job_id = job_id
        self._count_orders = count_orders
        self._seen = ""
        self._pending: tuple[str, float] | None = None  # a finished run whose auto-execute answers are not in yet
        self._number = 0
        self._since_ns = int(since * 1e9)  # runs that started before this (the supervisor's start) do not count
        self.job = find_job(session, user, job_id)

    def poll(self) -> CycleReport | None:
        """The next finished run since the last call, or None.

        The scanner records a run (and releases the job) before it asks the executor about the
        run's proposals, then records the answers; a run counts as finished once every proposal
        has its answer, or :data:`ANSWER_WAIT_SECONDS` after the run was recorded.
        """
        job = find_job(self._session, self._user, self._job_id)
        self.job = job
        if job is None or not job.HasField("last_run_at") or job.locked_by:
            return None  # gone, never run, or a run in progress
        stamp = job.last_run_at.ToJsonString()
        if stamp == self._seen or job.last_run_at.ToNanoseconds() < self._since_ns:
            return None
        answered = all(
            o.auto_execute != AUTO.AUTO_EXECUTE_STATUS_UNSPECIFIED for o in job.last_outcomes if o.proposal_id
        )
        if not answered:
            if self._pending is None or self._pending[0] != stamp:
                self._pending = (stamp, time.monotonic())
            if time.monotonic() - self._pending[1] < ANSWER_WAIT_SECONDS:
                return None
        self._seen = stamp
        self._pending = None
        self._number += 1
        usage = self._usage()
        return CycleReport(
            number=self._number,
            ran_at=moment(job.last_run_at),
            outcomes=tuple(job.last_outcomes),
            budget=BudgetLeft.of(usage),
            exchange_orders=self._count_orders(),
            executions_total=self._count_executions(),
            money=self._money(),
            usage=usage,
            operator=self._operator(),
        )

    def _money(self) -> executor_pb2.GetPositionsResponse | None:
        """The demo user's and the account's figures (the executor's GetPositions)."""
        try:
            money: executor_pb2.GetPositionsResponse = self._session.call(
                "executor",
                self._session.executor().GetPositions,
                executor_pb2.GetPositionsRequest(user_id=self._user),
            )
        except CliError:
            return None
        return money

    def _operator(self) -> executor_pb2.GetOperatorFiguresResponse | None:
        """The operator's figures (GetOperatorFigures): the cycle's line says what is not final."""
        try:
            figures: executor_pb2.GetOperatorFiguresResponse = self._session.call(
                "executor", self._session.executor().GetOperatorFigures, executor_pb2.GetOperatorFiguresRequest()
            )
        except CliError:
            return None
        return figures

    def _count_executions(self) -> int | None:
        """Every execution of the user in the database: this run's and the earlier runs'."""
        total, token = 0, ""
        try:
            while True:
                request = executor_pb2.ListExecutionsRequest(user_id=self._user, page_size=500, page_token=token)
                page = self._session.call("executor", self._session.executor().ListExecutions, request)
                total += len(page.executions)
                token = page.next_page_token
                if not token:
                    return total
        except CliError:
            return None

    def _usage(self) -> budget_pb2.GetUsageResponse | None:
        try:
            usage: budget_pb2.GetUsageResponse = self._session.call(
                "budget", self._session.budget().GetUsage, budget_pb2.GetUsageRequest(user_id=self._user)
            )
        except CliError:
            return None
        return usage

    def seconds_to_next_run(self) -> float | None:
        """How long until the job is due (None when unknown or paused)."""
        job = self.job
        if job is None or job.paused or not job.HasField("next_run_at"):
            return None
        return max(0.0, job.next_run_at.ToNanoseconds() / 1e9 - time.time())
