"""The node lifecycle controller and taint-based eviction, as kube-controller-manager runs them.

Three behaviours of a real control plane that decide whether a node's pods survive:

* **Node health.** Every `monitor_period` the controller looks at each node's Lease in
  `kube-node-lease` (its `renewTime`) and its Ready condition's `lastHeartbeatTime`. When neither
  has changed for `grace_period` (`--node-monitor-grace-period`), the kubelet's conditions (Ready,
  MemoryPressure, DiskPressure, PIDPressure) become `Unknown` with reason `NodeStatusUnknown`
  ("Kubelet stopped posting node status."), or `NodeStatusNeverUpdated` when the kubelet never
  posted one. As in the real controller, the clock is the controller's own: it measures how long
  it has seen no change, never compares the kubelet's timestamps with its clock.
* **Taints from conditions.** Ready=False gives `node.kubernetes.io/not-ready:NoExecute`, Ready
  Unknown gives `node.kubernetes.io/unreachable:NoExecute` (each with `timeAdded`; one replaces the
  other), and Ready=True removes both. The matching `NoSchedule` taints follow Ready too, and
  `memory-pressure`, `disk-pressure`, `pid-pressure` and `network-unavailable` `NoSchedule` taints
  follow their conditions (TaintNodesByCondition). Taints with other keys are never touched.
* **Taint-based eviction** (the taint eviction controller). A pod on a node with a `NoExecute`
  taint it does not tolerate is evicted at once; one whose matching tolerations all carry
  `tolerationSeconds` is evicted after the smallest of them, counted from when the controller
  first saw the taint; tolerations without `tolerationSeconds` tolerate forever. Removing the taint
  cancels a pending eviction (event `TaintManagerEviction` "Cancelling deletion of Pod ..."). An
  eviction sets the pod's `DisruptionTarget=True` condition (reason `DeletionByTaintManager`),
  records the `TaintManagerEviction` event "Marking for deletion Pod ns/name" and deletes the pod
  with its default grace period: a bound pod gets a `deletionTimestamp` and stays until its kubelet
  removes it.

The decisions are pure functions (`node_health_conditions`, `reconcile_taints`,
`eviction_delay`) tested without a server; `NodeLifecycleController` is the background thread.
The DefaultTolerationSeconds admission plugin, which gives pods their 300 s tolerations of the two
NoExecute taints, lives in `admission`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.admission import NOT_READY_TAINT_KEY, UNREACHABLE_TAINT_KEY
from orca_devstack.emulators.kube.registry import (
    LEASES,
    NODES,
    PODS,
    DeleteOptions,
    Registry,
    format_time,
    set_condition,
)
from orca_devstack.emulators.kube.scheduler import tolerates
from orca_devstack.emulators.kube.store import JsonObject

NODE_LEASE_NAMESPACE = "kube-node-lease"
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
CONDITION_TAINT_KEYS: Mapping[str, str] = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
CONTROLLER_TAINT_KEYS = frozenset(
    {NOT_READY_TAINT_KEY, UNREACHABLE_TAINT_KEY, *CONDITION_TAINT_KEYS.values()}
)
NODE_CONTROLLER = "node-controller"
TAINT_EVICTION_CONTROLLER = "taint-eviction-controller"


@dataclass(frozen=True)
class LifecycleTimings:
    """kube-controller-manager's timing flags, in seconds (its defaults)."""

    monitor_period: float = 5.0
    """`--node-monitor-period`: how often node health and taints are checked."""
    grace_period: float = 50.0
    """`--node-monitor-grace-period` (50 s in current releases, 40 s in older ones): a node whose
    Lease and status have not changed for this long is marked Unknown."""


DEFAULT_TIMINGS = LifecycleTimings()


# -- pure decisions ----------------------------------------------------------------------------


def condition_status(node: Mapping[str, Any], kind: str) -> str | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status"))
    return None


def heartbeat_signature(
    node: Mapping[str, Any], lease: Mapping[str, Any] | None
) -> tuple[str, str]:
    """What changes whenever the kubelet shows it is alive: its Lease renewal or a status post."""
    ready: Mapping[str, Any] = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    return renew, str(ready.get("lastHeartbeatTime") or "")


