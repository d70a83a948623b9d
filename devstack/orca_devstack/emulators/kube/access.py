"""Who a caller is and what it may do: the emulator's cluster CA, static tokens, TokenReview and
SubjectAccessReview, as a kubelet delegating to the API server sees them.

A real cluster has a client CA (`kube-apiserver --client-ca-file`) published to delegating servers
in ConfigMap kube-system/extension-apiserver-authentication (key `client-ca-file`), a client
certificate the API server presents to kubelets (`--kubelet-client-certificate`, signed by that CA;
kubeadm names its user `kube-apiserver-kubelet-client`), tokens it accepts, and an authorizer.
The emulator has all four, small:

* `ClusterCA`: an EC P-256 CA made at start, which signs the API server's kubelet client
  certificate and any client certificate a test asks for (`issue`), CN the user, O the groups.
* Static tokens (`--token-auth-file`): the kubeconfig's token `orca-dev-emulator` is user
  `orca-dev` in group `system:masters`; `add_token` registers more. TokenReview authenticates
  these and nothing else (the API's own requests are still not authenticated: see the package
  docstring).
* The authorizer (no RBAC objects are stored) is a fixed policy, as bootstrap RBAC would decide
  for these subjects: group `system:masters` may do anything; user `kube-apiserver-kubelet-client`
  has ClusterRole `system:kubelet-api-admin` (every verb on nodes and on the kubelet's
  subresources nodes/proxy, log, stats, metrics, spec, healthz, pods, configz, checkpoint);
  everyone else is denied.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orca.pem import load_chain, private_key_pem
from orca_devstack.emulators.kube import errors

EMULATOR_TOKEN = "orca-dev-emulator"
EMULATOR_USER = "orca-dev"
MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
AUTHENTICATION_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")
CLIENT_CA_KEY = "client-ca-file"
KUBELET_API_SUBRESOURCES = frozenset(
    {"proxy", "log", "stats", "metrics", "spec", "healthz", "pods", "configz", "checkpoint"}
)
_VALIDITY = timedelta(days=365)


class ClusterCA:
    """The cluster's client CA: its certificate (PEM) and the client certificates it signs."""

    def __init__(self, common_name: str = "orca-dev-emulator-ca") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self._name = name
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        """A client certificate (PEM) and its key (PEM) for `user` in `groups`."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    def info(self) -> dict[str, Any]:
        groups = list(self.groups)
        if AUTHENTICATED_GROUP not in groups:
            groups.append(AUTHENTICATED_GROUP)
        info: dict[str, Any] = {"username": self.username, "groups": groups}
        if self.uid:
            info["uid"] = self.uid
        return info


@dataclass
class Tokens:
    """The static token file: bearer token → user."""

    users: dict[str, User] = field(
        default_factory=lambda: {EMULATOR_TOKEN: User(EMULATOR_USER, (MASTERS_GROUP,))}
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, token: str, user: User) -> None:
        with self.lock:
            self.users[token] = user

    def find(self, token: str) -> User | None:
        with self.lock:
            return self.users.get(token)


class ClusterAccess:
    """The emulator's CA, tokens, and the TLS context it opens kubelet endpoints with."""

    def __init__(self) -> None:
        self.ca = ClusterCA()
        self.tokens = Tokens()
        self.kubelet_client = self.ca.issue(KUBELET_CLIENT_USER)
        self.kubelet_context = client_context(self.kubelet_client)

    def configmap(self) -> dict[str, Any]:
        """ConfigMap kube-system/extension-apiserver-authentication, as kube-apiserver keeps it."""
        namespace, name = AUTHENTICATION_CONFIGMAP
        return {
            "metadata": {"name": name, "namespace": namespace},
            "data": {CLIENT_CA_KEY: self.ca.pem},
        }


def client_context(certificate: tuple[bytes, bytes] | None) -> ssl.SSLContext:
    """A TLS client context presenting `certificate` (PEM certificate and key; None: none) that
    does not verify the server, as kube-apiserver without `--kubelet-certificate-authority`
    connects to kubelets."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if certificate is not None:
        load_chain(context, *certificate)
    return context


def review_token(tokens: Tokens, body: Any) -> dict[str, Any]:
    """The created TokenReview (authentication.k8s.io/v1) for `body`."""
    spec = _spec(body, "TokenReview", "authentication.k8s.io")
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    user = tokens.find(token)
    status: dict[str, Any] = (
        {"authenticated": True, "user": user.info()}
        if user is not None
        else {"authenticated": False, "user": {}, "error": "invalid bearer token"}
    )
    audiences = spec.get("audiences")
    if user is not None and audiences:
        status["audiences"] = audiences
    return _created(body, "TokenReview", "authentication.k8s.io/v1", status)


def review_access(body: Any) -> dict[str, Any]:
    """The created SubjectAccessReview (authorization.k8s.io/v1) for `body`."""
    spec = _spec(body, "SubjectAccessReview", "authorization.k8s.io")
    user = spec.get("user") or ""
    groups = spec.get("groups") or []
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    causes: list[tuple[str, str]] = []
    if not user and not groups:
        causes.append(
            ("spec.user", 'Invalid value: "": at least one of user or group must be specified')
        )
    if (resource is None) == (non_resource is None):
        causes.append(
            (
                "spec.resourceAttributes",
                "Invalid value: exactly one of nonResourceAttributes or resourceAttributes "
                "must be specified",
            )
        )
    if causes:
        raise errors.invalid("SubjectAccessReview", "", causes, "authorization.k8s.io")
    allowed, reason = decide(str(user), [str(g) for g in groups], resource or {})
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return _created(body, "SubjectAccessReview", "authorization.k8s.io/v1", status)


def decide(user: str, groups: list[str], attributes: dict[str, Any]) -> tuple[bool, str]:
    """The emulator's authorizer: (allowed, reason). See the module docstring for the policy."""
    if MASTERS_GROUP in groups:
        return True, f'allowed by group "{MASTERS_GROUP}"'
    if (
        user == KUBELET_CLIENT_USER
        and attributes
        and (attributes.get("group") or "") == ""
        and attributes.get("resource") == "nodes"
        and (attributes.get("subresource") or "") in KUBELET_API_SUBRESOURCES
    ):
        return True, (
            'RBAC: allowed by ClusterRoleBinding "kubeadm:apiserver-kubelet-client" of '
            f'ClusterRole "system:kubelet-api-admin" to User "{KUBELET_CLIENT_USER}"'
        )
    return False, ""


def _spec(body: Any, kind: str, group: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise errors.invalid(kind, "", [("spec", "Required value")], group)
    return spec


def _created(body: dict[str, Any], kind: str, api_version: str, status: dict[str, Any]) -> Any:
    given = body.get("metadata")
    metadata: dict[str, Any] = given if isinstance(given, dict) else {}
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {
            **metadata,
            "creationTimestamp": None,
        },
        "spec": body["spec"],
        "status": status,
    }
