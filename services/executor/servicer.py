"""oracle.executor.v1.ExecutorService: proto ↔ domain translation, nothing else.

Every request field is checked here (shared.fields) before the domain or the database sees it,
and one INVALID_ARGUMENT names every bad field. The rules live in execution.py (ExecuteProposal),
reconciler.py, policies.py (policies, account settings, kill switches) and validators.py.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from oracle.executor.v1 import executor_service_pb2 as pb
from oracle.executor.v1 import executor_service_pb2_grpc as pb_grpc

from services.executor import breaker, reconciler_health, repository
from services.executor.execution import ExecuteRequest, ExecutionExists, Executor
from services.executor.model import Execution, Side, Status
from services.executor.money import AccountMoney, MoneyView, UserMoney
from services.executor.operator_figures import OperatorFigures
from services.executor.policies import MAX_EUR, AccountSettings, PolicyBook
from services.executor.reconciler import Reconciler
from shared import fields, messages
from shared.clock import Clock
from shared.db import SYSTEM_USER, Database
from shared.errors import AlreadyExists, InvalidArgument, NotFound
from shared.exchange.sdk import RateLimitStatus
from shared.policy import Policy
from shared.principals import current_principal

T = TypeVar("T")

MAX_REASON = 500
MAX_SUBJECT = 100

_SIDE = {Side.BUY: pb.SIDE_BUY, Side.SELL: pb.SIDE_SELL}
_STATUS = {
    Status.CLAIMED: pb.EXECUTION_STATUS_CLAIMED,
    Status.SUBMITTING: pb.EXECUTION_STATUS_SUBMITTING,
    Status.SUBMITTED: pb.EXECUTION_STATUS_SUBMITTED,
    Status.PARTIALLY_FILLED: pb.EXECUTION_STATUS_PARTIALLY_FILLED,
    Status.FILLED: pb.EXECUTION_STATUS_FILLED,
    Status.CANCELED: pb.EXECUTION_STATUS_CANCELED,
    Status.UNKNOWN: pb.EXECUTION_STATUS_UNKNOWN,
    Status.FAILED: pb.EXECUTION_STATUS_FAILED,
}
_STATUS_OF = {number: status for status, number in _STATUS.items()}
_MODE = {"live": pb.EXECUTION_MODE_LIVE, "paper": pb.EXECUTION_MODE_PAPER}
_STATE = {
    breaker.ACTIVE: pb.TRADING_STATE_ACTIVE,
    breaker.REDUCING: pb.TRADING_STATE_REDUCING,
    breaker.HALTED: pb.TRADING_STATE_HALTED,
}
_STATE_NAME = {number: name for name, number in _STATE.items()}


class ExecutorServicer(pb_grpc.ExecutorServiceServicer):
    """The gRPC face of the executor."""

    def __init__(
        self,
        db: Database,
        executor: Executor,
        reconciler: Reconciler,
        policies: PolicyBook,
        money: MoneyView,
        *,
        clock: Clock,
        mode: str,
        figures: OperatorFigures,
    ) -> None:
        self._db = db
        self._executor = executor
        self._reconciler = reconciler
        self._policies = policies
        self._money = money
        self._clock = clock
        self._mode = mode
        self._figures = figures

    # ------------------------------------------------------------------ executions

    def ExecuteProposal(self, request: pb.ExecuteProposalRequest, context: Any) -> pb.ExecuteProposalResponse:
        errors = fields.FieldErrors()
        user_id = errors.check(lambda: fields.user_id(request.user_id), "")
        proposal_id = errors.check(lambda: fields.uuid_str(request.proposal_id, "proposal_id"), "")
        reason = errors.check(lambda: fields.text(request.override_reason, "override_reason", max_len=MAX_REASON), "")
        errors.raise_if_any()
        req = ExecuteRequest(
            user_id=user_id,
            proposal_id=proposal_id,
            principal=current_principal(),
            override_cooldown=request.override_cooldown,
            override_anti_flip=request.override_anti_flip,
            override_reason=reason,
        )
        try:
            execution = self._executor.execute(req)
        except ExecutionExists as exc:
            raise AlreadyExists(
                "execution",
                exc.execution.execution_id,
                reason=exc.reason,
                metadata=exc.metadata,
                extra=[execution_pb(exc.execution)],
            ) from None
        return pb.ExecuteProposalResponse(execution=execution_pb(execution))

    def GetExecution(self, request: pb.GetExecutionRequest, context: Any) -> pb.GetExecutionResponse:
        errors = fields.FieldErrors()
        user_id = errors.check(lambda: fields.user_id(request.user_id), "")
        execution_id = errors.check(lambda: fields.uuid_str(request.execution_id, "execution_id"), "")
        errors.raise_if_any()
        with self._db.transaction(user_id) as conn:
            row = repository.execution(conn, execution_id)
        if row is None:
            raise NotFound("execution", execution_id, reason="EXECUTION_NOT_FOUND")
        return pb.GetExecutionResponse(execution=execution_pb(Execution.from_row(row)))

    def ListExecutions(self, request: pb.ListExecutionsRequest, context: Any) -> pb.ListExecutionsResponse:
        errors = fields.FieldErrors()
        user_id = errors.check(lambda: fields.user_id(request.user_id), "")
        size = errors.check(lambda: fields.page_size(request.page_size), 50)
        position = errors.check(lambda: messages.position(request.page_token), None)
        status: Status | None = None
        if request.status:
            status = _STATUS_OF.get(request.status)
            if status is None:
                errors.add("status", f"unknown value {request.status}")
        errors.raise_if_any()
        with self._db.transaction(user_id) as conn:
            rows = repository.list_executions(conn, limit=size + 1, before=position, status=status)
        page, token = messages.page(
            [Execution.from_row(r) for r in rows], size, lambda e: (e.claimed_at, e.execution_id)
        )
        return pb.ListExecutionsResponse(executions=[execution_pb(e) for e in page], next_page_token=token)

    def ReconcileExecutions(
        self, request: pb.ReconcileExecutionsRequest, context: Any
    ) -> pb.ReconcileExecutionsResponse:
        user_id = fields.user_id(request.user_id) if request.user_id else None
        summary = self._reconciler.run(user_id)
        return pb.ReconcileExecutionsResponse(
            examined=summary.examined,
            changed=len(summary.changed),
            unresolved=summary.unresolved,
            executions=[execution_pb(e) for e in summary.changed],
        )

    # ------------------------------------------------------------------ policies

    def GetPolicy(self, request: pb.GetPolicyRequest, context: Any) -> pb.GetPolicyResponse:
        user_id = fields.user_id(request.user_id)
        policy, account = self._policies.get(user_id)
        return pb.GetPolicyResponse(policy=policy_pb(policy), account=account_pb(account))

    def UpdatePolicy(self, request: pb.UpdatePolicyRequest, context: Any) -> pb.UpdatePolicyResponse:
        errors = fields.FieldErrors()
        if not request.HasField("policy"):
            errors.add("policy", "is required")
        policy = policy_from_pb(request.policy, errors)
        if request.expected_version < 0:
            errors.add("expected_version", "must be 0 (create) or the version read")
        errors.raise_if_any()
        stored = self._policies.update(policy, expected_version=request.expected_version, principal=current_principal())
        return pb.UpdatePolicyResponse(policy=policy_pb(stored))

    def UpdateAccountSettings(
        self, request: pb.UpdateAccountSettingsRequest, context: Any
    ) -> pb.UpdateAccountSettingsResponse:
        errors = fields.FieldErrors()
        cap = Decimal(0)
        loss_limit: Decimal | None = None
        if not request.HasField("settings"):
            errors.add("settings", "is required")
        else:
            cap = errors.check(
                lambda: fields.required_decimal(
                    request.settings.daily_notional_cap_eur, "settings.daily_notional_cap_eur", maximum=MAX_EUR
                ),
                cap,
            )
            loss_limit = errors.check(
                lambda: fields.decimal(
                    request.settings.daily_loss_limit_eur,
                    "settings.daily_loss_limit_eur",
                    maximum=MAX_EUR,
                    allow_empty=True,
                ),
                None,
            )
        if request.expected_version < 1:
            errors.add("expected_version", "must be the version read (GetPolicy's account.version, 1 or more)")
        errors.raise_if_any()
        stored = self._policies.update_account(
            daily_notional_cap_eur=cap,
            daily_loss_limit_eur=loss_limit,
            expected_version=request.expected_version,
            principal=current_principal(),
        )
        return pb.UpdateAccountSettingsResponse(settings=account_pb(stored))

    def SetTradingEnabled(self, request: pb.SetTradingEnabledRequest, context: Any) -> pb.SetTradingEnabledResponse:
        errors = fields.FieldErrors()
        scope = errors.check(
            lambda: fields.enum(request.scope, "scope", {pb.KILL_SWITCH_SCOPE_USER, pb.KILL_SWITCH_SCOPE_GLOBAL}), 0
        )
        reason = errors.check(lambda: fields.text(request.reason, "reason", max_len=MAX_REASON), "")
        user_id = ""
        if scope == pb.KILL_SWITCH_SCOPE_USER:
            user_id = errors.check(lambda: fields.user_id(request.user_id), "")
        elif scope == pb.KILL_SWITCH_SCOPE_GLOBAL and request.user_id:
            errors.add("user_id", "must be empty for KILL_SWITCH_SCOPE_GLOBAL")
        errors.raise_if_any()
        principal = current_principal()
        if scope == pb.KILL_SWITCH_SCOPE_USER:
            enabled = self._policies.set_user_trading(user_id, request.enabled, reason=reason, principal=principal)
        else:
            enabled = self._policies.set_global_trading(request.enabled, reason=reason, principal=principal)
        return pb.SetTradingEnabledResponse(scope=scope, user_id=user_id, enabled=enabled)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ money and trading states

    def GetPositions(self, request: pb.GetPositionsRequest, context: Any) -> pb.GetPositionsResponse:
        user_id = fields.user_id(request.user_id) if request.user_id else None
        report = self._money.report(user_id, check_books=request.check_books)
        return pb.GetPositionsResponse(
            users=[_user_money_pb(u) for u in report.users],
            account=_account_money_pb(report.account),
            as_of=messages.timestamp(report.as_of),
        )

    # ------------------------------------------------------------------ the operator's figures

    def GetOperatorFigures(self, request: pb.GetOperatorFiguresRequest, context: Any) -> pb.GetOperatorFiguresResponse:
        figures = self._figures.read()
        return pb.GetOperatorFiguresResponse(
            not_final=[
                pb.NotFinalExecutions(
                    mode=_MODE[n.mode],
                    status=_STATUS[Status(n.status)],
                    executions=n.executions,
                    oldest_age=_duration(figures.as_of - n.oldest_updated_at),
                )
                for n in figures.not_final
            ],
            reconciler=_reconciler_pb(figures.reconciler),
            exchange_weight=[_weight_pb(client, status) for client, status in figures.weights],
            as_of=messages.timestamp(figures.as_of),
        )

    def SetTradingState(self, request: pb.SetTradingStateRequest, context: Any) -> pb.SetTradingStateResponse:
        errors = fields.FieldErrors()
        scope = errors.check(
            lambda: fields.enum(request.scope, "scope", {pb.KILL_SWITCH_SCOPE_USER, pb.KILL_SWITCH_SCOPE_GLOBAL}), 0
        )
        state = errors.check(
            lambda: fields.enum(request.state, "state", {pb.TRADING_STATE_ACTIVE, pb.TRADING_STATE_REDUCING}), 0
        )
        reason = errors.check(lambda: fields.text(request.reason, "reason", max_len=MAX_REASON), "")
        user_id: str | None = None
        if scope == pb.KILL_SWITCH_SCOPE_USER:
            user_id = errors.check(lambda: fields.user_id(request.user_id), "")
        elif scope == pb.KILL_SWITCH_SCOPE_GLOBAL and request.user_id:
            errors.add("user_id", "must be empty for KILL_SWITCH_SCOPE_GLOBAL")
        errors.raise_if_any()
        before = breaker.set_state(
            self._db,
            user_id=user_id,
            mode=self._mode,
            state=_STATE_NAME[pb.TradingState.ValueType(state)],
            reason=reason,
            principal=current_principal(),
            now=self._clock.now(),
        )
        return pb.SetTradingStateResponse(previous=_STATE[before], state=state)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ audit

    def ListAuditEvents(self, request: pb.ListAuditEventsRequest, context: Any) -> pb.ListAuditEventsResponse:
        errors = fields.FieldErrors()
        user_id = (
            SYSTEM_USER if request.user_id == SYSTEM_USER else errors.check(lambda: fields.user_id(request.user_id), "")
        )
        subject = errors.check(lambda: fields.text(request.subject_id, "subject_id", max_len=MAX_SUBJECT), "")
        size = errors.check(lambda: fields.page_size(request.page_size, default=100, maximum=1000), 100)
        after = errors.check(lambda: _audit_position(request.page_token), 0)
        errors.raise_if_any()
        with self._db.transaction(user_id) as conn:
            rows = repository.list_audit_events(conn, subject_id=subject, after_sequence=after, limit=size + 1)
        page = rows[:size]
        token = fields.encode_page_token({"s": int(page[-1]["sequence"])}) if len(rows) > size else ""
        return pb.ListAuditEventsResponse(events=[_audit_pb(r) for r in page], next_page_token=token)


# ------------------------------------------------------------------ domain → proto


def execution_pb(e: Execution) -> pb.Execution:
    """The proto of an execution (also sent inside ALREADY_EXISTS)."""
    message = pb.Execution(
        execution_id=e.execution_id,
        user_id=e.user_id,
        proposal_id=e.proposal_id,
        market=e.market,
        side=_SIDE[e.side],
        amount_quote=messages.decimal_string(e.amount_quote),
        status=_STATUS[e.status],
        mode=_MODE.get(e.mode, pb.EXECUTION_MODE_UNSPECIFIED),
        client_order_id=e.client_order_id,
        exchange_order_id=e.exchange_order_id,
        filled_amount=messages.decimal_string(e.filled_amount),
        filled_amount_quote=messages.decimal_string(e.filled_amount_quote),
        fee_paid=messages.decimal_string(e.fee_paid),
        fee_currency=e.fee_currency,
        error_code=str(e.error.get("code", "")),
        error_message=str(e.error.get("message", "")),
        validators=[
            pb.ValidatorResult(
                name=str(v.get("name", "")),
                passed=bool(v.get("passed")),
                reason=str(v.get("reason", "")),
                observed=str(v.get("observed", "")),
                limit=str(v.get("limit", "")),
                overridden=bool(v.get("overridden")),
            )
            for v in e.validators
        ],
        override_cooldown=e.override_cooldown,
        override_anti_flip=e.override_anti_flip,
        claimed_at=messages.timestamp(e.claimed_at),
        updated_at=messages.timestamp(e.updated_at),
    )
    if e.submitting_at is not None:
        message.submitting_at.CopyFrom(messages.timestamp(e.submitting_at))
    return message


def policy_pb(p: Policy) -> pb.Policy:
    message = pb.Policy(
        user_id=p.user_id,
        version=p.version,
        allowed_markets=list(p.allowed_markets),
        min_order_eur=messages.decimal_string(p.min_order_eur),
        max_order_eur=messages.decimal_string(p.max_order_eur),
        min_confidence=p.min_confidence,
        cooldown=Duration(seconds=p.cooldown_seconds),
        anti_flip_window=Duration(seconds=p.anti_flip_seconds),
        daily_trade_cap=p.daily_trade_cap,
        hourly_trade_cap=p.hourly_trade_cap,
        daily_notional_cap_eur=messages.decimal_string(p.daily_notional_cap_eur),
        price_guard_pct=messages.decimal_string(p.price_guard_pct),
        auto_execute=p.auto_execute,
        trading_enabled=p.trading_enabled,
        max_daily_loss_eur=_optional_text(p.max_daily_loss_eur),
        max_drawdown_eur=_optional_text(p.max_drawdown_eur),
    )
    if p.updated_at is not None:
        message.updated_at.CopyFrom(messages.timestamp(p.updated_at))
    return message


def account_pb(a: AccountSettings) -> pb.AccountSettings:
    return pb.AccountSettings(
        trading_enabled=a.trading_enabled,
        daily_notional_cap_eur=messages.decimal_string(a.daily_notional_cap_eur),
        version=a.version,
        daily_loss_limit_eur=_optional_text(a.daily_loss_limit_eur),
        trading_state=_STATE.get(a.trading_state, pb.TRADING_STATE_UNSPECIFIED),
        state_reason=a.state_reason,
    )


def _optional_text(value: Decimal | None) -> str:
    return "" if value is None else messages.decimal_string(value)


def _user_money_pb(u: UserMoney) -> pb.UserPositions:
    message = pb.UserPositions(
        user_id=u.user_id,
        positions=[
            pb.Position(
                market=p.position.market,
                asset=p.position.asset,
                quantity=messages.decimal_string(p.position.quantity),
                cost_eur=messages.decimal_string(p.position.cost_eur),
                average_cost_eur=messages.decimal_string(p.position.average_cost_eur),
                realized_pnl_eur=messages.decimal_string(p.position.realized_pnl_eur),
                price_eur=_optional_text(p.price),
                unrealized_pnl_eur=_optional_text(p.unrealized_eur),
                fills=p.position.fills,
            )
            for p in u.positions
        ],
        realized_pnl_eur=messages.decimal_string(u.figures.realized_total_eur),
        realized_today_eur=messages.decimal_string(u.figures.realized_today_eur),
        unrealized_pnl_eur=messages.decimal_string(u.figures.unrealized_eur),
        daily_loss_eur=messages.decimal_string(u.figures.daily_loss_eur),
        max_daily_loss_eur=_optional_text(u.max_daily_loss_eur),
        drawdown_eur=messages.decimal_string(u.drawdown_eur),
        max_drawdown_eur=_optional_text(u.max_drawdown_eur),
        notional_today_eur=messages.decimal_string(u.notional_today_eur),
        daily_notional_cap_eur=messages.decimal_string(u.daily_notional_cap_eur),
        trades_today=u.trades_today,
        daily_trade_cap=u.daily_trade_cap,
        trades_last_hour=u.trades_last_hour,
        hourly_trade_cap=u.hourly_trade_cap,
        trading_state=_STATE.get(u.state, pb.TRADING_STATE_UNSPECIFIED),
        state_reason=u.state_reason,
    )
    if u.books_check is not None:
        message.books_check.CopyFrom(
            pb.BooksCheck(consistent=u.books_check.ok, differences=list(u.books_check.differences))
        )
    return message


def _account_money_pb(a: AccountMoney) -> pb.AccountPositions:
    return pb.AccountPositions(
        mode=_MODE.get(a.mode, pb.EXECUTION_MODE_UNSPECIFIED),
        holdings=[
            pb.AssetHolding(
                asset=h.asset,
                account_quantity=_optional_text(h.account_quantity),
                users_quantity=messages.decimal_string(h.users_quantity),
                unattributed_quantity=_optional_text(h.unattributed),
            )
            for h in a.holdings
        ],
        notional_today_eur=messages.decimal_string(a.notional_today_eur),
        daily_notional_cap_eur=messages.decimal_string(a.daily_notional_cap_eur),
        realized_today_eur=messages.decimal_string(a.figures.realized_today_eur),
        unrealized_pnl_eur=messages.decimal_string(a.figures.unrealized_eur),
        daily_loss_eur=messages.decimal_string(a.figures.daily_loss_eur),
        daily_loss_limit_eur=_optional_text(a.daily_loss_limit_eur),
        trading_state=_STATE.get(a.state, pb.TRADING_STATE_UNSPECIFIED),
        state_reason=a.state_reason,
    )


# ------------------------------------------------------------------ proto → domain


def policy_from_pb(m: pb.Policy, errors: fields.FieldErrors) -> Policy:
    """The policy of an UpdatePolicy request; format problems go to ``errors`` (rules: policies.py)."""
    zero = Decimal(0)
    markets = tuple(
        errors.check(lambda i=i, v=v: fields.market(v, f"policy.allowed_markets[{i}]"), v)  # type: ignore[misc]
        for i, v in enumerate(m.allowed_markets)
    )
    return Policy(
        user_id=errors.check(lambda: fields.user_id(m.user_id, "policy.user_id"), ""),
        version=0,
        allowed_markets=markets,
        min_order_eur=errors.check(lambda: fields.required_decimal(m.min_order_eur, "policy.min_order_eur"), zero),
        max_order_eur=errors.check(lambda: fields.required_decimal(m.max_order_eur, "policy.max_order_eur"), zero),
        min_confidence=errors.check(lambda: fields.confidence(m.min_confidence, "policy.min_confidence"), 0),
        cooldown_seconds=errors.check(lambda: _seconds(m.cooldown, "policy.cooldown"), 0),
        anti_flip_seconds=errors.check(lambda: _seconds(m.anti_flip_window, "policy.anti_flip_window"), 0),
        daily_trade_cap=m.daily_trade_cap,
        hourly_trade_cap=m.hourly_trade_cap,
        daily_notional_cap_eur=errors.check(
            lambda: fields.required_decimal(m.daily_notional_cap_eur, "policy.daily_notional_cap_eur"), zero
        ),
        price_guard_pct=errors.check(
            lambda: fields.required_decimal(
                m.price_guard_pct, "policy.price_guard_pct", places=3, maximum=Decimal(100)
            ),
            zero,
        ),
        auto_execute=m.auto_execute,
        trading_enabled=True,
        max_daily_loss_eur=errors.check(
            lambda: fields.decimal(m.max_daily_loss_eur, "policy.max_daily_loss_eur", allow_empty=True), None
        ),
        max_drawdown_eur=errors.check(
            lambda: fields.decimal(m.max_drawdown_eur, "policy.max_drawdown_eur", allow_empty=True), None
        ),
    )


def _seconds(d: Duration, field: str) -> int:
    return int(fields.duration(d, field).total_seconds())


def _audit_position(token: str) -> int:
    position = fields.decode_page_token(token)
    if position is None:
        return 0
    sequence = position.get("s")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise InvalidArgument.one("page_token", "is not a token from a previous page")
    return sequence


def _audit_pb(row: dict[str, Any]) -> pb.AuditEvent:
    payload = Struct()
    json_format.ParseDict(row["payload"] or {}, payload)
    return pb.AuditEvent(
        sequence=int(row["sequence"]),
        user_id=row["user_id"],
        service=row["service"],
        kind=row["kind"],
        subject_id=row["subject_id"],
        principal=row["principal"],
        payload=payload,
        created_at=messages.timestamp(row["created_at"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _duration(span: timedelta) -> Duration:
    """A non-negative Duration, to the second (a clock a little behind the database's reads 0)."""
    return Duration(seconds=max(int(span.total_seconds()), 0))


def _reconciler_pb(h: reconciler_health.Snapshot) -> pb.ReconcilerHealth:
    reply = pb.ReconcilerHealth(
        last_pass_duration=Duration(
            seconds=int(h.last_pass_duration.total_seconds()), nanos=h.last_pass_duration.microseconds * 1000
        ),
        last_pass_changed=h.last_pass_changed,
        last_pass_failures=h.last_pass_failures,
        passes=h.passes,
        failures=h.failures,
        last_failure_stage=h.last_failure_stage,
    )
    if h.last_pass_at is not None:
        reply.last_pass_at.CopyFrom(messages.timestamp(h.last_pass_at))
    if h.last_failure_at is not None:
        reply.last_failure_at.CopyFrom(messages.timestamp(h.last_failure_at))
    return reply


def _weight_pb(client: str, status: RateLimitStatus | None) -> pb.ExchangeWeight:
    if status is None:
        return pb.ExchangeWeight(client=client, known=False)
    return pb.ExchangeWeight(
        client=client, known=True, remaining=status.remaining, resets_at=messages.timestamp(status.reset_at)
    )
