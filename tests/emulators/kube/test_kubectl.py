"""The real kubectl against the emulator."""

from __future__ import annotations

import base64
import http.client
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from kubernetes import client, watch

from orca_devstack.emulators.kube import KubeEmulator
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
    assert kubectl("create", "-f", str(manifest)).stdout.strip() == "pod/web created"
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
    kubectl("create", "-f", str(manifest))
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
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/settings created"
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == "configmap/settings unchanged"
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


def test_create_generators_send_protobuf(kubectl: Kubectl, kube_core: client.CoreV1Api) -> None:
    # kubectl's generators send these kinds as application/vnd.kubernetes.protobuf.
    assert kubectl("create", "namespace", "lab").stdout.strip() == "namespace/lab created"
    kubectl("-n", "lab", "create", "secret", "generic", "creds", "--from-literal=token=s3cr3t")
    kubectl("-n", "lab", "create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=")
    kubectl("-n", "lab", "create", "serviceaccount", "robot")
    kubectl("-n", "lab", "create", "service", "clusterip", "web", "--tcp=80:8080")
    kubectl("-n", "lab", "create", "pdb", "web", "--selector=app=web", "--min-available=1")
    namespace = kube_core.read_namespace("lab")
    assert namespace.metadata.labels == {"kubernetes.io/metadata.name": "lab"}
    secret = kube_core.read_namespaced_secret("creds", "lab")
    assert (secret.type, base64.b64decode(secret.data["token"])) == ("Opaque", b"s3cr3t")
    assert kube_core.read_namespaced_config_map("cfg", "lab").data == {"a": "1", "b": ""}
    service = kube_core.read_namespaced_service("web", "lab")
    assert [(p.port, p.target_port, p.protocol) for p in service.spec.ports] == [(80, 8080, "TCP")]
    pdb = client.PolicyV1Api(kube_core.api_client).read_namespaced_pod_disruption_budget(
        "web", "lab"
    )
    assert (pdb.spec.min_available, pdb.spec.selector.match_labels) == (1, {"app": "web"})
    listed = kubectl("-n", "lab", "get", "secrets,configmaps,serviceaccounts,services,pdb")
    tables = [block.splitlines() for block in listed.stdout.strip().split("\n\n")]
    without_age = [[t[0].split(), *(row.split()[:-1] for row in t[1:])] for t in tables]
    assert without_age == [
        [["NAME", "TYPE", "DATA", "AGE"], ["secret/creds", "Opaque", "1"]],
        [["NAME", "DATA", "AGE"], ["configmap/cfg", "2"]],
        [
            ["NAME", "SECRETS", "AGE"],
            ["serviceaccount/default", "0"],
            ["serviceaccount/robot", "0"],
        ],
        [
            ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            ["service/web", "ClusterIP", "<none>", "<none>", "80/TCP"],
        ],
        [
            ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"],
            ["poddisruptionbudget.policy/web", "1", "N/A", "0"],
        ],
    ]
    # Every namespace has its default ServiceAccount, the new one and those made at start.
    accounts = kubectl("-n", "lab", "get", "serviceaccounts", "-o", "name").stdout.split()
    assert accounts == ["serviceaccount/default", "serviceaccount/robot"]
    for existing in ("default", "kube-system"):
        kube_core.read_namespaced_service_account("default", existing)
    # Pods run as an existing service account only (the ServiceAccount admission plugin).
    kubectl(
        "-n",
        "lab",
        "run",
        "as-robot",
        "--image=x",
        '--overrides={"spec": {"serviceAccountName": "robot"}}',
    )
    ghost = kubectl(
        "-n",
        "lab",
        "run",
        "as-ghost",
        "--image=x",
        '--overrides={"spec": {"serviceAccountName": "ghost"}}',
        check=False,
    )
    assert ghost.stderr.strip() == (
        'Error from server (Forbidden): pods "as-ghost" is forbidden: error looking up service '
        'account lab/ghost: serviceaccount "ghost" not found'
    )
    kubectl("-n", "lab", "delete", "serviceaccount", "default")
    kube_core.read_namespaced_service_account("default", "lab")  # made again, as a controller
    kubectl("create", "namespace", "lab", check=False)
    duplicate = kubectl("create", "namespace", "lab", check=False)
    assert 'namespaces "lab" already exists' in duplicate.stderr


def test_server_side_apply(kubectl: Kubectl, kube_core: client.CoreV1Api, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n"
    )
    applied = kubectl("apply", "--server-side", "-f", str(manifest)).stdout.strip()
    assert applied == "configmap/settings serverside-applied"
    kube_core.patch_namespaced_config_map("settings", "default", {"data": {"c": "3"}})
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '9'}\n"
    )
    kubectl("apply", "--server-side", "-f", str(manifest))
    # b was applied by kubectl and no longer is: removed; c belongs to another writer: kept.
    assert kube_core.read_namespaced_config_map("settings", "default").data == {"a": "9", "c": "3"}
    # Another manager applying a field kubectl applied with another value: a conflict.
    manifest.write_text(manifest.read_text().replace("'9'", "'7'"))
    conflict = kubectl(
        "apply", "--server-side", "--field-manager=alice", "-f", str(manifest), check=False
    )
    assert conflict.returncode == 1
    assert 'error: Apply failed with 1 conflict: conflict with "kubectl": .data.a' in (
        conflict.stderr
    )
    kubectl(
        "apply", "--server-side", "--field-manager=alice", "--force-conflicts", "-f", str(manifest)
    )
    assert kube_core.read_namespaced_config_map("settings", "default").data == {"a": "7", "c": "3"}
    # alice owns a now: kubectl applying its old value conflicts with her.
    manifest.write_text(manifest.read_text().replace("'7'", "'9'"))
    again = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert 'conflict with "alice": .data.a' in again.stderr


