"""Per-run secrets of the local stack: the principal tokens and the simulated exchange's keys.

Every ``make run`` makes new ones. The operator token goes to ``.stack/operator.token`` (mode
0600) for oraclectl and grpcurl; the scanner token only into the environments of the processes
that need it; the simulator's keys into a 0600 file the simulator reads (never onto a command
line, where ``ps`` would show them). None of them is ever printed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from stack.layout import Layout

SIM_ACCOUNT = "main"


@dataclass(frozen=True)
class ExchangeKey:
    """An API key of the simulated exchange: 64 hex characters, a 128-character secret."""

    key: str = field(default_factory=lambda: secrets.token_hex(32))
    secret: str = field(default_factory=lambda: secrets.token_hex(64), repr=False)


@dataclass(frozen=True)
class Credentials:
    """Everything secret one run of the stack uses."""

    operator_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    scanner_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    trade_key: ExchangeKey = field(default_factory=ExchangeKey)  # the executor's only
    view_key: ExchangeKey = field(default_factory=ExchangeKey)  # the scanner's: view permission only
    llm_api_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)  # the LLM simulator's

    def principal_tokens(self, *names: str) -> str:
        """``name:token,…`` for a service's PRINCIPAL_TOKENS (only the principals that call it)."""
        tokens = {"operator": self.operator_token, "scanner": self.scanner_token}
        return ",".join(f"{name}:{tokens[name]}" for name in names)

    def save_operator_token(self, layout: Layout) -> None:
        """Write the operator token to ``.stack/operator.token`` (0600) for oraclectl and grpcurl."""
        layout.write_private(layout.token_file, self.operator_token + "\n")

    def exchange_keys(self) -> list[dict[str, object]]:
        """The simulator's key list: one trade key (the executor's) and one view-only key (the scanner's)."""
        return [
            {"key": k.key, "secret": k.secret, "account": SIM_ACCOUNT, "permissions": permissions}
            for k, permissions in ((self.trade_key, ["view", "trade"]), (self.view_key, ["view"]))
        ]
