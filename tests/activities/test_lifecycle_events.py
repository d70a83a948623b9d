"""The events a step's own activity posts (`pod-lifecycle-2`, activities/lifecycle_events.py):
against the AWS and Kubernetes emulators, as the worker wires them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from kubernetes import client
from temporalio.testing import ActivityEnvironment

from orca.activities.instances import InstanceActivities
from orca.activities.launch_admission import NoAdmission
from orca.activities.lifecycle_events import LifecycleEvents
from orca.activities.models import LaunchRequest, PlanLaunchInput
from orca.activities.planning import PlanningActivities
from orca.pod_api import PodApi
from orca_devstack.emulators.aws import AwsEmulator
from tests.activities.test_activities import NOW, Wiring, pod_manifest

NODE = "orca-aws-node"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def events_of(core: client.CoreV1Api, namespace: str, pod_name: str) -> list[Any]:
    return list(
        core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod_name}"
        ).items
    )


def ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]
    except client.ApiException as error:
        if error.status != 409:
            raise


def telling(wiring: Wiring, events: LifecycleEvents) -> Wiring:
    wiring.planning = PlanningActivities(
        wiring.settings, wiring.catalog, wiring.unavailable, events=events
    )
    wiring.instances = InstanceActivities(
        wiring.ec2,
        wiring.amis,
        wiring.catalog,
        wiring.cluster,
        wiring.unavailable,
        NoAdmission(),
        events=events,
    )
    return wiring


async def test_plan_and_launch_tell_their_events_once_each_retry_counted(
    aws: AwsEmulator, kube_core: client.CoreV1Api
) -> None:
    ensure_namespace(kube_core, "research")
    wiring = telling(Wiring(aws), LifecycleEvents(PodApi(kube_core), NODE))
    pod = pod_manifest({"orca.research/instance-type": "m5.large"})
    name = pod["metadata"]["name"]
    env = ActivityEnvironment()
    plan = await env.run(wiring.planning.plan_launch, PlanLaunchInput(pod=pod, records_events=True))
    request = LaunchRequest(
        spec=plan.spec,
        candidate=plan.candidates[0],
        client_token=f"token-{name}",
        requested_at=NOW,
        records_events=True,
    )
    first = await env.run(wiring.instances.launch_instance, request)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    again = await retry.run(wiring.instances.launch_instance, request)
    assert again.instance_id == first.instance_id
    events = {e.reason: e for e in events_of(kube_core, "research", name)}
    assert set(events) == {"OfferingsSelected", "Launched"}
    assert events["OfferingsSelected"].message.startswith("Candidates in order: 1. ")
    assert events["Launched"].message.startswith(f"Launched {first.instance_id}: ")
    assert events["Launched"].count == 2  # the retry's repeat counts on the one object
    assert events["Launched"].source.component == "orca"
    assert events["Launched"].source.host == NODE
    # A run recorded before `pod-lifecycle-2` posts its own events: the activity tells none.
    quiet = pod_manifest({"orca.research/instance-type": "m5.large"})
    await env.run(wiring.planning.plan_launch, PlanLaunchInput(pod=quiet))
    assert events_of(kube_core, "research", quiet["metadata"]["name"]) == []


async def test_an_event_that_cannot_be_posted_never_fails_the_launch(aws: AwsEmulator) -> None:
    """Best effort, as the kubelet's events: the API server is unreachable (nothing listens on
    the port), the launch still returns its instance."""
    unreachable = client.Configuration()
    unreachable.host = "http://127.0.0.1:9"
    unreachable.retries = 0
    core = client.CoreV1Api(client.ApiClient(unreachable))
    wiring = telling(Wiring(aws), LifecycleEvents(PodApi(core), NODE))
    plan = await wiring.plan(pod_manifest({"orca.research/instance-type": "m5.large"}))
    request = LaunchRequest(
        spec=plan.spec,
        candidate=plan.candidates[0],
        client_token="unreachable-1",
        requested_at=NOW,
        records_events=True,
    )
    outcome = await ActivityEnvironment().run(wiring.instances.launch_instance, request)
    assert outcome.instance_id is not None
