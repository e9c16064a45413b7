"""ExecuteProposal: check, claim, submit — the one place a proposal becomes an order.

The order of events is the guarantee (docs/design.md#checking-a-proposal):

1. A quick unlocked look (``_pre_read``, the same gate as under the lock): an existing execution
   → ALREADY_EXISTS before anything else; then overrides only from the operator
   (PERMISSION_DENIED, audited); then the proposal must exist. It reads no policy: the policy is
   read once, under the lock. For a BUY it reads every user's books (oracle.account_book).
2. Before any lock: fetch over the network what the validators need — the market's rules
   (cached), its current price, the account's free balance (reused for a few seconds with its
   database time: balances.Balances); for a BUY, the prices of every held market (the loss
   breaker's marks, breaker.Marks; which markets, and every user's books, were read in step 1).
3. One transaction for the user, holding the account lock (shared) and the user's trading lock
   (one statement, which also reads the database's clock: the claim's time and every window's,
   docs/design.md#one-clock-per-decision): (1) the same gate again, and the proposal
   must be the very version the market data was fetched for (PROPOSAL_CHANGED otherwise);
   (2) the user's live policy — the one read of it (a user without one
   has the default policy) — and the scanner only while it has auto-execute on
   (PERMISSION_DENIED, audited); (3) the proposal: expired → PROPOSAL_EXPIRED; (4) what is the
   user's own — its figures, a SELL's position, a BUY's breaker reading (breaker.read_user);
   (5) the account row, locked until commit with the account-wide figures read after the lock
   in the same round trip (repository.lock_account_for_claim) — the one read of the global kill
   switch and the account's notional cap — and the kill switches → TRADING_DISABLED; (6) every
   validator against that policy and cap (a SELL also against the user's own position:
   validators.position) and, for a BUY, the loss breaker (breaker.evaluate) → FAILED_PRECONDITION
   listing every failure (audited; the proposal stays executable; a crossed loss limit then moves
   the user or the account to REDUCING in a transaction of its own, breaker.trip);
   (7) the claim in one statement: INSERT … ON CONFLICT (user_id, proposal_id) DO NOTHING,
   written directly as SUBMITTING with its order request and its signing deadline in exchange
   time (``sign_deadline_ms``: exchange clock before the transaction + ``send_within``;
   docs/design.md#late-send-deadline), and its two audit events (``execution.claimed``, then the
   CLAIMED → SUBMITTING transition). The design's re-read of the kill switches at CLAIMED →
   SUBMITTING is (5): this transaction holds the account lock shared and the account row from that
   read until the commit, and the switches take them exclusively, so none can turn off between
   the read and SUBMITTING (docs/design.md#checking-a-proposal). SUBMITTING is committed before
   anything leaves. Every claim of the account queues on the row of (5), so nothing after it
   waits on anything but memory and that one write (docs/design.md#speed-that-lasts).
4. The single POST /order (a SELL sized by its checked base amount, a BUY by its EUR amount) with
   a clientOrderId derived from (user_id, proposal_id), signed with
   exchange time by the shared client, which refuses — at the signature, whatever stalled before
   it — to sign past the stored deadline (then FAILED "SEND_TOO_LATE", nothing sent: the
   reconciler's "proven absent" rule stays true). It is never sent again for this execution, by
   anyone: its answer — or the lack of one — only moves the execution
   (state_machine.record_order / advance); the reconciler resolves the rest.

No network call happens while a lock is held.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from services.executor import SERVICE, breaker, ledger, metrics, policies, repository, state_machine, validators
from services.executor import books_repository as books
from services.executor.balances import INSUFFICIENT_BALANCE, Balances
from services.executor.model import Execution, MarketInfo, OrderView, Proposal, Side, Status, base_asset
from services.executor.validators import Check, Facts
from services.executor.venue import Venue
from shared import audit, principals
from shared.clock import Clock, start_of_utc_day
from shared.db import Conn, Database
from shared.db.locks import lock_for_trading
from shared.errors import (
    AlreadyExists,
    InvariantBroken,
    NotFound,
    OracleError,
    PermissionDenied,
    PreconditionViolation,
    Unavailable,
)
from shared.errors import (
    FailedPrecondition as FailedPreconditionError,
)
from shared.exchange.errors import ExchangeError, OutcomeUnknownError, SigningDeadlinePassedError
from shared.ids import new_id
from shared.policy import Policy

log = logging.getLogger(__name__)

# Fixed namespace of every clientOrderId this project sends: uuid5(NAMESPACE, "user:proposal").
CLIENT_ORDER_NAMESPACE = uuid.UUID("6f1c2a4e-9b7d-5e83-a0c4-2d5f8e1b3a97")

# The FAILED code of an order the client refused to sign past its deadline (nothing sent).
SEND_TOO_LATE = "SEND_TOO_LATE"


def client_order_id(user_id: str, proposal_id: str) -> str:
    """The order's clientOrderId: the same for every attempt at one proposal, unique across them."""
    return str(uuid.uuid5(CLIENT_ORDER_NAMESPACE, f"{user_id}:{proposal_id}"))


