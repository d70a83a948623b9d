"""Fixtures of the storage tests: a Ready node and a tiny external provisioner."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.emulators.kube.test_storage_kinds import volume
from tests.fixtures.kube import ready_node

PROVISIONER = "orca.research/ebs"
SELECTED_NODE = "volume.kubernetes.io/selected-node"


@pytest.fixture
def node(kube_core: client.CoreV1Api) -> str:
    kube_core.create_node(ready_node("orca"))
    return "orca"


@pytest.fixture
def provisioner(kube_core: client.CoreV1Api) -> Iterator[list[str]]:
    """A tiny external provisioner: a claim annotated with a selected node and this provisioner
    gets a PersistentVolume pre-bound to it. Yields the names of the volumes it made, and then
    of the pods already bound to a node when it made each."""
    made: list[str] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.05):
            for pvc in kube_core.list_persistent_volume_claim_for_all_namespaces().items:
                annotations = pvc.metadata.annotations or {}
                name = f"pvc-{pvc.metadata.uid}"
                if (
                    SELECTED_NODE not in annotations
                    or annotations.get("volume.kubernetes.io/storage-provisioner") != PROVISIONER
                    or pvc.spec.volume_name
                    or name in made
                ):
                    continue
                body = volume(
                    name,
                    storageClassName=pvc.spec.storage_class_name,
                    capacity={"storage": pvc.spec.resources.requests["storage"]},
                    claimRef={
                        "namespace": pvc.metadata.namespace,
                        "name": pvc.metadata.name,
                        "uid": pvc.metadata.uid,
                    },
                )
                bound_pods = [
                    p.metadata.name
                    for p in kube_core.list_pod_for_all_namespaces().items
                    if p.spec.node_name
                ]
                kube_core.create_persistent_volume(body)
                made.append(name)
                made.extend(bound_pods)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield made
    stop.set()
    thread.join(timeout=5)
