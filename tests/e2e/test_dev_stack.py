"""The whole of ORCA on the embedded stack, driven as a user drives it.

`orca dev` runs as a real process tree (Temporal dev server, AWS emulator, Kubernetes API
emulator, worker, watcher) on free ports. The test submits annotated pods with the Kubernetes
client, watches instances appear in EC2 (boto3 against the emulator) and pod statuses change in
Kubernetes, deletes pods, and checks that everything is cleaned up: no instance left running, no
pod object left, and after SIGTERM no process of the stack left alive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes import client

from orca.instance_contract import (
    ContainerReason,
    ContainerState,
    ContainerStateEvent,
    signed_status_line,
    status_key_parameter,
)
from orca_devstack.examples import burst_pod
from tests.fixtures.dev_stack import DevStack, eventually
from tests.watcher.test_kubectl_exec import EchoServer, forward_and_talk, kubectl_in_pty

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core(dev_stack: DevStack) -> client.CoreV1Api:
    return dev_stack.core()


@pytest.fixture(scope="module")
def ec2(dev_stack: DevStack) -> Any:
    return dev_stack.aws("ec2")


def instances_of(ec2: Any, pod_uid: str) -> list[dict[str, Any]]:
    response = ec2.describe_instances(
        Filters=[{"Name": "tag:orca.research/pod-uid", "Values": [pod_uid]}]
    )
    return [i for r in response["Reservations"] for i in r["Instances"]]


def phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespaced_pod(name, "default").status.phase)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def event_reasons(core: client.CoreV1Api, name: str) -> list[str]:
    events = core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    ).items
    return [e.reason for e in events]


def test_pod_runs_to_completion_on_its_own_instance(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    name = f"e2e-ok-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "m5.large",
        "orca.research/launch-type": "on-demand",
        "emulator.orca.research/run-seconds": "3",
    }
    created = core.create_namespaced_pod("default", burst_pod(name, annotations))
    uid = created.metadata.uid
    eventually(lambda: phase(core, name) == "Succeeded", f"{name} to succeed")
    pod = core.read_namespaced_pod(name, "default")
    assert pod.spec.node_name == "orca-dev-node"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    launched = instances_of(ec2, uid)
    assert len(launched) == 1, "exactly one instance per pod"
    assert launched[0]["InstanceType"] == "m5.large"
    assert launched[0]["MetadataOptions"]["HttpTokens"] == "required"
    assert launched[0]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1  # host only
    eventually(
        lambda: instances_of(ec2, uid)[0]["State"]["Name"] == "terminated",
        "the instance to be terminated after the pod finished",
    )
    reasons = event_reasons(core, name)
    for reason in ("OfferingsSelected", "Launched", "Started", "ContainersFinished"):
        assert reason in reasons
    # The user deletes the finished pod; ORCA (as kubelet) releases it.
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be removed")
    # The worker's bytecode lives in the state directory (the workflow sandbox re-imports the
    # workflow module for each run, which must not mean compiling it each time).
    assert list((dev_stack.state_dir / "pycache").rglob("pod_lifecycle.*.pyc"))


def test_deleting_a_running_pod_stops_it_and_terminates_the_instance(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    name = f"e2e-del-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "c5.xlarge",
        "emulator.orca.research/run-seconds": "inf",
    }
    uid = core.create_namespaced_pod("default", burst_pod(name, annotations)).metadata.uid
    eventually(lambda: phase(core, name) == "Running", f"{name} to run")
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be released by ORCA")
    eventually(
        lambda: all(
            i["State"]["Name"] in ("shutting-down", "terminated") for i in instances_of(ec2, uid)
        ),
        "the instance to be terminated",
    )
    assert len(instances_of(ec2, uid)) == 1


def gpu_pod(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    manifest = burst_pod(name, annotations)
    manifest["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    return manifest


def test_an_idle_gpu_pod_is_warned_then_stopped_and_a_busy_one_is_left_alone(
    dev_stack: DevStack, core: client.CoreV1Api
) -> None:
    """The AWS emulator publishes each pod's GPU utilization (the emulator-only annotation, 90%
    by default); the watcher's idle check reads it every node.statsInterval (10 s here)."""
    suffix = uuid.uuid4().hex[:6]
    idle, busy = f"e2e-idle-{suffix}", f"e2e-busy-{suffix}"
    common = {
        "orca.research/instance-type": "g5.xlarge",
        "orca.research/idle-timeout": "40s",
        "emulator.orca.research/run-seconds": "inf",
    }
    core.create_namespaced_pod(
        "default", gpu_pod(idle, {**common, "emulator.orca.research/gpu-utilization": "1"})
    )
    core.create_namespaced_pod("default", gpu_pod(busy, common))
    eventually(lambda: phase(core, idle) == "Running", f"{idle} to run", within=120)
    eventually(
        lambda: "AcceleratorsIdle" in event_reasons(core, idle), "the idle warning", within=120
    )
    stopped = eventually(
        lambda: (pod := core.read_namespaced_pod(idle, "default")).status.reason == "Idle" and pod,
        f"{idle} to be stopped with reason Idle",
        within=120,
    )
    assert stopped.status.phase == "Failed"
    assert "idle-timeout 40s" in stopped.status.message
    assert phase(core, busy) == "Running"
    assert "AcceleratorsIdle" not in event_reasons(core, busy)
    for name in (idle, busy):
        core.delete_namespaced_pod(name, "default")
    eventually(
        lambda: phase(core, idle) is None and phase(core, busy) is None, "both pods to be released"
    )


KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


@pytest.mark.kubectl
@pytest.mark.skipif(not Path(KUBECTL).is_file(), reason="kubectl is not installed")
def test_kubectl_top_pod_shows_the_emulated_instances_figures(
    dev_stack: DevStack, core: client.CoreV1Api
) -> None:
    """AWS emulator (PutMetricData) → watcher (GetMetricData, /metrics/resource) → Kubernetes
    emulator (metrics.k8s.io) → the real kubectl."""
    name = f"e2e-top-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "c5.xlarge",
        "emulator.orca.research/run-seconds": "inf",
        "emulator.orca.research/memory-bytes": str(200 * 2**20),
    }
    core.create_namespaced_pod("default", burst_pod(name, annotations))
    eventually(lambda: phase(core, name) == "Running", f"{name} to run")

    def top() -> str | None:
        result = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                dev_stack.endpoints["kubeconfig"],
                "top",
                "pod",
                name,
                "--no-headers",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout if result.returncode == 0 and name in result.stdout else None

    line = eventually(top, "kubectl top pod to show the pod", within=120)
    assert line.split()[0] == name
    assert line.split()[2] == "200Mi"
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be released")


@pytest.mark.kubectl
@pytest.mark.skipif(not Path(KUBECTL).is_file(), reason="kubectl is not installed")
def test_kubectl_exec_runs_in_the_running_pods_container(
    dev_stack: DevStack, core: client.CoreV1Api
) -> None:
    """`orca dev` end to end: the real kubectl, the emulated API server's relay, the watcher's
    kubelet endpoint, SSM Run Command and Session Manager to the instance ORCA launched, the
    container's sandbox: exec, exec -it, port-forward."""
    name = f"e2e-exec-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "m5.large",
        "emulator.orca.research/run-seconds": "inf",
    }
    core.create_namespaced_pod("default", burst_pod(name, annotations))
    eventually(lambda: phase(core, name) == "Running", f"{name} to run")
    kubeconfig = dev_stack.endpoints["kubeconfig"]

    def kubectl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", kubeconfig, "exec", "-i", name, "--", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = kubectl("sh", "-c", "echo hi > note && ls && cat")
    assert (listed.returncode, listed.stdout) == (0, "note\n"), listed.stderr
    failed = kubectl("sh", "-c", "cat; exit 3", stdin="piped\n")
    assert (failed.returncode, failed.stdout) == (3, "piped\n"), failed.stderr
    code, output = kubectl_in_pty(
        Path(kubeconfig),
        "exec",
        "-it",
        name,
        "--",
        "sh",
        typed=[b"echo e2e-$((6 * 7))\r", b"exit 4\r"],
    )
    assert (code, "e2e-42" in output) == (4, True), output
    server = EchoServer()
    assert forward_and_talk(Path(kubeconfig), name, server.port, spdy=False) == [
        "echo: first",
        "echo: second",
    ]
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be released by ORCA")


