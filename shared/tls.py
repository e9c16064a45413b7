"""Mutual TLS between services: credentials that follow their files, and who a certificate names.

Every party holds three files: its certificate chain, its private key, and a CA bundle (the
current CA and, during a rotation, the next one). :class:`TlsFiles` watches them
(:mod:`shared.watched`), so a rotation is: add the next CA to every bundle, replace each
certificate and key, drop the old CA — no restart at any step.

- Servers (:meth:`TlsFiles.server_credentials`) require a client certificate signed by the bundle
  and pick up new files at the next handshake (gRPC asks before every handshake); connections
  already open keep going, so no call is dropped.
- Clients (:mod:`shared.channel`) present their certificate and verify the server's against
  the bundle, and open a new connection when the files change.

A certificate names its principal in a URI subject alternative name
``spiffe://auto-invest-oracle/<principal>`` (:func:`certificate_principal`); the server's
interceptor takes the principal of a call from there (shared.server).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.config import ServiceSettings
from shared.watched import WatchedFile

log = logging.getLogger(__name__)

PRINCIPAL_URI_PREFIX = "spiffe://auto-invest-oracle/"


def principal_uri(principal: str) -> str:
    """The URI SAN that names ``principal`` in a certificate."""
    return PRINCIPAL_URI_PREFIX + principal


def _certificates(data: bytes) -> bytes:
    if not x509.load_pem_x509_certificates(data):
        raise ValueError("no certificate in file")
    return data


def _private_key(data: bytes) -> bytes:
    serialization.load_pem_private_key(data, password=None)
    return data


@dataclass(frozen=True)
class _Pair:
    cert: bytes
    key: bytes
    ca: bytes


class TlsFiles:
    """One party's certificate, key and CA bundle, re-read whenever a file changes."""

    def __init__(self, cert_file: str | Path, key_file: str | Path, ca_file: str | Path) -> None:
        self._cert = WatchedFile(cert_file, _certificates)
        self._key = WatchedFile(key_file, _private_key)
        self._ca = WatchedFile(ca_file, _certificates)
        first = self._load()
        if first is None:
            raise ValueError(f"the private key {key_file} does not belong to the certificate {cert_file}")
        self._current = first
        self._seen = self._stamps()

    def _load(self) -> _Pair | None:
        """The files' contents, or None while the certificate and key do not match (mid-rotation)."""
        cert, key, ca = self._cert.get(), self._key.get(), self._ca.get()
        leaf = x509.load_pem_x509_certificates(cert)[0]
        private = serialization.load_pem_private_key(key, password=None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if leaf.public_key().public_bytes(der, spki) != private.public_key().public_bytes(der, spki):
            return None
        return _Pair(cert, key, ca)

    def _stamps(self) -> tuple[object, ...]:
        for watched in (self._cert, self._key, self._ca):
            watched.get()
        return (self._cert.stamp, self._key.stamp, self._ca.stamp)

    def current(self) -> tuple[bytes, bytes, bytes]:
        """(certificate chain, key, CA bundle): the newest consistent set of the three files."""
        stamps = self._stamps()
        if stamps != self._seen:
            pair = self._load()
            if pair is not None:
                self._current = pair
                self._seen = stamps  # a mismatched pair is looked at again until the key follows
            else:
                log.warning("TLS certificate and key do not match (mid-rotation?); keeping the last good pair")
        return self._current.cert, self._current.key, self._current.ca

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server credentials requiring a client certificate, following the files."""
        served = self.current()

        def config(files: tuple[bytes, bytes, bytes]) -> grpc.ServerCertificateConfiguration:
            cert, key, ca = files
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            nonlocal served
            try:
                latest = self.current()
            except Exception:  # never fail a handshake over a rotation problem: keep the last set
                log.exception("reading the TLS files failed; serving the last good certificate")
                return None
            if latest == served:
                return None
            served = latest
            log.info("TLS certificate or CA bundle rotated")
            return config(latest)

        return grpc.dynamic_ssl_server_credentials(config(served), fetch, require_client_authentication=True)


def service_tls(settings: ServiceSettings) -> TlsFiles | None:
    """The service's own TLS files (its server and client identity), when TLS is configured."""
    if not settings.tls_enabled:
        return None
    return TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)


@lru_cache(maxsize=256)
def _principal_of_pem(pem: bytes) -> str | None:
    try:
        leaf = x509.load_pem_x509_certificate(pem)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    found = [
        uri[len(PRINCIPAL_URI_PREFIX) :]
        for uri in names.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(PRINCIPAL_URI_PREFIX)
    ]
    # A certificate naming two principals names none: there is no "pick one".
    return found[0] if len(found) == 1 and found[0] else None


def certificate_principal(auth_context: dict[str, list[bytes]]) -> str | None:
    """The principal named by the verified peer certificate of a call, if it presented one.

    gRPC fills ``x509_pem_cert`` only after the handshake verified the chain against the CA
    bundle, so what is read here is what the CA vouched for.
    """
    pems = auth_context.get("x509_pem_cert") or []
    return _principal_of_pem(pems[0]) if len(pems) == 1 else None


def is_tls(auth_context: dict[str, list[bytes]]) -> bool:
    """True when the call arrived over TLS."""
    return auth_context.get("transport_security_type") == [b"ssl"]
