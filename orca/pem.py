"""TLS material held in memory as PEM: keys serialized once, chains loaded without a file left.

`ssl` loads a certificate chain only from files, so `load_chain` writes the two PEM blobs to a
private temporary directory (the key file mode 0600) for the moment of loading and removes it.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    """`key` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_chain(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    """Load a PEM certificate (chain) and its PEM key into `context`."""
    with tempfile.TemporaryDirectory(prefix="orca-tls-") as directory:
        cert_file = os.path.join(directory, "tls.crt")
        key_file = os.path.join(directory, "tls.key")
        with open(cert_file, "wb") as out:
            out.write(certificate)
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            out.write(key)
        context.load_cert_chain(cert_file, key_file)
