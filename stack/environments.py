"""Each service's environment, built from nothing: a few harmless process variables plus that
service's own prefixed settings. Nothing else of the supervisor's environment leaks through.

This is where the key separation of the demo is decided: the executor gets the trade key, the
scanner only the view-only key (and never any EXECUTOR_ variable; :func:`scanner` checks), the
budget service no exchange key at all.

The operator's own ``SCANNER_*``, ``EXECUTOR_*`` and ``BUDGET_*`` variables are passed to that
service only, over the demo's values. That is how ``make run`` is pointed at a real LLM or the
real exchange: setting ``SCANNER_LLM_BASE_URL`` (with its key and model) replaces the LLM
simulator; setting ``<SERVICE>_EXCHANGE_URL`` replaces the exchange simulator for that service,
and then the simulator's keys are not given to it (bring your own) and the executor runs in
``paper`` mode unless ``EXECUTOR_MODE`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stack.credentials import Credentials

# Process basics a Python service needs; no secrets, no configuration.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "XDG_RUNTIME_DIR", "TERM")
DEMO_OPERATOR_ID = "1001"  # Bitvavo operatorId of the demo's orders (the simulator accepts any int64)


@dataclass(frozen=True)
class Plan:
    """Which parts are simulated, decided from the operator's environment before anything starts."""

    real_exchange_executor: bool
    real_exchange_scanner: bool
    real_llm: bool

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> Plan:
        return cls(
            real_exchange_executor=bool(environ.get("EXECUTOR_EXCHANGE_URL")),
            real_exchange_scanner=bool(environ.get("SCANNER_EXCHANGE_URL")),
            real_llm=bool(environ.get("SCANNER_LLM_BASE_URL")),
        )

    @property
    def needs_exchange_simulator(self) -> bool:
        return not (self.real_exchange_executor and self.real_exchange_scanner)

    @property
    def needs_llm_simulator(self) -> bool:
        return not self.real_llm


@dataclass(frozen=True)
class Wiring:
    """What the supervisor knows when it builds the environments."""

    credentials: Credentials
    database_urls: Mapping[str, str]  # service -> URL of its own role
    exchange_url: str  # the simulator's ("" when not started)
    llm_url: str  # the simulator's ("" when not started)
    llm_api_key: str
    llm_model: str
    certs: Path | None = None  # the TLS mode's certificates (shared.certs layout); None: plaintext


class KeySeparationError(RuntimeError):
    """The scanner's environment would hold something of the executor's."""


def _base(environ: Mapping[str, str]) -> dict[str, str]:
    env = {name: environ[name] for name in PASSED_THROUGH if name in environ}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _compose(prefix: str, demo: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Base variables, then the demo's settings, then the operator's own ``prefix`` variables."""
    env = _base(environ)
    env.update({prefix + name: value for name, value in demo.items()})
    env.update({name: value for name, value in environ.items() if name.startswith(prefix)})
    return env


def _common(service: str, listen: str, wiring: Wiring, *principals: str) -> dict[str, str]:
    common = {
        "LISTEN_ADDR": listen,
        "DATABASE_URL": wiring.database_urls[service],
        "PRINCIPAL_TOKENS": wiring.credentials.principal_tokens(*principals),
        "AUTH_MODE": "token",
    }
    if wiring.certs is not None:  # TLS with client certificates; the service's own pair
        common |= {
            "TLS_CERT_FILE": str(wiring.certs / f"{service}.crt"),
            "TLS_KEY_FILE": str(wiring.certs / f"{service}.key"),
            "TLS_CA_FILE": str(wiring.certs / "ca-bundle.crt"),
        }
    return common


def simulator(environ: Mapping[str, str]) -> dict[str, str]:
    """A simulator gets the process basics only."""
    return _base(environ)


def budget(listen: str, wiring: Wiring, environ: Mapping[str, str]) -> dict[str, str]:
    """The budget service: called by the scanner (reservations) and the operator."""
    return _compose("BUDGET_", _common("budget", listen, wiring, "operator", "scanner"), environ)


def executor(listen: str, wiring: Wiring, environ: Mapping[str, str], plan: Plan) -> dict[str, str]:
    """The executor: the only process with the trade key."""
    demo = _common("executor", listen, wiring, "operator", "scanner")
    if plan.real_exchange_executor:
        demo["MODE"] = "paper"  # the operator's EXECUTOR_MODE=live (with their keys) overrides this
    else:
        demo |= {
            "MODE": "live",  # real orders, at the simulator
            "EXCHANGE_URL": wiring.exchange_url,
            "BITVAVO_API_KEY": wiring.credentials.trade_key.key,
            "BITVAVO_API_SECRET": wiring.credentials.trade_key.secret,
            "OPERATOR_ID": DEMO_OPERATOR_ID,
        }
    return _compose("EXECUTOR_", demo, environ)


def scanner(
    listen: str, wiring: Wiring, environ: Mapping[str, str], plan: Plan, *, budget_addr: str, executor_addr: str
) -> dict[str, str]:
    """The scanner: the view-only key, the budget and executor addresses with its own token."""
    demo = _common("scanner", listen, wiring, "operator")
    demo |= {
        "BUDGET_ADDR": budget_addr,
        "BUDGET_TOKEN": wiring.credentials.scanner_token,
        "EXECUTOR_ADDR": executor_addr,
        "EXECUTOR_TOKEN": wiring.credentials.scanner_token,
        "POLL_INTERVAL_SECONDS": "1",
    }
    if not plan.real_exchange_scanner:
        demo |= {
            "EXCHANGE_URL": wiring.exchange_url,
            "BITVAVO_API_KEY": wiring.credentials.view_key.key,
            "BITVAVO_API_SECRET": wiring.credentials.view_key.secret,
        }
    if not plan.real_llm:
        demo |= {"LLM_BASE_URL": wiring.llm_url, "LLM_API_KEY": wiring.llm_api_key, "LLM_MODEL": wiring.llm_model}
    env = _compose("SCANNER_", demo, environ)
    check_scanner_separation(env, wiring.credentials)
    return env


def check_scanner_separation(env: Mapping[str, str], credentials: Credentials) -> None:
    """Refuse to start a scanner whose environment holds an executor variable or the trade key."""
    trade = credentials.trade_key
    for name, value in env.items():
        if name.startswith("EXECUTOR_") or (
            "TRADE" in name.upper() and ("KEY" in name.upper() or "SECRET" in name.upper())
        ):
            raise KeySeparationError(f"the scanner's environment must not hold {name}")
        if trade.key in value or trade.secret in value:
            raise KeySeparationError(f"the scanner's environment holds the trade key in {name}")