class ExecutionExists(AlreadyExists):
    """The proposal was claimed before; ``execution`` is that claim. The servicer attaches it to
    the ALREADY_EXISTS status as an extra detail."""

    def __init__(self, execution: Execution) -> None:
        super().__init__(
            "execution",
            execution.execution_id,
            reason="EXECUTION_EXISTS",
            metadata={"proposal_id": execution.proposal_id, "status": execution.status.value},
        )
        self.execution = execution


@dataclass(frozen=True)
class ExecuteRequest:
    """One ExecuteProposal call, validated."""

    user_id: str
    proposal_id: str
    principal: str
    override_cooldown: bool = False
    override_anti_flip: bool = False
    override_reason: str = ""

    @property
    def overrides(self) -> bool:
        return self.override_cooldown or self.override_anti_flip


@dataclass(frozen=True)
class Hooks:
    """Seams between the steps where a test steps in (tests/support/executor_with_hooks.py kills
    the process at one). Production builds the Executor with the no-op default."""

    after_fetch: Callable[[Proposal], None] = field(default=lambda _p: None)
    before_send: Callable[[Execution], None] = field(default=lambda _e: None)
    after_send: Callable[[Execution], None] = field(default=lambda _e: None)


@dataclass(frozen=True)
class MarketContext:
    """What was fetched over the network before the transaction."""

    proposal: Proposal  # the version the facts were fetched for
    market: MarketInfo | None
    price: Decimal | None
    free_balance: Decimal
    balance_at: datetime  # the database's clock before the balance was read (a cached one's)
    marks: Mapping[str, Decimal] = field(default_factory=dict)  # prices of held markets (the breaker)
    account_book: Sequence[Mapping[str, Any]] = ()  # every user's positions (a BUY's breaker)


@dataclass(frozen=True)
class UserSide:
    """What the claim reads of the user's own executions and books, under the user's lock."""

    figures: repository.UserFigures
    position_base: Decimal  # a SELL: the user's coins of the market (its books)
    sells_in_flight_base: Decimal  # a SELL: the user's SELLs of the market not final yet


