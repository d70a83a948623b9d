"""The ConfigMaps and Secrets a pod references, read from the Kubernetes API emulator."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client

from orca.activities.pod_references import PodReferences, referenced_names


def referencing_pod(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "train", "namespace": namespace, "uid": "u-1"},
        "spec": {
            "initContainers": [{"name": "fetch", "envFrom": [{"configMapRef": {"name": "init"}}]}],
            "containers": [
                {
                    "name": "main",
                    "env": [
                        {
                            "name": "A",
                            "valueFrom": {"configMapKeyRef": {"name": "conf", "key": "a"}},
                        },
                        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}},
                    ],
                    "envFrom": [{"secretRef": {"name": "absent"}}],
                }
            ],
            "volumes": [
                {"name": "c", "configMap": {"name": "conf"}},
                {"name": "s", "secret": {"secretName": "certs"}},
                {
                    "name": "p",
                    "projected": {
                        "sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "token"}}]
                    },
                },
            ],
        },
    }


def test_every_kind_of_reference_is_named() -> None:
    assert referenced_names(referencing_pod("ml")["spec"]) == (
        {"init", "conf", "extra"},
        {"token", "absent", "certs"},
    )


def test_referenced_objects_are_read_and_absent_ones_left_out(kube_core: client.CoreV1Api) -> None:
    namespace = "ml"
    kube_core.create_namespace({"metadata": {"name": namespace}})
    kube_core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "conf"}, "data": {"a": "1"}}
    )
    encoded = base64.b64encode(b"s3cr3t\n").decode()
    kube_core.create_namespaced_secret(
        namespace, {"metadata": {"name": "token"}, "data": {"t": encoded}}
    )
    config_maps, secrets = PodReferences(kube_core).read(referencing_pod(namespace))
    assert config_maps == {"conf": {"a": "1"}}
    assert secrets == {"token": {"t": "s3cr3t\n"}}
