"""From the instance's container state events to the pod status the kubelet would report.

The bootstrap script on the instance reports every container state change as one JSON event
(docs/instance-contract.md, "Container state events"). The monitor activity reads them for all
pods at once; this module turns one pod's events into its Kubernetes status: phase, the four
standard conditions, container statuses with restart counts, and the `PATCH pods/status` body.

Pure functions, following the kubelet's own phase rules (`getPhase` in pkg/kubelet): a container
waiting after having terminated is restarting, and counts as running; with `Always` a pod never
succeeds while its instance lives; with `OnFailure` a non-zero exit restarts; with `Never`
everything that stops stays stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from orca.instance_contract import ContainerReason, ContainerStateEvent
from orca.pod_phase import TERMINAL_PHASES, PodPhase


class PodConditionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    status: Literal["True", "False"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    """RFC 3339, seconds precision, `Z`."""


class PodStatusView(BaseModel):
    """A pod's status as ORCA derives it; `to_status_patch` renders it for the API server."""

    model_config = ConfigDict(frozen=True)

    phase: PodPhase
    conditions: tuple[PodConditionView, ...]
    container_statuses: tuple[dict[str, Any], ...]
    init_container_statuses: tuple[dict[str, Any], ...]
    host_ip: str | None = None
    pod_ip: str | None = None
    start_time: str | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def exit_codes(self) -> dict[str, int]:
        """Exit code of every app container that has terminated (last termination)."""
        codes: dict[str, int] = {}
        for status in self.container_statuses:
            terminated = status["state"].get("terminated")
            if terminated is not None:
                codes[status["name"]] = terminated["exitCode"]
        return codes

    def condition(self, kind: str) -> PodConditionView | None:
        return next((c for c in self.conditions if c.type == kind), None)


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Track:
    """One container's state as its events are replayed in order."""

    def __init__(
        self,
        name: str,
        image: str,
        *,
        init: bool,
        pod_label: str = "",
        restart_base: int = 0,
        last_terminated: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.image = image
        self.init = init
        self.pod_label = pod_label
        self.backing_off = False
        """In `CrashLoopBackOff`: the next start is the restart the count has not had yet."""
        self.state: dict[str, Any] = {
            "waiting": {"reason": "PodInitializing" if not init else "ContainerCreating"}
        }
        self.last_state: dict[str, Any] = (
            {"terminated": dict(last_terminated)} if last_terminated else {}
        )
        self.restart_count = restart_base
        self.started_at: str | None = None
        self.changed_at: datetime | None = None

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def restarting(self) -> bool:
        return "waiting" in self.state and "terminated" in self.last_state

    @property
    def succeeded(self) -> bool:
        terminated = self.terminated
        return terminated is not None and terminated["exitCode"] == 0

    def apply(self, event: ContainerStateEvent) -> None:
        at = rfc3339(event.at)
        back_off = event.reason == ContainerReason.CRASH_LOOP_BACK_OFF
        if event.state != "terminated" and self.terminated is not None:
            self.last_state = {"terminated": self.terminated}
            if back_off:  # as the kubelet counts: once the restart is made, not while it waits
                self.backing_off = True
            else:  # the runner started it again at once: one more restart
                self.restart_count += 1
        elif self.backing_off and not back_off:
            self.backing_off = False
            if event.state != "terminated":
                self.restart_count += 1
        if event.state == "waiting" and back_off:
            self.state = {
                "waiting": {
                    "reason": ContainerReason.CRASH_LOOP_BACK_OFF.value,
                    "message": back_off_message(
                        event.back_off_seconds or 0, self.name, self.pod_label
                    ),
                }
            }
        elif event.state == "waiting":
            self.state = {"waiting": {"reason": event.reason or "ContainerCreating"}}
        elif event.state == "running":
            if not self.running:
                self.started_at = at
            self.state = {"running": {"startedAt": self.started_at or at}}
        else:
            code = event.exit_code if event.exit_code is not None else 1
            reason = event.reason or ("Completed" if code == 0 else "Error")
            self.state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": self.started_at or at,
                    "finishedAt": at,
                }
            }
            self.started_at = None
        self.changed_at = event.at

    def status(self) -> dict[str, Any]:
        ready = self.succeeded if self.init else self.running
        result: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": ready,
            "restartCount": self.restart_count,
            "started": self.running,
            "state": self.state,
            "lastState": self.last_state,
        }
        return result


