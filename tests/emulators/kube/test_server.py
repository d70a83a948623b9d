"""HTTP details kubectl and clients rely on: discovery documents, tables, media types."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from orca_devstack.emulators.kube import KubeEmulator


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_discovery_documents(kube_emulator: KubeEmulator) -> None:
    url = kube_emulator.url
    assert fetch(f"{url}/version")[1]["minor"] == "32"
    assert fetch(f"{url}/api")[1]["versions"] == ["v1"]
    core = {r["name"]: r for r in fetch(f"{url}/api/v1")[1]["resources"]}
    assert {
        "pods",
        "pods/status",
        "pods/binding",
        "pods/eviction",
        "pods/log",
        "nodes/status",
        "namespaces",
        "events",
        "secrets",
        "configmaps",
    } <= set(core)
    assert core["pods"]["namespaced"] is True
    assert core["nodes"]["namespaced"] is False
    assert core["pods/eviction"]["group"] == "policy"
    assert (core["pods/exec"]["kind"], core["pods/exec"]["verbs"]) == (
        "PodExecOptions",
        ["create", "get"],
    )
    groups = {g["name"]: g for g in fetch(f"{url}/apis")[1]["groups"]}
    assert {"coordination.k8s.io", "events.k8s.io", "policy"} <= set(groups)
    assert (
        groups["coordination.k8s.io"]["preferredVersion"]["groupVersion"]
        == "coordination.k8s.io/v1"
    )
    leases = fetch(f"{url}/apis/coordination.k8s.io/v1")[1]
    assert [r["name"] for r in leases["resources"]] == ["leases"]
    assert fetch(f"{url}/apis/coordination.k8s.io")[1]["name"] == "coordination.k8s.io"
    status, body = fetch(f"{url}/apis/example.com/v1")
    assert (status, body["kind"], body["reason"]) == (404, "Status", "NotFound")


def test_table_responses_for_kubectl(kube_emulator: KubeEmulator) -> None:
    table_accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    status, table = fetch(f"{kube_emulator.url}/api/v1/namespaces", headers=table_accept)
    assert (status, table["kind"]) == (200, "Table")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    rows = {row["cells"][0]: row for row in table["rows"]}
    assert rows["default"]["cells"][1] == "Active"
    assert rows["default"]["object"]["kind"] == "PartialObjectMetadata"
    plain = fetch(f"{kube_emulator.url}/api/v1/namespaces")[1]
    assert plain["kind"] == "NamespaceList"


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        ("application/vnd.kubernetes.protobuf", 400),  # not a runtime.Unknown after the magic
        ("application/yaml", 400),  # not valid YAML
        ("application/cbor", 415),
    ],
)
def test_undecodable_bodies_are_refused(
    kube_emulator: KubeEmulator, content_type: str, code: int
) -> None:
    status, body = fetch(
        f"{kube_emulator.url}/api/v1/namespaces",
        method="POST",
        headers={"Content-Type": content_type},
        body=b"k8s\x00\x0a\xff: [",
    )
    assert status == code
    assert body["reason"] == ("BadRequest" if code == 400 else "UnsupportedMediaType")


def test_bad_requests(kube_emulator: KubeEmulator) -> None:
    url = kube_emulator.url
    status, body = fetch(f"{url}/api/v1/pods?labelSelector=app%20in%20(")
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = fetch(
        f"{url}/api/v1/namespaces/default/pods",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=b"{not json",
    )
    assert (status, body["reason"]) == (400, "BadRequest")
    status, body = fetch(
        f"{url}/api/v1/namespaces/default",
        method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml"},
        body=b"{}",
    )
    assert (status, body["message"]) == (400, "fieldManager is required for apply requests")