def node_health_conditions(conditions: Iterable[Mapping[str, Any]], now: str) -> list[JsonObject]:
    """The kubelet's conditions set to Unknown, as the controller writes them for a silent node."""
    result = [dict(c) for c in conditions]
    by_type = {c.get("type"): c for c in result}
    for kind in KUBELET_CONDITIONS:
        existing = by_type.get(kind)
        if existing is None:
            result.append(
                {
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            )
        elif existing.get("status") != "Unknown":
            existing.update(
                {
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": now,
                }
            )
    return result


def wanted_controller_taints(node: Mapping[str, Any]) -> list[JsonObject]:
    """The taints the controller wants on `node` now, without `timeAdded`."""
    ready = condition_status(node, "Ready")
    taints: list[JsonObject] = []
    if ready == "False":
        taints += [
            {"key": NOT_READY_TAINT_KEY, "effect": "NoSchedule"},
            {"key": NOT_READY_TAINT_KEY, "effect": "NoExecute"},
        ]
    elif ready == "Unknown":
        taints += [
            {"key": UNREACHABLE_TAINT_KEY, "effect": "NoSchedule"},
            {"key": UNREACHABLE_TAINT_KEY, "effect": "NoExecute"},
        ]
    for kind, key in CONDITION_TAINT_KEYS.items():
        if condition_status(node, kind) == "True":
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


def reconcile_taints(node: Mapping[str, Any], now: str) -> list[JsonObject] | None:
    """The node's taints with the controller's brought up to date; None when nothing changes.

    Taints of other owners stay as they are, in their order; a controller taint already present
    keeps its `timeAdded`; a new NoExecute taint gets `timeAdded` = `now`.
    """
    current = list((node.get("spec") or {}).get("taints") or [])
    wanted = wanted_controller_taints(node)
    wanted_keys = {(t["key"], t["effect"]) for t in wanted}
    kept = [
        t
        for t in current
        if t.get("key") not in CONTROLLER_TAINT_KEYS
        or (t.get("key"), t.get("effect")) in wanted_keys
    ]
    present = {(t.get("key"), t.get("effect")) for t in kept}
    for taint in wanted:
        if (taint["key"], taint["effect"]) not in present:
            added = dict(taint)
            if added["effect"] == "NoExecute":
                added["timeAdded"] = now
            kept.append(added)
    return None if kept == current else kept


def eviction_delay(
    tolerations: Iterable[Mapping[str, Any]], taints: Iterable[Mapping[str, Any]]
) -> float | None:
    """Seconds until a pod on a node with `taints` must go; None when it may stay forever.

    0 means at once: some NoExecute taint is not tolerated. Otherwise the smallest
    `tolerationSeconds` among the tolerations that match a NoExecute taint (negative counts as 0);
    a matching toleration without `tolerationSeconds` tolerates forever.
    """
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return None
    tolerations = list(tolerations)
    smallest: float | None = None
    for taint in no_execute:
        matching = [t for t in tolerations if tolerates([t], taint)]
        if not matching:
            return 0.0
        for toleration in matching:
            seconds = toleration.get("tolerationSeconds")
            if seconds is None:
                continue
            value = max(float(seconds), 0.0)
            smallest = value if smallest is None else min(smallest, value)
    return smallest


# -- the controller ----------------------------------------------------------------------------


@dataclass
class _Observation:
    signature: tuple[str, str]
    seen_at: float


@dataclass
class _ScheduledEviction:
    uid: str
    started_at: float
    due_at: float


class NodeLifecycleController:
    """Background thread: node health, taints from conditions and taint-based eviction."""

    def __init__(
        self,
        registry: Registry,
        timings: LifecycleTimings = DEFAULT_TIMINGS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self.timings = timings
        self._clock = clock
        self._observed: dict[str, _Observation] = {}
        self._evictions: dict[tuple[str, str], _ScheduledEviction] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="kube-emulator-node-lifecycle", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self.timings.monitor_period):
            try:
                self.monitor()
            except errors.ApiError:
                continue  # lost a race with a client write; the next pass looks again

    def monitor(self) -> None:
        """One pass: node health, then taints, then evictions."""
        now = self._clock()
        nodes = list(self._registry.store.iter_objects(NODES))
        names = set()
        for node in nodes:
            name = node["metadata"]["name"]
            names.add(name)
            node = self._update_health(node, now)
            self._update_taints(node)
        for gone in set(self._observed) - names:
            del self._observed[gone]
        self._evict(now)

    def _update_health(self, node: JsonObject, now: float) -> JsonObject:
        name = node["metadata"]["name"]
        lease = self._registry.store.get(LEASES, NODE_LEASE_NAMESPACE, name)
        signature = heartbeat_signature(node, lease)
        observed = self._observed.get(name)
        if observed is None or observed.signature != signature:
            self._observed[name] = _Observation(signature, now)
            return node
        if now - observed.seen_at < self.timings.grace_period:
            return node
        if all(condition_status(node, kind) == "Unknown" for kind in KUBELET_CONDITIONS):
            return node
        moment = format_time(self._registry.clock())

        def mark_unknown(candidate: JsonObject) -> None:
            status = candidate.setdefault("status", {})
            status["conditions"] = node_health_conditions(status.get("conditions") or [], moment)

        try:
            return self._registry.mutate(NODES, "", name, mark_unknown, subresource="status")
        except errors.ApiError:
            return node

    def _update_taints(self, node: JsonObject) -> None:
        moment = format_time(self._registry.clock())
        if reconcile_taints(node, moment) is None:
            return

        def retaint(candidate: JsonObject) -> None:
            taints = reconcile_taints(candidate, moment)
            if taints is not None:
                candidate.setdefault("spec", {})["taints"] = taints

        try:
            self._registry.mutate(NODES, "", node["metadata"]["name"], retaint)
        except errors.ApiError:
            return

    def _evict(self, now: float) -> None:
        nodes = {n["metadata"]["name"]: n for n in self._registry.store.iter_objects(NODES)}
        seen: set[tuple[str, str]] = set()
        for pod in self._registry.store.iter_objects(PODS):
            metadata = pod["metadata"]
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name or metadata.get("deletionTimestamp"):
                continue
            key = (metadata["namespace"], metadata["name"])
            seen.add(key)
            node = nodes.get(node_name)
            taints = ((node or {}).get("spec") or {}).get("taints") or []
            delay = eviction_delay((pod.get("spec") or {}).get("tolerations") or [], taints)
            scheduled = self._evictions.get(key)
            if scheduled is not None and scheduled.uid != metadata["uid"]:
                scheduled = None  # a new pod of the same name
            if delay is None:
                if scheduled is not None:
                    del self._evictions[key]
                    self._record(pod, "Normal", f"Cancelling deletion of Pod {key[0]}/{key[1]}")
                continue
            started = scheduled.started_at if scheduled is not None else now
            self._evictions[key] = _ScheduledEviction(metadata["uid"], started, started + delay)
            if now >= started + delay:
                self._delete(pod)
                del self._evictions[key]
        for gone in set(self._evictions) - seen:
            del self._evictions[gone]

    def _delete(self, pod: JsonObject) -> None:
        metadata = pod["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]

        def mark(candidate: JsonObject) -> None:
            set_condition(
                candidate,
                "DisruptionTarget",
                "True",
                self._registry.clock(),
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
            )

        try:
            marked = self._registry.mutate(PODS, namespace, name, mark, subresource="status")
            self._record(marked, "Normal", f"Marking for deletion Pod {namespace}/{name}")
            self._registry.delete(
                PODS, namespace, name, DeleteOptions(precondition_uid=metadata["uid"])
            )
        except errors.ApiError:
            return  # gone or replaced meanwhile

    def _record(self, pod: JsonObject, event_type: str, message: str) -> None:
        try:
            self._registry.record_event(
                pod, PODS, event_type, "TaintManagerEviction", message, TAINT_EVICTION_CONTROLLER
            )
        except errors.ApiError:
            return
