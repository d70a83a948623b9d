"""The chaos run: a burst of fuzzed pods while the stack is hurt, then an audit.

Run: `python -m tests.chaos.runner [--pods 120] [--seed 7]` (`make chaos`); the small seeded run
in `tests/chaos/test_chaos.py` is part of `make test`. It starts `ChaosStack` (the embedded stack
on free ports, ORCA's Kubernetes traffic through a dropping proxy), then:

1. **Faults first**: the AWS emulator's control API makes the first choice (`pods.FIRST_CHOICE`)
   short of capacity in one zone and answer `InsufficientInstanceCapacity` elsewhere for a while,
   throttles some `RunInstances` and `DescribeInstances` calls (`RequestLimitExceeded`) and slows
   `RunInstances` down, so launches are in flight when the worker dies.
2. **Burst**: the pods (drawn by hypothesis, `tests.chaos.pods`; about a third malformed) are
   created over a few seconds. At seeded random moments in that window the runner SIGKILLs the
   worker, the watcher and the Temporal server (each restarted at once on the same ports and
   files), and drops every Kubernetes connection, holding the reconnects while it pushes the
   emulator's event window past the watcher's resourceVersion, so the watch resumes into
   `410 Gone` and relists.
3. **Convergence**: until every valid pod is Running on exactly one instance and every invalid
   pod carries the `InvalidPodSpec` condition (or a timeout). Faults are then cleared and the
   instances counted per pod-UID tag.
4. **Teardown**: every pod deleted; wait until ORCA has released them and every PodLifecycle
   workflow has closed; count instances that are still alive (leaks).

Figures printed: pods converged, duplicate instances, leaked instances, instances for invalid
pods, invalid pods told, and how long `plan_launch` / `launch_instance` activities in flight at a
worker kill stalled (kill → a live worker runs them again, from their histories; target ≤ 30 s,
printed as PASS or MISS and never asserted: speed belongs in benchmarks). `kill_to_close_s`
adds the retried attempt's own work, which throttling stretches. The run fails (exit 1,
`ok: false`) on any duplicate, leak, unconverged pod, instance for an invalid pod or silent
invalid pod, or a process left running after the stack stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from kubernetes import client, config
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from orca import instance_tags
from orca.settings import load_settings
from orca.workflow_ids import POD_LIFECYCLE_QUERY
from tests.chaos.pods import FIRST_CHOICE, ChaosPod, draw_pods
from tests.chaos.stack import KILLABLE, ChaosStack

NAMESPACE = "default"
LABEL = "orca-chaos/run"
LAUNCHED_CONDITION = "orca.research/InstanceLaunched"
INVALID_REASON = "InvalidPodSpec"
STALL_TARGET_S = 30.0
STALLED_ACTIVITIES = ("plan_launch", "launch_instance")
"""The short activities whose heartbeat timeout bounds a stall after a worker kill."""
WATCH_DROPPED_LINE = "pod watch dropped"
WATCH_EXPIRED_LINE = "pod watch expired (410)"
"""What the watcher logs (`orca.watcher.pod_watch`) when a watch breaks and when it resumes
into 410 Gone; counted in its log, which survives its restarts."""
ALIVE_STATES = ("pending", "running", "stopping", "stopped")
CLOSE_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


@dataclass(frozen=True)
class ChaosOptions:
    pods: int = 10
    seed: int = 1
    kills_per_kind: int = 1
    """How many times each of the worker, the watcher and the Temporal server is killed."""
    watch_drops: int = 1
    create_spread_s: float = 4.0
    """The pods are created evenly over this window; the disruptions fall in it (and a little
    after)."""
    launch_delay_s: float = 1.0
    run_instances_latency_s: float = 1.0
    retained_events: int = 300
    converge_timeout_s: float = 240.0
    teardown_timeout_s: float = 180.0
    state_dir: Path | None = None
    say: Callable[[str], None] = print


@dataclass
class Disruption:
    kind: str
    planned_at_s: float
    started_at: float = 0.0
    done_at: float = 0.0
    detail: str = ""


@dataclass
class Census:
    """Instances per pod UID, from DescribeInstances over the cluster's tags."""

    by_uid: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    untagged_alive: list[str] = field(default_factory=list)

    def alive(self, uid: str) -> list[str]:
        return [i for i, state in self.by_uid.get(uid, []) if state in ALIVE_STATES]

    def ever(self, uid: str) -> int:
        return len(self.by_uid.get(uid, []))


