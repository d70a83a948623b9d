"""Who may read the virtual node's kubelet endpoint: authentication and authorization as a kubelet
does them with `--anonymous-auth=false --client-ca-file --authentication-token-webhook
--authorization-mode=Webhook`.

Authentication, in the kubelet's order:

1. a client certificate that verified against the client CA during the TLS handshake
   (`kubelet_tls`): the user is its subject's CN, the groups its O values;
2. else a bearer token (`Authorization: Bearer ...`), sent to the API server as a TokenReview
   (authentication.k8s.io/v1); results are cached for two minutes (the kubelet's
   `--authentication-token-webhook-cache-ttl`), by the token's SHA-256;
3. else nobody: 401 Unauthorized. Anonymous requests are refused on every path, `/healthz`
   included, as on a kubelet's secure port with anonymous auth off; the watcher's unauthenticated
   health checks are on `watcher.healthPort`.

Authorization: a SubjectAccessReview (authorization.k8s.io/v1) for the authenticated user on
resource `nodes`, name the node, verb from the HTTP method (GET → get, POST → create, ...) and
subresource from the path as the kubelet maps it: `/stats/...` → `stats`, `/metrics/...` →
`metrics`, `/logs/...` → `log`, `/checkpoint/...` → `checkpoint`, everything else (`/containerLogs`,
`/exec`, ...) → `proxy`. `/healthz`, `/pods` and `/configz` take their own subresource or
`proxy` (the fine-grained kubelet authorization of Kubernetes 1.33+). Allowed decisions are cached
five minutes, denials thirty seconds (`--authorization-webhook-cache-*-ttl`). A denial is 403 with
a Status body naming the user and the missing permission; a failed review is 500, as the kubelet
answers.

The client CA bundle comes from ConfigMap kube-system/extension-apiserver-authentication, key
`client-ca-file` (where kube-apiserver publishes its `--client-ca-file` for delegating servers), or
from `node.kubeletClientCAFile` when set.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from orca.watcher.kube_json import read_json, read_json_or_none

AUTHENTICATION_CONFIGMAP_NAMESPACE = "kube-system"
AUTHENTICATION_CONFIGMAP = "extension-apiserver-authentication"
CLIENT_CA_KEY = "client-ca-file"
TOKEN_CACHE_SECONDS = 120.0
ALLOWED_CACHE_SECONDS = 300.0
DENIED_CACHE_SECONDS = 30.0
CACHE_ENTRIES = 1024

_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
_SUBRESOURCE_PREFIXES = (
    ("/stats", "stats"),
    ("/metrics", "metrics"),
    ("/logs", "log"),
    ("/checkpoint", "checkpoint"),
)
_FINE_GRAINED = {"/healthz": "healthz", "/pods": "pods", "/configz": "configz"}


@dataclass(frozen=True)
class Caller:
    """An authenticated user, as a TokenReview or a client certificate names it."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class RequestAttributes:
    """What a request needs: `verb` on nodes/<one of subresources> of the node."""

    verb: str
    subresources: tuple[str, ...]


class Refusal(Exception):  # noqa: N818 - names the answer the endpoint gives, like Forbidden
    """A request the endpoint answers with `code` and a Status body instead of serving it."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def body(self) -> bytes:
        return json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": self.message,
                "reason": self.reason,
                "code": self.code,
            }
        ).encode()


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def request_attributes(method: str, path: str) -> RequestAttributes:
    """The kubelet's mapping of a request to the permission it needs."""
    verb = _VERBS.get(method.upper(), "")
    for prefix, subresource in _SUBRESOURCE_PREFIXES:
        if _is_subpath(path, prefix):
            return RequestAttributes(verb, (subresource,))
    for prefix, subresource in _FINE_GRAINED.items():
        if _is_subpath(path, prefix):
            return RequestAttributes(verb, (subresource, "proxy"))
    return RequestAttributes(verb, ("proxy",))


def caller_from_certificate(peer: Mapping[str, Any] | None) -> Caller | None:
    """The user of a verified client certificate (`ssl.SSLSocket.getpeercert()`): CN and O."""
    if not peer:
        return None
    common_names: list[str] = []
    organizations: list[str] = []
    for rdn in peer.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                common_names.append(str(value))
            elif key == "organizationName":
                organizations.append(str(value))
    if not common_names or not common_names[0]:
        return None
    return Caller(common_names[0], tuple(organizations))


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_from_token_review(review: Mapping[str, Any]) -> Caller | None:
    """The user a created TokenReview authenticated, else None."""
    status = review.get("status") or {}
    user = status.get("user") or {}
    if not status.get("authenticated") or not user.get("username"):
        return None
    extra = tuple(
        (str(key), tuple(str(v) for v in values or ()))
        for key, values in sorted((user.get("extra") or {}).items())
    )
    return Caller(
        str(user["username"]),
        tuple(str(g) for g in user.get("groups") or ()),
        str(user.get("uid") or ""),
        extra,
    )


