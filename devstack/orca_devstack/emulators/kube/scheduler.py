"""A minimal scheduler: filters as kube-scheduler's default plugins do, then binds.

The fit logic is pure functions (`fit_failures`, `choose_node`) so it can be tested without a
server. `Scheduler` is the background thread: it wakes on every pod or node write (and on a slow
timer), binds each pending pod it can place, and marks the others `PodScheduled=False` with reason
`Unschedulable`, a message in kube-scheduler's words and a `FailedScheduling` event. It does no
scoring beyond "fewest pods bound", no preemption and no pod (anti-)affinity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.control_loop import ControlLoop
from orca_devstack.emulators.kube.quantity import InvalidQuantityError, parse_quantity
from orca_devstack.emulators.kube.registry import (
    NODES,
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    PODS,
    STORAGE_CLASSES,
    Registry,
    set_condition,
)
from orca_devstack.emulators.kube.store import JsonObject
from orca_devstack.emulators.kube.volume_binder import (
    BOUND_BY_CONTROLLER,
    claim_ref,
    refers_to,
    volume_matches,
)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
_SCHEDULING_EFFECTS = ("NoSchedule", "NoExecute")
_TERMINAL_PHASES = ("Succeeded", "Failed")


def _quantities(resources: Mapping[str, Any] | None) -> dict[str, Fraction]:
    amounts: dict[str, Fraction] = {}
    for name, value in (resources or {}).items():
        try:
            amounts[name] = parse_quantity(value)
        except InvalidQuantityError:
            continue
    return amounts


def pod_requests(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    """Effective requests: the sum over containers, at least the largest init container's."""
    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(_quantities((container.get("resources") or {}).get("requests")))
    result: dict[str, Fraction] = {name: Fraction(value) for name, value in total.items()}
    for container in spec.get("initContainers") or []:
        for name, value in _quantities((container.get("resources") or {}).get("requests")).items():
            result[name] = max(result.get(name, Fraction(0)), value)
    for name, value in _quantities(spec.get("overhead")).items():
        result[name] = result.get(name, Fraction(0)) + value
    return result


@dataclass
class NodeUsage:
    """What the pods bound to a node take of it: kube-scheduler's NodeInfo, kept per pass and
    updated as pods are bound, so placing P pods on a node of B costs P + B, not P x B."""

    pods: int = 0
    requested: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, pods_on_node: Iterable[Mapping[str, Any]]) -> NodeUsage:
        usage = cls()
        for pod in pods_on_node:
            usage.add(pod)
        return usage

    def add(self, pod: Mapping[str, Any], requests: Mapping[str, Fraction] | None = None) -> None:
        self.pods += 1
        self.requested.update(pod_requests(pod) if requests is None else requests)


def _usage(on_node: NodeUsage | Iterable[Mapping[str, Any]]) -> NodeUsage:
    return on_node if isinstance(on_node, NodeUsage) else NodeUsage.of(on_node)


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = expression.get("key", "")
    operator = expression.get("operator")
    values = expression.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            label_value, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return label_value > bound if operator == "Gt" else label_value < bound
    return False


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    field_values = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    return all(_expression_matches(e, labels) for e in expressions) and all(
        _expression_matches(f, field_values) for f in fields
    )


