"""What ``make run`` shows: the honest banner (what is simulated and how to go real), where each
service listens, how to reach it with oraclectl and grpcurl, each cycle as it finishes, and the
summary table at the end. Rendering only; the supervisor decides what happens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oracle.executor.v1 import executor_service_pb2 as executor_pb2
from oracle.scanner.v1 import scanner_service_pb2 as scanner_pb2
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from oraclectl import defaults
from oraclectl.formatting import eur, label
from oraclectl.output import account_status_line, calls_left, not_final_text, outcome_text, user_status_line
from shared.exchange.sdk import PRODUCTION_REST_URL
from stack.cycles import CycleReport, Totals
from stack.demo import SCANNED_MARKETS
from stack.environments import Plan


@dataclass(frozen=True)
class Endpoint:
    """One started process, as the endpoints table shows it."""

    name: str
    address: str
    pid: int
    log: str


def banner(plan: Plan, exchange_url: str, llm_url: str, database: str) -> Panel:
    """What is real and what is simulated, said plainly."""
    lines: list[Text] = []
    if plan.needs_exchange_simulator:
        lines.append(
            Text.assemble(
                ("SIMULATED EXCHANGE", "bold yellow"),
                f": the Bitvavo simulator (sim/bitvavo) at {exchange_url}. It keeps its state in memory, so every "
                "run starts a fresh simulated exchange with play money (10 000 EUR and a few coins). No real money moves.",
            )
        )
    if plan.real_exchange_executor or plan.real_exchange_scanner:
        lines.append(
            Text.assemble(
                ("REAL EXCHANGE", "bold red"),
                ": EXECUTOR_EXCHANGE_URL / SCANNER_EXCHANGE_URL from your environment are in use.",
            )
        )
    if plan.real_llm:
        lines.append(Text.assemble(("REAL LLM", "bold red"), ": SCANNER_LLM_BASE_URL from your environment is in use."))
    else:
        lines.append(
            Text.assemble(
                ("SIMULATED LLM", "bold yellow"),
                f": the LLM simulator (sim/llm) at {llm_url}, a deterministic trend rule behind an OpenAI-compatible "
                "API, not a model. Every call is still reserved at the budget service.",
            )
        )
    lines.append(
        Text.assemble(
            ("REAL DATABASE", "bold green"),
            f": PostgreSQL ({database}). It persists: the next make run continues from it.",
        )
    )
    return Panel(Group(*lines), title="Auto Invest Oracle — local demo", title_align="left")


def going_live() -> Text:
    """The environment variables that replace the simulators (see stack/environments.py).
    Plain text, printed without hard wrapping, so the commands can be copied."""
    text = Text()
    text.append("Going real\n", style="bold underline")
    text.append("A real LLM", style="bold")
    text.append(" (any OpenAI-compatible API):\n")
    text.append(
        "  SCANNER_LLM_BASE_URL=https://api.openai.com/v1 SCANNER_LLM_API_KEY=<key> SCANNER_LLM_MODEL=gpt-4o-mini make run\n"
    )
    text.append("The real Bitvavo API", style="bold")
    text.append(" — paper trading first (every rail runs and is audited; no order is sent):\n")
    text.append(
        f"  EXECUTOR_EXCHANGE_URL={PRODUCTION_REST_URL} SCANNER_EXCHANGE_URL={PRODUCTION_REST_URL} \\\n"
        "  SCANNER_BITVAVO_API_KEY=<view-only key> SCANNER_BITVAVO_API_SECRET=<secret> make run\n"
    )
    text.append("Real orders with real money", style="bold red")
    text.append(" additionally need EXECUTOR_MODE=live with a TRADE key for the executor only:\n")
    text.append(
        "  EXECUTOR_BITVAVO_API_KEY=<trade key> EXECUTOR_BITVAVO_API_SECRET=<secret> EXECUTOR_OPERATOR_ID=<int>\n"
    )
    text.append("Each service gets only its own prefix's variables; the scanner never sees a trade key.", style="dim")
    return text


def endpoints_table(endpoints: Sequence[Endpoint]) -> Table:
    table = Table(title="Processes", title_justify="left")
    for column in ("process", "listens on", "pid", "log"):
        table.add_column(column, overflow="fold")
    for e in endpoints:
        table.add_row(e.name, e.address, str(e.pid), e.log)
    return table


def how_to_reach(
    addresses: Mapping[str, str], token_file: str, default_layout: bool, user: str, *, certs: str | None = None
) -> Text:
    """oraclectl and grpcurl, ready to paste (the token is read from its file, never shown).

    ``certs``: the TLS mode's certificate folder; the operator's certificate is presented.
    """
    text = Text()
    fixed = (
        addresses["scanner"] == defaults.SCANNER_ADDR
        and addresses["executor"] == defaults.EXECUTOR_ADDR
        and addresses["budget"] == defaults.BUDGET_ADDR
    )
    exports = (
        []
        if fixed
        else [
            f"ORACLE_SCANNER_ADDR={addresses['scanner']}",
            f"ORACLE_EXECUTOR_ADDR={addresses['executor']}",
            f"ORACLE_BUDGET_ADDR={addresses['budget']}",
        ]
    )
    if not default_layout:
        exports.append(f"ORACLE_TOKEN_FILE={token_file}")
    if user != defaults.DEMO_USER:
        exports.append(f"ORACLE_USER={user}")
    transport = "-plaintext"
    if certs is not None:
        exports += [
            f"ORACLE_TLS_CERT={certs}/operator.crt",
            f"ORACLE_TLS_KEY={certs}/operator.key",
            f"ORACLE_TLS_CA={certs}/ca-bundle.crt",
        ]
        transport = f"-cacert {certs}/ca-bundle.crt -cert {certs}/operator.crt -key {certs}/operator.key"
    if exports:
        text.append("For oraclectl in another terminal:\n", style="bold")
        text.append(f"  export {' '.join(exports)}\n")
    text.append("Try, in another terminal in this folder (stack/README.md has more):\n", style="bold")
    text.append('  export PATH="$PWD/.venv/bin:$PATH"\n')
    text.append("  oraclectl executions list\n  oraclectl proposals list\n  oraclectl policy show\n")
    text.append(
        f'  grpcurl {transport} -H "authorization: Bearer $(cat {token_file})" '
        f'-d \'{{"user_id": "{user}"}}\' {addresses["executor"]} oracle.executor.v1.ExecutorService/GetPolicy\n'
    )
    text.append(f"  grpcurl {transport} {addresses['scanner']} list\n")
    text.append("Ctrl-C stops everything cleanly.", style="dim")
    return text


def scenario(live: executor_pb2.GetPolicyResponse) -> Text:
    """The demo's scan job against the policy the executor enforces now (it may have been changed
    with oraclectl since the demo seeded it)."""
    policy = live.policy
    allowed = [m for m in policy.allowed_markets]
    refused = [m for m in SCANNED_MARKETS if m not in allowed]
    text = Text(
        f"Demo user '{policy.user_id}': the scan job covers {', '.join(SCANNED_MARKETS)}; the live policy (version "
        f"{policy.version}) allows {', '.join(allowed) or 'no market'}, orders of {eur(policy.min_order_eur)} to "
        f"{eur(policy.max_order_eur)}, auto-execute {'on' if policy.auto_execute else 'off'}. "
    )
    if refused:
        text.append(f"Proposals on {', '.join(refused)} are refused (MARKET_NOT_ALLOWLISTED); ")
    text.append("the cooldown, caps and LLM budget refuse more as the cycles go on.")
    return text


def trading_notice(live: executor_pb2.GetPolicyResponse) -> Text | None:
    """When the kill switch is on (trading off), for the user or the whole account: say so, what it
    means and how to turn trading on again. None while trading is allowed."""
    user = live.policy.user_id
    off: list[tuple[str, str]] = []
    if not live.account.trading_enabled:
        off.append(("for the whole account (global kill switch)", "oraclectl trading on --global"))
    if not live.policy.trading_enabled:
        command = "oraclectl trading on" + ("" if user == defaults.DEMO_USER else f" --user {user}")
        off.append((f"for user '{user}'", command))
    if not off:
        return None
    text = Text()
    for number, (scope, command) in enumerate(off):
        text.append("\n" if number else "")
        text.append("TRADING IS OFF", style="bold red")
        text.append(
            f" {scope}: the scan job skips its analysis (no LLM call) and the executor refuses every proposal "
            "with TRADING_DISABLED. Turn it on with: "
        )
        text.append(command, style="bold")
    return text


def _reasons(counts: Counter[str]) -> str:
    return ", ".join(f"{reason} ×{n}" for reason, n in counts.most_common()) or "-"


def status_lines(report: CycleReport, kill_switch_on: bool) -> list[Text]:
    """The cycle's money and limits in a line each for the user and the account (the same lines
    as ``oraclectl status``)."""
    if report.money is None:
        return [Text("status: the executor did not answer GetPositions")]
    lines = [Text("status " + account_status_line(report.money.account, kill_switch_on))]
    lines += [Text("status " + user_status_line(u, calls_left(report.usage))) for u in report.money.users]
    if report.operator is not None:
        lines.append(Text("status executions not final: " + not_final_text(report.operator)))
    return lines


def cycle_view(
    report: CycleReport,
    proposals: Mapping[str, scanner_pb2.Proposal],
    notice: Text | None = None,
    *,
    same_as: int | None = None,
    kill_switch_on: bool = True,
) -> RenderableType:
    """One finished cycle: the kill switch when it is on, what happened on each market (or one
    line when it is what cycle ``same_as`` showed: no identical tables scroll by), then the
    cycle's numbers and the status lines with the money, the limits and the states."""
    head: list[RenderableType] = [] if notice is None else [notice]
    status = status_lines(report, kill_switch_on)
    if same_as is not None:
        line = Text(
            f"cycle {report.number} — scan finished {report.ran_at}: the same outcome on every market as cycle {same_as}"
        )
        return Group(*head, line, *status)
    table = Table(title=f"cycle {report.number} — scan finished {report.ran_at}", title_justify="left")
    for column in ("market", "proposal", "executor"):
        table.add_column(column, overflow="fold")
    for outcome in report.outcomes:
        proposal = proposals.get(outcome.proposal_id)
        if proposal is not None:
            idea = f"{label(proposal, 'side')} {eur(proposal.amount_quote)}, confidence {proposal.confidence}"
        elif outcome.proposal_id:
            idea = outcome.proposal_id
        elif outcome.skipped_reason == "TRADING_DISABLED":  # the scanner did not analyse at all
            idea = "skipped: TRADING_DISABLED (not analysed)"
        else:
            idea = f"none: {outcome.skipped_reason or 'no proposal'}"
        result = outcome_text(outcome, id_chars=8)
        style = "green" if result.startswith("executed") else "red" if result.startswith(("rejected", "error")) else ""
        table.add_row(outcome.market, idea, Text(result, style=style))
    line = Text(
        f"this cycle: {len(report.outcomes)} markets scanned · {report.proposals} proposals · {report.executed} executed "
        f"· {report.rejected} rejected ({_reasons(report.rejections())}) · LLM calls left: {report.budget.daily} "
        f"today, {report.budget.hourly} this hour"
        + (
            ""
            if report.exchange_orders is None
            else f" · orders at the simulated exchange since this run started: {report.exchange_orders}"
        )
    )
    return Group(*head, table, line, *status)


