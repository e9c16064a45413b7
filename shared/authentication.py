"""Who is calling: the principal of a call, from its certificate and its bearer credential.

:class:`Authenticator` is what the server interceptor (shared.server) asks. The rules:

- insecure-dev mode: every call is the ``dev`` principal (local development only).
- A call over TLS carries a client certificate verified against the CA bundle (the server
  requires one); the principal named in its URI SAN (shared.tls) is the call's principal. The
  bearer credential is a second factor and must name the same principal: the scanner's
  certificate with the operator's token is still the scanner — and is refused, audited as the
  scanner. A ``user`` certificate (an app back end) carries user tokens: the call's principal is
  the user the token is bound to.
- A plaintext call (loopback, or behind a mesh that terminates TLS) is identified by its bearer
  credential alone.
- The bearer credential is a principal token (PRINCIPAL_TOKENS, and PRINCIPAL_TOKENS_FILE,
  re-read on change so a token rotates by listing the next beside the current) or a user token
  (a JWT; shared.user_tokens).

Missing or invalid credentials are Unauthenticated; a credential that names another principal
than the certificate is a refusal reason (PermissionDenied, audited by the interceptor).
"""

from __future__ import annotations

from collections.abc import Mapping

from shared import principals
from shared.config import AuthMode, ServiceSettings, parse_principal_tokens
from shared.errors import Unauthenticated
from shared.principals import Principal
from shared.tls import certificate_principal, is_tls
from shared.user_tokens import UserTokenVerifier, looks_like_jwt
from shared.watched import WatchedFile

CREDENTIAL_MISMATCH = "CREDENTIAL_NOT_CERTIFICATE_PRINCIPAL"


class _Tokens:
    """The principal tokens of the settings and of the tokens file (re-read on change)."""

    def __init__(self, inline: str, path: str) -> None:
        self._inline = parse_principal_tokens(inline)
        self._file = WatchedFile(path, _parse_tokens_file) if path else None
        self._stamp: object = None
        self._table = self._build()

    def _build(self) -> principals.TokenTable:
        from_file = self._file.get() if self._file else {}
        self._stamp = self._file.stamp if self._file else None
        return principals.TokenTable({**self._inline, **from_file})

    def resolve(self, token: str) -> str | None:
        if self._file is not None:
            self._file.get()
            if self._file.stamp != self._stamp:
                self._table = self._build()
        return self._table.resolve(token)

    @property
    def empty(self) -> bool:
        return not self._inline and self._file is None


def _parse_tokens_file(data: bytes) -> dict[str, str]:
    lines = (line.split("#", 1)[0].strip() for line in data.decode().splitlines())
    return parse_principal_tokens(",".join(line for line in lines if line))


class Authenticator:
    """Establishes the principal of each call (see the module docstring)."""

    def __init__(
        self,
        auth_mode: AuthMode,
        *,
        tokens: str = "",
        tokens_file: str = "",
        users: UserTokenVerifier | None = None,
    ) -> None:
        self._auth_mode = auth_mode
        self._tokens = _Tokens(tokens, tokens_file)
        self._users = users

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Authenticator:
        users = None
        if settings.user_token_public_keys_file:
            users = UserTokenVerifier(
                public_keys_file=settings.user_token_public_keys_file,
                issuer=settings.user_token_issuer,
                audience=settings.user_token_audience,
                leeway_seconds=settings.user_token_leeway_seconds,
                max_lifetime_seconds=settings.user_token_max_lifetime_seconds,
                revoked_file=settings.user_token_revoked_file or None,
            )
        return cls(
            settings.auth_mode,
            tokens=settings.principal_tokens.get_secret_value(),
            tokens_file=settings.principal_tokens_file,
            users=users,
        )

    @property
    def has_credentials(self) -> bool:
        """False when no call can ever authenticate (no tokens and no user-token keys)."""
        return not self._tokens.empty or self._users is not None

    def identify(
        self, metadata: tuple[tuple[str, str | bytes], ...], auth_context: Mapping[str, list[bytes]]
    ) -> tuple[Principal, str | None]:
        """The call's principal, and a refusal reason when its credentials disagree.

        Raises Unauthenticated when the call presents no valid credential.
        """
        if self._auth_mode is AuthMode.INSECURE_DEV:
            return Principal(principals.DEV), None
        peer = dict(auth_context)
        tls = is_tls(peer)
        certified = certificate_principal(peer) if tls else None
        if tls and certified is None:
            raise Unauthenticated("the client certificate names no principal", reason="CERTIFICATE_NAMES_NO_PRINCIPAL")
        token = principals.bearer(metadata)
        if not token:
            raise Unauthenticated("a valid principal token is required", reason="UNKNOWN_PRINCIPAL")
        if self._users is not None and looks_like_jwt(token):
            presented = Principal(principals.USER, self._users.verify(token))
        else:
            name = self._tokens.resolve(token)
            if name is None:
                raise Unauthenticated("a valid principal token is required", reason="UNKNOWN_PRINCIPAL")
            presented = Principal(name)
        if certified is None or certified == presented.name:
            return presented, None
        # The certificate decides who this is; a token of someone else is no second factor.
        return Principal(certified), CREDENTIAL_MISMATCH
