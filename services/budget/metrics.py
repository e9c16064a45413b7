"""The budget service's metrics: reservations granted or denied (by the windows that refused),
how full each window was at each decision, and the tokens and cost that calls used.

Instruments live here and nowhere else; the ledger calls the one-line functions below. Labels
are outcomes, windows and model names (the price table's, a bounded set), never a user id:
"used against limits" is the ratio used/limit of each window at each decision, a histogram, so
a dashboard shows how close users run to their limits without naming any of them.
"""

from __future__ import annotations

from services.budget.windows import Decision, Limits, Usage, Window
from shared.metrics import Tally, meter

_meter = meter("budget")

# Counters are shared.metrics.Tally: each is written on every ReserveCall or CommitCall.
RESERVATIONS = Tally(
    _meter,
    "oracle_budget_reservations",
    ("outcome", "reason"),
    unit="{reservation}",
    description="ReserveCall decisions: granted, or denied by the windows without room (reason)",
)
WINDOW_USE = _meter.create_histogram(
    "oracle_budget_window_use_ratio",
    description="used/limit of each limited window when a reservation is decided",
    explicit_bucket_boundaries_advisory=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0, 1.5),
)
TOKENS = Tally(
    _meter,
    "oracle_budget_tokens",
    ("model", "kind"),
    unit="{token}",
    description="Tokens committed calls used, by model and kind",
)
COST = Tally(
    _meter,
    "oracle_budget_cost_micros",
    ("model",),
    unit="{micro_usd}",
    description="Cost (micros of USD) of committed calls, by model",
)

GRANTED = "granted"
DENIED = "denied"


def decided(decision: Decision, limits: Limits, usage: Usage) -> None:
    """One ReserveCall decision against ``limits`` with ``usage`` before it."""
    if decision.grant is not None:
        RESERVATIONS.add(1, GRANTED, "GRANTED")
    else:
        RESERVATIONS.add(1, DENIED, ",".join(str(s.window) for s in decision.shortfalls))
    for window in Window:
        if limits.of(window) > 0:
            WINDOW_USE.record(usage.of(window) / limits.of(window), {"window": str(window)})


def committed(model: str, prompt_tokens: int, completion_tokens: int, cost_micros: int) -> None:
    """What one committed call used."""
    TOKENS.add(prompt_tokens, model, "prompt")
    TOKENS.add(completion_tokens, model, "completion")
    COST.add(cost_micros, model)


def start() -> None:
    """Make the reservation series exist at 0 (the alert rules read them before any decision)."""
    RESERVATIONS.add(0, GRANTED, "GRANTED")
    for window in Window:
        RESERVATIONS.add(0, DENIED, str(window))
