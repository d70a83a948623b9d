"""The real kubectl against the emulator."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from kubernetes import client, watch

from tests.emulators.kube.fake_kubelet import fake_kubelet
from tests.fixtures.kube import eventually, ready_node

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl")
POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    resources:
      requests: {cpu: 100m, memory: 64Mi}
"""


@pytest.fixture
def kubectl(kube_kubeconfig: Path) -> Kubectl:
    if KUBECTL is None:
        reason = "kubectl is not on PATH"
        print(reason)
        pytest.skip(reason)
    return Kubectl(KUBECTL, kube_kubeconfig)


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result


def test_get_nodes_and_pods_wide(
    kubectl: Kubectl, kube_core: client.CoreV1Api, tmp_path: Path
) -> None:
    kube_core.create_node(ready_node("burst-1", labels={"node-role.kubernetes.io/virtual": ""}))
    nodes = kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:3] == ["burst-1", "Ready", "virtual"]
    assert "127.0.0.1" in nodes[1]

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD_YAML)
    assert (
        kubectl("create", "-f", str(manifest), "--validate=false").stdout.strip()
        == "pod/web created"
    )
    eventually(lambda: kube_core.read_namespaced_pod("web", "default").spec.node_name)
    pods = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert pods[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    cells = pods[1].split()
    assert cells[:4] == ["web", "0/1", "Pending", "0"]
    assert cells[6] == "burst-1"
    assert kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.strip() == "pod/web"
    assert kubectl("get", "pod", "web", "-o", "jsonpath={.spec.nodeName}").stdout == "burst-1"
    namespaces = kubectl("get", "namespaces").stdout
    assert "kube-node-lease" in namespaces


def test_describe_pod_shows_events(
    kubectl: Kubectl, kube_core: client.CoreV1Api, tmp_path: Path
) -> None:
    kube_core.create_node(ready_node("burst-1"))
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD_YAML)
    kubectl("create", "-f", str(manifest), "--validate=false")
    eventually(
        lambda: kube_core.list_namespaced_event("default", field_selector="reason=Scheduled").items
    )
    described = kubectl("describe", "pod", "web").stdout
    assert re.search(r"^Node:\s+burst-1", described, re.MULTILINE)
    assert re.search(r"^QoS Class:\s+Burstable$", described, re.MULTILINE)
    assert re.search(r"^Status:\s+Pending$", described, re.MULTILINE)
    assert "Successfully assigned default/web to burst-1" in described
    assert "default-scheduler" in described


def test_apply_then_delete(kubectl: Kubectl, kube_core: client.CoreV1Api, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n"
    )
    assert kubectl("apply", "-f", str(manifest), "--validate=false").stdout.strip() == (
        "configmap/settings created"
    )
    assert kubectl("apply", "-f", str(manifest), "--validate=false").stdout.strip() == (
        "configmap/settings unchanged"
    )
    kubectl("patch", "configmap", "settings", "-p", '{"data":{"b":"2"}}')
    assert kube_core.read_namespaced_config_map("settings", "default").data == {"a": "1", "b": "2"}
    kubectl("label", "configmap", "settings", "team=orca")
    assert kube_core.read_namespaced_config_map("settings", "default").metadata.labels == {
        "team": "orca"
    }
    assert (
        kubectl("delete", "configmap", "settings").stdout.strip() == 'configmap "settings" deleted'
    )
    assert (
        kube_core.list_namespaced_config_map(
            "default", field_selector="metadata.name=settings"
        ).items
        == []
    )


def test_delete_bound_pod_waits_for_the_kubelet(
    kubectl: Kubectl, kube_core: client.CoreV1Api
) -> None:
    kube_core.create_node(ready_node("burst-1"))
    kube_core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "job"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    eventually(lambda: kube_core.read_namespaced_pod("job", "default").spec.node_name)
    result = kubectl("delete", "pod", "job", "--wait=false")
    assert result.stdout.strip() == 'pod "job" deleted'
    terminating = kube_core.read_namespaced_pod("job", "default")
    assert terminating.metadata.deletion_timestamp is not None
    assert "Terminating" in kubectl("get", "pod", "job").stdout
    kube_core.delete_namespaced_pod("job", "default", grace_period_seconds=0)  # the kubelet's part
    assert kubectl("get", "pods", "-o", "name").stdout.strip() == ""


def test_delete_waits_until_the_kubelet_finishes(
    kubectl: Kubectl, kube_core: client.CoreV1Api
) -> None:
    kube_core.create_node(ready_node("burst-1"))
    kube_core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "job"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    eventually(lambda: kube_core.read_namespaced_pod("job", "default").spec.node_name)

    def play_kubelet() -> None:
        # As a kubelet: once the pod is terminating, stop it and delete it with grace period 0.
        for event in watch.Watch().stream(
            kube_core.list_namespaced_pod,
            "default",
            field_selector="metadata.name=job",
            timeout_seconds=20,
        ):
            if event["object"].metadata.deletion_timestamp is not None:
                kube_core.delete_namespaced_pod("job", "default", grace_period_seconds=0)
                return

    kubelet = threading.Thread(target=play_kubelet, daemon=True)
    kubelet.start()
    result = kubectl("delete", "pod", "job", "--timeout=20s")
    kubelet.join(timeout=20)
    assert result.stdout.strip() == 'pod "job" deleted'
    assert kube_core.list_namespaced_pod("default").items == []


def test_logs(kubectl: Kubectl, kube_core: client.CoreV1Api) -> None:
    with fake_kubelet({"default/talker/main": ["hello", "from", "the kubelet"]}) as (_, port):
        kube_core.create_node(ready_node("burst-1", kubelet=("127.0.0.1", port)))
        kube_core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "talker"},
                "spec": {"containers": [{"name": "main", "image": "x"}]},
            },
        )
        eventually(lambda: kube_core.read_namespaced_pod("talker", "default").spec.node_name)
        assert kubectl("logs", "talker").stdout == "hello\nfrom\nthe kubelet\n"
        assert kubectl("logs", "talker", "--tail=1").stdout == "the kubelet\n"
        assert kubectl("logs", "-f", "talker", "-c", "main").stdout.splitlines() == [
            "hello",
            "from",
            "the kubelet",
        ]
