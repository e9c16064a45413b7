"""Who may call what, for whom: the one authorization table, and the current call's principal.

A call's principal is established by the server interceptor (shared.server): from the verified
client certificate when one is presented (TLS; the bearer credential is then a second factor that
must name the same principal), otherwise from the bearer credential alone (loopback plaintext).
A bearer credential is either a principal token (operator, scanner, viewer; the service's
PRINCIPAL_TOKENS) or a user token (a JWT bound to one user id; shared.user_tokens).

:data:`RIGHTS` is the only place the project decides call rights, in two dimensions: which RPCs a
principal may call, and for which users — any user (operator, scanner, viewer, dev) or only its
own (a user principal). The user a request acts for is read from the request itself
(:func:`acted_for`: every ``user_id`` field of the request message, nested ones included), so
a new RPC that takes a user id is covered without a line here. Finer rules that depend on stored
state (the scanner may execute only while the user's policy has auto-execute on) live with the
RPC that has them and ask :func:`may_override` or read :func:`current_principal`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

OPERATOR = "operator"  # the operator: oraclectl, operations back ends; acts for any user
SCANNER = "scanner"  # the scanner service calling the executor and the budget
VIEWER = "viewer"  # read-only dashboards
USER = "user"  # one user (a user token); acts only for that user
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
        _EXECUTOR + "GetOperatorFigures",
        _BUDGET + "GetUsage",
        _SCANNER + "ListScanJobs",
        _SCANNER + "ListProposals",
        _SCANNER + "GetProposal",
    }
)

# What a user may do for itself: read, run its own scans, execute (with overrides) its own
# proposals, set its own policy, reconcile its own executions. Not the kill switches (an
# operator's stop must not be lifted by the user it stopped), the account-wide settings, the
# budget's limits or the scanner's budget calls.
_OWN_ACTIONS = frozenset(
    {
        _EXECUTOR + "ExecuteProposal",
        _EXECUTOR + "UpdatePolicy",
        _EXECUTOR + "ReconcileExecutions",
        _SCANNER + "CreateScanJob",
        _SCANNER + "PauseScanJob",
        _SCANNER + "DeleteScanJob",
        _SCANNER + "RunScan",
    }
)

ALL = "*"


class Users(Enum):
    """For which users a principal may act."""

    ANY = "any"
    OWN = "own"  # only the user id its credential is bound to


@dataclass(frozen=True)
class Rights:
    """The RPCs a principal may call ("*" = all) and for which users."""

    methods: frozenset[str]
    users: Users = Users.ANY
    overrides: bool = False  # may set validator overrides on ExecuteProposal (own proposals for a user)


RIGHTS: Mapping[str, Rights] = {
    OPERATOR: Rights(frozenset({ALL}), overrides=True),
    DEV: Rights(frozenset({ALL}), overrides=True),
    SCANNER: Rights(
        frozenset(
            {
                _EXECUTOR + "ExecuteProposal",
                _BUDGET + "ReserveCall",
                _BUDGET + "CommitCall",
                _BUDGET + "ReleaseCall",
                _BUDGET + "GetUsage",
            }
        )
    ),
    VIEWER: Rights(_READS),
    USER: Rights(_READS | _OWN_ACTIONS, users=Users.OWN, overrides=True),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a principal name, and for a user principal the one user it is."""

    name: str
    user_id: str = ""

    def __str__(self) -> str:
        # What audit rows and logs record: "user:<id>" says which user acted.
        return f"{USER}:{self.user_id}" if self.name == USER else self.name


def refusal(principal: Principal, method: str, request: Message | None) -> str | None:
    """None when ``principal`` may call ``method`` with ``request``; else the refusal's reason."""
    rights = RIGHTS.get(principal.name)
    if rights is None or not (ALL in rights.methods or method in rights.methods):
        return "METHOD_NOT_ALLOWED"
    if rights.users is Users.OWN:
        named = acted_for(request) if request is not None else None
        # Every user id the request names must be the principal's own: none named (an
        # account-wide call, "every user") is not "own" either.
        if not named or any(user != principal.user_id for user in named) or not principal.user_id:
            return "NOT_OWN_USER"
    return None


def may_override(principal: str) -> bool:
    """True when the principal (as :func:`current_principal` names it) may set validator overrides.

    A user principal reaches ExecuteProposal only for its own user (:func:`refusal`), so its
    overrides are on its own proposals.
    """
    name = principal.split(":", 1)[0]
    rights = RIGHTS.get(name)
    return rights is not None and rights.overrides


@cache
def user_id_paths(descriptor: Descriptor) -> tuple[tuple[str, ...], ...]:
    """Paths to every singular string ``user_id`` field of a message type, nested ones included."""
    paths: list[tuple[str, ...]] = []

    def walk(desc: Descriptor, prefix: tuple[str, ...], seen: frozenset[str]) -> None:
        for field in desc.fields:
            if field.is_repeated:
                continue
            nested = field.message_type
            if field.name == "user_id" and field.type == FieldDescriptor.TYPE_STRING:
                paths.append((*prefix, field.name))
            elif nested is not None and nested.full_name not in seen:
                walk(nested, (*prefix, field.name), seen | {nested.full_name})

    walk(descriptor, (), frozenset({descriptor.full_name}))
    return tuple(paths)


def acted_for(request: Message) -> tuple[str, ...]:
    """The user ids a request names (empty ones included); () when its type has no user_id."""
    found = []
    for path in user_id_paths(request.DESCRIPTOR):
        value: object = request
        for name in path:
            value = getattr(value, name)
        found.append(str(value))
    return tuple(found)


_current: contextvars.ContextVar[str] = contextvars.ContextVar("principal", default="")


def current_principal() -> str:
    """The principal of the call being served, as audit rows record it ("" outside a call)."""
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
