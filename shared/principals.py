"""Who may call what: the one authorization table, and the current call's principal.

Every call carries ``authorization: Bearer <token>``; the token maps to a principal name through
the service's PRINCIPAL_TOKENS setting, and :data:`RIGHTS` says which RPCs that principal may
call. This table is the only place the project decides call rights. Finer rules that depend on
the request (the scanner may execute only without overrides, only with auto-execute on) live
with the RPC that has them and read :func:`current_principal`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Mapping

OPERATOR = "operator"  # the operator / user-facing principal: oraclectl, app back ends
SCANNER = "scanner"  # the scanner service calling the executor and the budget
VIEWER = "viewer"  # read-only dashboards
DEV = "dev"  # the principal of every call in insecure-dev mode

_EXECUTOR = "/oracle.executor.v1.ExecutorService/"
_BUDGET = "/oracle.budget.v1.BudgetService/"
_SCANNER = "/oracle.scanner.v1.ScannerService/"

_READS = frozenset(
    {
        _EXECUTOR + "GetExecution",
        _EXECUTOR + "ListExecutions",
        _EXECUTOR + "GetPolicy",
        _EXECUTOR + "ListAuditEvents",
        _EXECUTOR + "GetPositions",
        _BUDGET + "GetUsage",
        _SCANNER + "ListScanJobs",
        _SCANNER + "ListProposals",
        _SCANNER + "GetProposal",
    }
)

ALL = "*"

# principal -> the full method names it may call ("*" = every RPC of every service).
RIGHTS: Mapping[str, frozenset[str]] = {
    OPERATOR: frozenset({ALL}),
    DEV: frozenset({ALL}),
    SCANNER: frozenset(
        {
            _EXECUTOR + "ExecuteProposal",
            _BUDGET + "ReserveCall",
            _BUDGET + "CommitCall",
            _BUDGET + "ReleaseCall",
            _BUDGET + "GetUsage",
        }
    ),
    VIEWER: _READS,
}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("principal", default="")


def may_call(principal: str, method: str) -> bool:
    """True when ``principal`` may call the full method name ``method``."""
    rights = RIGHTS.get(principal, frozenset())
    return ALL in rights or method in rights


def current_principal() -> str:
    """The principal of the call being served ("" outside a call)."""
    return _current.get()


def set_current_principal(name: str) -> contextvars.Token[str]:
    """Set by the server interceptor for the duration of a call."""
    return _current.set(name)


def reset_current_principal(token: contextvars.Token[str]) -> None:
    """Undo :func:`set_current_principal`."""
    _current.reset(token)


class TokenTable:
    """Resolves bearer tokens to principal names in constant time per known token."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        # Keep digests, not tokens: comparisons are over fixed-length values.
        self._digests = [(hashlib.sha256(t.encode()).digest(), name) for t, name in tokens.items()]

    def resolve(self, token: str) -> str | None:
        """The principal holding ``token``, or None."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, name in self._digests:
            if hmac.compare_digest(known, digest):
                found = name
        return found


def bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """The bearer token of a call's metadata, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return None