def test_client_side_validation_uses_the_servers_openapi(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD_YAML.replace("image: nginx", "imagee: nginx"))
    refused = kubectl("create", "-f", str(manifest), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (BadRequest): error when creating "{manifest}": Pod in version "v1" '
        "cannot be handled as a Pod: strict decoding error: "
        'unknown field "spec.containers[0].imagee"'
    )
    warned = kubectl("create", "-f", str(manifest), "--validate=warn", check=False)
    assert 'Warning: unknown field "spec.containers[0].imagee"' in warned.stderr
    assert "cannot be handled" not in warned.stderr
    explained = kubectl("explain", "pod.spec.containers.image").stdout
    assert "FIELD: image <string>" in explained
    assert "Container image name." in explained


def test_dry_run_server_and_diff_change_nothing(
    kubectl: Kubectl, kube_core: client.CoreV1Api, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}\n"
    )
    kubectl("create", "-f", str(manifest), "--dry-run=server")
    assert kube_core.list_namespaced_config_map("default").items == []
    kubectl("apply", "-f", str(manifest))
    before = kube_core.read_namespaced_config_map("settings", "default")
    manifest.write_text(manifest.read_text().replace("'1'", "'2'"))
    diff = kubectl("diff", "-f", str(manifest), check=False)
    assert diff.returncode == 1  # differences found
    assert '-  a: "1"\n+  a: "2"' in diff.stdout
    assert kubectl("apply", "-f", str(manifest), "--dry-run=server").stdout.strip() == (
        "configmap/settings configured (server dry run)"
    )
    kubectl("delete", "configmap", "settings", "--dry-run=server")
    kubectl("create", "namespace", "scratch", "--dry-run=server")
    after = kube_core.read_namespaced_config_map("settings", "default")
    assert (after.data, after.metadata.resource_version) == (
        {"a": "1"},
        before.metadata.resource_version,
    )
    assert "scratch" not in kubectl("get", "namespaces", "-o", "name").stdout


def test_get_watch_keeps_every_column(kubectl: Kubectl, kube_core: client.CoreV1Api) -> None:
    kube_core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    watcher = subprocess.Popen(
        [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "get", "pods", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert watcher.stdout.readline().split()[:4] == ["web", "0/1", "Pending", "0"]
        kube_core.patch_namespaced_pod("web", "default", {"metadata": {"labels": {"a": "b"}}})
        kube_core.delete_namespaced_pod("web", "default")
        # The events after the first screen: the label change and the deletion.
        assert watcher.stdout.readline().split()[:4] == ["web", "0/1", "Pending", "0"]
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)


def test_collection_deletes(kubectl: Kubectl, kube_core: client.CoreV1Api) -> None:
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        kube_core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"team": team}}}
        )
    deleted = kubectl(
        "delete", "--raw", "/api/v1/namespaces/default/configmaps?labelSelector=team%3Dx"
    ).stdout
    assert sorted(re.findall(r'"name":"([abc])"', deleted)) == ["a", "b"]
    names = [c.metadata.name for c in kube_core.list_namespaced_config_map("default").items]
    assert names == ["c"]
    kube_core.delete_collection_namespaced_config_map("default", field_selector="metadata.name=c")
    assert kube_core.list_namespaced_config_map("default").items == []
    refused = kubectl("delete", "--raw", "/api/v1/namespaces", check=False)
    assert "MethodNotAllowed" in refused.stderr or "not allow" in refused.stderr


def test_debug_and_get_all(kubectl: Kubectl, kube_core: client.CoreV1Api) -> None:
    kube_core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    kube_core.create_namespaced_service(
        "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    names = kubectl("get", "all", "-o", "name").stdout.split()
    assert names == ["pod/web", "service/web"]
    # No ephemeral containers here: kubectl says so (it crashed on a 404 without details).
    debug = kubectl("debug", "web", "--image=busybox", "--profile=general", check=False)
    assert debug.returncode == 1
    assert "ephemeral containers are disabled for this cluster" in debug.stderr
    assert "panic" not in debug.stderr
    missing = kubectl("get", "pod", "nowhere", "-o", "json", check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nowhere" not found'


def test_a_refused_request_leaves_the_connection_usable(kube_emulator: KubeEmulator) -> None:
    # Not kubectl: a request line by hand, since kubectl cannot be made to send the body of a
    # request to a path that is refused before the body is read.
    host, port = kube_emulator.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        body = b'{"metadata": {"name": "x"}}' * 100
        for path in ("/api/v1/namespaces/default/widgets", "/api/v1/namespaces?dryRun=Maybe"):
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            refused = connection.getresponse()
            refused.read()
            assert refused.status in (404, 422)
            connection.request("GET", "/api/v1/namespaces/default")
            answer = connection.getresponse()
            assert (answer.status, b'"name":"default"' in answer.read()) == (200, True)
    finally:
        connection.close()
