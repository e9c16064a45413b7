"""Typed configuration from environment variables.

Every service describes its settings as a frozen pydantic model (one docstring-like
``description`` per field) and loads it with :func:`load`, which reads only the variables with
the service's prefix and fails fast with a :class:`ConfigError` naming *every* bad variable at
once. Secrets are ``SecretStr``: they never show in a repr, a log line or an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

T = TypeVar("T", bound=BaseModel)

# Names of variables whose values are secrets, whatever the prefix (used by log redaction too).
# A *_FILE variable holds the path of a mounted secret (TLS key, token file), not the secret.
SECRET_NAME = re.compile(r"^(?!.*_FILE$).*(KEY|SECRET|TOKEN|PASSWORD|PRINCIPALS|DATABASE_URL)", re.IGNORECASE)


class ConfigError(Exception):
    """The environment is not a valid configuration; ``problems`` names every bad variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration: " + "; ".join(problems))
        self.problems = problems


class TraceExporter(StrEnum):
    """Where spans go."""

    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


class AuthMode(StrEnum):
    """How callers are identified."""

    TOKEN = "token"  # noqa: S105 -- per-principal bearer tokens (the default, and the only mode for production)
    INSECURE_DEV = "insecure-dev"  # no authentication: local development only, loudly announced