def access_review(caller: Caller, verb: str, subresource: str, node_name: str) -> dict[str, Any]:
    """The SubjectAccessReview the kubelet sends for `caller`."""
    spec: dict[str, Any] = {
        "user": caller.username,
        "groups": list(caller.groups),
        "resourceAttributes": {
            "verb": verb,
            "version": "v1",
            "resource": "nodes",
            "subresource": subresource,
            "name": node_name,
        },
    }
    if caller.uid:
        spec["uid"] = caller.uid
    if caller.extra:
        spec["extra"] = {key: list(values) for key, values in caller.extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def forbidden(caller: Caller, attributes: RequestAttributes, node_name: str) -> Refusal:
    """403, in the kubelet's words, naming the permission that is missing."""
    wanted = " or ".join(f"nodes/{s}" for s in attributes.subresources)
    return Refusal(
        403,
        "Forbidden",
        f"Forbidden (user={caller.username}, verb={attributes.verb}, resource=nodes, "
        f"subresource={attributes.subresources[0]}): user {caller.username} needs "
        f"{attributes.verb} on {wanted} of node {node_name}",
    )


def unauthorized() -> Refusal:
    return Refusal(
        401,
        "Unauthorized",
        "Unauthorized: present a client certificate signed by the cluster's client CA or a "
        "bearer token the API server accepts (TokenReview)",
    )


@dataclass
class _TtlCache:
    """A small expiring map; the oldest entries go first when it is full."""

    clock: Callable[[], float]
    entries: dict[Any, tuple[float, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any) -> tuple[bool, Any]:
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                return False, None
            if found[0] <= self.clock():
                del self.entries[key]
                return False, None
            return True, found[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        with self.lock:
            if len(self.entries) >= CACHE_ENTRIES:
                for old in list(self.entries)[: CACHE_ENTRIES // 4]:
                    del self.entries[old]
            self.entries[key] = (self.clock() + ttl, value)


class KubeletAuth:
    """Authenticates and authorizes requests against the API server, with the kubelet's caches."""

    def __init__(
        self,
        *,
        authentication: k8s.AuthenticationV1Api,
        authorization: k8s.AuthorizationV1Api,
        node_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authentication = authentication
        self.authorization = authorization
        self.node_name = node_name
        self._tokens = _TtlCache(clock)
        self._decisions = _TtlCache(clock)

    def check(
        self, method: str, path: str, peer: Mapping[str, Any] | None, authorization: str | None
    ) -> Caller:
        """The caller of a request it may make; `Refusal` (401, 403 or 500) otherwise."""
        caller = self.authenticate(peer, authorization)
        self.authorize(caller, request_attributes(method, path))
        return caller

    def authenticate(self, peer: Mapping[str, Any] | None, authorization: str | None) -> Caller:
        certified = caller_from_certificate(peer)
        if certified is not None:
            return certified
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized()
        key = hashlib.sha256(token.encode()).digest()
        cached, found = self._tokens.get(key)
        if not cached:
            try:
                review = read_json(
                    self.authentication.create_token_review,
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "spec": {"token": token},
                    },
                )
            except Exception as error:
                # The kubelet answers 401 when the webhook cannot decide; nothing is cached.
                raise Refusal(
                    401, "Unauthorized", f"Unauthorized: the token review failed: {_short(error)}"
                ) from error
            found = caller_from_token_review(review)
            self._tokens.put(key, found, TOKEN_CACHE_SECONDS)
        if not isinstance(found, Caller):
            raise unauthorized()
        return found

    def authorize(self, caller: Caller, attributes: RequestAttributes) -> None:
        for subresource in attributes.subresources:
            if self._allowed(caller, attributes.verb, subresource):
                return
        raise forbidden(caller, attributes, self.node_name)

    def _allowed(self, caller: Caller, verb: str, subresource: str) -> bool:
        key = (caller, verb, subresource)
        cached, allowed = self._decisions.get(key)
        if cached:
            return bool(allowed)
        try:
            review = read_json(
                self.authorization.create_subject_access_review,
                access_review(caller, verb, subresource, self.node_name),
            )
        except Exception as error:
            raise Refusal(
                500,
                "InternalError",
                f"Authorization error (user={caller.username}, verb={verb}, resource=nodes, "
                f"subresource={subresource}): {_short(error)}",
            ) from error
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(
            key, allowed, ALLOWED_CACHE_SECONDS if allowed else DENIED_CACHE_SECONDS
        )
        return allowed


def client_ca_bundle(core: k8s.CoreV1Api, override: Path | None) -> str | None:
    """The client CA bundle (PEM): `override`'s content, else the cluster's published one, else
    None when the ConfigMap or its key does not exist."""
    if override is not None:
        return override.read_text()
    configmap = read_json_or_none(
        core.read_namespaced_config_map,
        AUTHENTICATION_CONFIGMAP,
        AUTHENTICATION_CONFIGMAP_NAMESPACE,
    )
    bundle = ((configmap or {}).get("data") or {}).get(CLIENT_CA_KEY)
    return str(bundle) if bundle else None


def _short(error: Exception) -> str:
    if isinstance(error, k8s.ApiException):
        return f"{error.status} {error.reason}"
    return str(error) or type(error).__name__
