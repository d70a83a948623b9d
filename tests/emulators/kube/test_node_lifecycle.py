"""The emulator's node lifecycle controller: node health from the Lease, taints from conditions,
taint-based eviction, and the DefaultTolerationSeconds admission defaults.

Pure decisions first, then the controller through the official client with timings shortened to
fractions of a second (the flags of kube-controller-manager and kube-apiserver of the same names).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from orca_devstack.emulators.kube import KubeEmulator
from orca_devstack.emulators.kube.admission import AdmissionConfig, default_pod_spec
from orca_devstack.emulators.kube.node_lifecycle import (
    LifecycleTimings,
    eviction_delay,
    node_health_conditions,
    reconcile_taints,
)
from tests.fixtures.kube import eventually, ready_node

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOW = "2026-01-01T00:00:00Z"


def node_with(ready: str | None, taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"spec": {"taints": taints or []}, "status": {"conditions": conditions}}


# -- pure decisions ----------------------------------------------------------------------------


def test_ready_false_and_unknown_give_their_noexecute_and_noschedule_taints() -> None:
    not_ready = reconcile_taints(node_with("False"), NOW)
    assert not_ready == [
        {"key": NOT_READY, "effect": "NoSchedule"},
        {"key": NOT_READY, "effect": "NoExecute", "timeAdded": NOW},
    ]
    # Unknown swaps not-ready for unreachable; another owner's taint stays where it was.
    burst = {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"}
    swapped = reconcile_taints(node_with("Unknown", [burst, *not_ready]), "later")
    assert swapped == [
        burst,
        {"key": UNREACHABLE, "effect": "NoSchedule"},
        {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "later"},
    ]
    assert reconcile_taints(node_with("Unknown", swapped), "even-later") is None, "unchanged"
    assert reconcile_taints(node_with("True", swapped), NOW) == [burst]
    assert reconcile_taints(node_with("True", [burst]), NOW) is None


def test_pressure_conditions_give_noschedule_taints_only() -> None:
    node = node_with("True")
    node["status"]["conditions"] += [
        {"type": "MemoryPressure", "status": "True"},
        {"type": "DiskPressure", "status": "False"},
    ]
    assert reconcile_taints(node, NOW) == [
        {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
    ]


def test_silent_node_conditions_become_unknown_and_missing_ones_never_updated() -> None:
    conditions = [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "t0"},
        {"type": "MemoryPressure", "status": "False"},
        {"type": "orca.research/TemporalAvailable", "status": "True"},
    ]
    marked = {c["type"]: c for c in node_health_conditions(conditions, NOW)}
    assert marked["Ready"]["status"] == "Unknown"
    assert marked["Ready"]["reason"] == "NodeStatusUnknown"
    assert marked["Ready"]["message"] == "Kubelet stopped posting node status."
    assert marked["Ready"]["lastHeartbeatTime"] == "t0", "the last heartbeat is kept"
    assert marked["Ready"]["lastTransitionTime"] == NOW
    assert marked["MemoryPressure"]["status"] == "Unknown"
    assert marked["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert marked["orca.research/TemporalAvailable"]["status"] == "True", "not the kubelet's"


@pytest.mark.parametrize(
    ("tolerations", "delay"),
    [
        ([], 0.0),
        ([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}], None),
        ([{"operator": "Exists"}], None),
        ([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 30}], 30.0),
        (
            [
                {"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 20},
            ],
            20.0,
        ),
        ([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": -5}], 0.0),
        ([{"key": NOT_READY, "operator": "Exists", "tolerationSeconds": 30}], 0.0),
    ],
)
def test_eviction_delay_is_the_smallest_matching_toleration(
    tolerations: list[dict[str, Any]], delay: float | None
) -> None:
    taints = [
        {"key": UNREACHABLE, "effect": "NoExecute"},
        {"key": "orca.research/burst-node", "value": "true", "effect": "NoSchedule"},
    ]
    assert eviction_delay(tolerations, taints) == delay


def test_no_noexecute_taint_means_no_eviction() -> None:
    assert eviction_delay([], [{"key": "a", "effect": "NoSchedule"}]) is None


def test_default_toleration_seconds_are_added_unless_the_pod_covers_the_taint() -> None:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x:1"}]}
    default_pod_spec(spec, AdmissionConfig(7, 9))
    assert [(t["key"], t["tolerationSeconds"]) for t in spec["tolerations"]] == [
        (NOT_READY, 7),
        (UNREACHABLE, 9),
    ]
    own = {
        "key": UNREACHABLE,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 3600,
    }
    spec = {"containers": [{"name": "c", "image": "x:1"}], "tolerations": [own]}
    default_pod_spec(spec, AdmissionConfig(7, 9))
    assert spec["tolerations"] == [own, {**own, "key": NOT_READY, "tolerationSeconds": 7}]
    everything = {"operator": "Exists"}
    spec = {"containers": [{"name": "c", "image": "x:1"}], "tolerations": [everything]}
    default_pod_spec(spec)
    assert spec["tolerations"] == [everything], "a toleration of every taint covers both"


# -- the controller through the API ------------------------------------------------------------

TIMINGS = LifecycleTimings(monitor_period=0.1, grace_period=1.0)
TOLERATION_SECONDS = 2


@pytest.fixture
def core(tmp_path: Path) -> Iterator[client.CoreV1Api]:
    with KubeEmulator(
        port=0,
        scheduler=False,
        node_lifecycle=TIMINGS,
        admission=AdmissionConfig(TOLERATION_SECONDS, TOLERATION_SECONDS),
    ) as emulator:
        api = config.new_client_from_config(str(emulator.write_kubeconfig(tmp_path / "kc")))
        yield client.CoreV1Api(api)
        api.close()


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def renew_lease(core: client.CoreV1Api, name: str) -> None:
    leases = client.CoordinationV1Api(core.api_client)
    body = {
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 1, "renewTime": micro_now()},
    }
    try:
        leases.patch_namespaced_lease(name, "kube-node-lease", {"spec": body["spec"]})
    except client.ApiException as error:
        if error.status != 404:
            raise
        leases.create_namespaced_lease("kube-node-lease", body)


def bound_pod(name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> Any:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name}, "spec": spec}


def ready(core: client.CoreV1Api, node: str) -> Any:
    return next(c for c in core.read_node(node).status.conditions if c.type == "Ready")


def taint_keys(core: client.CoreV1Api, node: str) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in core.read_node(node).spec.taints or []}


def deleting(core: client.CoreV1Api, name: str) -> bool:
    return core.read_namespaced_pod(name, "default").metadata.deletion_timestamp is not None


def test_admission_gives_pods_the_configured_default_tolerations(core: client.CoreV1Api) -> None:
    core.create_node(ready_node("n"))
    pod = core.create_namespaced_pod("default", bound_pod("p", "n"))
    assert {(t.key, t.toleration_seconds) for t in pod.spec.tolerations} == {
        (NOT_READY, TOLERATION_SECONDS),
        (UNREACHABLE, TOLERATION_SECONDS),
    }


def test_a_node_whose_lease_is_not_renewed_goes_unknown_and_its_pods_are_evicted(
    core: client.CoreV1Api,
) -> None:
    core.create_node(ready_node("silent", taints=[{"key": "owner", "effect": "NoSchedule"}]))
    renew_lease(core, "silent")
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    core.create_namespaced_pod("default", bound_pod("defaulted", "silent"))
    core.create_namespaced_pod("default", bound_pod("forever", "silent", forever))
    condition = eventually(lambda: (c := ready(core, "silent")).status == "Unknown" and c)
    assert condition.reason == "NodeStatusUnknown"
    assert taint_keys(core, "silent") == {
        ("owner", "NoSchedule"),
        (UNREACHABLE, "NoSchedule"),
        (UNREACHABLE, "NoExecute"),
    }
    eventually(lambda: deleting(core, "defaulted"))
    pod = core.read_namespaced_pod("defaulted", "default")
    disruption = next(c for c in pod.status.conditions if c.type == "DisruptionTarget")
    assert (disruption.status, disruption.reason) == ("True", "DeletionByTaintManager")
    assert pod.metadata.deletion_grace_period_seconds == 30, "the pod's default grace period"
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=defaulted,reason=TaintManagerEviction"
    ).items
    assert [e.message for e in events] == ["Marking for deletion Pod default/defaulted"]
    assert not deleting(core, "forever"), "a toleration without tolerationSeconds is forever"


def test_a_renewed_lease_keeps_the_node_ready_and_its_pods(core: client.CoreV1Api) -> None:
    core.create_node(ready_node("alive"))
    renew_lease(core, "alive")
    core.create_namespaced_pod("default", bound_pod("stays", "alive"))
    # A node without a lease next to it proves the grace period and tolerations have passed.
    core.create_node(ready_node("witness"))
    core.create_namespaced_pod("default", bound_pod("witness-pod", "witness"))
    eventually(lambda: (renew_lease(core, "alive"), deleting(core, "witness-pod"))[1])
    assert ready(core, "alive").status == "True"
    assert taint_keys(core, "alive") == set()
    assert not deleting(core, "stays")


def test_not_ready_taints_and_a_cancelled_eviction_when_the_node_recovers(
    core: client.CoreV1Api,
) -> None:
    core.create_node(ready_node("flaky"))
    long = [{"key": NOT_READY, "operator": "Exists", "tolerationSeconds": 60}]
    core.create_namespaced_pod("default", bound_pod("patient", "flaky", long))
    core.create_namespaced_pod(
        "default", bound_pod("intolerant", "flaky", [{"key": "x", "operator": "Exists"}])
    )

    def post(status: str) -> None:
        """The kubelet is alive (renews its lease) and says whether it is Ready."""
        renew_lease(core, "flaky")
        reason = "KubeletReady" if status == "True" else "KubeletNotReady"
        ready = {"type": "Ready", "status": status, "reason": reason}
        core.patch_node_status("flaky", {"status": {"conditions": [ready]}})

    post("False")
    eventually(lambda: (post("False"), (NOT_READY, "NoExecute") in taint_keys(core, "flaky"))[1])
    assert (NOT_READY, "NoSchedule") in taint_keys(core, "flaky")
    eventually(lambda: (post("False"), deleting(core, "intolerant"))[1])
    eventually(lambda: (post("True"), taint_keys(core, "flaky") == set())[1])
    cancelled = eventually(
        lambda: (
            core.list_namespaced_event(
                "default", field_selector="involvedObject.name=patient,reason=TaintManagerEviction"
            ).items
        )
    )
    assert cancelled[0].message == "Cancelling deletion of Pod default/patient"
    assert not deleting(core, "patient")
    assert ready(core, "flaky").status == "True"
