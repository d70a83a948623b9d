"""A dependency outage must not evict running pods; the watcher's own absence does (issue 18).

Real processes on free ports: the Temporal dev server (SQLite file, so it can be killed and
restarted with its workflows), the AWS emulator, the Kubernetes API emulator with its node
lifecycle controller on short timings (grace period 3 s, default tolerations 3 s), and ORCA's
worker and watcher started as `orca worker` / `orca watcher`. The module shares one stack; each
test runs its own pod.

Each dependency test takes one dependency away for longer than the pods' tolerations and checks
that nothing happened to a running pod: still Running, not deleting, its instance still running,
the node still Ready with no NoExecute taint, while the node carries the dependency's condition
and the NoSchedule taint and a new pod is not scheduled there. "Longer than the tolerations" is
shown, not timed: a witness node that posts Ready=False is created once the outage shows, and the
controller evicting the witness's pod (same default tolerations) proves the tolerations ran out.
The last test kills the watcher (kill -9) and checks that Kubernetes evicts the pod as it would
from any lost node, and that a restarted watcher then stops it and terminates its instance.

The test server's long polls expire after 1 s (`matching.longPollExpirationInterval`), so a live
idle worker polls every second and `watcher.workerPollerStaleAfter` can be 3 s; a real server's
idle worker polls once a minute and the default is 2 minutes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from kubernetes import client, config

from orca import search_attributes
from orca_devstack.examples import burst_pod
from orca_devstack.processes import ChildProcess, free_port, http_answers, tcp_answers
from orca_devstack.stack import DevStackOptions, find_executable, render_dev_config
from tests.fixtures.dev_stack import eventually

pytestmark = pytest.mark.slow

GRACE_SECONDS = 3
TOLERATION_SECONDS = 3
DEPENDENCY_TAINT = "orca.research/dependency-unavailable"
RUNNING_POD = {
    "orca.research/instance-type": "m5.large",
    "orca.research/launch-type": "on-demand",
    "emulator.orca.research/run-seconds": "inf",
}


@dataclass
class Stack:
    children: dict[str, ChildProcess]
    core: client.CoreV1Api
    ec2: Any
    aws_url: str
    node: str

    def kill(self, name: str) -> None:
        child = self.children[name]
        child.signal_group(signal.SIGKILL)
        assert child.process is not None
        child.process.wait(timeout=10)

    def restart(self, name: str) -> None:
        child = self.children[name]
        child.start()
        child.wait_ready()


def orca_child(name: str, config_path: Path, state: Path, health_port: int) -> ChildProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCA_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-west-2",
            "ORCA_LOGGING__FORMAT": "json",
            "ORCA_METRICS__ENABLED": "false",
        }
    )
    command = [sys.executable, "-m", "orca.cli.main", "--config", str(config_path), name]
    return ChildProcess(
        name,
        command,
        state / f"{name}.log",
        http_answers(f"http://127.0.0.1:{health_port}/healthz"),
        env=env,
    )


def python_module(emulator: str, port: int) -> list[str]:
    return [sys.executable, "-m", f"orca_devstack.emulators.{emulator}", "--port", str(port)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("outage")
    ports = {name: free_port() for name in ("temporal", "aws", "kube", "kubelet", "wh", "ch")}
    temporal_command = [
        find_executable("temporal"),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(ports["temporal"]),
        "--db-filename",
        str(state / "temporal.db"),
        "--log-level",
        "error",
        "--dynamic-config-value",
        'matching.longPollExpirationInterval="1s"',
    ]
    for key in search_attributes.ALL:
        temporal_command += ["--search-attribute", f"{key.name}=Keyword"]
    aws_url = f"http://127.0.0.1:{ports['aws']}"
    kubeconfig = state / "kubeconfig"
    children = {
        "temporal": ChildProcess(
            "temporal",
            temporal_command,
            state / "temporal.log",
            tcp_answers("127.0.0.1", ports["temporal"]),
        ),
        "aws": ChildProcess(
            "aws",
            [*python_module("aws", ports["aws"]), "--launch-delay", "0.5"],
            state / "aws.log",
            http_answers(f"{aws_url}/_orca/defaults"),
        ),
        "kube": ChildProcess(
            "kube",
            [
                *python_module("kube", ports["kube"]),
                *("--kubeconfig", str(kubeconfig), "--node-monitor-period", "0.2"),
                *("--node-monitor-grace-period", str(GRACE_SECONDS)),
                *("--default-not-ready-toleration-seconds", str(TOLERATION_SECONDS)),
                *("--default-unreachable-toleration-seconds", str(TOLERATION_SECONDS)),
            ],
            state / "kube.log",
            http_answers(f"http://127.0.0.1:{ports['kube']}/version"),
        ),
    }
    try:
        for child in children.values():
            child.start()
        for child in children.values():
            child.wait_ready()
        with urllib.request.urlopen(f"{aws_url}/_orca/defaults", timeout=5) as response:
            defaults = json.loads(response.read())
        options = DevStackOptions(
            state_dir=state,
            temporal_port=ports["temporal"],
            kubelet_port=ports["kubelet"],
            worker_health_port=ports["wh"],
            watcher_health_port=ports["ch"],
            node_name=f"orca-outage-{uuid.uuid4().hex[:6]}",
        )
        settings = render_dev_config(options, aws_url, kubeconfig, defaults)
        settings["node"].update(
            {"leaseDuration": "2s", "leaseRenewInterval": "0.5s", "statusUpdateInterval": "1s"}
        )
        settings["watcher"]["workerPollerStaleAfter"] = "3s"
        settings["worker"].update({"instancePollInterval": "0.5s", "statusPollInterval": "0.5s"})
        config_path = state / "config.yaml"
        config_path.write_text(yaml.safe_dump(settings))
        children["worker"] = orca_child("worker", config_path, state, ports["wh"])
        children["watcher"] = orca_child("watcher", config_path, state, ports["ch"])
        for name in ("worker", "watcher"):
            children[name].start()
            children[name].wait_ready()
        api = config.new_client_from_config(str(kubeconfig))
        ec2 = boto3.client(
            "ec2",
            endpoint_url=aws_url,
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        yield Stack(children, client.CoreV1Api(api), ec2, aws_url, options.node_name)
        api.close()
    finally:
        for child in reversed(children.values()):
            child.stop()


# -- reading the cluster and the account -------------------------------------------------------


def node_condition(stack: Stack, kind: str) -> Any:
    node = stack.core.read_node(stack.node)
    return next((c for c in node.status.conditions or [] if c.type == kind), None)


def taints(stack: Stack) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in stack.core.read_node(stack.node).spec.taints or []}


def pod_or_none(stack: Stack, name: str) -> Any:
    try:
        return stack.core.read_namespaced_pod(name, "default")
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def instance_states(stack: Stack, uid: str) -> list[str]:
    response = stack.ec2.describe_instances(
        Filters=[{"Name": "tag:orca.research/pod-uid", "Values": [uid]}]
    )
    return [i["State"]["Name"] for r in response["Reservations"] for i in r["Instances"]]


def start_running_pod(stack: Stack, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    uid = stack.core.create_namespaced_pod("default", burst_pod(name, RUNNING_POD)).metadata.uid
    eventually(lambda: (p := pod_or_none(stack, name)) and p.status.phase == "Running", "Running")
    assert instance_states(stack, uid) == ["running"]
    return name, uid


def witness_evicted(stack: Stack) -> Callable[[], None]:
    """Create a node that says Ready=False and a pod on it; return once the controller has
    evicted that pod (its tolerations ran out). Returns the clean-up."""
    name = f"witness-{uuid.uuid4().hex[:6]}"
    stack.core.create_node({"metadata": {"name": name}})
    stack.core.patch_node_status(
        name, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    )
    pod = {
        "metadata": {"name": name},
        "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]},
    }
    stack.core.create_namespaced_pod("default", pod)
    eventually(
        lambda: stack.core.read_namespaced_pod(name, "default").metadata.deletion_timestamp,
        "the witness pod to be evicted",
        within=30,
    )

    def clean_up() -> None:
        stack.core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
        stack.core.delete_node(name)

    return clean_up


def unschedulable_message(stack: Stack, name: str) -> str | None:
    pod = pod_or_none(stack, name)
    scheduled = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
    if scheduled is None or scheduled.status != "False":
        return None
    return str(scheduled.message)


# -- the tests ---------------------------------------------------------------------------------


def outage_spares_running_pods(
    stack: Stack,
    kind: str,
    reason: str,
    take_away: Callable[[], None],
    bring_back: Callable[[], None],
) -> None:
    running, uid = start_running_pod(stack, "outage")
    take_away()
    eventually(
        lambda: (c := node_condition(stack, kind)) and c.status != "True" and c.reason == reason,
        f"{kind} to say {reason}",
        within=30,
    )
    eventually(lambda: (DEPENDENCY_TAINT, "NoSchedule") in taints(stack), "the NoSchedule taint")
    clean_up_witness = witness_evicted(stack)

    # The tolerations have run out: a NotReady node's pods would be gone by now. This one's not.
    ready = node_condition(stack, "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")
    assert not {effect for _, effect in taints(stack)} & {"NoExecute"}
    pod = pod_or_none(stack, running)
    assert pod.status.phase == "Running"
    assert pod.metadata.deletion_timestamp is None
    assert "DisruptionTarget" not in {c.type for c in pod.status.conditions or []}
    assert instance_states(stack, uid) == ["running"]

    # No new pod lands on the node meanwhile.
    newcomer = f"newcomer-{uuid.uuid4().hex[:6]}"
    stack.core.create_namespaced_pod("default", burst_pod(newcomer, RUNNING_POD))
    message = eventually(lambda: unschedulable_message(stack, newcomer), "FailedScheduling")
    assert f"untolerated taint {{{DEPENDENCY_TAINT}: }}" in message

    bring_back()
    eventually(lambda: node_condition(stack, kind).status == "True", f"{kind} to recover", 60)
    eventually(lambda: (DEPENDENCY_TAINT, "NoSchedule") not in taints(stack), "taint removed")
    eventually(
        lambda: pod_or_none(stack, newcomer).spec.node_name == stack.node, "newcomer scheduled"
    )
    assert pod_or_none(stack, running).metadata.deletion_timestamp is None
    for name in (running, newcomer):
        stack.core.delete_namespaced_pod(name, "default")
    clean_up_witness()


def test_temporal_down_evicts_nothing(stack: Stack) -> None:
    outage_spares_running_pods(
        stack,
        "orca.research/TemporalAvailable",
        "TemporalUnavailable",
        lambda: stack.kill("temporal"),
        lambda: stack.restart("temporal"),
    )


def test_no_worker_polling_evicts_nothing(stack: Stack) -> None:
    outage_spares_running_pods(
        stack,
        "orca.research/WorkerPolling",
        "NoWorkerPolling",
        lambda: stack.kill("worker"),
        lambda: stack.restart("worker"),
    )


def test_rejected_aws_credentials_evict_nothing(stack: Stack) -> None:
    # Only the watcher's credential check is refused: what the worker does with rejected
    # credentials is the activities' concern, tested there; this test is about the node.
    def reject() -> None:
        fault = {"operation": "GetCallerIdentity", "error_code": "InvalidClientTokenId"}
        _control(stack, "POST", "/_orca/faults", fault)

    outage_spares_running_pods(
        stack,
        "orca.research/AwsAvailable",
        "AwsCredentialsRejected",
        reject,
        lambda: _control(stack, "DELETE", "/_orca/faults"),
    )


def test_a_watcher_gone_longer_than_the_tolerations_gets_its_pods_evicted(stack: Stack) -> None:
    name, uid = start_running_pod(stack, "orphaned")
    stack.kill("watcher")
    ready = eventually(
        lambda: (c := node_condition(stack, "Ready")) and c.status == "Unknown" and c,
        "the node to go Unknown",
        within=30,
    )
    assert ready.reason == "NodeStatusUnknown"
    assert ("node.kubernetes.io/unreachable", "NoExecute") in taints(stack)
    pod = eventually(
        lambda: (p := pod_or_none(stack, name)) and p.metadata.deletion_timestamp and p,
        "the taint manager to evict the pod",
        within=30,
    )
    disruption = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "DeletionByTaintManager")
    assert instance_states(stack, uid) == ["running"], "nobody has stopped it yet"
    # The watcher comes back: ORCA plays the kubelet's part of the eviction.
    stack.restart("watcher")
    eventually(lambda: pod_or_none(stack, name) is None, "ORCA to release the evicted pod", 90)
    assert all(s in ("shutting-down", "terminated") for s in instance_states(stack, uid))
    eventually(lambda: node_condition(stack, "Ready").status == "True", "the node Ready again")


def _control(stack: Stack, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{stack.aws_url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status < 300
