"""TokenReview, SubjectAccessReview and the published client CA of the emulator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from kubernetes import client

from orca_devstack.emulators.kube import KubeEmulator
from orca_devstack.emulators.kube.access import EMULATOR_TOKEN, KUBELET_CLIENT_USER, decide


def _token_review(api: client.ApiClient, token: str) -> client.V1TokenReview:
    return client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )


def _access_review(
    api: client.ApiClient, user: str, groups: list[str], subresource: str
) -> client.V1SubjectAccessReview:
    return client.AuthorizationV1Api(api).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    verb="get", resource="nodes", subresource=subresource, name="n1"
                ),
            )
        )
    )


def test_token_review_authenticates_only_the_tokens_the_emulator_accepts(
    kube_api_client: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    known = _token_review(kube_api_client, EMULATOR_TOKEN)
    assert known.status.authenticated is True
    assert known.status.user.username == "orca-dev"
    assert set(known.status.user.groups) == {"system:masters", "system:authenticated"}

    kube_emulator.add_token("reader-token", "alice", ("researchers",))
    added = _token_review(kube_api_client, "reader-token")
    assert (added.status.user.username, added.status.user.groups) == (
        "alice",
        ["researchers", "system:authenticated"],
    )

    unknown = _token_review(kube_api_client, "guessed")
    assert unknown.status.authenticated is False
    assert not unknown.status.user.username

    with pytest.raises(client.ApiException) as empty:
        _token_review(kube_api_client, "")
    assert empty.value.status == 400


def test_subject_access_review_follows_the_documented_policy(
    kube_api_client: client.ApiClient,
) -> None:
    assert _access_review(kube_api_client, "orca-dev", ["system:masters"], "proxy").status.allowed
    kubelet_client = _access_review(kube_api_client, KUBELET_CLIENT_USER, [], "proxy")
    assert kubelet_client.status.allowed is True
    assert "system:kubelet-api-admin" in kubelet_client.status.reason
    assert not _access_review(kube_api_client, "alice", ["researchers"], "proxy").status.allowed
    with pytest.raises(client.ApiException) as invalid:
        client.AuthorizationV1Api(kube_api_client).create_subject_access_review(
            client.V1SubjectAccessReview(
                spec=client.V1SubjectAccessReviewSpec(
                    user="alice",
                    resource_attributes=client.V1ResourceAttributes(verb="get", resource="pods"),
                    non_resource_attributes=client.V1NonResourceAttributes(
                        path="/healthz", verb="get"
                    ),
                )
            )
        )
    assert invalid.value.status == 422


def test_reviews_are_create_only_and_discoverable(
    kube_api_client: client.ApiClient, kube_emulator: KubeEmulator
) -> None:
    with pytest.raises(urllib.error.HTTPError) as listed:
        urllib.request.urlopen(f"{kube_emulator.url}/apis/authentication.k8s.io/v1/tokenreviews")
    assert listed.value.code == 405
    resources = client.AuthorizationV1Api(kube_api_client).get_api_resources()
    review = next(r for r in resources.resources if r.name == "subjectaccessreviews")
    assert (review.kind, review.verbs, review.namespaced) == (
        "SubjectAccessReview",
        ["create"],
        False,
    )


def test_the_client_ca_is_published_for_delegating_servers(
    kube_core: client.CoreV1Api, kube_emulator: KubeEmulator
) -> None:
    configmap = kube_core.read_namespaced_config_map(
        "extension-apiserver-authentication", "kube-system"
    )
    assert configmap.data["client-ca-file"] == kube_emulator.client_ca_pem
    ca = x509.load_pem_x509_certificate(kube_emulator.client_ca_pem.encode())
    certificate, _ = kube_emulator.issue_client_certificate("bob", ("team-a",))
    issued = x509.load_pem_x509_certificate(certificate)
    issued.verify_directly_issued_by(ca)
    assert issued.subject.rfc4514_string() == "CN=bob,O=team-a"


@pytest.mark.parametrize(
    ("user", "groups", "attributes", "allowed"),
    [
        ("x", ["system:masters"], {"resource": "pods", "verb": "delete"}, True),
        (KUBELET_CLIENT_USER, [], {"resource": "nodes", "subresource": "log"}, True),
        (KUBELET_CLIENT_USER, [], {"resource": "pods", "verb": "get"}, False),
        (KUBELET_CLIENT_USER, [], {"resource": "nodes", "subresource": "status"}, False),
        ("alice", ["system:authenticated"], {"resource": "nodes", "subresource": "proxy"}, False),
    ],
)
def test_decide(user: str, groups: list[str], attributes: dict[str, str], allowed: bool) -> None:
    assert decide(user, groups, attributes)[0] is allowed


def test_review_bodies_keep_their_spec(kube_emulator: KubeEmulator) -> None:
    request = urllib.request.Request(
        f"{kube_emulator.url}/apis/authentication.k8s.io/v1/tokenreviews",
        data=json.dumps(
            {"spec": {"token": EMULATOR_TOKEN, "audiences": ["https://kubernetes"]}}
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        created = json.loads(response.read())
    assert created["kind"] == "TokenReview"
    assert created["spec"]["token"] == EMULATOR_TOKEN
    assert created["status"]["audiences"] == ["https://kubernetes"]
