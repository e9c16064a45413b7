"""User tokens: the credential of a ``user`` principal, bound to one user id.

A user token is a JWT signed with ES256 by the identity provider (the app back end), verified
here with PyJWT against public keys read from a file — never fetched (the default-deny egress
blocks a JWKS endpoint), and re-read when the file changes (shared.watched), so a signing key
rotates by publishing the next key beside the current one, switching the signer, then removing
the old key. The checks, all of which must pass:

- the algorithm is the one configured (never taken from the token's header);
- the signature verifies under one of the published keys;
- ``iss`` and ``aud`` are the configured ones; ``exp``, ``nbf`` and ``iat`` hold with a small
  leeway for clock skew; the lifetime ``exp - iat`` is at most the configured maximum (short-lived
  tokens limit what a stolen one is worth);
- ``jti`` is not in the revocation list (a file of ids, one per line, also re-read on change);
- ``sub`` is a valid user id: the only user this principal may act for (shared.principals).

Every failure is :class:`~shared.errors.Unauthenticated` with a reason; the token itself never
appears in an error or a log line.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.errors import InvalidArgument, Unauthenticated
from shared.fields import user_id as valid_user_id
from shared.watched import WatchedFile

ALGORITHM = "ES256"  # pinned: the only algorithm accepted, whatever a token's header says
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "nbf", "iat", "jti")

_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def _public_keys(data: bytes) -> tuple[ec.EllipticCurvePublicKey, ...]:
    keys = []
    for block in _PEM_BLOCK.findall(data):
        key = serialization.load_pem_public_key(block)
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("user-token keys must be P-256 (ES256) public keys")
        keys.append(key)
    if not keys:
        raise ValueError("no public key in file")
    return tuple(keys)


def _revoked(data: bytes) -> frozenset[str]:
    lines = (line.split("#", 1)[0].strip() for line in data.decode().splitlines())
    return frozenset(line for line in lines if line)


def looks_like_jwt(token: str) -> bool:
    """True for a compact JWS (three dot-separated parts); principal tokens never contain dots."""
    return token.count(".") == 2


class UserTokenVerifier:
    """Verifies user tokens; the public keys and the revocation list follow their files."""

    def __init__(
        self,
        *,
        public_keys_file: str | Path,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        max_lifetime_seconds: int = 900,
        revoked_file: str | Path | None = None,
    ) -> None:
        self._keys = WatchedFile(public_keys_file, _public_keys)
        self._revoked = WatchedFile(revoked_file, _revoked) if revoked_file else None
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds

    def verify(self, token: str) -> str:
        """The user id the token is bound to; Unauthenticated when any check fails."""
        claims = self._decode(token)
        if claims["exp"] - claims["iat"] > self._max_lifetime:
            raise Unauthenticated("the user token lives longer than allowed", reason="USER_TOKEN_TOO_LONG_LIVED")
        if self._revoked is not None and str(claims["jti"]) in self._revoked.get():
            raise Unauthenticated("the user token was revoked", reason="USER_TOKEN_REVOKED")
        subject = claims["sub"]
        try:
            return valid_user_id(subject if isinstance(subject, str) else "", "sub")
        except InvalidArgument:
            raise Unauthenticated("the user token names no valid user", reason="USER_TOKEN_INVALID") from None

    def _decode(self, token: str) -> dict[str, Any]:
        keys = self._keys.get()
        for index, key in enumerate(keys):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=self._issuer,
                    audience=self._audience,
                    leeway=self._leeway,
                    options={"require": list(REQUIRED_CLAIMS)},
                )
                return claims
            except jwt.InvalidSignatureError:
                if index == len(keys) - 1:
                    break
                continue  # the next published key (a rotation in progress) may verify it
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the user token has expired", reason="USER_TOKEN_EXPIRED") from None
            except jwt.ImmatureSignatureError:
                raise Unauthenticated("the user token is not valid yet", reason="USER_TOKEN_NOT_YET_VALID") from None
            except jwt.InvalidTokenError:
                raise Unauthenticated("the user token is invalid", reason="USER_TOKEN_INVALID") from None
        raise Unauthenticated("the user token's signature does not verify", reason="USER_TOKEN_INVALID")


def issue(
    private_key_pem: bytes,
    user_id: str,
    *,
    issuer: str,
    audience: str,
    lifetime: dt.timedelta = dt.timedelta(minutes=10),
    now: dt.datetime | None = None,
    jti: str | None = None,
) -> str:
    """A signed user token (what the identity provider does; used by the demo and the tests)."""
    at = now or dt.datetime.now(dt.UTC)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user_id,
        "iat": at,
        "nbf": at,
        "exp": at + lifetime,
        "jti": jti or str(uuid.uuid4()),
    }
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return jwt.encode(claims, key, algorithm=ALGORITHM)  # type: ignore[arg-type]