class Executor:
    """The ExecuteProposal flow."""

    def __init__(
        self,
        db: Database,
        venue: Venue,
        clock: Clock,
        *,
        send_within: timedelta,
        hooks: Hooks | None = None,
        marks: breaker.Marks | None = None,
        balances: Balances | None = None,
    ) -> None:
        self._db = db
        self._marks = marks or breaker.Marks(venue.price, ttl_seconds=0)
        self._balances = balances or Balances(venue.free_balance, max_age_seconds=0)
        self._send_within = send_within
        self._venue = venue
        self._clock = clock
        self._hooks = hooks or Hooks()

    # ------------------------------------------------------------------ the flow

    def execute(self, req: ExecuteRequest) -> Execution:
        """Check, claim and submit one proposal; returns the execution after its order's answer."""
        proposal, account_book = self._pre_read(req)
        try:
            context = self._fetch(proposal, account_book)
        except Unavailable as exc:
            self._refuse_in_own_transaction(req, exc)
        self._hooks.after_fetch(proposal)
        submitting = self._check_and_claim(req, context)
        return self._send(submitting)

    def _pre_read(self, req: ExecuteRequest) -> tuple[Proposal, list[dict[str, Any]]]:
        """A quick unlocked look: settles duplicates, a refused override and unknown proposals
        without touching the network. Everything is checked again under the lock.

        For a BUY it also reads every user's books (oracle.account_book): which markets the loss
        breaker must price, and the account's figures it checks. Fills are recorded without the
        account lock, so reading the books under it would make them no more current; the prices
        they are valued at are seconds old anyway (breaker.Marks)."""
        account_book: list[dict[str, Any]] = []
        with self._db.transaction(req.user_id) as conn:
            outcome = self._gate(conn, req)
            if isinstance(outcome, OracleError):
                self._audit_refusal(conn, req, outcome)
            elif outcome.side is Side.BUY:
                if outcome.read_at is None:
                    raise InvariantBroken("proposal.read_at is missing")
                account_book = books.account_book(
                    conn, mode=self._venue.mode, day_start=start_of_utc_day(outcome.read_at)
                )
        if isinstance(outcome, OracleError):
            raise outcome
        return outcome, account_book

    def _fetch(self, proposal: Proposal, account_book: list[dict[str, Any]]) -> MarketContext:
        """Network, before any lock: market rules, current price, free balance (a cached one while
        it is young: balances.Balances), the prices of held markets for a BUY.

        The balance's time is the database's clock before it was read (for a fresh read, the
        proposal's read just before): never later than the exchange computed it, so EUR in
        flight since then is never undercounted."""
        if proposal.read_at is None:
            raise InvariantBroken("proposal.read_at is missing")
        try:
            market = self._venue.market(proposal.market)
            # an unlisted market has no price: the validators refuse it (MARKET_NOT_TRADING)
            price = self._venue.price(proposal.market) if market is not None else None
            balance = self._balances.get(_balance_symbol(proposal), proposal.market, db_now=proposal.read_at)
            marks = (
                self._marks.prices(
                    breaker.held_markets(account_book), read_now={proposal.market: price} if price else None
                )
                if proposal.side is Side.BUY
                else {}
            )
        except ExchangeError as exc:
            log.warning("exchange unavailable before a claim: %s", type(exc).__name__)
            raise Unavailable(
                "the exchange could not be reached; nothing was claimed", reason="EXCHANGE_UNAVAILABLE"
            ) from exc
        return MarketContext(proposal, market, price, balance.free, balance.as_of, marks, account_book)

    def _check_and_claim(self, req: ExecuteRequest, ctx: MarketContext) -> Execution:
        """The locked transaction: duplicate, proposal, kill switch, validators, the claim as
        SUBMITTING."""
        # Exchange time, read before the lock (a stale offset is re-measured: network): the order
        # may be signed until send_within after it, and never later (checked at the signature).
        # Read before the claim, the deadline can only be earlier than the commit makes necessary.
        sign_deadline_ms = self._venue.exchange_now_ms() + self._send_within // timedelta(milliseconds=1)
        with self._db.transaction(req.user_id) as conn:
            now = lock_for_trading(conn, req.user_id)  # and the database's clock
            outcome = self._decide(conn, req, ctx, now, sign_deadline_ms)
            if isinstance(outcome, OracleError):
                self._audit_refusal(conn, req, outcome)
        if isinstance(outcome, Rejection) and outcome.verdict is not None:
            # the loss breaker's move, in a transaction of its own after the refusal
            breaker.trip(
                self._db,
                user_id=req.user_id,
                mode=self._venue.mode,
                verdict=outcome.verdict,
                principal=req.principal,
                now=now,  # the database's clock of the refusal that detected it
            )
        if isinstance(outcome, OracleError):
            raise outcome
        return outcome

    def _admit(
        self, conn: Conn, req: ExecuteRequest, ctx: MarketContext, now: datetime
    ) -> tuple[Proposal, Policy] | OracleError:
        """Under the lock, before any validator: the gate again, the very proposal version the
        market data was fetched for, the one read of the live policy, the scanner's right, and
        the proposal's freshness."""
        gated = self._gate(conn, req)
        if isinstance(gated, OracleError):
            return gated
        proposal = gated
        version = validators.same_version(ctx.proposal, proposal)
        if not version.passed:  # never validate facts fetched for another version
            return rejection(proposal, [version])
        policy = policies.live_policy(conn, req.user_id)  # the execution's one read of the policy
        if req.principal == principals.SCANNER and not policy.auto_execute:
            return PermissionDenied(
                "auto-execute is off in this user's policy: the scanner may not execute", reason="AUTO_EXECUTE_OFF"
            )
        freshness = validators.freshness(proposal, now)
        if not freshness.passed:
            return rejection(proposal, [freshness])
        return proposal, policy

    def _decide(
        self, conn: Conn, req: ExecuteRequest, ctx: MarketContext, now: datetime, sign_deadline_ms: int
    ) -> Execution | OracleError:
        admitted = self._admit(conn, req, ctx, now)
        if isinstance(admitted, OracleError):
            return admitted
        proposal, policy = admitted
        day_start = start_of_utc_day(now)
        # First what is the user's own, under the user's lock alone (it orders every claim of this
        # user; no other user's claim changes any of it): its figures and, for a BUY, the loss
        # breaker's reading of its books.
        mine = self._user_side(conn, proposal, policy, now)
        reading = (
            breaker.read_user(conn, user_id=req.user_id, mode=self._venue.mode, day_start=day_start, prices=ctx.marks)
            if proposal.side is Side.BUY
            else None
        )
        # Then the account row, locked until commit (lock order: account advisory lock shared, user
        # lock, account row) — the claim's one read of the global kill switch and of the account
        # cap — with the account-wide figures read after the lock was granted, in one round trip:
        # no other user's claim or UpdateAccountSettings lands between them and the claim. Every
        # claim of the account queues here, so only what must be serialized is done from here on.
        account = repository.lock_account_for_claim(
            conn,
            mode=self._venue.mode,
            side=proposal.side,
            market=proposal.market,
            day_start=day_start,
            day_end=day_start + timedelta(days=1),
            balance_at=ctx.balance_at,
        )
        switch = validators.kill_switch(account.trading_enabled, policy.trading_enabled)
        if not switch.passed:
            return rejection(proposal, [switch])
        facts = self._facts(req, proposal=proposal, policy=policy, ctx=ctx, now=now, mine=mine, account=account)
        checks = validators.run_validators(facts)
        verdict = None
        if reading is not None:  # the loss breaker stops BUYs only: a losing user can get out
            verdict = breaker.evaluate(
                reading,
                account_book=ctx.account_book,
                prices=ctx.marks,
                max_daily_loss_eur=policy.max_daily_loss_eur,
                max_drawdown_eur=policy.max_drawdown_eur,
                account_state=account.trading_state,
                account_daily_loss_limit_eur=account.daily_loss_limit_eur,
            )
            checks += verdict.checks
        failed = validators.failures(checks)
        if failed:
            tripped = verdict if verdict is not None and (verdict.trip_user or verdict.trip_account) else None
            return Rejection(proposal, failed, checks, verdict=tripped)
        return self._claim(conn, req, facts, checks, now=now, sign_deadline_ms=sign_deadline_ms)

    def _gate(self, conn: Conn, req: ExecuteRequest) -> Proposal | OracleError:
        """(1) an existing execution — before any other check, whoever calls and with whatever
        flags —, then the caller's right to override and the proposal's existence."""
        existing = repository.execution_by_proposal(conn, req.proposal_id)
        if existing is not None:
            return ExecutionExists(Execution.from_row(existing))
        if req.overrides and not principals.may_override(req.principal):
            return PermissionDenied(
                f"principal {req.principal} may not override validators", reason="OVERRIDE_NOT_ALLOWED"
            )
        row = repository.proposal(conn, req.proposal_id)
        if row is None:
            return NotFound("proposal", req.proposal_id, reason="PROPOSAL_NOT_FOUND")
        return Proposal.from_row(row)

    def _user_side(self, conn: Conn, proposal: Proposal, policy: Policy, now: datetime) -> UserSide:
        """Cooldown, anti-flip, caps and notional of the user's executions (a bounded index range:
        repository.user_figures) and, for a SELL, its coins and its SELLs in flight — read under
        the user's lock, which every claim of this user holds, so two SELLs cannot both count the
        same coins."""
        day_start = start_of_utc_day(now)
        hour_start = now - timedelta(hours=1)
        longest = timedelta(seconds=max(policy.cooldown_seconds, policy.anti_flip_seconds))
        figures = repository.user_figures(
            conn,
            mode=self._venue.mode,
            market=proposal.market,
            side=proposal.side,
            day_start=day_start,
            hour_start=hour_start,
            since=min(day_start, hour_start, now - longest),
        )
        held = in_flight = Decimal(0)
        if proposal.side is Side.SELL:
            # In flight first, then the position (two statements, two snapshots): a SELL whose fill
            # commits in between is then counted twice (in flight, and gone from the position),
            # never missed — read the other way round, its coins would count as still available.
            in_flight = books.sells_in_flight_base(conn, mode=self._venue.mode, market=proposal.market)
            held = ledger.position_of(conn, self._venue.mode, proposal.market).quantity
        return UserSide(figures, held, in_flight)

    def _facts(
        self,
        req: ExecuteRequest,
        *,
        proposal: Proposal,
        policy: Policy,
        ctx: MarketContext,
        now: datetime,
        mine: UserSide,
        account: repository.AccountForClaim,
    ) -> Facts:
        return Facts(
            proposal=proposal,
            policy=policy,
            now=now,
            market=ctx.market,
            price_now=ctx.price,
            free_balance=ctx.free_balance,
            in_flight_eur=account.figures.in_flight_eur,
            last_on_market_at=mine.figures.last_on_market_at,
            last_opposite_at=mine.figures.last_opposite_at,
            trades_today=mine.figures.trades_today,
            trades_last_hour=mine.figures.trades_last_hour,
            notional_today_eur=mine.figures.notional_today_eur,
            account_notional_today_eur=account.figures.notional_today_eur,
            account_daily_notional_cap_eur=account.daily_notional_cap_eur,
            override_cooldown=req.override_cooldown,
            override_anti_flip=req.override_anti_flip,
            position_base=mine.position_base,
            sells_in_flight_base=mine.sells_in_flight_base,
        )

    def _claim(
        self,
        conn: Conn,
        req: ExecuteRequest,
        facts: Facts,
        checks: list[Check],
        *,
        now: datetime,
        sign_deadline_ms: int,
    ) -> Execution | OracleError:
        """(7) Every check passed, the kill switches among them, read under the locks this
        transaction still holds: claim the proposal, once, and move it to SUBMITTING in the same
        statement — committed before anything is sent."""
        proposal = facts.proposal
        records = [c.record() for c in checks]
        amount_base = facts.sell_base if proposal.side is Side.SELL else None
        cid = client_order_id(req.user_id, proposal.proposal_id)
        row = repository.insert_claim(
            conn,
            execution_id=new_id(),
            user_id=req.user_id,
            proposal_id=proposal.proposal_id,
            mode=self._venue.mode,
            market=proposal.market,
            side=proposal.side,
            amount_quote=facts.amount,
            client_order_id=cid,
            override_cooldown=req.override_cooldown,
            override_anti_flip=req.override_anti_flip,
            principal=req.principal,
            preflight={"validators": records, "price": str(facts.price_now or ""), "fetched_at": now.isoformat()},
            now=now,
            service=SERVICE,
            validators=records,
            request=_order_request(proposal.market, proposal.side, facts.amount, amount_base, cid),
            sign_deadline_ms=sign_deadline_ms,
            amount_base=amount_base,
        )
        if row is None:  # the unique claim held against a caller that got past the lock somehow
            existing = repository.execution_by_proposal(conn, proposal.proposal_id)
            if existing is None:
                raise InvariantBroken(f"the claim of proposal {proposal.proposal_id} conflicted with no execution")
            return ExecutionExists(Execution.from_row(existing))
        claimed = Execution.from_row(row)  # its two events were written with it
        metrics.claimed()
        overridden = [c.record() for c in checks if c.overridden]
        if overridden:
            audit.append(
                conn,
                service=SERVICE,
                kind="execution.override",
                subject_id=claimed.execution_id,
                principal=req.principal,
                payload={"proposal_id": claimed.proposal_id, "reason": req.override_reason, "overridden": overridden},
            )
        return claimed

    # ------------------------------------------------------------------ after the claim

    def _send(self, submitting: Execution) -> Execution:
        """The one order of a SUBMITTING execution, then its answer."""
        self._hooks.before_send(submitting)
        if submitting.sign_deadline_ms is None:
            raise InvariantBroken(f"execution {submitting.execution_id} is SUBMITTING without its signing deadline")
        try:
            view = self._venue.place(
                market=submitting.market,
                side=submitting.side,
                amount_quote=submitting.amount_quote,
                client_order_id=submitting.client_order_id,
                amount=submitting.amount_base,
                sign_by_ms=submitting.sign_deadline_ms,
            )
        except Exception as exc:  # every failure is recorded; none leads to a second order
            self._hooks.after_send(submitting)
            return self._record_failure(submitting, exc)
        self._hooks.after_send(submitting)
        return self._record_answer(submitting, view)

    def _record_answer(self, sent: Execution, view: OrderView) -> Execution:
        now = self._clock.now()
        with self._db.transaction(sent.user_id) as conn:
            moved = state_machine.record_order(conn, sent, view, now=now, principal=sent.principal)
        return moved or self._reread(sent)

    def _record_failure(self, sent: Execution, exc: Exception) -> Execution:
        """A refusal (the order does not exist) → FAILED; anything else → UNKNOWN."""
        definitive = state_machine.order_absent(exc)
        new = Status.FAILED if definitive else Status.UNKNOWN
        if isinstance(exc, ExchangeError) and exc.code == INSUFFICIENT_BALANCE:
            # refused for balance: nothing was created (FAILED); the balance this was checked
            # against was wrong (money left the account outside this system): read it again
            self._balances.forget(_balance_symbol(sent))
        code = getattr(exc, "code", None)
        error = state_machine.error_record(
            str(code) if code is not None else type(exc).__name__,
            getattr(exc, "message", "") or str(exc),
            source="exchange" if isinstance(exc, ExchangeError) else "executor",
        )
        if isinstance(exc, SigningDeadlinePassedError):  # stalled before the signature: not sent
            log.warning("order %s not signed: past its signing deadline", sent.client_order_id)
            error = state_machine.error_record(SEND_TOO_LATE, f"{exc}; nothing sent", source=SERVICE)
        elif not isinstance(exc, ExchangeError):
            log.exception("unexpected failure sending order %s; outcome unknown", sent.client_order_id)
        elif isinstance(exc, OutcomeUnknownError):
            log.warning("order %s: outcome unknown (%s)", sent.client_order_id, error["code"])
        now = self._clock.now()
        with self._db.transaction(sent.user_id) as conn:
            moved = state_machine.advance(
                conn,
                sent,
                new,
                now=now,
                principal=sent.principal,
                changes={"error": error},
                audit_payload={"exchange_response": error},
            )
        return moved or self._reread(sent)

    def _reread(self, execution: Execution) -> Execution:
        with self._db.transaction(execution.user_id) as conn:
            row = repository.execution(conn, execution.execution_id)
        if row is None:
            raise InvariantBroken(f"execution {execution.execution_id} is gone")
        return Execution.from_row(row)

    # ------------------------------------------------------------------ refusals

    def _refuse_in_own_transaction(self, req: ExecuteRequest, error: OracleError) -> NoReturn:
        with self._db.transaction(req.user_id) as conn:
            self._audit_refusal(conn, req, error)
        raise error

    def _audit_refusal(self, conn: Conn, req: ExecuteRequest, error: OracleError) -> None:
        """Every refused attempt is in the user's trail, with every failed validator."""
        payload: dict[str, Any] = {"proposal_id": req.proposal_id, "reason": error.reason}
        kind = "execution.rejected"
        if isinstance(error, ExecutionExists):
            kind = "execution.duplicate"
            payload["execution_id"] = error.execution.execution_id
            payload["status"] = error.execution.status.value
        elif isinstance(error, PermissionDenied):
            kind = "execution.denied"
        elif isinstance(error, Rejection):
            payload["validators"] = error.records
        if req.overrides:
            payload["override_cooldown"] = req.override_cooldown
            payload["override_anti_flip"] = req.override_anti_flip
            payload["override_reason"] = req.override_reason
        audit.append(
            conn, service=SERVICE, kind=kind, subject_id=req.proposal_id, principal=req.principal, payload=payload
        )
        metrics.refused(kind, error.reason)


