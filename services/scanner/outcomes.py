"""What a scan did per market: a proposal (and what auto-execute made of it) or why not.

The same record is returned by RunScan, kept on the job (``last_outcomes``) and written into the
audit trail, so "why was nothing proposed?" has one answer everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AutoExecuteStatus(StrEnum):
    """What happened when the executor was (or was not) asked to execute a proposal."""

    OFF = "off"  # auto-execute is off in the user's live policy: not asked
    EXECUTED = "executed"  # accepted: an execution exists
    REJECTED = "rejected"  # FAILED_PRECONDITION: the executor's validators said no
    DUPLICATE = "duplicate"  # ALREADY_EXISTS: the proposal had an execution already
    ERROR = "error"  # the call failed (unavailable, not configured, refused, ...)


@dataclass(frozen=True)
class AutoExecution:
    """The executor's answer to one ExecuteProposal from the scanner."""

    status: AutoExecuteStatus
    execution_id: str = ""
    execution_status: str = ""
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "execution_id": self.execution_id,
            "execution_status": self.execution_status,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AutoExecution:
        return cls(
            status=AutoExecuteStatus(obj["status"]),
            execution_id=str(obj.get("execution_id", "")),
            execution_status=str(obj.get("execution_status", "")),
            reasons=tuple(str(r) for r in obj.get("reasons", ())),
        )


NOT_ASKED = AutoExecution(AutoExecuteStatus.OFF)


@dataclass(frozen=True)
class MarketOutcome:
    """One market of one scan: ``proposal_id`` or ``skipped_reason`` (UPPER_SNAKE), never both."""

    market: str
    proposal_id: str = ""
    skipped_reason: str = ""
    detail: str = ""
    auto_execution: AutoExecution | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"market": self.market}
        if self.proposal_id:
            out["proposal_id"] = self.proposal_id
        if self.skipped_reason:
            out["skipped_reason"] = self.skipped_reason
        if self.detail:
            out["detail"] = self.detail[:500]
        if self.auto_execution is not None:
            out["auto_execution"] = self.auto_execution.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MarketOutcome:
        auto = obj.get("auto_execution")
        return cls(
            market=str(obj.get("market", "")),
            proposal_id=str(obj.get("proposal_id", "")),
            skipped_reason=str(obj.get("skipped_reason", "")),
            detail=str(obj.get("detail", "")),
            auto_execution=AutoExecution.from_json(auto) if isinstance(auto, dict) else None,
        )
