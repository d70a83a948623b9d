"""The kubelet endpoint's TLS: its serving certificate and the server-side context.

A kubelet always serves HTTPS. Without `node.kubeletTLSCertFile`/`KeyFile` the watcher makes a
self-signed serving certificate at start, as a kubelet without `--tls-cert-file` does: an EC P-256
key and a certificate for the node's InternalIP (`node.address`) and name, valid for a year, kept
in memory only (a restart makes a new one). API servers do not verify kubelet serving certificates
unless `--kubelet-certificate-authority` is set; where it is, provide a certificate signed by that
CA (for example through cert-manager) in those two settings.

Client certificates are asked for but not required (a kubelet's `--client-ca-file`): a certificate
given must verify against the client CA bundle, and a connection without one falls back to bearer
tokens (`kubelet_auth`). CAs are added to a live context (`add_client_ca`); new connections trust
them at once. Until one is added no client certificate is asked for (one that could not be
verified would fail the handshake).
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orca.pem import load_chain, private_key_pem

SELF_SIGNED_VALIDITY = timedelta(days=365)


def subject_alternative_names(address: str, node_name: str) -> list[x509.GeneralName]:
    """The node's InternalIP (or host name) and its name, without duplicates."""
    names: list[x509.GeneralName] = []
    for value in dict.fromkeys((address, node_name)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        except ValueError:
            names.append(x509.DNSName(value))
    return names


def self_signed_certificate(
    address: str, node_name: str, *, now: datetime | None = None
) -> tuple[bytes, bytes]:
    """A self-signed serving certificate (PEM) and its key (PEM, unencrypted) for the node."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = now or datetime.now(UTC)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@{int(start.timestamp())}")]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(minutes=5))
        .not_valid_after(start + SELF_SIGNED_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(subject_alternative_names(address, node_name)),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


def server_context(certificate: bytes, key: bytes) -> ssl.SSLContext:
    """The server context for a certificate and key given as PEM (never left on disk)."""
    context = _base_context()
    load_chain(context, certificate, key)
    return context


def server_context_from_files(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The server context for `node.kubeletTLSCertFile`/`KeyFile`."""
    context = _base_context()
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def add_client_ca(context: ssl.SSLContext, bundle_pem: str) -> None:
    """Ask for client certificates and trust the CAs in `bundle_pem` for them, from now on."""
    context.load_verify_locations(cadata=bundle_pem)
    if context.verify_mode == ssl.CERT_NONE:
        context.verify_mode = ssl.CERT_OPTIONAL


def _base_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context  # no client certificate asked for until there is a CA to verify it
