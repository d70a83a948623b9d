"""Issue 13 on the embedded stack, as real processes (Temporal dev server, the AWS and Kubernetes
emulators, ORCA's watcher and one worker; `tests.fixtures.dev_stack.MultiWorkerStack`) with
`logging.logAWSCalls: true`, so botocore prints every request it makes at DEBUG:

- a pod whose env and files come from a Kubernetes Secret with a unique marker value runs (the
  marker reaches its SSM SecureString parameter, so the secret did travel), and the marker, in
  any of its encodings, is in no line of the worker's or the watcher's output and nowhere in the
  pod's Temporal history (every event, payloads included, as the server returns them);
- the same pod's AWS mutations are in the worker's audit trail (`orca.audit`), with request IDs.

Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from google.protobuf.message import Message
from kubernetes import client
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from orca.launch_spec import PodRef
from orca.payload_codec import decode_one
from orca.workflow_ids import pod_workflow_id
from orca_devstack.examples import burst_pod
from tests.fixtures.dev_stack import MultiWorkerStack, eventually, running_multi_worker_stack

pytestmark = pytest.mark.slow

CONFIG = {
    "logging": {"logAWSCalls": True, "level": "debug"},
    "worker": {"instancePollInterval": "1s", "statusPollInterval": "1s"},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiWorkerStack]:
    with running_multi_worker_stack(
        tmp_path_factory.mktemp("orca-security"), workers=1, config=CONFIG
    ) as running:
        yield running


@pytest.fixture(scope="module")
def core(stack: MultiWorkerStack) -> client.CoreV1Api:
    return stack.core()


def aws(stack: MultiWorkerStack, service: str) -> Any:
    assert stack.endpoints is not None
    return boto3.client(
        service,
        endpoint_url=stack.endpoints.aws_endpoint_url,
        region_name="us-west-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def phase(core: client.CoreV1Api, name: str) -> str | None:
    try:
        return str(core.read_namespaced_pod(name, "default").status.phase)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def secret_parameters(stack: MultiWorkerStack, uid: str) -> dict[str, str]:
    pages = aws(stack, "ssm").get_paginator("get_parameters_by_path")
    return {
        p["Name"]: p["Value"]
        for page in pages.paginate(Path=f"/orca/pods/{uid}/", Recursive=True, WithDecryption=True)
        for p in page["Parameters"]
    }


def decoded_payloads(message: Message) -> Iterator[bytes]:
    """The data of every payload anywhere in `message`, decompressed where ORCA's codec
    compressed it (`orca.payload_codec`): what a reader with the codec endpoint sees."""
    if isinstance(message, Payload):
        yield decode_one(message).data
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [value]
        elif field.message_type.GetOptions().map_entry:
            items = value.values()  # a map field: its values
        else:
            items = value  # a repeated field
        for item in items:
            if isinstance(item, Message):
                yield from decoded_payloads(item)


def history_bytes(stack: MultiWorkerStack, workflow_id: str) -> tuple[bytes, int]:
    """The workflow's whole history as the server returns it (every event's protobuf, so
    payloads are their raw bytes), as JSON, and every payload decompressed; and the number of
    events."""
    assert stack.endpoints is not None
    address = stack.endpoints.temporal_address

    async def fetch() -> tuple[bytes, int]:
        temporal = await Client.connect(address, namespace=stack.options.temporal_namespace)
        history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        decoded = b"\n".join(d for event in history.events for d in decoded_payloads(event))
        assert decoded, "the history's payloads were read"
        return raw + history.to_json().encode() + decoded, len(history.events)

    return asyncio.run(fetch())


def encodings(marker: str) -> list[bytes]:
    raw = marker.encode()
    return [raw, base64.b64encode(raw), base64.b64encode(b'"' + raw + b'"')[:-4]]


def output_lines(stack: MultiWorkerStack) -> list[str]:
    lines: list[str] = []
    for name in ("worker", "watcher"):
        log = Path(stack.state_dir) / "logs" / f"{name}.log"
        lines += log.read_text(errors="replace").splitlines()
    return lines


def test_a_pod_secret_is_in_no_log_line_and_not_in_the_history(
    stack: MultiWorkerStack, core: client.CoreV1Api
) -> None:
    marker = f"orca-marker-{uuid.uuid4().hex}"
    suffix = uuid.uuid4().hex[:6]
    secret_name, name = f"creds-{suffix}", f"sec-{suffix}"
    core.create_namespaced_secret(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name},
            "data": {"token": base64.b64encode(marker.encode()).decode()},
        },
    )
    pod = burst_pod(
        name,
        {
            "orca.research/instance-type": "m5.large",
            "orca.research/launch-type": "on-demand",
            "emulator.orca.research/run-seconds": "inf",
        },
    )
    container = pod["spec"]["containers"][0]
    container["env"] = [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "token"}}}
    ]
    container["volumeMounts"] = [{"name": "creds", "mountPath": "/etc/creds"}]
    pod["spec"]["volumes"] = [{"name": "creds", "secret": {"secretName": secret_name}}]
    uid = core.create_namespaced_pod("default", pod).metadata.uid

    eventually(lambda: phase(core, name) == "Running", f"{name} to run")
    stored = secret_parameters(stack, uid)
    # The secret did travel: its value is in the pod's SecureString parameters (as is for the
    # env var, base64 for the file), written by PutParameter calls botocore logged at DEBUG.
    assert marker in stored.values()
    assert base64.b64encode(marker.encode()).decode() in stored.values()
    core.delete_namespaced_pod(name, "default")
    eventually(lambda: phase(core, name) is None, f"{name} to be released")
    eventually(lambda: secret_parameters(stack, uid) == {}, "the secret parameters to go")

    lines = output_lines(stack)
    assert any("PutParameter" in line and "[REDACTED]" in line for line in lines), (
        "botocore's request lines are in the output (logAWSCalls), with the value redacted"
    )
    assert any(secret_name in line for line in lines), "the kubernetes client's lines too"
    for line in lines:
        for form in encodings(marker):
            assert form.decode() not in line, f"secret value in a log line: {line[:300]}"

    # The audit trail of the same pod, in the worker's output: its launch, its secrets, its
    # commands and its terminate, each with the pod and an AWS request ID.
    audited = [
        record
        for record in map(json.loads, filter(lambda line: '"orca.audit"' in line, lines))
        if record.get("pod_uid") == uid
    ]
    operations = {record["operation"] for record in audited}
    assert operations >= {
        "ec2:RunInstances",
        "ssm:PutParameter",
        "ssm:SendCommand",
        "ssm:DeleteParameters",
        "ec2:TerminateInstances",
    }
    assert all(record["pod"] == f"default/{name}" for record in audited)
    # The AWS emulator answers SendCommand itself (its container lifecycle) without the
    # x-amzn-RequestId header AWS always sends; every call moto answers carries one.
    assert all(r.get("request_id") for r in audited if r["operation"] != "ssm:SendCommand")

    history, events = history_bytes(
        stack, pod_workflow_id(PodRef(namespace="default", name=name, uid=uid))
    )
    assert events > 10, "the pod's whole lifecycle is in the history"
    # The scan sees the decompressed payloads: the pod manifest (the Secret's name is only in it).
    assert f'"secretName":"{secret_name}"'.encode() in history
    for form in encodings(marker):
        assert form not in history, "secret value in the Temporal history"


def instances_of(stack: MultiWorkerStack, pod_uid: str) -> list[dict[str, Any]]:
    response = aws(stack, "ec2").describe_instances(
        Filters=[{"Name": "tag:orca.research/pod-uid", "Values": [pod_uid]}]
    )
    return [i for r in response["Reservations"] for i in r["Instances"]]


def test_a_privileged_pod_is_refused_with_an_event_and_launches_nothing(
    stack: MultiWorkerStack, core: client.CoreV1Api
) -> None:
    name = f"priv-{uuid.uuid4().hex[:6]}"
    pod = burst_pod(name, {"orca.research/instance-type": "m5.large"})
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    uid = core.create_namespaced_pod("default", pod).metadata.uid
    eventually(lambda: phase(core, name) == "Failed", f"{name} to fail")
    status = core.read_namespaced_pod(name, "default").status
    launched = {c.type: c for c in status.conditions or []}["orca.research/InstanceLaunched"]
    assert launched.status == "False"
    assert launched.reason == "InvalidPodSpec"
    assert "spec.containers[0].securityContext.privileged" in launched.message
    assert "baseline" in launched.message
    events = core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={name}"
    ).items
    refusals = [e for e in events if e.reason == "InvalidPodSpec"]
    assert refusals
    assert "privileged" in refusals[0].message
    assert instances_of(stack, uid) == []
    assert not any(uid in line and "ec2:RunInstances" in line for line in output_lines(stack))