def test_invalid_annotation_launches_nothing_and_says_why(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    name = f"e2e-bad-{uuid.uuid4().hex[:6]}"
    annotations = {"orca.research/instance-type": "m5.large", "orca.research/launch-type": "spotty"}
    uid = core.create_namespaced_pod("default", burst_pod(name, annotations)).metadata.uid
    eventually(lambda: phase(core, name) == "Failed", f"{name} to fail")
    pod = core.read_namespaced_pod(name, "default")
    conditions = {c.type: c for c in pod.status.conditions or []}
    launched = conditions["orca.research/InstanceLaunched"]
    assert launched.status == "False"
    assert launched.reason == "InvalidPodSpec"
    assert "orca.research/launch-type" in launched.message
    assert "on-demand" in launched.message
    # The event is a second API call after the status write (one activity): it follows shortly.
    eventually(lambda: "InvalidPodSpec" in event_reasons(core, name), "the InvalidPodSpec event")
    assert instances_of(ec2, uid) == []


def test_a_report_forged_by_another_pods_instance_changes_nothing(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    """The attacker's instance can read its own status key and append to any status stream; a
    report naming the victim, signed with the attacker's key or not at all, is ignored."""

    def aws(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=dev_stack.endpoints["aws_endpoint_url"],
            region_name="us-west-2",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    annotations = {
        "orca.research/instance-type": "m5.large",
        "emulator.orca.research/run-seconds": "inf",
    }
    victim, attacker = f"e2e-victim-{uuid.uuid4().hex[:6]}", f"e2e-attack-{uuid.uuid4().hex[:6]}"
    victim_uid = core.create_namespaced_pod("default", burst_pod(victim, annotations)).metadata.uid
    attacker_uid = core.create_namespaced_pod(
        "default", burst_pod(attacker, annotations)
    ).metadata.uid
    for name in (victim, attacker):
        eventually(lambda name=name: phase(core, name) == "Running", f"{name} to run")
    ssm, logs = aws("ssm"), aws("logs")
    attacker_key = ssm.get_parameter(Name=status_key_parameter(attacker_uid), WithDecryption=True)[
        "Parameter"
    ]["Value"]
    forged = ContainerStateEvent(
        pod_uid=victim_uid,
        container="main",
        state=ContainerState.TERMINATED,
        reason=ContainerReason.COMPLETED.value,
        exit_code=0,
        at=datetime.now(UTC),
    )
    for stream, message in (
        (victim_uid, signed_status_line(forged, attacker_key)),
        (victim_uid, json.dumps(forged.to_line())),
        (attacker_uid, signed_status_line(forged, attacker_key)),
    ):
        logs.put_log_events(
            logGroupName="/orca/container-status",
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": message}],
        )
    worker_log = dev_stack.state_dir / "logs" / "worker.log"
    eventually(
        lambda: worker_log.read_text(errors="replace").count("ignored a status report") >= 3,
        "the worker to ignore the forged reports",
    )
    assert phase(core, victim) == "Running"
    assert instances_of(ec2, victim_uid)[0]["State"]["Name"] == "running"
    for name in (victim, attacker):
        core.delete_namespaced_pod(name, "default")
    for name in (victim, attacker):
        eventually(lambda name=name: phase(core, name) is None, f"{name} to be released")


def test_a_failing_container_backs_off_as_the_kubelet_does_then_succeeds(
    dev_stack: DevStack, core: client.CoreV1Api, ec2: Any
) -> None:
    """OnFailure, runs exiting 1, 1, 0: restarted at once, then `CrashLoopBackOff` for the
    kubelet's 10 s (the pod Running, not ready, the message the kubelet's), then Succeeded after
    2 restarts, on the one instance it launched."""
    name = f"e2e-crash-{uuid.uuid4().hex[:6]}"
    annotations = {
        "orca.research/instance-type": "m5.large",
        "orca.research/launch-type": "on-demand",
        "emulator.orca.research/run-seconds": "1",
        "emulator.orca.research/exit-codes": "1,1,0",
    }
    created = core.create_namespaced_pod(
        "default", burst_pod(name, annotations, restart_policy="OnFailure")
    )
    uid = created.metadata.uid

    def backing_off() -> Any:
        pod = core.read_namespaced_pod(name, "default")
        statuses = pod.status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return pod if waiting is not None and waiting.reason == "CrashLoopBackOff" else None

    pod = eventually(backing_off, f"{name} to back off", within=90)
    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Running"
    assert status.state.waiting.message == (
        f"back-off 10s restarting failed container={status.name} pod={name}_default({uid})"
    )
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert not status.ready
    eventually(lambda: phase(core, name) == "Succeeded", f"{name} to succeed", within=60)
    done = core.read_namespaced_pod(name, "default").status.container_statuses[0]
    assert done.restart_count == 2
    assert done.state.terminated.exit_code == 0
    assert len(instances_of(ec2, uid)) == 1
    # The kubelet's Warning, once per pod and container, counted: one back-off here.
    [back_off] = [
        e
        for e in core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={name}"
        ).items
        if e.reason == "BackOff"
    ]
    assert back_off.type == "Warning"
    assert back_off.message == (
        f"Back-off restarting failed container {done.name} in pod {name}_default({uid})"
    )
    assert back_off.count == 1
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be released")


# Last in the module: it stops the module's stack.
def test_sigterm_stops_every_process(dev_stack: DevStack) -> None:
    pids = dict(dev_stack.endpoints["pids"])
    assert set(pids) >= {"temporal", "aws-emulator", "kube-emulator", "worker", "watcher"}
    for pid in pids.values():
        os.kill(pid, 0)  # alive now
    dev_stack.process.send_signal(signal.SIGTERM)
    assert dev_stack.process.wait(timeout=60) == 0
    assert "stopped" in dev_stack.output()

    def all_gone() -> bool:
        for pid in pids.values():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            return False
        return True

    eventually(all_gone, "every child process to exit", within=20)
