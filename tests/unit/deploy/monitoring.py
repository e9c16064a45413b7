"""The monitoring component's sources (deploy/components/monitoring) as the tests read them: the
alert rules, the dashboard's queries and the metric names a PromQL expression selects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import yaml

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "components" / "monitoring"
# Series Prometheus makes itself for every target, not served by the services.
PROMETHEUS_SERIES = frozenset({"up"})


def rule_groups() -> list[dict[str, Any]]:
    """The groups of the plain rules file."""
    groups: list[dict[str, Any]] = yaml.safe_load((MONITORING / "rules.yaml").read_text(encoding="utf-8"))["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    return board


def expressions() -> dict[str, str]:
    """Every PromQL expression of the alerts and the dashboard, by where it is."""
    found = {f"alert {rule['alert']}": str(rule["expr"]) for rule in alerts()}
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (ValueError when it does not parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
