"""How oraclectl shows things: protobuf JSON for scripts (``--json``), rich tables for people,
and for every failure one line on stderr, followed by each failed validator of a rejection.

JSON is ``google.protobuf.json_format`` with the proto field names (``client_order_id``), enum
names, and every field present even when zero, so a script never has to guess a default.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any, TextIO

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from oracle.budget.v1 import budget_service_pb2 as budget_pb2
from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from oraclectl.session import CliError, RpcFailure


def to_dict(message: Message) -> dict[str, Any]:
    """A message as the JSON object scripts get."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class Output:
    """Where results and errors go for one invocation."""

    def __init__(self, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self._stdout = stdout or sys.stdout
        # Piped output is for grep and logs: no folding at 80 columns.
        self.console = Console(file=self._stdout, highlight=False, width=None if self._stdout.isatty() else 220)
        self.errors = Console(file=stderr or sys.stderr, highlight=False, soft_wrap=True)

    def result(self, data: Message | Mapping[str, Any], *renderables: RenderableType) -> None:
        """Show ``data`` as JSON in --json mode, else the human ``renderables``."""
        if self.json_mode:
            payload = to_dict(data) if isinstance(data, Message) else dict(data)
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
                self.errors.print(execution_detail(existing[0]))
        if self.json_mode:
            self._stdout.write(json.dumps({"error": error_dict(error)}, indent=2) + "\n")
            self._stdout.flush()


def one_line(error: CliError) -> str:
    """The failure in one line: ``executor: FAILED_PRECONDITION MARKET_NOT_ALLOWLISTED: …``."""
    if not isinstance(error, RpcFailure):
        return error.message
    report = error.report
    reason = f" {report.reason}" if report.reason and report.reason != report.code.name else ""
    message = " ".join(report.message.split()) or report.code.name
    return f"{error.service}: {report.code.name}{reason}: {message}"


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
        "message": report.message,
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


def when(message: Message, name: str) -> str:
    """A Timestamp field as UTC text, empty when unset."""
    if not message.HasField(name):
        return ""
    stamp: timestamp_pb2.Timestamp = getattr(message, name)
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def span(message: Message, name: str) -> str:
    """A Duration field as 1h30m / 5m / 45s, empty when unset."""
    if not message.HasField(name):
        return ""
    duration: duration_pb2.Duration = getattr(message, name)
    return format_seconds(duration.seconds)


def format_seconds(seconds: int) -> str:
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def label(message: Message, name: str) -> str:
    """An enum field's value name without its type prefix, lower case: ``SIDE_BUY`` → ``buy``."""
    enum = message.DESCRIPTOR.fields_by_name[name].enum_type
    value = None if enum is None else enum.values_by_number.get(getattr(message, name))
    if enum is None or value is None:
        return str(getattr(message, name))
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return value.name.removeprefix(prefix).lower()


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


def proposals_table(reply: scanner_pb2.ListProposalsResponse) -> list[RenderableType]:
    rows = [
        (
            p.proposal_id,
            p.market,
            label(p, "side"),
            p.amount_quote,
            str(p.confidence),
            label(p, "analyst"),
            label(p, "status"),
            when(p, "created_at"),
        )
        for p in reply.proposals
    ]
    columns = ("proposal", "market", "side", "EUR", "conf", "analyst", "status", "created (UTC)")
    table = _table(f"{len(rows)} proposal(s)", columns, rows, whole=("proposal", "created (UTC)"))
    return [table, *more_hint(reply.next_page_token)]


def proposal_detail(p: scanner_pb2.Proposal) -> RenderableType:
    fields = _fields(
        f"proposal {p.proposal_id}",
        [
            ("user", p.user_id),
            ("job", p.job_id or "(on demand)"),
            ("market", p.market),
            ("side", label(p, "side")),
            ("amount EUR", p.amount_quote),
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
            "paused" if j.paused else "active",
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


def executions_table(reply: executor_pb2.ListExecutionsResponse) -> list[RenderableType]:
    rows = [
        (
            e.execution_id,
            e.market,
            label(e, "side"),
            e.amount_quote,
            label(e, "status"),
            label(e, "mode"),
            e.filled_amount_quote or "0",
            e.error_code,
            when(e, "claimed_at"),
        )
        for e in reply.executions
    ]
    columns = ("execution", "market", "side", "EUR", "status", "mode", "filled EUR", "error", "claimed (UTC)")
    table = _table(f"{len(rows)} execution(s)", columns, rows, whole=("execution", "claimed (UTC)"))
    return [table, *more_hint(reply.next_page_token)]


def execution_detail(e: executor_pb2.Execution) -> RenderableType:
    overrides = [name for name, on in (("cooldown", e.override_cooldown), ("anti-flip", e.override_anti_flip)) if on]
    fields = _fields(
        f"execution {e.execution_id}",
        [
            ("user", e.user_id),
            ("proposal", e.proposal_id),
            ("market", e.market),
            ("side", label(e, "side")),
            ("amount EUR", e.amount_quote),
            ("status", label(e, "status")),
            ("mode", label(e, "mode")),
            ("client order id", e.client_order_id),
            ("exchange order id", e.exchange_order_id),
            ("filled", f"{e.filled_amount or '0'} for {e.filled_amount_quote or '0'} EUR"),
            ("fee", f"{e.fee_paid} {e.fee_currency}".strip()),
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
    columns = ("#", "time (UTC)", "service", "kind", "principal", "subject", "payload")
    return _table(title or f"audit trail: {len(rows)} event(s)", columns, rows, whole=("time (UTC)", "kind"))


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
        failed = [
            str(v.get("reason") or v.get("name")) for v in validators if isinstance(v, dict) and not v.get("passed")
        ]
        data["validators"] = f"{len(validators)} ran" + (f", failed: {', '.join(failed)}" if failed else ", all passed")
    return json.dumps(data, sort_keys=True)


def policy_detail(reply: executor_pb2.GetPolicyResponse | executor_pb2.UpdatePolicyResponse) -> RenderableType:
    p = reply.policy
    pairs = [
        ("user", p.user_id),
        ("version", str(p.version) + ("  (no stored policy: everything is denied)" if p.version == 0 else "")),
        ("allowed markets", ", ".join(p.allowed_markets) or "(none: deny all)"),
        ("order EUR", f"{p.min_order_eur or '-'} .. {p.max_order_eur or '-'}"),
        ("min confidence", str(p.min_confidence)),
        ("cooldown", span(p, "cooldown")),
        ("anti-flip window", span(p, "anti_flip_window")),
        ("trades per day / hour", f"{p.daily_trade_cap} / {p.hourly_trade_cap}"),
        ("daily notional cap EUR", p.daily_notional_cap_eur),
        ("price guard %", p.price_guard_pct),
        ("auto execute", "on" if p.auto_execute else "off"),
        ("trading (user)", "enabled" if p.trading_enabled else "DISABLED"),
        ("updated", when(p, "updated_at")),
    ]
    if isinstance(reply, executor_pb2.GetPolicyResponse):
        pairs += [
            ("trading (account)", "enabled" if reply.account.trading_enabled else "DISABLED"),
            ("account daily notional cap EUR", reply.account.daily_notional_cap_eur),
            ("account settings version", str(reply.account.version)),
        ]
    return _fields(f"policy of {p.user_id}", pairs)


def account_detail(a: executor_pb2.AccountSettings) -> RenderableType:
    pairs = [
        ("trading (account)", "enabled" if a.trading_enabled else "DISABLED"),
        ("account daily notional cap EUR", a.daily_notional_cap_eur),
        ("version", str(a.version)),
    ]
    return _fields("account settings (every user)", pairs)


def reconcile_result(reply: executor_pb2.ReconcileExecutionsResponse) -> list[RenderableType]:
    summary = Text(f"examined {reply.examined}, changed {reply.changed}, unresolved {reply.unresolved}")
    if not reply.executions:
        return [summary]
    listing = executor_pb2.ListExecutionsResponse(executions=reply.executions)
    return [summary, *executions_table(listing)]


def kill_switch_result(reply: executor_pb2.SetTradingEnabledResponse) -> Text:
    scope = "the whole account" if label(reply, "scope") == "global" else f"user {reply.user_id}"
    state = "ENABLED" if reply.enabled else "DISABLED"
    return Text(f"trading {state} for {scope}")


# ------------------------------------------------------------------------------------ budget


def usage_table(reply: budget_pb2.GetUsageResponse) -> Table:
    rows = [
        (
            label(w, "window"),
            str(w.used),
            "unlimited" if w.unlimited else str(w.limit),
            "-" if w.unlimited else str(w.remaining),
            when(w, "resets_at"),
        )
        for w in reply.windows
    ]
    return _table("LLM budget", ("window", "used", "limit", "remaining", "resets (UTC)"), rows)


def limits_detail(limits: budget_pb2.Limits) -> Table:
    return _fields(
        "budget limits",
        [
            ("calls per day", str(limits.daily_calls)),
            ("calls per hour", str(limits.hourly_calls)),
            ("tokens per day", str(limits.daily_tokens) if limits.daily_tokens else "unlimited"),
            (
                "cost per day (USD)",
                str(Decimal(limits.daily_cost_micros).scaleb(-6)) if limits.daily_cost_micros else "unlimited",
            ),
        ],
    )
