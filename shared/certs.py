"""A local certificate authority for ``make certs``, the stack's TLS mode and the tests.

``python -m shared.certs [DIR]`` (``make certs``) writes into DIR (default ``.certs``, never
committed):

- ``ca.crt`` / ``ca.key`` — the CA (``ca-bundle.crt`` is what every party trusts: during a CA
  rotation it holds the current and the next CA);
- ``<name>.crt`` / ``<name>.key`` for each service (budget, executor, scanner: server and client
  certificate, DNS names of the service in Kubernetes and on loopback) and each client principal
  (operator, viewer, user — the last for the app back ends that carry user tokens);
- ``user-tokens.key`` / ``user-tokens.pub`` — the ES256 key pair of user tokens (the services
  read only the public key; see shared.user_tokens).

Every certificate names its principal in a URI SAN (shared.tls.principal_uri). In production,
cert-manager issues the same shapes from the manifests (deploy/README.md); this module is for
local use and tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.tls import principal_uri

SERVICES = ("budget", "executor", "scanner")
CLIENTS = ("operator", "viewer", "user")
NAMESPACE = "oracle"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "auto-invest-oracle"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes


class Authority:
    """A CA that issues the project's certificates."""

    def __init__(self, name: str = "auto-invest-oracle local CA", *, days: int = 365) -> None:
        self._key = _key()
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _pem_key(self._key)

    def issue(self, principal: str, *, dns: tuple[str, ...] = (), days: int = 90, named: bool = True) -> Issued:
        """A certificate naming ``principal`` (URI SAN), valid as a TLS client and server.

        Every certificate also names localhost and 127.0.0.1, so the same files serve ``python -m
        stack run --tls`` on loopback. ``named=False`` leaves the principal out (tests).
        """
        key = _key()
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(principal_uri(principal))] if named else []
        names += [x509.DNSName(d) for d in (*dns, "localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(principal))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def service_dns(service: str, namespace: str = NAMESPACE) -> tuple[str, ...]:
    """The names a service is reached by inside the cluster."""
    return (service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")


def signing_key_pair() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a new ES256 key for user tokens."""
    key = _key()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _pem_key(key), public


def write_file(path: Path, data: bytes, *, secret: bool) -> None:
    """Replace ``path`` atomically (a reader never sees half a file), keys readable by the owner only."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def write_all(directory: Path, namespace: str = NAMESPACE) -> list[Path]:
    """A new CA, every service and client certificate, and the user-token key pair in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = Authority()
    written = []

    def put(name: str, data: bytes, *, secret: bool) -> None:
        write_file(directory / name, data, secret=secret)
        written.append(directory / name)

    put("ca.crt", ca.cert_pem, secret=False)
    put("ca-bundle.crt", ca.cert_pem, secret=False)
    put("ca.key", ca.key_pem, secret=True)
    for service in SERVICES:
        issued = ca.issue(service, dns=service_dns(service, namespace))
        put(f"{service}.crt", issued.cert, secret=False)
        put(f"{service}.key", issued.key, secret=True)
    for client in CLIENTS:
        issued = ca.issue(client)
        put(f"{client}.crt", issued.cert, secret=False)
        put(f"{client}.key", issued.key, secret=True)
    private, public = signing_key_pair()
    put("user-tokens.key", private, secret=True)
    put("user-tokens.pub", public, secret=False)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.certs", description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=".certs", help="where to write (default .certs)")
    parser.add_argument("--namespace", default=NAMESPACE, help="Kubernetes namespace in the services' DNS names")
    args = parser.parse_args(argv)
    for path in write_all(Path(args.directory), args.namespace):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
