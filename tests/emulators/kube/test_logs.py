"""The log subresource proxied to the node's kubelet endpoint."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from orca_devstack.emulators.kube import KubeEmulator
from tests.emulators.kube.fake_kubelet import fake_kubelet
from tests.fixtures.kube import eventually, ready_node

POD = {
    "metadata": {"name": "logged"},
    "spec": {
        "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "envoy"}]
    },
}


def test_logs_are_proxied_with_parameters(
    kube_core: client.CoreV1Api, kube_emulator: KubeEmulator
) -> None:
    lines = [f"line {index}" for index in range(5)]
    # The kubelet requires a client certificate from the cluster CA: the emulator presents its own.
    with fake_kubelet({"default/logged/main": lines}, kube_emulator.client_ca_pem) as (
        kubelet,
        port,
    ):
        kube_core.create_node(ready_node("n1", kubelet=("127.0.0.1", port)))
        kube_core.create_namespaced_pod("default", POD)
        eventually(lambda: kube_core.read_namespaced_pod("logged", "default").spec.node_name)
        text = kube_core.read_namespaced_pod_log("logged", "default", container="main")
        assert text == "\n".join(lines) + "\n"
        tail = kube_core.read_namespaced_pod_log(
            "logged", "default", container="main", tail_lines=2, timestamps=True
        )
        assert tail == "line 3\nline 4\n"
        assert kubelet.requests[-1] == (
            "/containerLogs/default/logged/main",
            {"tailLines": "2", "timestamps": "true"},
        )
        assert set(kubelet.callers) == {"kube-apiserver-kubelet-client"}
        streamed = kube_core.read_namespaced_pod_log(
            "logged", "default", container="main", follow=True, _preload_content=False
        )
        assert b"".join(streamed.stream()).decode().splitlines() == lines
        with pytest.raises(client.ApiException) as missing:
            kube_core.read_namespaced_pod_log("logged", "default", container="side")
        assert missing.value.status == 404
        assert json.loads(missing.value.body)["message"] == "container not found"
        with pytest.raises(client.ApiException) as ambiguous:
            kube_core.read_namespaced_pod_log("logged", "default")
        assert ambiguous.value.status == 400
        assert "choose one of: [main side]" in json.loads(ambiguous.value.body)["message"]


def test_logs_of_an_unbound_pod_or_unreachable_kubelet(kube_core: client.CoreV1Api) -> None:
    kube_core.create_namespaced_pod(
        "default", {**POD, "spec": {**POD["spec"], "schedulerName": "none"}}
    )
    with pytest.raises(client.ApiException) as unbound:
        kube_core.read_namespaced_pod_log("logged", "default", container="main")
    assert unbound.value.status == 400
    with fake_kubelet({}) as (_, port):
        pass  # the port is closed again: nothing listens there
    kube_core.create_node(ready_node("gone", kubelet=("127.0.0.1", port)))
    kube_core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "lost"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    eventually(lambda: kube_core.read_namespaced_pod("lost", "default").spec.node_name)
    with pytest.raises(client.ApiException) as unreachable:
        kube_core.read_namespaced_pod_log("lost", "default")
    body = json.loads(unreachable.value.body)
    assert (unreachable.value.status, body["kind"], body["reason"]) == (
        500,
        "Status",
        "InternalError",
    )


def test_logs_are_refused_by_a_kubelet_that_does_not_trust_the_cluster_ca(
    kube_core: client.CoreV1Api,
) -> None:
    other_cluster = KubeEmulator()  # not started: only its CA is used
    with fake_kubelet({"default/logged/main": ["x"]}, other_cluster.client_ca_pem) as (_, port):
        kube_core.create_node(ready_node("n2", kubelet=("127.0.0.1", port)))
        kube_core.create_namespaced_pod("default", POD)
        eventually(lambda: kube_core.read_namespaced_pod("logged", "default").spec.node_name)
        with pytest.raises(client.ApiException) as refused:
            kube_core.read_namespaced_pod_log("logged", "default", container="main")
    assert refused.value.status == 500
    assert "https://127.0.0.1" in json.loads(refused.value.body)["message"]