class Rejection(FailedPreconditionError):
    """FAILED_PRECONDITION listing every failed check; ``records`` are all the checks that ran."""

    def __init__(
        self, proposal: Proposal, failed: list[Check], ran: list[Check], verdict: breaker.Verdict | None = None
    ) -> None:
        super().__init__(
            [
                PreconditionViolation(
                    type=c.reason, subject=c.name, description=f"observed {c.observed}; limit {c.limit}"
                )
                for c in failed
            ],
            reason=failed[0].reason if len(failed) == 1 else "VALIDATION_FAILED",
            metadata={"proposal_id": proposal.proposal_id},
        )
        self.records = [c.record() for c in ran]
        self.verdict = verdict  # a loss limit crossed: the breaker moves to REDUCING after the refusal


def rejection(proposal: Proposal, failed: list[Check], ran: list[Check] | None = None) -> Rejection:
    """The refusal of a proposal that failed ``failed`` (of the checks ``ran``)."""
    return Rejection(proposal, failed, ran if ran is not None else failed)


def _balance_symbol(order: Proposal | Execution) -> str:
    """The asset an order spends: EUR for a BUY, the market's base asset for a SELL."""
    return "EUR" if order.side is Side.BUY else base_asset(order.market)


def _order_request(
    market: str, side: Side, amount_quote: Decimal, amount_base: Decimal | None, client_order_id: str
) -> dict[str, Any]:
    """The order as it is sent (recorded before sending; operatorId is added by the client): a
    SELL by its checked base amount, a BUY by its EUR amount."""
    size = {"amount": str(amount_base)} if amount_base is not None else {"amountQuote": str(amount_quote)}
    return {"market": market, "side": side.value, "orderType": "market", **size, "clientOrderId": client_order_id}
