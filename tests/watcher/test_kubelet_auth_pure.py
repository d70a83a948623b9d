"""The kubelet endpoint's authentication, authorization and TLS pieces, as plain functions."""

from __future__ import annotations

import ipaddress
import json
import ssl
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509

from orca.watcher import kubelet_tls
from orca.watcher.kubelet_auth import (
    Caller,
    KubeletAuth,
    Refusal,
    RequestAttributes,
    access_review,
    bearer_token,
    caller_from_certificate,
    caller_from_token_review,
    forbidden,
    request_attributes,
)


@pytest.mark.parametrize(
    ("method", "path", "verb", "subresources"),
    [
        ("GET", "/containerLogs/ns/pod/c", "get", ("proxy",)),
        ("GET", "/stats/summary", "get", ("stats",)),
        ("GET", "/stats", "get", ("stats",)),
        ("GET", "/statsfoo", "get", ("proxy",)),
        ("GET", "/metrics/cadvisor", "get", ("metrics",)),
        ("GET", "/logs/messages", "get", ("log",)),
        ("POST", "/checkpoint/ns/pod/c", "create", ("checkpoint",)),
        ("GET", "/healthz", "get", ("healthz", "proxy")),
        ("GET", "/pods", "get", ("pods", "proxy")),
        ("POST", "/exec/ns/pod/c", "create", ("proxy",)),
        ("HEAD", "/", "get", ("proxy",)),
        ("DELETE", "/x", "delete", ("proxy",)),
    ],
)
def test_request_attributes_follow_the_kubelet(
    method: str, path: str, verb: str, subresources: tuple[str, ...]
) -> None:
    assert request_attributes(method, path) == RequestAttributes(verb, subresources)


def test_the_caller_of_a_certificate_is_its_cn_and_its_organizations() -> None:
    peer = {
        "subject": (
            (("organizationName", "system:masters"),),
            (("organizationName", "team-a"),),
            (("commonName", "kube-apiserver-kubelet-client"),),
        )
    }
    assert caller_from_certificate(peer) == Caller(
        "kube-apiserver-kubelet-client", ("system:masters", "team-a")
    )
    assert caller_from_certificate({}) is None  # no certificate given
    assert caller_from_certificate(None) is None
    assert caller_from_certificate({"subject": ((("organizationName", "o"),),)}) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_the_caller_of_a_token_review() -> None:
    review = {
        "status": {
            "authenticated": True,
            "user": {
                "username": "system:serviceaccount:ns:sa",
                "uid": "u-1",
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["p"]},
            },
        }
    }
    caller = caller_from_token_review(review)
    assert caller == Caller(
        "system:serviceaccount:ns:sa",
        ("system:serviceaccounts", "system:authenticated"),
        "u-1",
        (("authentication.kubernetes.io/pod-name", ("p",)),),
    )
    assert caller_from_token_review({"status": {"authenticated": False, "user": {}}}) is None
    assert caller_from_token_review({}) is None
    assert access_review(caller, "get", "proxy", "orca-aws-node")["spec"] == {
        "user": "system:serviceaccount:ns:sa",
        "groups": ["system:serviceaccounts", "system:authenticated"],
        "uid": "u-1",
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]},
        "resourceAttributes": {
            "verb": "get",
            "version": "v1",
            "resource": "nodes",
            "subresource": "proxy",
            "name": "orca-aws-node",
        },
    }


def test_a_refusal_is_a_status_naming_the_missing_permission() -> None:
    refusal = forbidden(Caller("bob"), RequestAttributes("get", ("healthz", "proxy")), "n1")
    body = json.loads(refusal.body())
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 403, "Forbidden")
    assert body["message"] == (
        "Forbidden (user=bob, verb=get, resource=nodes, subresource=healthz): "
        "user bob needs get on nodes/healthz or nodes/proxy of node n1"
    )


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()

    def release_conn(self) -> None:
        pass


class _Reviews:
    """Stands in for AuthenticationV1Api and AuthorizationV1Api: answers and counts reviews."""

    def __init__(self, users: dict[str, str], allowed: set[tuple[str, str]]) -> None:
        self.users = users
        self.allowed = allowed
        self.calls = 0

    def create_token_review(self, body: dict[str, Any], **_: Any) -> _Response:
        self.calls += 1
        user = self.users.get(body["spec"]["token"])
        status = {"authenticated": True, "user": {"username": user}} if user else {}
        return _Response({"status": status})

    def create_subject_access_review(self, body: dict[str, Any], **_: Any) -> _Response:
        self.calls += 1
        spec = body["spec"]
        key = (spec["user"], spec["resourceAttributes"]["subresource"])
        return _Response({"status": {"allowed": key in self.allowed}})


def test_reviews_are_cached_for_the_kubelets_durations() -> None:
    now = [0.0]
    reviews = _Reviews({"t": "alice"}, {("alice", "proxy")})
    auth = KubeletAuth(
        authentication=reviews,  # type: ignore[arg-type]
        authorization=reviews,  # type: ignore[arg-type]
        node_name="n1",
        clock=lambda: now[0],
    )
    assert auth.check("GET", "/containerLogs/a/b/c", None, "Bearer t") == Caller("alice")
    assert reviews.calls == 2
    auth.check("GET", "/containerLogs/a/b/c", None, "Bearer t")
    assert reviews.calls == 2  # both answers cached
    with pytest.raises(Refusal) as refused:
        auth.check("GET", "/stats/summary", None, "Bearer t")
    assert refused.value.code == 403
    now[0] = 31.0  # a denial is remembered for 30 s, a token for 2 minutes
    with pytest.raises(Refusal):
        auth.check("GET", "/stats/summary", None, "Bearer t")
    assert reviews.calls == 4
    now[0] = 400.0
    auth.check("GET", "/containerLogs/a/b/c", None, "Bearer t")
    assert reviews.calls == 6
    with pytest.raises(Refusal) as anonymous:
        auth.check("GET", "/healthz", None, None)
    assert anonymous.value.code == 401
    assert reviews.calls == 6  # nothing asked for a request without credentials


def test_the_self_signed_certificate_names_the_node() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    certificate, key = kubelet_tls.self_signed_certificate("10.0.0.7", "orca-aws-node", now=now)
    parsed = x509.load_pem_x509_certificate(certificate)
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    assert names.get_values_for_type(x509.DNSName) == ["orca-aws-node"]
    assert parsed.not_valid_after_utc == now + kubelet_tls.SELF_SIGNED_VALIDITY
    context = kubelet_tls.server_context(certificate, key)
    assert context.verify_mode == ssl.CERT_NONE  # no CA yet: no client certificate asked for
    kubelet_tls.add_client_ca(context, certificate.decode())
    assert context.verify_mode == ssl.CERT_OPTIONAL


def test_a_host_name_address_is_a_dns_name() -> None:
    names = kubelet_tls.subject_alternative_names("node.example", "node.example")
    assert names == [x509.DNSName("node.example")]
