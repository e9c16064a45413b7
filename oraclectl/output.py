"""How oraclectl shows things: protobuf JSON for scripts (``--json``), rich tables for people,
and for every failure one line on stderr, followed by each failed validator of a rejection.

JSON is ``google.protobuf.json_format`` with the proto field names (``client_order_id``), enum
names, and every field present even when zero, so a script never has to guess a default.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from oraclectl.formatting import ago, base_of, coin, eur, failure_line, fee, label, span, usd_micros, when
from oraclectl.session import CliError, RpcFailure, Unreachable


def to_dict(message: Message) -> dict[str, Any]:
    """A message as the JSON object scripts get."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class Output:
    """Where results and errors go for one invocation."""

    def __init__(
        self, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None, *, exchange: str = ""
    ) -> None:
        self.json_mode = json_mode
        self.exchange = exchange  # where a live execution's orders go, when known ("simulated exchange")
        self._stdout = stdout or sys.stdout
        # Piped output is for grep and logs: no folding at 80 columns.
        self.console = Console(file=self._stdout, highlight=False, width=None if self._stdout.isatty() else 220)
        self.errors = Console(file=stderr or sys.stderr, highlight=False, soft_wrap=True)

    def result(
        self, data: Message | Mapping[str, Any], *renderables: RenderableType, about_orders: bool = False
    ) -> None:
        """Show ``data`` as JSON in --json mode, else the human ``renderables``. ``about_orders``:
        the data holds executions, so the JSON says where their orders went when that is known
        (``"exchange": "simulated exchange"`` beside the executor's own fields)."""
        if self.json_mode:
            payload = to_dict(data) if isinstance(data, Message) else dict(data)
            if about_orders and self.exchange:
                payload["exchange"] = self.exchange
            self._stdout.write(json.dumps(payload, indent=2) + "\n")
            self._stdout.flush()
        else:
            for renderable in renderables:
                self.console.print(renderable)

    def failure(self, error: CliError) -> None:
        """One line on stderr; the violations after it; in --json mode the error object on stdout."""
        self.errors.print(Text(f"oraclectl: {one_line(error)}"))
        if isinstance(error, RpcFailure):
            for line in violation_lines(error):
                self.errors.print(Text(f"  {line}"))
            existing = error.details_of(executor_pb2.Execution)
            if existing and not self.json_mode:
                self.errors.print(Text("  the existing execution:"))
                self.errors.print(execution_detail(existing[0], self.exchange))
        if self.json_mode:
            self._stdout.write(json.dumps({"error": error_dict(error)}, indent=2) + "\n")
            self._stdout.flush()


def one_line(error: CliError) -> str:
    """The failure in one line (:func:`oraclectl.formatting.failure_line`)."""
    if not isinstance(error, RpcFailure) or isinstance(error, Unreachable):
        return error.message
    return failure_line(error.service, error.report)


def violation_lines(error: RpcFailure) -> list[str]:
    """Every failed validator, bad field and exhausted quota, one per line."""
    report = error.report
    lines = [f"rejected: {v.type} [{v.subject}] {v.description}" for v in report.precondition_violations]
    lines += [f"invalid: {v.field}: {v.description}" for v in report.field_violations]
    lines += [f"quota: {v.subject}: {v.description}" for v in report.quota_violations]
    if report.retry_after is not None and report.code.name in ("RESOURCE_EXHAUSTED", "UNAVAILABLE"):
        lines.append(f"retry after {report.retry_after.total_seconds():g}s")
    return lines


def error_dict(error: CliError) -> dict[str, Any]:
    """The error object of --json mode."""
    if not isinstance(error, RpcFailure):
        return {"exit_code": int(error.exit_code), "message": error.message}
    report = error.report
    out: dict[str, Any] = {
        "exit_code": int(error.exit_code),
        "service": error.service,
        "code": report.code.name,
        "reason": report.reason,
        "message": error.message if isinstance(error, Unreachable) else report.message,
        "metadata": report.metadata,
        "precondition_violations": [
            {"type": v.type, "subject": v.subject, "description": v.description} for v in report.precondition_violations
        ],
        "field_violations": [{"field": v.field, "description": v.description} for v in report.field_violations],
        "quota_violations": [{"subject": v.subject, "description": v.description} for v in report.quota_violations],
        "retry_after_seconds": None if report.retry_after is None else report.retry_after.total_seconds(),
    }
    existing = error.details_of(executor_pb2.Execution)
    if existing:
        out["execution"] = to_dict(existing[0])
    return out