def go_duration(seconds: float) -> str:
    """A duration as Go's `time.Duration.String` writes it: `200ms`, `10s`, `1m20s`, `5m0s`."""
    if seconds < 1:
        return f"{round(seconds * 1000):d}ms"
    minutes, rest = divmod(round(seconds * 1000), 60_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def back_off_message(seconds: float, container: str, pod_label: str) -> str:
    """The kubelet's CrashLoopBackOff message (pkg/kubelet/kuberuntime, doBackOff)."""
    return (
        f"back-off {go_duration(seconds)} restarting failed container={container} pod={pod_label}"
    )


BACK_OFF_EVENT = "BackOff"
"""The reason of the kubelet's Warning event for a container in CrashLoopBackOff."""


def back_off_event_message(container: str, pod: Mapping[str, Any]) -> str:
    """The kubelet's `BackOff` Warning event message (doBackOff, events.BackOffStartContainer)."""
    return (
        f"Back-off restarting failed container {container} in pod "
        f"{_pod_label(pod.get('metadata') or {})}"
    )


def containers_backing_off(view: PodStatusView) -> tuple[tuple[str, int], ...]:
    """(name, restartCount) of each app container waiting in `CrashLoopBackOff`: one back-off
    per pair, the occasion of one `BackOff` event."""
    return tuple(
        (str(s["name"]), int(s.get("restartCount", 0)))
        for s in view.container_statuses
        if (s["state"].get("waiting") or {}).get("reason") == ContainerReason.CRASH_LOOP_BACK_OFF
    )


def _pod_label(metadata: Mapping[str, Any]) -> str:
    """`<name>_<namespace>(<uid>)`, as the kubelet names a pod in its messages (format.Pod)."""
    return f"{metadata.get('name', '')}_{metadata.get('namespace', '')}({metadata.get('uid', '')})"


def _containers(
    spec: Mapping[str, Any],
    key: str,
    *,
    init: bool,
    pod_label: str = "",
    restart_base: Mapping[str, int] | None = None,
    last_terminated: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[_Track]:
    base = restart_base or {}
    last = last_terminated or {}
    return [
        _Track(
            str(c.get("name", "")),
            str(c.get("image", "")),
            init=init,
            pod_label=pod_label,
            restart_base=base.get(str(c.get("name", "")), 0),
            last_terminated=last.get(str(c.get("name", ""))),
        )
        for c in spec.get(key) or ()
    ]


def status_inputs(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a pod manifest that `pod_status_from_events` and `monitor_pod` read: its
    identity and creation time, its restart policy, its containers' names and images, and the
    `PodScheduled` condition. The workflow hands `monitor_pod` this instead of the whole
    manifest (env, volumes, annotations, tolerations… would only grow the history)."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    slim_metadata = {
        k: metadata[k] for k in ("name", "namespace", "uid", "creationTimestamp") if k in metadata
    }
    slim_spec: dict[str, Any] = {
        key: [{k: c[k] for k in ("name", "image") if k in c} for c in spec.get(key) or ()]
        for key in ("initContainers", "containers")
        if key in spec
    }
    if "restartPolicy" in spec:
        slim_spec["restartPolicy"] = spec["restartPolicy"]
    slim: dict[str, Any] = {"metadata": slim_metadata, "spec": slim_spec}
    scheduled = [c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"]
    if scheduled:
        slim["status"] = {"conditions": scheduled}
    return slim


def pod_status_from_events(
    pod: Mapping[str, Any],
    events: Sequence[ContainerStateEvent],
    *,
    host_ip: str | None,
    pod_ip: str | None,
    started_at: datetime | None,
    restart_base: Mapping[str, int] | None = None,
    last_terminated: Mapping[str, Mapping[str, Any]] | None = None,
) -> PodStatusView:
    """The pod's status after `events` (any order; other pods' events are ignored).

    `restart_base` and `last_terminated` carry the app containers' restarts and last
    termination from the pod's earlier instances (spot recovery): the counts start there, and
    that termination is `lastState` until a newer one replaces it."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    uid = metadata.get("uid")
    policy = spec.get("restartPolicy") or "Always"
    inits = _containers(spec, "initContainers", init=True, pod_label=_pod_label(metadata))
    apps = _containers(
        spec,
        "containers",
        init=False,
        pod_label=_pod_label(metadata),
        restart_base=restart_base,
        last_terminated=last_terminated,
    )
    by_name = {(t.name, t.init): t for t in (*inits, *apps)}

    ordered = sorted(
        (e for e in events if not uid or e.pod_uid == uid), key=lambda e: e.at
    )  # sorted() is stable: same-instant events keep their log order
    for event in ordered:
        track = by_name.get((event.container, event.init))
        if track is not None:
            track.apply(event)

    initialized = all(t.succeeded for t in inits)
    if initialized:
        for track in apps:
            if track.state == {"waiting": {"reason": "PodInitializing"}}:
                track.state = {"waiting": {"reason": "ContainerCreating"}}

    phase, message = _phase(policy, inits, apps, initialized)
    fallback_time = rfc3339(started_at) if started_at else None

    def when(tracks: Sequence[_Track]) -> str | None:
        moments = [t.changed_at for t in tracks if t.changed_at is not None]
        return rfc3339(max(moments)) if moments else fallback_time

    unready = [t.name for t in apps if not t.running]
    incomplete = [t.name for t in inits if not t.succeeded]
    terminal = phase in TERMINAL_PHASES
    ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    conditions = (
        PodConditionView(
            type="PodScheduled",
            status="True",
            last_transition_time=_scheduled_time(pod) or fallback_time,
        ),
        PodConditionView(
            type="Initialized",
            status="True" if initialized else "False",
            reason=None if initialized else "ContainersNotInitialized",
            message=None
            if initialized
            else f"containers with incomplete status: [{' '.join(incomplete)}]",
            last_transition_time=when(inits),
        ),
        *(
            PodConditionView(
                type=kind,
                status="True" if not unready and apps else "False",
                reason=None if not unready and apps else ready_reason,
                message=None
                if not unready and apps
                else f"containers with unready status: [{' '.join(unready)}]",
                last_transition_time=when(apps) if ordered else fallback_time,
            )
            for kind in ("ContainersReady", "Ready")
        ),
    )
    return PodStatusView(
        phase=phase,
        conditions=conditions,
        container_statuses=tuple(t.status() for t in apps),
        init_container_statuses=tuple(t.status() for t in inits),
        host_ip=host_ip,
        pod_ip=pod_ip,
        start_time=fallback_time,
        message=message,
    )


def _scheduled_time(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("lastTransitionTime"):
            return str(condition["lastTransitionTime"])
    created = (pod.get("metadata") or {}).get("creationTimestamp")
    return str(created) if created else None


def _describe_exit(track: _Track) -> str:
    terminated = track.terminated or {}
    return (
        f"{track.name} exited with code {terminated.get('exitCode')} ({terminated.get('reason')})"
    )


def _phase(
    policy: str, inits: Sequence[_Track], apps: Sequence[_Track], initialized: bool
) -> tuple[PodPhase, str | None]:
    if not initialized:
        failed = [t for t in inits if t.terminated is not None and not t.succeeded]
        if failed and policy == "Never":
            return PodPhase.FAILED, f"init container {_describe_exit(failed[0])}"
        return PodPhase.PENDING, None

    running = sum(1 for t in apps if t.running or t.restarting)
    waiting = sum(1 for t in apps if "waiting" in t.state and not t.restarting)
    stopped = [t for t in apps if t.terminated is not None]
    succeeded = [t for t in stopped if t.succeeded]
    if waiting or not apps:
        return PodPhase.PENDING, None  # one or more containers has not started yet
    if running:
        return PodPhase.RUNNING, None
    # every app container has terminated
    if policy == "Always":
        return PodPhase.RUNNING, None  # it will be restarted; only the instance's end stops it
    if len(succeeded) == len(stopped):
        return PodPhase.SUCCEEDED, "all containers exited with code 0"
    if policy == "OnFailure":
        return PodPhase.RUNNING, None  # the failed ones are restarted
    failed = [t for t in stopped if not t.succeeded]
    return PodPhase.FAILED, "; ".join(_describe_exit(t) for t in failed)


def pod_is_finished(view: PodStatusView, restart_policy: str) -> bool:
    """True when the containers are done for good and the instance can go: the pod is
    Succeeded or Failed. With `Always` nothing but a failure ends it (containers restart)."""
    if restart_policy == "Always":
        return view.phase is PodPhase.FAILED
    return view.phase in TERMINAL_PHASES


def to_status_patch(view: PodStatusView) -> dict[str, Any]:
    """The body of `PATCH pods/{name}/status` (merge or strategic merge patch). `None` values
    are sent as JSON null so that a stale reason or message is removed."""
    conditions = []
    for condition in view.conditions:
        item: dict[str, Any] = {"type": condition.type, "status": condition.status}
        if condition.reason is not None:
            item["reason"] = condition.reason
        if condition.message is not None:
            item["message"] = condition.message
        if condition.last_transition_time is not None:
            item["lastTransitionTime"] = condition.last_transition_time
        conditions.append(item)
    status: dict[str, Any] = {
        "phase": view.phase.value,
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}] if view.host_ip else None,
        "podIP": view.pod_ip,
        "podIPs": [{"ip": view.pod_ip}] if view.pod_ip else None,
        "startTime": view.start_time,
        "containerStatuses": [dict(s) for s in view.container_statuses],
        "initContainerStatuses": [dict(s) for s in view.init_container_statuses],
        "reason": view.reason,
        "message": view.message,
    }
    return {"status": status}


def incarnation_events(
    events: list[ContainerStateEvent], after: datetime | None
) -> list[ContainerStateEvent]:
    """The events of the current incarnation: those strictly after the second it began in
    (events carry whole seconds; the earlier instance's last ones came before its termination,
    and the new instance reports only after it launched and ran)."""
    if after is None:
        return events
    boundary = after.replace(microsecond=0)
    return [event for event in events if event.at > boundary]