def summary_table(totals: Totals) -> Table:
    """The end-of-run table: each number with what it counts."""
    table = Table(title="Summary of this run (the first six rows count the cycles shown above)", title_justify="left")
    table.add_column("", style="bold")
    table.add_column("number", overflow="fold")
    table.add_column("what it counts", overflow="fold", style="dim")
    table.add_row("cycles shown", str(totals.cycles), "runs of the demo scan job")
    table.add_row("markets scanned", str(totals.scanned), "one per market per cycle")
    table.add_row("proposals", str(totals.proposals), "made by the analyst")
    table.add_row("executed", str(totals.executed), "by auto-execute (not oraclectl or grpcurl)")
    table.add_row("rejected", f"{totals.rejected} ({_reasons(totals.rejections)})", "refused by the executor")
    table.add_row("no proposal", _reasons(totals.skips), "markets without a proposal, by why")
    if totals.last is not None:
        last = totals.last
        table.add_row(
            "LLM calls left", f"{last.budget.daily} today, {last.budget.hourly} this hour", "at the last cycle"
        )
        if last.exchange_orders is not None:
            table.add_row(
                "orders at the simulated exchange",
                str(last.exchange_orders),
                "every order this run's simulator received: auto-execute's, oraclectl's and grpcurl's",
            )
        if last.executions_total is not None:
            table.add_row(
                "executions in the database",
                str(last.executions_total),
                "the demo user's, this run's and earlier runs' together",
            )
    return table


def make_console() -> Console:
    return Console(highlight=False)
