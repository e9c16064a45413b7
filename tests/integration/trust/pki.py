"""Certificates, keys and user tokens for the trust tests, written to files the servers watch.

Everything is issued here with shared.certs (the same code as ``make certs``); a second,
unrelated CA plays the outsider.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from shared import user_tokens
from shared.certs import Authority, Issued, signing_key_pair, write_file
from shared.tls import TlsFiles

ISSUER = "https://id.test.invalid"
AUDIENCE = "auto-invest-oracle"


@dataclass
class Party:
    """One party's three files (certificate, key, CA bundle)."""

    cert: Path
    key: Path
    ca: Path

    def files(self) -> TlsFiles:
        return TlsFiles(self.cert, self.key, self.ca)

    def install(self, issued: Issued, bundle: bytes | None = None) -> None:
        """Replace the certificate and key (key first: the pair is checked before use)."""
        write_file(self.key, issued.key, secret=True)
        write_file(self.cert, issued.cert, secret=False)
        if bundle is not None:
            write_file(self.ca, bundle, secret=False)

    def trust(self, bundle: bytes) -> None:
        write_file(self.ca, bundle, secret=False)


@dataclass
class Pki:
    """A CA, the parties' files under ``root``, and a user-token signing key."""

    root: Path
    ca: Authority = field(default_factory=Authority)
    signing_key: bytes = b""
    public_keys: Path = field(init=False)
    revoked: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.signing_key, public = signing_key_pair()
        self.public_keys = self.root / "user-tokens.pub"
        write_file(self.public_keys, public, secret=False)
        self.revoked = self.root / "revoked.txt"
        write_file(self.revoked, b"# revoked user-token ids\n", secret=False)

    def party(
        self, principal: str, authority: Authority | None = None, *, name: str | None = None, named: bool = True
    ) -> Party:
        """Files for ``principal``, issued by ``authority`` (default: the CA), trusting the CA."""
        name = name or principal
        party = Party(self.root / f"{name}.crt", self.root / f"{name}.key", self.root / f"{name}-ca.crt")
        party.install((authority or self.ca).issue(principal, named=named), self.ca.cert_pem)
        return party

    def user_token(
        self,
        user_id: str,
        *,
        key: bytes | None = None,
        lifetime: dt.timedelta = dt.timedelta(minutes=5),
        now: dt.datetime | None = None,
        jti: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> str:
        return user_tokens.issue(
            key or self.signing_key, user_id, issuer=issuer, audience=audience, lifetime=lifetime, now=now, jti=jti
        )

    def server_settings(self, party: Party) -> ServerSettings:
        """Settings (by field name) for a server with ``party``'s files and user tokens on."""
        return ServerSettings(
            tls_cert_file=str(party.cert),
            tls_key_file=str(party.key),
            tls_ca_file=str(party.ca),
            **self.user_token_settings(),
        )

    def user_token_settings(self) -> UserTokenSettings:
        return UserTokenSettings(
            user_token_public_keys_file=str(self.public_keys),
            user_token_issuer=ISSUER,
            user_token_audience=AUDIENCE,
            user_token_revoked_file=str(self.revoked),
        )


class UserTokenSettings(TypedDict):
    """Service settings (by field name) that turn user tokens on."""

    user_token_public_keys_file: str
    user_token_issuer: str
    user_token_audience: str
    user_token_revoked_file: str


class ServerSettings(UserTokenSettings):
    """… and TLS with client certificates."""

    tls_cert_file: str
    tls_key_file: str
    tls_ca_file: str