def node_selector_matches(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or None
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def node_is_ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _taint_text(taint: Mapping[str, Any]) -> str:
    return f"{{{taint.get('key', '')}: {taint.get('value', '')}}}"


def fit_failures(
    pod: Mapping[str, Any],
    node: Mapping[str, Any],
    pods_on_node: NodeUsage | Iterable[Mapping[str, Any]],
) -> list[str]:
    """Why `pod` cannot go to `node`, in kube-scheduler's words; empty when it fits.

    As in kube-scheduler, filters run in order and the first failing one decides, except that the
    resource filter reports every insufficient resource.
    """
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    node_spec = node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(
        tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        return ["node(s) were unschedulable"]
    taints = list(node_spec.get("taints") or [])
    if not node_is_ready(node):
        # The node lifecycle controller taints a node that is not Ready.
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in _SCHEDULING_EFFECTS and not tolerates(tolerations, taint):
            return [f"node(s) had untolerated taint {_taint_text(taint)}"]
    if not node_selector_matches(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = _quantities((node.get("status") or {}).get("allocatable"))
    usage = _usage(pods_on_node)
    used = usage.requested
    failures: list[str] = []
    if usage.pods + 1 > allocatable.get("pods", Fraction(0)):
        failures.append("Too many pods")
    for name, amount in sorted(pod_requests(pod).items()):
        if amount <= 0:
            continue
        if used.get(name, Fraction(0)) + amount > allocatable.get(name, Fraction(0)):
            failures.append(f"Insufficient {name}")
    return failures


# -- VolumeBinding ------------------------------------------------------------------------------

VOLUME_NODE_AFFINITY_CONFLICT = "node(s) had volume node affinity conflict"
BOUND_TO_MISSING_VOLUME = (
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
)
NO_VOLUME_TO_BIND = "node(s) didn't find available persistent volumes to bind"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node"
_NO_PROVISIONER = "kubernetes.io/no-provisioner"


@dataclass(frozen=True)
class VolumeState:
    """The claims, volumes and classes VolumeBinding reads (one snapshot per pass)."""

    claims: Mapping[tuple[str, str], Mapping[str, Any]]
    volumes: Mapping[str, Mapping[str, Any]]
    classes: Mapping[str, Mapping[str, Any]]

    def claim_class(self, claim: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return self.classes.get((claim.get("spec") or {}).get("storageClassName") or "")

    def is_delayed(self, claim: Mapping[str, Any]) -> bool:
        storage_class = self.claim_class(claim)
        return (storage_class or {}).get("volumeBindingMode") == "WaitForFirstConsumer"


def pod_claim_names(pod: Mapping[str, Any]) -> list[str]:
    return [
        str(volume["persistentVolumeClaim"]["claimName"])
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(volume.get("persistentVolumeClaim"), dict)
        and volume["persistentVolumeClaim"].get("claimName")
    ]


def _pod_claims(pod: Mapping[str, Any], state: VolumeState) -> list[Mapping[str, Any]]:
    namespace = pod["metadata"].get("namespace", "")
    return [
        state.claims[(namespace, name)]
        for name in pod_claim_names(pod)
        if (namespace, name) in state.claims
    ]


def volume_prefilter(pod: Mapping[str, Any], state: VolumeState) -> str | None:
    """VolumeBinding's PreFilter: why no node can take the pod at all, or None."""
    namespace = pod["metadata"].get("namespace", "")
    unbound_immediate = False
    for name in pod_claim_names(pod):
        claim = state.claims.get((namespace, name))
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if not (claim.get("spec") or {}).get("volumeName") and not state.is_delayed(claim):
            unbound_immediate = True
    return UNBOUND_IMMEDIATE if unbound_immediate else None


def volume_affinity_matches(volume: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def _static_candidate(
    claim: Mapping[str, Any], node: Mapping[str, Any], state: VolumeState
) -> str | None:
    fitting = [
        volume
        for volume in state.volumes.values()
        if not (volume.get("spec") or {}).get("claimRef")
        and (volume.get("status") or {}).get("phase") == "Available"
        and not volume["metadata"].get("deletionTimestamp")
        and volume_matches(volume, claim)
        and volume_affinity_matches(volume, node)
    ]
    if not fitting:
        return None
    return str(
        min(
            fitting,
            key=lambda v: parse_quantity((v["spec"].get("capacity") or {}).get("storage", 0)),
        )["metadata"]["name"]
    )


def volume_filter(pod: Mapping[str, Any], node: Mapping[str, Any], state: VolumeState) -> list[str]:
    """VolumeBinding's Filter for one node: bound volumes' node affinity, and whether each
    delayed unbound claim has a volume to bind or a provisioner."""
    failures: list[str] = []
    for claim in _pod_claims(pod, state):
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            volume = state.volumes.get(volume_name)
            if volume is None:
                failures.append(BOUND_TO_MISSING_VOLUME)
            elif not volume_affinity_matches(volume, node):
                failures.append(VOLUME_NODE_AFFINITY_CONFLICT)
            continue
        provisioner = (state.claim_class(claim) or {}).get("provisioner")
        if (
            provisioner in (None, "", _NO_PROVISIONER)
            and _static_candidate(claim, node, state) is None
        ):
            failures.append(NO_VOLUME_TO_BIND)
    return sorted(set(failures))


def unschedulable_message(node_count: int, failures: Mapping[str, list[str]]) -> str:
    if node_count == 0:
        return "no nodes available to schedule pods"
    counts: Counter[str] = Counter(reason for reasons in failures.values() for reason in reasons)
    parts = sorted(f"{count} {reason}" for reason, count in counts.items())
    message = f"0/{node_count} nodes are available"
    if parts:
        message += ": " + ", ".join(parts)
    return message + "."


def choose_node(
    pod: Mapping[str, Any],
    nodes: Iterable[Mapping[str, Any]],
    pods_by_node: Mapping[str, NodeUsage | list[Mapping[str, Any]]],
    volumes: VolumeState | None = None,
) -> tuple[str | None, str]:
    """The node to bind to (fewest pods, then name) or None and the Unschedulable message."""
    node_list = list(nodes)
    if volumes is not None and node_list:
        rejected = volume_prefilter(pod, volumes)
        if rejected:
            return None, f"0/{len(node_list)} nodes are available: {rejected}."
    failures: dict[str, list[str]] = {}
    fitting: list[tuple[int, str]] = []
    for node in node_list:
        name = node["metadata"]["name"]
        usage = _usage(pods_by_node.get(name, []))
        reasons = fit_failures(pod, node, usage)
        if not reasons and volumes is not None:
            reasons = volume_filter(pod, node, volumes)
        if reasons:
            failures[name] = reasons
        else:
            fitting.append((usage.pods, name))
    if fitting:
        return min(fitting)[1], ""
    return None, unschedulable_message(len(node_list), failures)


def _claimed_volume(claim: Mapping[str, Any], state: VolumeState) -> str | None:
    """A volume whose claimRef already names this (unbound) claim."""
    for volume in state.volumes.values():
        if (volume.get("spec") or {}).get("claimRef") and refers_to(volume, claim):
            return str(volume["metadata"]["name"])
    return None


def _is_pending(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == DEFAULT_SCHEDULER_NAME
        and not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


class Scheduler(ControlLoop):
    """The control loop binding pending pods; woken by pod, node, claim and volume writes."""

    name = "scheduler"
    watched = (PODS, NODES, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES)

    def __init__(self, registry: Registry, resync_seconds: float = 5.0) -> None:
        super().__init__(registry, resync_seconds)
        self._requests: dict[str, dict[str, Fraction]] = {}
        """Pod UID → its effective requests, from the last pass (a pod's resources are
        immutable, so parsing them once per pod is enough)."""

    def reconcile(self) -> None:
        self.schedule_pending()

    def schedule_pending(self) -> None:
        """One scheduling pass over every pending pod."""
        nodes = list(self.registry.store.iter_objects(NODES))
        pods = list(self.registry.store.iter_objects(PODS))
        pending = sorted(
            (pod for pod in pods if _is_pending(pod)),
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        )
        if not pending:
            return
        pods_by_node: dict[str, NodeUsage] = {}
        known, self._requests = self._requests, {}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES:
                uid = str(pod["metadata"].get("uid", ""))
                requests = known.get(uid)
                if requests is None:
                    requests = pod_requests(pod)
                self._requests[uid] = requests
                pods_by_node.setdefault(node_name, NodeUsage()).add(pod, requests)
        store = self.registry.store
        volumes = VolumeState(
            claims={
                (c["metadata"]["namespace"], c["metadata"]["name"]): c
                for c in store.iter_objects(PERSISTENT_VOLUME_CLAIMS)
            },
            volumes={v["metadata"]["name"]: v for v in store.iter_objects(PERSISTENT_VOLUMES)},
            classes={c["metadata"]["name"]: c for c in store.iter_objects(STORAGE_CLASSES)},
        )
        for pod in pending:
            if self.stopping:
                return
            unbound = [
                c for c in _pod_claims(pod, volumes) if not (c.get("spec") or {}).get("volumeName")
            ]
            if unbound and all(
                volumes.is_delayed(c)
                and (
                    SELECTED_NODE_ANNOTATION in (c["metadata"].get("annotations") or {})
                    or _claimed_volume(c, volumes) is not None
                )
                for c in unbound
            ):
                continue  # PreBind: waiting for the claims to be bound
            node_name, message = choose_node(pod, nodes, pods_by_node, volumes)
            if node_name is not None and unbound:
                self._bind_volumes(unbound, node_name, nodes, volumes)
            elif node_name is not None:
                self._bind(pod, node_name)
                pods_by_node.setdefault(node_name, NodeUsage()).add(pod)
            else:
                self._mark_unschedulable(pod, message)

    def _bind_volumes(
        self,
        claims: list[Mapping[str, Any]],
        node_name: str,
        nodes: list[JsonObject],
        volumes: VolumeState,
    ) -> None:
        """PreBind for delayed claims: bind a matching volume, or select the node for the
        claim's provisioner; the pod is bound once every claim is Bound."""
        node = next(n for n in nodes if n["metadata"]["name"] == node_name)
        for claim in claims:
            metadata = claim["metadata"]
            volume_name = _static_candidate(claim, node, volumes)
            try:
                if volume_name is not None:

                    def bind(candidate: JsonObject, claim: Mapping[str, Any] = claim) -> None:
                        candidate["spec"]["claimRef"] = claim_ref(claim)
                        annotations = candidate["metadata"].setdefault("annotations", {})
                        annotations[BOUND_BY_CONTROLLER] = "yes"

                    self.registry.mutate(PERSISTENT_VOLUMES, "", volume_name, bind)
                else:

                    def select(candidate: JsonObject) -> None:
                        annotations = candidate["metadata"].setdefault("annotations", {})
                        annotations[SELECTED_NODE_ANNOTATION] = node_name

                    self.registry.mutate(
                        PERSISTENT_VOLUME_CLAIMS, metadata["namespace"], metadata["name"], select
                    )
            except errors.ApiError:
                continue

    def _bind(self, pod: JsonObject, node_name: str) -> None:
        metadata = pod["metadata"]
        try:
            self.registry.bind(
                metadata["namespace"], metadata["name"], {"target": {"name": node_name}}
            )
        except errors.ApiError:
            return  # deleted or bound meanwhile
        bound = self.registry.store.get(PODS, metadata["namespace"], metadata["name"])
        if bound is not None:
            self.registry.record_event(
                bound,
                PODS,
                "Normal",
                "Scheduled",
                f"Successfully assigned {metadata['namespace']}/{metadata['name']} to {node_name}",
                DEFAULT_SCHEDULER_NAME,
            )

    def _mark_unschedulable(self, pod: JsonObject, message: str) -> None:
        existing = next(
            (
                c
                for c in (pod.get("status") or {}).get("conditions") or []
                if c.get("type") == "PodScheduled"
            ),
            None,
        )
        if existing and existing.get("status") == "False" and existing.get("message") == message:
            return  # already says so; a real scheduler would back off, not repeat the event

        def mark(candidate: JsonObject) -> None:
            set_condition(
                candidate, "PodScheduled", "False", self.registry.clock(), "Unschedulable", message
            )

        metadata = pod["metadata"]
        try:
            updated = self.registry.mutate(
                PODS, metadata["namespace"], metadata["name"], mark, subresource="status"
            )
        except errors.ApiError:
            return
        self.registry.record_event(
            updated, PODS, "Warning", "FailedScheduling", message, DEFAULT_SCHEDULER_NAME
        )
