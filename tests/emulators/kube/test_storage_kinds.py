"""StorageClasses, PersistentVolumes, PersistentVolumeClaims and StatefulSets served as a real
API server serves them: discovery, defaults, validation, immutability, scale, tables."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from orca_devstack.emulators.kube import KubeEmulator
from tests.emulators.kube.test_server import fetch

KUBECTL = shutil.which("kubectl")


def storage_class(name: str = "fast", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": "orca.research/ebs", **extra}


def volume(name: str = "pv1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "csi": {"driver": "orca.research/ebs", "volumeHandle": "vol-0123"},
            **spec,
        },
    }


def claim(name: str = "data", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }


def stateful_set(name: str = "db", replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            **spec,
        },
    }


def invalid_message(error: client.ApiException) -> str:
    assert error.status == 422
    return str(json.loads(error.body)["message"])


def test_discovery(kube_emulator: KubeEmulator) -> None:
    url = kube_emulator.url
    core = {r["name"]: r for r in fetch(f"{url}/api/v1")[1]["resources"]}
    assert core["persistentvolumes"]["namespaced"] is False
    assert core["persistentvolumes"]["shortNames"] == ["pv"]
    assert core["persistentvolumeclaims"]["namespaced"] is True
    assert core["persistentvolumeclaims"]["shortNames"] == ["pvc"]
    assert {"persistentvolumes/status", "persistentvolumeclaims/status"} <= set(core)
    storage = {r["name"]: r for r in fetch(f"{url}/apis/storage.k8s.io/v1")[1]["resources"]}
    assert (storage["storageclasses"]["namespaced"], storage["storageclasses"]["shortNames"]) == (
        False,
        ["sc"],
    )
    apps = {r["name"]: r for r in fetch(f"{url}/apis/apps/v1")[1]["resources"]}
    assert apps["statefulsets"]["categories"] == ["all"]
    assert apps["statefulsets"]["shortNames"] == ["sts"]
    assert (apps["statefulsets/scale"]["group"], apps["statefulsets/scale"]["kind"]) == (
        "autoscaling",
        "Scale",
    )


def test_defaults(kube_api_client: client.ApiClient) -> None:
    storage = client.StorageV1Api(kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    created_class = storage.create_storage_class(storage_class())
    assert (created_class.reclaim_policy, created_class.volume_binding_mode) == (
        "Delete",
        "Immediate",
    )
    created_volume = core.create_persistent_volume(volume())
    assert created_volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert created_volume.spec.volume_mode == "Filesystem"
    created_claim = core.create_namespaced_persistent_volume_claim("default", claim())
    assert created_claim.spec.volume_mode == "Filesystem"
    created_set = apps.create_namespaced_stateful_set("default", stateful_set())
    spec = created_set.spec
    assert spec.pod_management_policy == "OrderedReady"
    assert spec.update_strategy.type == "RollingUpdate"
    assert spec.update_strategy.rolling_update.partition == 0
    retention = spec.persistent_volume_claim_retention_policy
    assert (retention.when_deleted, retention.when_scaled) == ("Retain", "Retain")
    assert spec.revision_history_limit == 10
    assert spec.template.spec.restart_policy == "Always"
    assert spec.volume_claim_templates[0].spec.volume_mode == "Filesystem"
    assert created_set.metadata.generation == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            claim(accessModes=[]),
            "spec.accessModes: Required value: at least 1 access mode is required",
        ),
        (claim(resources={}), "spec.resources[storage]: Required value"),
    ],
)
def test_claim_validation(kube_core: client.CoreV1Api, body: Any, message: str) -> None:
    with pytest.raises(client.ApiException) as raised:
        kube_core.create_namespaced_persistent_volume_claim("default", body)
    assert message in invalid_message(raised.value)


def test_volume_validation(kube_core: client.CoreV1Api) -> None:
    body = volume()
    del body["spec"]["csi"]
    with pytest.raises(client.ApiException) as raised:
        kube_core.create_persistent_volume(body)
    assert "spec: Required value: must specify a volume type" in invalid_message(raised.value)
    body = volume(hostPath={"path": "/tmp"})
    with pytest.raises(client.ApiException) as raised:
        kube_core.create_persistent_volume(body)
    assert "may not specify more than 1 volume type" in invalid_message(raised.value)
    body = volume()
    del body["spec"]["capacity"]
    with pytest.raises(client.ApiException) as raised:
        kube_core.create_persistent_volume(body)
    assert "spec.capacity: Required value" in invalid_message(raised.value)


def test_immutability(kube_api_client: client.ApiClient) -> None:
    storage = client.StorageV1Api(kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    apps = client.AppsV1Api(kube_api_client)
    storage.create_storage_class(storage_class())
    with pytest.raises(client.ApiException) as raised:
        storage.patch_storage_class("fast", {"parameters": {"type": "io2"}})
    assert invalid_message(raised.value) == (
        'StorageClass.storage.k8s.io "fast" is invalid: parameters: Forbidden: updates to '
        "parameters are forbidden."
    )
    core.create_persistent_volume(volume())
    with pytest.raises(client.ApiException) as raised:
        core.patch_persistent_volume("pv1", {"spec": {"csi": {"volumeHandle": "vol-9"}}})
    assert "spec.persistentvolumesource is immutable after creation" in invalid_message(
        raised.value
    )
    core.patch_persistent_volume("pv1", {"spec": {"persistentVolumeReclaimPolicy": "Delete"}})
    core.create_namespaced_persistent_volume_claim("default", claim())
    with pytest.raises(client.ApiException) as raised:
        core.patch_namespaced_persistent_volume_claim(
            "data", "default", {"spec": {"accessModes": ["ReadWriteMany"]}}
        )
    assert invalid_message(raised.value) == (
        'PersistentVolumeClaim "data" is invalid: spec: Forbidden: spec is immutable after '
        "creation except resources.requests and volumeAttributesClassName for bound claims"
    )
    apps.create_namespaced_stateful_set("default", stateful_set())
    with pytest.raises(client.ApiException) as raised:
        apps.patch_namespaced_stateful_set("db", "default", {"spec": {"serviceName": "other"}})
    assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'" in (
        invalid_message(raised.value)
    )
    patched = apps.patch_namespaced_stateful_set("db", "default", {"spec": {"replicas": 3}})
    assert (patched.spec.replicas, patched.metadata.generation) == (3, 2)


def test_stateful_set_validation(kube_api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_api_client)
    body = stateful_set()
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(client.ApiException) as raised:
        apps.create_namespaced_stateful_set("default", body)
    assert "`selector` does not match template `labels`" in invalid_message(raised.value)


def test_scale_subresource(kube_api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_stateful_set("default", stateful_set())
    scale = apps.read_namespaced_stateful_set_scale("db", "default")
    assert (scale.spec.replicas, scale.status.selector) == (2, "app=db")
    apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 5}})
    assert apps.read_namespaced_stateful_set("db", "default").spec.replicas == 5


def test_kubectl_tables(kube_emulator: KubeEmulator, kube_kubeconfig: Path) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    manifest = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: orca-ebs
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: orca.research/ebs
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: orca-ebs
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 0
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: main, image: busybox:1.36}]
"""

    def kubectl(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kube_kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    kubectl("apply", "-f", "-", stdin=manifest)
    classes = kubectl("get", "sc")
    assert classes.split("\n")[0].split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert "orca-ebs (default)" in classes
    claims = kubectl("get", "pvc")
    assert claims.split("\n")[0].split()[:3] == ["NAME", "STATUS", "VOLUME"]
    assert claims.split("\n")[1].split()[:2] == ["data", "Pending"]
    assert kubectl("get", "sts").split("\n")[1].split()[:2] == ["db", "0/0"]
    assert "statefulset.apps/db" in kubectl("get", "all")
    kubectl("scale", "statefulset", "db", "--replicas=0")
    assert "persistentvolumeclaim/data" in kubectl("get", "pvc", "-o", "name")