# -- the run ---------------------------------------------------------------------------------
def run_chaos(options: ChaosOptions) -> dict[str, Any]:
    """Run the whole chaos scenario and return the report (`ok` says whether it held)."""
    say = options.say
    own_dir = options.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="orca-chaos-")) if own_dir else options.state_dir
    assert state_dir is not None
    stack = ChaosStack(
        state_dir,
        pods=options.pods,
        retained_events=options.retained_events,
        launch_delay_s=options.launch_delay_s,
        say=say,
    )
    report: dict[str, Any] = {}
    try:
        say(f"starting the stack in {state_dir} …")
        began = time.monotonic()
        stack.start()
        started = time.monotonic() - began
        report = _run(options, stack)
        report["stack_start_s"] = round(started, 1)
    finally:
        began = time.monotonic()
        stack.stop()
        if report:
            report["stack_stop_s"] = round(time.monotonic() - began, 1)
        left = [c.name for c in stack.children if c.exit_code() is None]
        if report:
            report["processes_left_after_stop"] = left
            if left:
                report["ok"] = False
                report["failures"].append(f"processes left after stop: {left}")
        if own_dir and report.get("ok"):
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            say(f"state and logs kept in {state_dir}")
    return report


def _run(options: ChaosOptions, stack: ChaosStack) -> dict[str, Any]:
    say = options.say
    endpoints = stack.endpoints
    assert endpoints is not None
    assert endpoints.aws_endpoint_url
    assert stack.direct_kubeconfig
    aws_url = endpoints.aws_endpoint_url
    core = _core(stack.direct_kubeconfig)
    ec2 = boto3.client(
        "ec2",
        endpoint_url=aws_url,
        region_name=stack.options.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    orca_settings = load_settings(Path(endpoints.config_path))
    if not _wait(lambda: _node_ready(core, stack.options.node_name), 90):
        raise RuntimeError(f"the virtual node {stack.options.node_name} never became Ready")

    rng = random.Random(options.seed)
    run_id = f"{options.seed}-{rng.getrandbits(24):06x}"
    label = {LABEL: run_id}
    pods = draw_pods(options.pods, options.seed, orca_settings, label)
    valid = [p for p in pods if p.valid]
    started = time.time()
    say(f"{len(pods)} pods drawn (seed {options.seed}): {len(pods) - len(valid)} malformed")

    faults = _inject_faults(aws_url, stack.aws_defaults, len(valid), options)
    plan = _plan_disruptions(rng, options)
    say("disruptions: " + ", ".join(f"{d.kind}@{d.planned_at_s:.1f}s" for d in plan))

    # burst + disruptions
    uids: dict[str, str] = {}
    burst_start = time.time()
    chaos = threading.Thread(
        target=_disrupt, args=(stack, core, plan, burst_start, options), name="chaos"
    )
    chaos.start()
    for index, pod in enumerate(pods):
        _sleep_until(burst_start + index * options.create_spread_s / max(len(pods), 1))
        created = _create(core, pod)
        uids[pod.name] = created
    chaos.join()
    say(f"created {len(pods)} pods; {len(plan)} disruptions done; waiting for convergence …")

    by_name = {p.name: p for p in pods}
    converged_at: float | None = None

    def settled() -> bool:
        states = _pod_states(core, label)
        return all(_settled(by_name[n], states.get(n)) for n in by_name)

    if _wait(settled, options.converge_timeout_s, period=1.0, say=say, what="pods settled"):
        converged_at = time.time()
    states = _pod_states(core, label)
    _clear_faults(aws_url)
    census = _census(ec2, orca_settings.kubernetes.cluster_name)

    # histories (the stall after worker kills) before the teardown adds events
    address = endpoints.temporal_address
    namespace = stack.options.temporal_namespace
    histories = asyncio.run(_histories(address, namespace))
    kills = [d.started_at for d in plan if d.kind == "worker"]
    stalls = worker_kill_stalls(histories.values(), kills)

    # teardown
    say("deleting the pods …")
    for name in by_name:
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_pod(name, NAMESPACE)

    def released() -> bool:
        return (
            not _pod_states(core, label) and asyncio.run(_open_workflows(address, namespace)) == 0
        )

    teardown_complete = _wait(
        released, options.teardown_timeout_s, period=1.0, say=say, what="teardown"
    )
    after = _census(ec2, orca_settings.kubernetes.cluster_name)
    watcher_log = stack.state_dir / "logs/watcher.log"

    return build_report(
        options=options,
        pods=pods,
        uids=uids,
        states=states,
        census=census,
        after=after,
        teardown_complete=teardown_complete,
        converge_s=None if converged_at is None else converged_at - burst_start,
        stalls=stalls,
        plan=plan,
        faults=faults,
        watch_restarts={
            "dropped": _count(watcher_log, WATCH_DROPPED_LINE),
            "expired_410": _count(watcher_log, WATCH_EXPIRED_LINE),
        },
        unplanned_restarts=dict(stack.unplanned_restarts),
        proxy_connections_cut=stack.proxy.connections_cut if stack.proxy else 0,
        elapsed_s=time.time() - started,
    )


# -- faults and disruptions ------------------------------------------------------------------
def _post(url: str, body: Mapping[str, Any], method: str = "POST") -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method, headers={"Content-Type": "json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _inject_faults(
    aws_url: str, defaults: Mapping[str, Any], valid: int, options: ChaosOptions
) -> list[dict[str, Any]]:
    zones = sorted((defaults.get("subnet_ids") or {}).keys())
    faults: list[dict[str, Any]] = [
        {
            "operation": "RunInstances",
            "error_code": "InsufficientInstanceCapacity",
            "instance_type": FIRST_CHOICE,
            "count": max(2, valid // 3),
        },
        {"operation": "RunInstances", "error_code": "RequestLimitExceeded", "rate": 0.25},
        {"operation": "DescribeInstances", "error_code": "RequestLimitExceeded", "rate": 0.2},
        {"operation": "RunInstances", "latency_s": options.run_instances_latency_s},
    ]
    faults[1]["count"] = max(2, valid // 4)
    faults[2]["count"] = max(3, valid // 2)
    for fault in faults:
        _post(f"{aws_url}/_orca/faults", fault)
    if zones:
        capacity = {"instance_type": FIRST_CHOICE, "zone": zones[0], "count": 0}
        _post(f"{aws_url}/_orca/capacity", capacity)
        faults.append({"capacity": capacity})
    return faults


def _clear_faults(aws_url: str) -> None:
    _post(f"{aws_url}/_orca/faults", {}, method="DELETE")


def _plan_disruptions(rng: random.Random, options: ChaosOptions) -> list[Disruption]:
    kinds = [k for k in KILLABLE for _ in range(options.kills_per_kind)]
    kinds += ["watch-drop"] * options.watch_drops
    rng.shuffle(kinds)
    window = options.create_spread_s + 4.0
    moments = sorted(rng.uniform(1.0, window) for _ in kinds)
    return [Disruption(kind, at) for kind, at in zip(kinds, moments, strict=True)]


def _disrupt(
    stack: ChaosStack,
    core: client.CoreV1Api,
    plan: Sequence[Disruption],
    burst_start: float,
    options: ChaosOptions,
) -> None:
    for disruption in plan:
        _sleep_until(burst_start + disruption.planned_at_s)
        if disruption.kind == "watch-drop":
            disruption.started_at = time.time()
            disruption.detail = _drop_watches(stack, core, options.retained_events)
            disruption.done_at = time.time()
        else:
            disruption.started_at, disruption.done_at = stack.kill(disruption.kind)
            disruption.detail = f"back in {disruption.done_at - disruption.started_at:.1f} s"
        options.say(f"  {disruption.kind}: {disruption.detail}")


def _drop_watches(stack: ChaosStack, core: client.CoreV1Api, retained_events: int) -> str:
    """Cut every ORCA connection to the API and hold new ones while the emulator's event window
    moves past the watcher's resourceVersion: its resume gets 410 Gone. A watcher with no
    watch to resume (between a kill and its first list, or mid-relist) lists instead, so the
    drop is repeated, up to three times, until the watcher logs the 410."""
    assert stack.proxy is not None
    log = stack.state_dir / "logs/watcher.log"
    relists_before = _count(log, WATCH_EXPIRED_LINE)
    cut = writes = 0
    for attempt in range(1, 4):
        cut += stack.proxy.drop(hold=True)
        writes += _fill_event_window(core, int(retained_events * 1.5) + 10)
        stack.proxy.release()
        # The next disruption waits until the watcher has resumed into the 410 and relisted, so
        # a kill cannot hide it.
        if _wait(lambda: _count(log, WATCH_EXPIRED_LINE) > relists_before, 15):
            outcome = "resumed into 410 Gone and relisted"
            if attempt > 1:
                outcome += f" (drop {attempt})"
            break
    else:
        outcome = "no 410 after 3 drops"
    return f"{cut} connections cut, {writes} writes while holding; {outcome}"


def _fill_event_window(core: client.CoreV1Api, count: int) -> int:
    tag = f"{time.time_ns():x}"

    def one(index: int) -> None:
        body: Any = {"metadata": {"name": f"chaos-filler-{tag}-{index}", "labels": {LABEL: tag}}}
        core.create_namespaced_config_map(NAMESPACE, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return count


def _count(path: Path, text: str) -> int:
    try:
        return path.read_text(errors="replace").count(text)
    except OSError:
        return 0


# -- Kubernetes side -------------------------------------------------------------------------
def _core(kubeconfig: Path) -> client.CoreV1Api:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 16
    return client.CoreV1Api(client.ApiClient(configuration))


def _node_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except client.ApiException:
        return False
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _create(core: client.CoreV1Api, pod: ChaosPod) -> str:
    body: Any = pod.manifest  # the client takes dicts as well as models
    metadata = core.create_namespaced_pod(NAMESPACE, body).metadata
    assert metadata is not None
    assert metadata.uid is not None
    return str(metadata.uid)


@dataclass(frozen=True)
class PodState:
    phase: str | None
    invalid_told: bool
    reason: str | None


def _pod_states(core: client.CoreV1Api, label: Mapping[str, str]) -> dict[str, PodState]:
    selector = ",".join(f"{k}={v}" for k, v in label.items())
    listed = core.list_namespaced_pod(NAMESPACE, label_selector=selector)
    states = {}
    for pod in listed.items:
        status = pod.status
        conditions = (status.conditions if status else None) or []
        told = any(
            c.type == LAUNCHED_CONDITION and c.status == "False" and c.reason == INVALID_REASON
            for c in conditions
        )
        if pod.metadata is None or pod.metadata.name is None:
            continue
        states[str(pod.metadata.name)] = PodState(
            phase=status.phase if status else None,
            invalid_told=told,
            reason=status.reason if status else None,
        )
    return states


def _settled(pod: ChaosPod, state: PodState | None) -> bool:
    if state is None:
        return False
    return state.invalid_told if not pod.valid else state.phase == "Running"


# -- AWS side --------------------------------------------------------------------------------
def _census(ec2: Any, cluster: str) -> Census:
    census = Census()
    paginator = ec2.get_paginator("describe_instances")
    filters = [{"Name": f"tag:{instance_tags.CLUSTER}", "Values": [cluster]}]
    for page in paginator.paginate(Filters=filters):
        for reservation in page["Reservations"]:
            for item in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                state = item["State"]["Name"]
                uid = tags.get(instance_tags.POD_UID)
                if uid is None:
                    if state in ALIVE_STATES:
                        census.untagged_alive.append(item["InstanceId"])
                    continue
                census.by_uid.setdefault(uid, []).append((item["InstanceId"], state))
    return census


# -- Temporal side ---------------------------------------------------------------------------
async def _histories(address: str, namespace: str) -> dict[str, list[HistoryEvent]]:
    temporal = await Client.connect(address, namespace=namespace)
    ids = [e.id async for e in temporal.list_workflows(POD_LIFECYCLE_QUERY)]
    slots = asyncio.Semaphore(16)

    async def one(workflow_id: str) -> tuple[str, list[HistoryEvent]]:
        async with slots:
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        return workflow_id, list(history.events)

    return dict(await asyncio.gather(*(one(i) for i in dict.fromkeys(ids))))


async def _open_workflows(address: str, namespace: str) -> int:
    temporal = await Client.connect(address, namespace=namespace)
    query = f'{POD_LIFECYCLE_QUERY} AND ExecutionStatus="Running"'
    return (await temporal.count_workflows(query)).count


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


@dataclass(frozen=True)
class Stall:
    """One activity in flight at a worker kill (scheduled before it, closed after it)."""

    activity: str
    resumed_s: float
    """Kill → the activity ran again on a live worker (its last attempt's start), or closed."""
    closed_s: float
    """Kill → the activity's close (includes the retried attempt's own work)."""


def worker_kill_stalls(
    histories: Iterable[Sequence[HistoryEvent]], kills: Sequence[float]
) -> list[Stall]:
    """Every activity in flight at a worker kill, with how long it stalled. A retried activity's
    `ActivityTaskStarted` event carries its last attempt's start, so "resumed" is when a live
    worker picked it up again. Both times come from one machine (the server's event times, the
    runner's kill times)."""
    stalls: list[Stall] = []
    for events in histories:
        scheduled: dict[int, tuple[str, float]] = {}
        started: dict[int, float] = {}
        for event in events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                scheduled[event.event_id] = (name, _seconds(event))
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                scheduled_id = event.activity_task_started_event_attributes.scheduled_event_id
                started[scheduled_id] = _seconds(event)
            elif event.event_type in CLOSE_EVENTS:
                attributes = getattr(event, CLOSE_EVENTS[event.event_type])
                scheduled_id = attributes.scheduled_event_id
                name, at = scheduled.get(scheduled_id, ("?", math.inf))
                closed = _seconds(event)
                for kill in kills:
                    if at < kill < closed:
                        last_start = started.get(scheduled_id, closed)
                        resumed = last_start if last_start > kill else closed
                        stalls.append(Stall(name, resumed - kill, closed - kill))
    return stalls


# -- the report ------------------------------------------------------------------------------
def build_report(
    *,
    options: ChaosOptions,
    pods: Sequence[ChaosPod],
    uids: Mapping[str, str],
    states: Mapping[str, PodState],
    census: Census,
    after: Census,
    teardown_complete: bool,
    converge_s: float | None,
    stalls: Sequence[Stall],
    plan: Sequence[Disruption],
    faults: Sequence[Mapping[str, Any]],
    watch_restarts: Mapping[str, int],
    unplanned_restarts: Mapping[str, int],
    proxy_connections_cut: int,
    elapsed_s: float,
) -> dict[str, Any]:
    valid = [p for p in pods if p.valid]
    invalid = [p for p in pods if not p.valid]
    converged = [
        p for p in valid if _settled(p, states.get(p.name)) and len(census.alive(uids[p.name])) == 1
    ]
    unconverged = sorted({p.name for p in valid} - {p.name for p in converged})
    duplicates = {
        p.name: census.ever(uids[p.name]) - 1 for p in pods if census.ever(uids[p.name]) > 1
    }
    for_invalid = {p.name: census.ever(uids[p.name]) for p in invalid if census.ever(uids[p.name])}
    told = [p for p in invalid if states.get(p.name, PodState(None, False, None)).invalid_told]
    silent = sorted({p.name for p in invalid} - {p.name for p in told})
    ours = set(uids.values())
    leaked = sorted(i for uid, _ in after.by_uid.items() if uid in ours for i in after.alive(uid))
    leaked += after.untagged_alive
    stall_all = [s.resumed_s for s in stalls if s.activity in STALLED_ACTIVITIES]
    stall_max = max(stall_all, default=None)
    names = sorted({s.activity for s in stalls})

    failures = []
    if duplicates:
        failures.append(f"duplicate instances: {duplicates}")
    if leaked:
        failures.append(f"leaked instances: {leaked}")
    if unconverged:
        failures.append(f"unconverged pods: {unconverged}")
    if not teardown_complete:
        failures.append("teardown incomplete: pods or PodLifecycle workflows left")
    if for_invalid:
        failures.append(f"instances for invalid pods: {for_invalid}")
    if silent:
        failures.append(f"silent invalid pods: {silent}")

    def stats(values: Sequence[float]) -> dict[str, Any]:
        ordered = sorted(values)
        return {
            "count": len(ordered),
            "p50": round(ordered[len(ordered) // 2], 1) if ordered else None,
            "max": round(ordered[-1], 1) if ordered else None,
        }

    return {
        "ok": not failures,
        "failures": failures,
        "seed": options.seed,
        "pods": len(pods),
        "valid_pods": len(valid),
        "invalid_pods": len(invalid),
        "pods_converged": len(converged),
        "duplicate_instances": sum(duplicates.values()),
        "leaked_instances": len(leaked),
        "instances_for_invalid_pods": sum(for_invalid.values()),
        "invalid_pods_told": len(told),
        "seconds_to_settle": None if converge_s is None else round(converge_s, 1),
        "teardown_complete": teardown_complete,
        "elapsed_s": round(elapsed_s, 1),
        "stall_after_worker_kill_s": {
            "plan_launch+launch_instance": stats(stall_all),
            **{name: stats([s.resumed_s for s in stalls if s.activity == name]) for name in names},
        },
        "kill_to_close_s": {
            name: stats([s.closed_s for s in stalls if s.activity == name]) for name in names
        },
        "stall_target_s": STALL_TARGET_S,
        "stall_verdict": "n/a"
        if stall_max is None
        else ("PASS" if stall_max <= STALL_TARGET_S else "MISS"),
        "disruptions": [
            {"kind": d.kind, "at_s": round(d.planned_at_s, 1), "detail": d.detail} for d in plan
        ],
        "watch_restarts": dict(watch_restarts),
        "proxy_connections_cut": proxy_connections_cut,
        "unplanned_restarts": dict(unplanned_restarts),
        "aws_faults": list(faults),
        "invalid_examples": {p.name: p.invalid_reason for p in invalid[:3]},
    }


def format_figures(report: Mapping[str, Any]) -> str:
    stall = report["stall_after_worker_kill_s"]["plan_launch+launch_instance"]
    rows = [
        ("pods (valid / malformed)", f"{report['valid_pods']} / {report['invalid_pods']}"),
        ("pods converged", f"{report['pods_converged']} / {report['valid_pods']}"),
        ("duplicate instances", report["duplicate_instances"]),
        ("leaked instances", report["leaked_instances"]),
        ("instances for invalid pods", report["instances_for_invalid_pods"]),
        ("invalid pods told", f"{report['invalid_pods_told']} / {report['invalid_pods']}"),
        ("seconds to settle", report["seconds_to_settle"]),
        (
            "stall after worker kill, p50 / max (s)",  # kill → running again
            f"{stall['p50']} / {stall['max']} over {stall['count']} activities  "
            f"(target <= {report['stall_target_s']:g}: {report['stall_verdict']})",
        ),
        (
            "watch restarts: dropped / 410",
            f"{report['watch_restarts']['dropped']} / {report['watch_restarts']['expired_410']}",
        ),
        ("unplanned restarts", report["unplanned_restarts"] or "none"),
        ("verdict", "OK" if report["ok"] else "FAILED: " + "; ".join(report["failures"])),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


# -- small helpers ---------------------------------------------------------------------------
def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


def _wait(
    check: Callable[[], bool],
    within: float,
    period: float = 0.5,
    say: Callable[[str], None] | None = None,
    what: str = "",
) -> bool:
    deadline = time.monotonic() + within
    last = time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a server restarting: ask again
            if check():
                return True
        if say is not None and time.monotonic() - last > 20:
            last = time.monotonic()
            say(f"  still waiting for {what} …")
        time.sleep(period)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.runner", description=__doc__)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=None, help="kills of each kind")
    parser.add_argument("--watch-drops", type=int, default=None)
    parser.add_argument("--spread", type=float, default=None, help="seconds to create the pods")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to converge")
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    parser.add_argument("--state-dir", type=Path, help="keep the stack's state and logs here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind: stop the stack
    scale = max(1, args.pods // 40)
    options = ChaosOptions(
        pods=args.pods,
        seed=args.seed,
        kills_per_kind=args.kills if args.kills is not None else scale,
        watch_drops=args.watch_drops if args.watch_drops is not None else scale,
        retained_events=max(300, args.pods * 5),
        create_spread_s=args.spread if args.spread is not None else max(4.0, args.pods / 4),
        converge_timeout_s=args.timeout if args.timeout is not None else 240.0 + args.pods * 2,
        state_dir=args.state_dir,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    report = run_chaos(options)
    print(format_figures(report))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