# ------------------------------------------------------------------------------------ values


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], whole: Sequence[str] = ()) -> Table:
    """A table whose ``whole`` columns (ids, times) never wrap: they are what people copy."""
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in whole)
    for row in rows:
        table.add_row(*row)
    return table


def _fields(title: str, pairs: Iterable[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in pairs:
        table.add_row(key, value)
    return table


def more_hint(token: str) -> list[RenderableType]:
    return [Text(f"more: --page-token {token}")] if token else []


# ------------------------------------------------------------------------------------ scanner


def proposals_table(
    reply: scanner_pb2.ListProposalsResponse, outcomes: Mapping[str, str] | None = None
) -> list[RenderableType]:
    """The proposals with what became of each (``outcomes``: proposal id -> what the executor did;
    a proposal without one shows whether it is still open)."""
    known = outcomes or {}
    rows = [
        (
            p.proposal_id,
            p.market,
            label(p, "side"),
            eur(p.amount_quote),
            str(p.confidence),
            label(p, "analyst"),
            known.get(p.proposal_id) or f"not executed ({label(p, 'status')})",
            when(p, "created_at"),
        )
        for p in reply.proposals
    ]
    columns = ("proposal", "market", "side", "amount", "conf", "analyst", "outcome", "created")
    table = _table(f"{len(rows)} proposal(s), newest first", columns, rows, whole=("proposal", "created"))
    return [table, *more_hint(reply.next_page_token)]


def proposal_detail(p: scanner_pb2.Proposal) -> RenderableType:
    fields = _fields(
        f"proposal {p.proposal_id}",
        [
            ("user", p.user_id),
            ("job", p.job_id or "(on demand)"),
            ("market", p.market),
            ("side", label(p, "side")),
            ("amount", eur(p.amount_quote)),
            ("confidence", str(p.confidence)),
            ("analyst", f"{label(p, 'analyst')} ({p.model})"),
            ("status", label(p, "status")),
            ("created", when(p, "created_at")),
            ("expires", when(p, "expires_at")),
            ("rationale", p.rationale),
        ],
    )
    snapshots = _fields(
        "snapshots",
        [
            ("market", json.dumps(MessageToDict(p.market_snapshot), sort_keys=True)),
            ("policy", json.dumps(MessageToDict(p.policy_snapshot), sort_keys=True)),
        ],
    )
    return Group(fields, Text(""), snapshots)


def jobs_table(jobs: Sequence[scanner_pb2.ScanJob], title: str = "") -> Table:
    rows = [
        (
            j.job_id,
            ", ".join(j.markets),
            span(j, "interval"),
            label(j, "analyst"),
            ("paused" if j.paused else "active")
            + (", keeps proposing when trading is off" if j.keep_proposing else ""),
            when(j, "next_run_at"),
            when(j, "last_run_at"),
            str(j.attempts),
            j.last_error,
        )
        for j in jobs
    ]
    columns = ("job", "markets", "every", "analyst", "state", "next run", "last run", "fails", "last error")
    return _table(title or f"{len(rows)} scan job(s)", columns, rows, whole=("job", "next run", "last run"))


def outcome_text(o: scanner_pb2.MarketOutcome, id_chars: int | None = None) -> str:
    """What auto-execute did with a market's proposal, in a few words (``id_chars``: shorten ids)."""
    kind = label(o, "auto_execute")
    reasons = ",".join(o.execution_reasons)
    execution = o.execution_id[:id_chars]
    if kind == "executed":
        return f"executed {execution} ({o.execution_status.removeprefix('EXECUTION_STATUS_').lower()})"
    if kind == "duplicate":
        return f"already executed: {execution}"
    if kind in ("rejected", "error"):
        return f"{kind}: {reasons}"
    return "auto-execute off" if kind == "off" else ""


def scan_result(reply: scanner_pb2.RunScanResponse) -> Table:
    rows = [
        (o.market, o.proposal_id or "-", " ".join(filter(None, (o.skipped_reason, o.detail))), outcome_text(o))
        for o in reply.outcomes
    ]
    return _table(
        f"scan {reply.run_id}: {len(reply.proposals)} proposal(s) from {len(rows)} market(s)",
        ("market", "proposal", "skipped", "execution"),
        rows,
        whole=("proposal",),
    )


# ------------------------------------------------------------------------------------ executor


def mode_text(e: executor_pb2.Execution, exchange: str = "") -> str:
    """The execution's mode, and where its orders go when that is known (``exchange``, e.g.
    "simulated exchange" for the local stack's simulator): ``live (simulated exchange)``."""
    mode = label(e, "mode")
    return f"{mode} ({exchange})" if exchange and mode == "live" else mode


def filled_text(e: executor_pb2.Execution) -> str:
    """What was filled: ``0.00021 BTC for 10.00 EUR``, or ``-``."""
    if not e.filled_amount and not e.filled_amount_quote:
        return "-"
    return f"{coin(e.filled_amount or '0', base_of(e.market))} for {eur(e.filled_amount_quote or '0')}"


def executions_table(reply: executor_pb2.ListExecutionsResponse, exchange: str = "") -> list[RenderableType]:
    rows = [
        (
            e.execution_id,
            e.market,
            label(e, "side"),
            eur(e.amount_quote),
            label(e, "status"),
            mode_text(e, exchange),
            filled_text(e),
            e.error_code,
            when(e, "claimed_at"),
        )
        for e in reply.executions
    ]
    columns = ("execution", "market", "side", "amount", "status", "mode", "filled", "error", "claimed")
    table = _table(f"{len(rows)} execution(s), newest first", columns, rows, whole=("execution", "claimed"))
    return [table, *more_hint(reply.next_page_token)]


def execution_detail(e: executor_pb2.Execution, exchange: str = "") -> RenderableType:
    overrides = [name for name, on in (("cooldown", e.override_cooldown), ("anti-flip", e.override_anti_flip)) if on]
    fields = _fields(
        f"execution {e.execution_id}",
        [
            ("user", e.user_id),
            ("proposal", e.proposal_id),
            ("market", e.market),
            ("side", label(e, "side")),
            ("amount", eur(e.amount_quote)),
            ("status", label(e, "status")),
            ("mode", mode_text(e, exchange)),
            ("client order id", e.client_order_id),
            ("exchange order id", e.exchange_order_id),
            ("filled", filled_text(e)),
            ("fee", fee(e.fee_paid, e.fee_currency)),
            ("error", f"{e.error_code} {e.error_message}".strip()),
            ("overrides", ", ".join(overrides) or "none"),
            ("claimed", when(e, "claimed_at")),
            ("updated", when(e, "updated_at")),
        ],
    )
    return Group(fields, Text(""), validators_table(e.validators))


def validators_table(validators: Sequence[executor_pb2.ValidatorResult]) -> Table:
    rows = [(v.name, "pass" if v.passed else "FAIL", v.reason, v.observed, v.limit) for v in validators]
    return _table("validator report", ("validator", "result", "reason", "observed", "limit"), rows)


def audit_table(events: Sequence[executor_pb2.AuditEvent], title: str = "") -> Table:
    rows = [
        (
            str(ev.sequence),
            when(ev, "created_at"),
            ev.service,
            ev.kind,
            ev.principal,
            ev.subject_id,
            payload_text(ev.payload),
        )
        for ev in events
    ]
    columns = ("#", "time", "service", "kind", "principal", "subject", "payload")
    return _table(title or f"audit trail: {len(rows)} event(s)", columns, rows, whole=("time", "kind"))


def payload_text(payload: struct_pb2.Struct) -> str:
    """An audit payload for people: whole numbers without ".0", a validator list as its count
    (``executions show`` prints the report itself; --json has everything)."""

    def tidy(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: tidy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tidy(v) for v in value]
        return value

    data = tidy(MessageToDict(payload))
    validators = data.get("validators")
    if isinstance(validators, list):
        failed = failed_validators(data)
        data["validators"] = f"{len(validators)} ran" + (f", failed: {', '.join(failed)}" if failed else ", all passed")
    return json.dumps(data, sort_keys=True)


def failed_validators(payload: Mapping[str, Any]) -> list[str]:
    """The reason codes of the failed validators an audit payload lists."""
    validators = payload.get("validators")
    if not isinstance(validators, list):
        return []
    return [str(v.get("reason") or v.get("name")) for v in validators if isinstance(v, dict) and not v.get("passed")]


def execution_outcome(e: executor_pb2.Execution) -> str:
    """A proposal's outcome when it was executed: ``executed: filled``."""
    return f"executed: {label(e, 'status').replace('_', ' ')}"


def refusal_outcome(event: executor_pb2.AuditEvent) -> str:
    """A proposal's outcome when its last attempt was refused: ``refused: MARKET_NOT_ALLOWLISTED``."""
    data = MessageToDict(event.payload)
    reasons = failed_validators(data) or [str(data.get("reason") or "unknown reason")]
    return "refused: " + ", ".join(reasons)


def policy_detail(reply: executor_pb2.GetPolicyResponse | executor_pb2.UpdatePolicyResponse) -> RenderableType:
    p = reply.policy
    pairs = [
        ("user", p.user_id),
        ("version", str(p.version) + ("  (no stored policy: everything is denied)" if p.version == 0 else "")),
        ("allowed markets", ", ".join(p.allowed_markets) or "(none: deny all)"),
        ("order size", f"{eur(p.min_order_eur)} .. {eur(p.max_order_eur)}"),
        ("min confidence", str(p.min_confidence)),
        ("cooldown", span(p, "cooldown")),
        ("anti-flip window", span(p, "anti_flip_window")),
        ("trades per day / hour", f"{p.daily_trade_cap} / {p.hourly_trade_cap}"),
        ("daily notional cap", eur(p.daily_notional_cap_eur)),
        ("price guard %", p.price_guard_pct),
        ("max daily loss", _limit(p.max_daily_loss_eur)),
        ("max drawdown", _limit(p.max_drawdown_eur)),
        ("auto execute", "on" if p.auto_execute else "off"),
        ("trading (user)", "enabled" if p.trading_enabled else "DISABLED"),
        ("updated", when(p, "updated_at")),
    ]
    if isinstance(reply, executor_pb2.GetPolicyResponse):
        pairs += [
            ("trading (account)", "enabled" if reply.account.trading_enabled else "DISABLED"),
            ("account daily notional cap", eur(reply.account.daily_notional_cap_eur)),
            ("account settings version", str(reply.account.version)),
        ]
    return _fields(f"policy of {p.user_id}", pairs)


def account_detail(a: executor_pb2.AccountSettings) -> RenderableType:
    pairs = [
        ("trading (account)", "enabled" if a.trading_enabled else "DISABLED"),
        ("account daily notional cap", eur(a.daily_notional_cap_eur)),
        ("account daily loss limit", _limit(a.daily_loss_limit_eur)),
        ("trading state (account)", state_text(a, reason=a.state_reason)),
        ("version", str(a.version)),
    ]
    return _fields("account settings (every user)", pairs)


def reconcile_result(reply: executor_pb2.ReconcileExecutionsResponse, exchange: str = "") -> list[RenderableType]:
    summary = Text(f"examined {reply.examined}, changed {reply.changed}, unresolved {reply.unresolved}")
    if not reply.executions:
        return [summary]
    listing = executor_pb2.ListExecutionsResponse(executions=reply.executions)
    return [summary, *executions_table(listing, exchange)]


def kill_switch_result(reply: executor_pb2.SetTradingEnabledResponse) -> Text:
    scope = "the whole account" if label(reply, "scope") == "global" else f"user {reply.user_id}"
    state = "ENABLED" if reply.enabled else "DISABLED"
    return Text(f"trading {state} for {scope}")


# ------------------------------------------------------------------------------------ budget


def usage_table(reply: budget_pb2.GetUsageResponse) -> Table:
    """Every window in its own unit, said once: calls, tokens, or USD (counted in micro-dollars)."""

    def amount(window: budget_pb2.WindowUsage, value: int) -> str:
        return usd_micros(value) if window.window == budget_pb2.WINDOW_DAILY_COST else str(value)

    rows = [
        (
            label(w, "window"),
            amount(w, w.used),
            "unlimited" if w.unlimited else amount(w, w.limit),
            "-" if w.unlimited else amount(w, w.remaining),
            when(w, "resets_at"),
        )
        for w in reply.windows
    ]
    return _table("LLM budget", ("window", "used", "limit", "remaining", "resets"), rows)


def limits_detail(limits: budget_pb2.Limits) -> Table:
    return _fields(
        "budget limits",
        [
            ("calls per day", str(limits.daily_calls)),
            ("calls per hour", str(limits.hourly_calls)),
            ("tokens per day", str(limits.daily_tokens) if limits.daily_tokens else "unlimited"),
            (
                "cost per day",
                usd_micros(limits.daily_cost_micros) if limits.daily_cost_micros else "unlimited",
            ),
        ],
    )


# ------------------------------------------------------------------------------------ money


def _limit(value: str) -> str:
    return eur(value) if value else "no limit"


def state_text(message: Message, name: str = "trading_state", reason: str = "") -> str:
    """A trading state in capitals, with why when it is not ACTIVE: ``REDUCING (DAILY_LOSS…)``."""
    text = label(message, name).upper()
    return f"{text} ({reason})" if reason and text != "ACTIVE" else text


def positions_view(reply: executor_pb2.GetPositionsResponse) -> list[RenderableType]:
    """Every user's books at current prices, then what the account holds beyond them."""
    rows = [
        (
            u.user_id,
            p.asset,
            coin(p.quantity, p.asset),
            eur(p.average_cost_eur),
            eur(p.price_eur),
            eur(p.realized_pnl_eur),
            eur(p.unrealized_pnl_eur),
        )
        for u in reply.users
        for p in u.positions
    ]
    books = _table(
        "positions (per user, fees included)",
        ("user", "asset", "held", "average cost", "price", "realized P&L", "unrealized P&L"),
        rows,
        whole=("user",),
    )
    holdings = _table(
        "the account's holdings",
        ("asset", "account", "users' books", "unattributed"),
        [
            (
                h.asset,
                coin(h.account_quantity, h.asset),
                coin(h.users_quantity, h.asset),
                coin(h.unattributed_quantity, h.asset),
            )
            for h in reply.account.holdings
        ],
    )
    checks = [
        Text(
            f"books of {u.user_id}: "
            + (
                "consistent with the fills"
                if u.books_check.consistent
                else "DIFFER: " + "; ".join(u.books_check.differences)
            ),
            style="" if u.books_check.consistent else "red",
        )
        for u in reply.users
        if u.HasField("books_check")
    ]
    return [books, holdings, *checks]


def user_status_line(u: executor_pb2.UserPositions, calls_left: str) -> str:
    """One user's figures in one line (oraclectl status, and each cycle of make run)."""
    held = ", ".join(coin(p.quantity, p.asset) for p in u.positions if p.quantity not in ("", "0")) or "nothing"
    return (
        f"{u.user_id}: {state_text(u, reason=u.state_reason)} · holds {held} · P&L realized "
        f"{eur(u.realized_pnl_eur)} (today {eur(u.realized_today_eur)}), unrealized {eur(u.unrealized_pnl_eur)} · "
        f"daily loss {eur(u.daily_loss_eur)} of {_limit(u.max_daily_loss_eur)} · drawdown {eur(u.drawdown_eur)} of "
        f"{_limit(u.max_drawdown_eur)} · today {eur(u.notional_today_eur)} of {eur(u.daily_notional_cap_eur)}, "
        f"{u.trades_today}/{u.daily_trade_cap} trades, {u.trades_last_hour}/{u.hourly_trade_cap} this hour · "
        f"LLM calls left {calls_left}"
    )


def account_status_line(a: executor_pb2.AccountPositions, kill_switch_on: bool) -> str:
    """The account's figures in one line."""
    unattributed = ", ".join(
        coin(h.unattributed_quantity, h.asset) for h in a.holdings if h.unattributed_quantity not in ("", "0")
    )
    return (
        f"account ({label(a, 'mode')}): {'HALTED (kill switch)' if not kill_switch_on else state_text(a, reason=a.state_reason)}"
        f" · today {eur(a.notional_today_eur)} of {eur(a.daily_notional_cap_eur)} · daily loss {eur(a.daily_loss_eur)} of "
        f"{_limit(a.daily_loss_limit_eur)} · realized today {eur(a.realized_today_eur)}, unrealized "
        f"{eur(a.unrealized_pnl_eur)}" + (f" · unattributed {unattributed}" if unattributed else "")
    )


def calls_left(usage: budget_pb2.GetUsageResponse | None) -> str:
    """LLM calls still allowed today and this hour: ``17/20 today, 3/5 this hour``."""
    if usage is None:
        return "unknown"
    left = {w.window: ("unlimited" if w.unlimited else f"{w.remaining}/{w.limit}") for w in usage.windows}
    return f"{left.get(budget_pb2.WINDOW_DAILY_CALLS, '?')} today, {left.get(budget_pb2.WINDOW_HOURLY_CALLS, '?')} this hour"


def trading_state_result(reply: executor_pb2.SetTradingStateResponse, scope: str) -> Text:
    return Text(f"{scope}: {label(reply, 'previous').upper()} -> {label(reply, 'state').upper()}")


def not_final_text(reply: executor_pb2.GetOperatorFiguresResponse) -> str:
    """Executions whose outcome is not final, by mode and status with the oldest one's age:
    ``live unknown 1 (oldest 3m12s), paper claimed 2 (oldest 4s)``, or ``none``."""
    parts = [
        f"{label(n, 'mode')} {label(n, 'status')} {n.executions} (oldest {span(n, 'oldest_age') or '0s'})"
        for n in reply.not_final
    ]
    return ", ".join(parts) or "none"


def operator_status_lines(reply: executor_pb2.GetOperatorFiguresResponse) -> list[Text]:
    """The operator's figures (oraclectl status): what is not final, the reconciler, the weight."""
    r = reply.reconciler
    if r.HasField("last_pass_at"):
        reconciler = (
            f"last pass {ago(r, 'last_pass_at', reply.as_of)}, took {span(r, 'last_pass_duration') or '0s'}, "
            f"changed {r.last_pass_changed}, failures {r.last_pass_failures}"
        )
    else:
        reconciler = "no pass yet in this executor process"
    if r.failures:
        reconciler += (
            f" · {r.failures} failures since the executor started, latest {r.last_failure_stage} "
            f"{ago(r, 'last_failure_at', reply.as_of)}"
        )
    weights = ", ".join(
        f"{w.client} {w.remaining} (resets {when(w, 'resets_at')})"
        if w.known
        else f"{w.client} unknown (no answer yet)"
        for w in reply.exchange_weight
    )
    # an outcome nobody knows yet (what the alerts page for after 5 minutes) reads in colour
    stuck = any(
        n.status in (executor_pb2.EXECUTION_STATUS_UNKNOWN, executor_pb2.EXECUTION_STATUS_SUBMITTING)
        for n in reply.not_final
    )
    return [
        Text(f"executions not final: {not_final_text(reply)}", style="yellow" if stuck else ""),
        Text(f"reconciler: {reconciler}", style="red" if r.last_pass_failures else ""),
        Text(f"exchange weight left: {weights or 'no exchange client'}"),
    ]