class Settings(BaseModel):
    """Base of every settings model: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ServiceSettings(Settings):
    """What every gRPC service needs. Variables carry the service's prefix, e.g. EXECUTOR_."""

    listen_addr: str = Field(default="127.0.0.1:0", pattern=r"^[^\s:]*:\d{1,5}$")
    """host:port to listen on; port 0 picks a free port (printed at startup)."""

    database_url: SecretStr | None = None
    """PostgreSQL URL of this service's own role. Required to start: unset, the service refuses
    (``shared.bootstrap.open_database``); ``make run`` sets it for the local embedded database.
    Optional here only so that settings load (and can be checked) without it."""

    db_pool_min: int = Field(default=1, ge=0, le=100)
    """Connections kept open."""

    db_pool_max: int = Field(default=10, ge=1, le=200)
    """Most connections at once."""

    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    """How long a call waits for a connection before it is UNAVAILABLE."""

    db_health_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the database is pinged for the health service."""

    statement_timeout_ms: int = Field(default=15000, ge=100, le=600000)
    """Longest SQL statement (including lock waits)."""

    grace_seconds: float = Field(default=10.0, ge=0, le=300)
    """How long in-flight calls may finish after SIGTERM."""

    max_workers: int = Field(default=32, ge=1, le=1024)
    """gRPC worker threads."""

    auth_mode: AuthMode = AuthMode.TOKEN
    """token, or insecure-dev (no authentication; local development only)."""

    principal_tokens: SecretStr = SecretStr("")
    """Comma-separated name:token pairs of the principals allowed to call this service."""

    principal_tokens_file: str = ""
    """File of name:token pairs (one per line or comma-separated), re-read on change: a token
    rotates by listing the next one beside the current one, then removing the current one."""

    tls_cert_file: str = ""
    """This service's certificate chain (PEM). With the key and the CA bundle: TLS with client
    certificates on the service port, and for this service's own calls to other services."""

    tls_key_file: str = ""
    """The private key of tls_cert_file (PEM)."""

    tls_ca_file: str = ""
    """CA bundle (PEM) that peers' certificates must chain to: the current CA and, during a
    rotation, the next one. All three TLS files are re-read on change (and on SIGHUP)."""

    tls_terminated_by_mesh: bool = False
    """A service mesh terminates TLS in front of this service: plaintext on a non-loopback
    listen_addr is allowed. Without it (or TLS files), only a loopback address may be plaintext."""

    max_connection_age_seconds: float = Field(default=600.0, ge=0.1, le=86400)
    """A client connection is asked to reconnect after this long (its calls finish first), so
    every connection handshakes again with the current certificates and CA bundle: a retired
    certificate or CA stops working within this time, not when the peer happens to reconnect."""

    health_listen_addr: str = Field(default="", pattern=r"^([^\s:]*:\d{1,5})?$")
    """host:port of a plaintext port serving only grpc.health.v1 (kubelet probes cannot speak
    TLS); empty: health is served on the service port only."""

    user_token_public_keys_file: str = ""
    """PEM file of the ES256 public keys user tokens are verified with (current and next),
    re-read on change. Empty: no user principals."""

    user_token_issuer: str = ""
    """The iss every user token must carry."""

    user_token_audience: str = ""
    """The aud every user token must carry."""

    user_token_leeway_seconds: float = Field(default=30.0, ge=0, le=120)
    """Clock skew allowed on exp, nbf and iat."""

    user_token_max_lifetime_seconds: int = Field(default=900, ge=60, le=3600)
    """Longest exp - iat a user token may have."""

    user_token_revoked_file: str = ""
    """File of revoked user-token ids (jti), one per line, re-read on change."""

    trace_exporter: TraceExporter = TraceExporter.NONE
    """none, console or otlp."""

    otlp_endpoint: str = "http://127.0.0.1:4317"
    """OTLP collector endpoint when trace_exporter is otlp."""

    metrics_addr: str = Field(default="127.0.0.1:0", pattern=r"^(off|[^\s:]*:\d{1,5})$")
    """host:port of the plaintext Prometheus ``/metrics`` endpoint (port 0 picks a free port,
    printed at startup), or ``off``. It carries counts and states only, never a secret."""

    metrics_otlp: bool = False
    """Also push metrics over OTLP to ``otlp_endpoint``."""

    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    """Logging level."""

    @field_validator("auth_mode")
    @classmethod
    def _insecure_only_on_loopback(cls, value: AuthMode, info: ValidationInfo) -> AuthMode:
        # Without authentication every caller may do anything (override included): only a
        # process reachable from this machine alone may run so.
        listen_addr = info.data.get("listen_addr")
        if value is AuthMode.INSECURE_DEV and listen_addr is not None:
            host = listen_addr.rpartition(":")[0]
            if not is_loopback_host(host):
                raise ValueError(
                    f"insecure-dev is refused on listen address {listen_addr!r}: it is allowed only on a"
                    " loopback address (localhost or 127.0.0.0/8)"
                )
        return value

    @property
    def metrics_endpoint(self) -> str | None:
        """Where to serve ``/metrics`` (host:port), or None when it is off."""
        return None if self.metrics_addr == "off" else self.metrics_addr

    @field_validator("principal_tokens")
    @classmethod
    def _tokens_parse(cls, value: SecretStr) -> SecretStr:
        parse_principal_tokens(value.get_secret_value())
        return value

    @property
    def tls_enabled(self) -> bool:
        """True when the service port speaks TLS with client certificates."""
        return bool(self.tls_cert_file)

    @model_validator(mode="after")
    def _transport_is_safe(self) -> ServiceSettings:
        tls = (self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        if any(tls) and not all(tls):
            raise ValueError("TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE are set together or not at all")
        if (
            not any(tls)
            and not self.tls_terminated_by_mesh
            and not is_loopback_host(self.listen_addr.rpartition(":")[0])
        ):
            raise ValueError(
                f"LISTEN_ADDR {self.listen_addr} is not loopback: set TLS_CERT_FILE, TLS_KEY_FILE and "
                "TLS_CA_FILE, or TLS_TERMINATED_BY_MESH=true when a service mesh terminates TLS"
            )
        if self.user_token_public_keys_file and not (self.user_token_issuer and self.user_token_audience):
            raise ValueError("USER_TOKEN_PUBLIC_KEYS_FILE needs USER_TOKEN_ISSUER and USER_TOKEN_AUDIENCE")
        return self


def is_loopback_host(host: str) -> bool:
    """True when ``host`` is this machine only: ``localhost`` or an address in 127.0.0.0/8.
    An empty host (every interface) is not."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8")


def parse_principal_tokens(text: str) -> dict[str, str]:
    """``name:token,name:token`` → {token: name}. Names are lower-case words; tokens ≥ 16 chars."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, token = part.partition(":")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
            raise ValueError("each entry must be name:token with a lower-case name")
        if len(token) < 16:
            raise ValueError(f"the token of principal {name!r} is shorter than 16 characters")
        if token in out:
            raise ValueError("two principals share one token")
        out[token] = name
    return out


def load(model: type[T], environ: Mapping[str, str], prefix: str) -> T:
    """Build ``model`` from ``environ`` variables named PREFIX + FIELD in upper case.

    Raises ConfigError naming every variable that is missing or invalid (values of secret
    variables are never repeated in the message).
    """
    values: dict[str, Any] = {}
    for name in model.model_fields:
        var = f"{prefix}{name.upper()}"
        if var in environ and environ[var] != "":
            values[name] = environ[var]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            if not err["loc"]:  # a rule over several fields: its message names them
                problems.append(f"{prefix}{err['msg'].removeprefix('Value error, ')}")
                continue
            problems.append(f"{prefix}{str(err['loc'][0]).upper()}: {err['msg']}")
        raise ConfigError(problems) from None
