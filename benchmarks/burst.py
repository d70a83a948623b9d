"""Burst benchmark: N annotated pods at once through ORCA's real worker and watcher.

Run: `python -m benchmarks.burst [--pods 200] [--json PATH] [--compare-ledger]` (or
`make benchmark`). It starts the embedded stack (`orca_devstack.stack.DevStack`: Temporal dev
server, AWS and Kubernetes API emulators, ORCA's worker and watcher as child processes) on free
ports with short emulator delays, creates N pods at once, and prints a table and a JSON report. It
measures and asserts nothing; the targets from issue 5 are printed next to the figures as PASS or
MISS. See benchmarks/README.md for what each figure means.

`--compare-ledger` (issue 12) runs the burst twice on fresh stacks, with `limits.ledger: false`
and with admission through the budget ledger (limits high enough never to hold), without the
Temporal baselines, and prints both pods-Running-per-second and their ratio (target >= 90 %).

Phases: (1) burst: create the pods, watch them until every one is Running; (2) steady: a few
poll intervals with every pod Running, to see the batched pollers alone; (3) histories: fetch
every PodLifecycle history (launch-call times, events, activities before Running); (4) teardown:
delete the pods and wait for their workflows to close (full-run history sizes); (5) baseline: on
the same Temporal server, N bare workflows of as many no-op activities as a pod needs to reach
Running, on their own task queue and an in-process worker; (6) stop the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from benchmarks.baseline_workflow import BASELINE_WORKFLOW, BurstBaseline, noop
from orca.settings import WorkerSettings
from orca.workflow_ids import POD_LIFECYCLE_QUERY
from orca_devstack.examples import burst_pod
from orca_devstack.stack import DevStack, DevStackOptions, Endpoints, render_dev_config

NAMESPACE = "default"
LABEL = "orca-benchmark/run"
LAUNCH_OPERATIONS = ("RunInstances", "CreateFleet")
THROUGHPUT_TARGET = 0.8
"""ORCA's pods-Running-per-second at least this fraction of the baseline's workflows/s."""
HISTORY_BYTES_TARGET = 6_100
"""Issue 15: history bytes per pod up to Running at most a third of the 18,200 measured at
`7ee25ff` (benchmarks/README.md, finding 9)."""
LAUNCH_LATENCY_TARGET = 1.5
"""Issue 15: creation → launch call p95 within this multiple of the same-shape baseline's start →
launch-equivalent activity p95."""
LEDGER_TARGET = 0.9
"""With admission through the budget ledger, at least this fraction of the pods-Running-per-
second of the same burst with `limits.ledger: false` (issue 12)."""


# -- options and the stack -------------------------------------------------------------------
@dataclass(frozen=True)
class BurstOptions:
    pods: int = 200
    instance_type: str = "m5.large"
    launch_delay_s: float = 1.0
    poll_interval_s: float = 2.0
    """worker.instancePollInterval and worker.statusPollInterval."""
    max_concurrent_activities: int | None = None
    """worker.maxConcurrentActivities; None keeps ORCA's default."""
    running_timeout_s: float = 300.0
    teardown_timeout_s: float = 180.0
    steady_intervals: int = 5
    baseline: bool = True
    create_threads: int = 16
    ledger: bool = True
    """limits.ledger: admission through the cluster's BudgetLedger workflow (limits set high
    enough never to hold), or off (`--compare-ledger` runs both)."""
    state_dir: Path | None = None
    say: Callable[[str], None] = print

    @property
    def effective_max_concurrent_activities(self) -> int:
        if self.max_concurrent_activities is not None:
            return self.max_concurrent_activities
        return WorkerSettings().max_concurrent_activities


class BurstStack(DevStack):
    """`orca dev`, headless on free ports, with a short launch delay and benchmark settings."""

    def __init__(self, options: BurstOptions, state_dir: Path) -> None:
        super().__init__(
            DevStackOptions.on_free_ports(state_dir, aws_launch_delay=options.launch_delay_s),
            say=lambda line: options.say(line) if line.startswith("!!") else None,
        )
        self.burst = options

    def _write_config(self, aws_url: str | None, kubeconfig: Path | None) -> Path:
        import yaml

        settings = render_dev_config(self.options, aws_url, kubeconfig, self.aws_defaults)
        interval = f"{self.burst.poll_interval_s:g}s"
        settings["worker"]["instancePollInterval"] = interval
        settings["worker"]["statusPollInterval"] = interval
        if self.burst.max_concurrent_activities is not None:
            settings["worker"]["maxConcurrentActivities"] = self.burst.max_concurrent_activities
        pods = max(self.burst.pods * 2, 1000)
        settings["node"]["pods"] = str(pods)
        settings["limits"]["maxConcurrentInstances"] = pods
        settings["limits"]["maxInstancesPerNamespace"] = pods
        settings["limits"]["ledger"] = self.burst.ledger
        path = self.state_dir / "config.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
        return path


# -- small measuring helpers -----------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(pids: Mapping[str, int]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


@contextlib.contextmanager
def frozen(pids: Mapping[str, int], keep: set[str]) -> Iterator[list[str]]:
    """SIGSTOP every stack process but `keep` for the duration (SIGCONT after).

    The baselines need only the Temporal server; ORCA's processes may still be busy after the
    teardown (e.g. the watcher draining EC2's state-change notices for the terminated
    instances), and on a 2-core machine their CPU would slow the baseline down and flatter
    ORCA's ratio."""
    stopped = []
    try:
        for name, pid in pids.items():
            if name not in keep:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    stopped.append(name)
        yield stopped
    finally:
        for name in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[name], signal.SIGCONT)


EC2_POLL_ROUNDS = "poll-rounds:ec2"
"""The key of `orca_poll_rounds_total{poller="ec2"}` in `parse_counters`' result."""


def parse_counters(text: str) -> dict[str, float]:
    """From a Prometheus page: `service:Operation` → `orca_aws_api_calls_total`, and
    `poll-rounds:<poller>` → `orca_poll_rounds_total`."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "orca_aws_api_calls":
                key = f"{sample.labels['service']}:{sample.labels['operation']}"
            elif family.name == "orca_poll_rounds":
                key = f"poll-rounds:{sample.labels['poller']}"
            else:
                continue
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def diff(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


class MetricsSampler:
    """Polls the worker's /metrics every `period` seconds: AWS API call counters over time."""

    def __init__(self, url: str, period: float = 0.25) -> None:
        self.url = url
        self.period = period
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)

    def read(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            return parse_counters(response.read().decode())

    def snapshot(self) -> dict[str, float]:
        counts = self.read()
        self.samples.append((time.time(), counts))
        return counts

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with contextlib.suppress(OSError):
                self.snapshot()

    def per_round(self, key: str, start: float, end: float) -> list[float]:
        """Calls of `key` in each EC2 poll round between start and end, all callers counted.

        The timeline is cut at the samples where `orca_poll_rounds_total{poller="ec2"}` grew
        (rounds are one poll interval apart, samples a quarter of a second), and each piece
        gets the calls made in it: one number per poll interval, anchored to the poller's own
        rounds rather than to the sampler's clock."""
        points = sorted(
            (t, c.get(key, 0.0), c.get(EC2_POLL_ROUNDS, 0.0))
            for t, c in self.samples
            if start <= t <= end
        )
        boundaries = [i for i in range(1, len(points)) if points[i][2] > points[i - 1][2]]
        return [points[b][1] - points[a][1] for a, b in itertools.pairwise(boundaries)]


class PodPhaseWatch:
    """Watches the benchmark's pods; records when each was first seen Running (wall clock)."""

    def __init__(self, core: client.CoreV1Api, selector: str) -> None:
        self.core = core
        self.selector = selector
        self.running_at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=10)

    def _observe(self, pod: Any, seen_at: float) -> None:
        phase = pod.status.phase if pod.status else None
        uid = pod.metadata.uid
        if phase == "Running" and uid not in self.running_at:
            self.running_at[uid] = seen_at
        elif phase == "Failed" and uid not in self.failed:
            self.failed[uid] = (pod.status.reason or "") + " " + (pod.status.message or "")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self.core.list_namespaced_pod(NAMESPACE, label_selector=self.selector)
                now = time.time()
                for pod in listed.items:
                    self._observe(pod, now)
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.core.list_namespaced_pod,
                    NAMESPACE,
                    label_selector=self.selector,
                    resource_version=listed.metadata.resource_version if listed.metadata else None,
                    timeout_seconds=60,
                ):
                    self._observe(event["object"], time.time())
                    if self._stop.is_set():
                        return
            except Exception:  # a dropped or expired watch: relist
                if self._stop.wait(0.5):
                    return


def creation_time(server_stamp: dt.datetime | None, sent: float, answered: float) -> float:
    """When the API server created the pod. creationTimestamp has one-second resolution, so the
    midpoint of the create call is used, kept within the second the server stamped."""
    middle = (sent + answered) / 2
    if server_stamp is None:
        return middle
    floor = server_stamp.timestamp()
    return min(max(middle, floor), floor + 0.999)


def wait_for(check: Callable[[], bool], within: float, period: float = 0.25) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(period)
    return False


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except client.ApiException:
        return False
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


# -- Temporal histories ----------------------------------------------------------------------
def _event_seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


@dataclass
class HistoryFacts:
    events: int
    activities_to_running: int
    """Activities up to and including the first monitor_pod (which reports Running), local
    activities (pod status writes and events, one marker each) included."""
    local_activities_to_running: int
    activities_total: int
    launch_activities: int
    launch_returned_at: float | None
    """When the launch activity that produced the instance completed (RunInstances returned)."""
    launch_position: int | None = None
    """0-based position of the first launch_instance among the activities (local included)."""
    bytes_to_running: int = 0
    """Serialized size of the history up to and including the first monitor_pod's scheduling."""
    bytes_by_part_to_running: dict[str, int] = field(default_factory=dict)
    """`bytes_to_running` split by what wrote it: `start` (the workflow input), `<activity>
    input`, `<activity> result`, `local activities` (their markers), `other` (tasks, signals)."""


LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker Temporal's SDK core records for each completed local activity."""


def history_facts(events: Iterable[HistoryEvent]) -> HistoryFacts:
    scheduled_names: dict[int, str] = {}
    local = 0
    count = 0
    to_running: int | None = None
    local_to_running = 0
    launch_returned_at: float | None = None
    launch_position: int | None = None
    waiting = False
    size = 0
    parts: dict[str, int] = {}
    for event in events:
        count += 1
        if to_running is None:
            part = _history_part(event, scheduled_names)
            size += event.ByteSize()
            parts[part] = parts.get(part, 0) + event.ByteSize()
        if (
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        ):
            local += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled_names[event.event_id] = name
            if name == "wait_until_running":
                waiting = True
            if name == "launch_instance" and launch_position is None:
                launch_position = len(scheduled_names) - 1 + local
            if name == "monitor_pod" and to_running is None:
                to_running = len(scheduled_names) + local
                local_to_running = local
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED and not waiting:
            attributes = event.activity_task_completed_event_attributes
            if scheduled_names.get(attributes.scheduled_event_id) == "launch_instance":
                launch_returned_at = _event_seconds(event)
    names = list(scheduled_names.values())
    return HistoryFacts(
        events=count,
        activities_to_running=to_running or 0,
        local_activities_to_running=local_to_running,
        activities_total=len(names) + local,
        launch_activities=names.count("launch_instance"),
        launch_returned_at=launch_returned_at,
        launch_position=launch_position,
        bytes_to_running=size,
        bytes_by_part_to_running=parts,
    )


def _history_part(event: HistoryEvent, scheduled_names: Mapping[int, str]) -> str:
    """Which part of a pod's lifecycle wrote `event`, for the history-bytes breakdown."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return "start"
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return f"{event.activity_task_scheduled_event_attributes.activity_type.name} input"
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
        return f"{scheduled_names.get(scheduled, '?')} result"
    if kind == EventType.EVENT_TYPE_MARKER_RECORDED:
        return "local activities"
    return "other"


async def pod_histories(
    address: str, namespace: str, workflow_ids: Sequence[str]
) -> dict[str, HistoryFacts]:
    temporal = await Client.connect(address, namespace=namespace)
    slots = asyncio.Semaphore(16)

    async def one(workflow_id: str) -> tuple[str, HistoryFacts]:
        async with slots:
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        return workflow_id, history_facts(history.events)

    return dict(await asyncio.gather(*(one(w) for w in workflow_ids)))


async def pod_workflow_ids(address: str, namespace: str, uids: set[str]) -> dict[str, str]:
    """Pod UID → PodLifecycle workflow ID, for the given pods (from the visibility store)."""
    temporal = await Client.connect(address, namespace=namespace)
    found: dict[str, str] = {}
    async for execution in temporal.list_workflows(POD_LIFECYCLE_QUERY):
        uid = execution.id.rsplit("/", 1)[-1]
        if uid in uids:
            found[uid] = execution.id
    return found


async def running_pod_workflows(address: str, namespace: str) -> int:
    temporal = await Client.connect(address, namespace=namespace)
    query = f'{POD_LIFECYCLE_QUERY} AND ExecutionStatus="Running"'
    return (await temporal.count_workflows(query)).count


@dataclass
class BaselineResult:
    workflows: int
    activities_per_workflow: int
    local_activities_per_workflow: int
    completed: int
    elapsed_s: float
    per_second: float
    errors: int = 0
    latency_s: dict[str, float | None] = field(default_factory=dict)
    to_mark_s: dict[str, float | None] = field(default_factory=dict)
    """Start call → the marked activity (PodLifecycle's launch position) completed."""


async def run_baseline(
    address: str,
    namespace: str,
    workflows: int,
    activities: int,
    max_concurrent: int,
    local: int = 0,
    mark: int = 0,
) -> BaselineResult:
    """N bare workflows of `activities` no-op activities each (`local` of them local
    activities), started at once."""
    temporal = await Client.connect(address, namespace=namespace)
    task_queue = f"burst-baseline-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        temporal,
        task_queue=task_queue,
        workflows=[BurstBaseline],
        activities=[noop],
        max_concurrent_activities=max_concurrent,
    )
    done_at: list[float] = []
    marked_after: list[float] = []
    async with worker:
        started = time.time()

        async def one(index: int) -> None:
            sent = time.time()
            handle = await temporal.start_workflow(
                BASELINE_WORKFLOW,
                args=[activities, local, mark],
                id=f"{task_queue}-{index}",
                task_queue=task_queue,
            )
            marked = await handle.result()
            done_at.append(time.time())
            marked_after.append(float(marked) - sent)

        results = await asyncio.gather(*(one(i) for i in range(workflows)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    elapsed = (max(done_at) - started) if done_at else float("nan")
    return BaselineResult(
        workflows=workflows,
        activities_per_workflow=activities,
        local_activities_per_workflow=local,
        completed=len(done_at),
        errors=len(errors),
        elapsed_s=elapsed,
        per_second=len(done_at) / elapsed if done_at else 0.0,
        latency_s=summary([t - started for t in done_at]),
        to_mark_s=summary(marked_after),
    )


# -- the benchmark ---------------------------------------------------------------------------
def run_burst(options: BurstOptions) -> dict[str, Any]:
    """Run the whole benchmark and return the report (see `REPORT_FIELDS`)."""
    say = options.say
    own_dir = options.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="orca-burst-")) if own_dir else options.state_dir
    assert state_dir is not None
    stack = BurstStack(options, state_dir)
    report: dict[str, Any] = {}
    try:
        say(f"starting the stack in {state_dir} …")
        t = time.monotonic()
        endpoints = stack.start()
        say(f"stack up in {time.monotonic() - t:.1f} s")
        report = measure(options, stack, endpoints)
    finally:
        pids = dict(stack.endpoints.pids) if stack.endpoints else {}
        stack.stop()
        left = [name for name, pid in pids.items() if _alive(pid)]
        if report:
            report["processes_left_after_stop"] = left
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purpose; stack.stop() reaps its children.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def measure(options: BurstOptions, stack: DevStack, endpoints: Endpoints) -> dict[str, Any]:
    say = options.say
    n = options.pods
    interval = options.poll_interval_s
    address = endpoints.temporal_address
    namespace = stack.options.temporal_namespace
    assert endpoints.kubeconfig
    assert endpoints.worker_metrics_url
    configuration = client.Configuration()
    config.load_kube_config(config_file=endpoints.kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = options.create_threads * 2
    core = client.CoreV1Api(client.ApiClient(configuration))
    if not wait_for(lambda: node_ready(core, stack.options.node_name), within=90):
        raise RuntimeError(f"the virtual node {stack.options.node_name} never became Ready")

    run_id = uuid.uuid4().hex[:8]
    selector = f"{LABEL}={run_id}"
    sampler = MetricsSampler(endpoints.worker_metrics_url)
    phases = PodPhaseWatch(core, selector)
    phases.start()
    sampler.start()
    before = sampler.snapshot()
    cpu_before = cpu_by_process(endpoints.pids)

    # (1) burst
    say(f"creating {n} pods …")
    created: dict[str, float] = {}
    names: dict[str, str] = {}

    def create(index: int) -> None:
        name = f"burst-{run_id}-{index:05d}"
        sent = time.time()
        annotations = {
            "orca.research/instance-type": options.instance_type,
            "orca.research/launch-type": "on-demand",
            "emulator.orca.research/run-seconds": "inf",
        }
        body: Any = burst_pod(
            name, annotations, namespace=NAMESPACE, labels={LABEL: run_id}, grace_seconds=2
        )
        metadata = core.create_namespaced_pod(NAMESPACE, body).metadata
        assert metadata is not None
        assert metadata.uid is not None
        created[metadata.uid] = creation_time(metadata.creation_timestamp, sent, time.time())
        names[metadata.uid] = name

    with ThreadPoolExecutor(options.create_threads) as pool:
        list(pool.map(create, range(n)))
    first_created = min(created.values())
    say(f"created {n} pods in {time.time() - first_created:.1f} s; waiting for Running …")
    last_report = [time.monotonic()]

    def all_running() -> bool:
        if time.monotonic() - last_report[0] > 15:
            last_report[0] = time.monotonic()
            say(f"  {len(phases.running_at)}/{n} Running")
        return len(phases.running_at) >= n or len(phases.running_at) + len(phases.failed) >= n

    everyone_running = wait_for(all_running, within=options.running_timeout_s)
    at_running = sampler.snapshot()
    cpu_after = cpu_by_process(endpoints.pids)
    burst_end = time.time()
    running = dict(phases.running_at)
    say(f"{len(running)}/{n} Running after {burst_end - first_created:.1f} s")

    # (2) steady state: every pod Running, only the batched pollers work
    steady_start = time.time()
    steady_before = sampler.snapshot()
    time.sleep(interval * options.steady_intervals)
    steady_after = sampler.snapshot()
    steady_elapsed = time.time() - steady_start
    steady_rounds = sampler.per_round(
        "ec2:DescribeInstances", steady_start, steady_start + steady_elapsed
    )
    sampler.stop()
    memory = {
        name: peak_rss_mib(pid)
        for name, pid in endpoints.pids.items()
        if name in ("worker", "watcher")
    }

    # (3) histories
    say("reading workflow histories …")
    ids = asyncio.run(pod_workflow_ids(address, namespace, set(created)))
    facts = asyncio.run(pod_histories(address, namespace, list(ids.values())))
    by_uid = {uid: facts[wid] for uid, wid in ids.items() if wid in facts}

    # (4) teardown: delete the pods, wait for the workflows to close
    say("deleting the pods …")
    with ThreadPoolExecutor(options.create_threads) as pool:
        list(pool.map(lambda name: _delete(core, name), names.values()))
    phases.stop()
    closed = wait_for(
        lambda: asyncio.run(running_pod_workflows(address, namespace)) == 0,
        within=options.teardown_timeout_s,
        period=1.0,
    )
    sample_ids = list(ids.values())[: min(len(ids), 20)]
    complete = asyncio.run(pod_histories(address, namespace, sample_ids)) if closed else {}

    # (5) baseline
    activities_to_running = int(
        statistics.median(
            [f.activities_to_running for f in by_uid.values() if f.activities_to_running] or [0]
        )
    )
    local_to_running = int(
        statistics.median(
            [f.local_activities_to_running for f in by_uid.values() if f.activities_to_running]
            or [0]
        )
    )
    launch_position = int(
        statistics.median(
            [f.launch_position for f in by_uid.values() if f.launch_position is not None] or [0]
        )
    )
    baseline: BaselineResult | None = None
    same_shape: BaselineResult | None = None
    if options.baseline and activities_to_running > 0:
        with frozen(endpoints.pids, keep={"temporal"}) as paused:
            say(
                f"baseline ({', '.join(paused)} paused): {n} workflows x "
                f"{activities_to_running} no-op activities …"
            )
            baseline = asyncio.run(
                run_baseline(
                    address,
                    namespace,
                    n,
                    activities_to_running,
                    options.effective_max_concurrent_activities,
                    mark=launch_position,
                )
            )
            if local_to_running:
                say(f"same-shape baseline: {local_to_running} of them local activities …")
                same_shape = asyncio.run(
                    run_baseline(
                        address,
                        namespace,
                        n,
                        activities_to_running,
                        options.effective_max_concurrent_activities,
                        local=local_to_running,
                        mark=launch_position,
                    )
                )

    return build_report(
        options=options,
        created=created,
        running=running,
        everyone_running=everyone_running,
        by_uid=by_uid,
        complete=list(complete.values()),
        teardown_closed=closed,
        api_to_running=diff(at_running, before),
        api_steady=diff(steady_after, steady_before),
        steady_elapsed=steady_elapsed,
        describe_per_round_steady=steady_rounds,
        describe_per_round=sampler.per_round("ec2:DescribeInstances", first_created, burst_end),
        memory=memory,
        cpu={
            name: (cpu_after[name] or 0.0) - (cpu_before.get(name) or 0.0)
            for name in cpu_after
            if cpu_after[name] is not None
        },
        baseline=baseline,
        same_shape=same_shape,
        failed=dict(phases.failed),
    )


def _delete(core: client.CoreV1Api, name: str) -> None:
    with contextlib.suppress(client.ApiException):
        core.delete_namespaced_pod(name, NAMESPACE)


def history_bytes_by_part(facts: Iterable[HistoryFacts]) -> dict[str, int]:
    """Mean bytes per pod up to Running, by part of the lifecycle, largest first."""
    facts = list(facts)
    totals: dict[str, int] = {}
    for f in facts:
        for part, size in f.bytes_by_part_to_running.items():
            totals[part] = totals.get(part, 0) + size
    means = {part: round(size / len(facts)) for part, size in totals.items()} if facts else {}
    return dict(sorted(means.items(), key=lambda item: -item[1]))


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def _rounded(values: Mapping[str, float | None], digits: int = 3) -> dict[str, float | None]:
    return {k: _round(v, digits) for k, v in values.items()}


def _baseline_report(baseline: BaselineResult | None) -> dict[str, Any] | None:
    if baseline is None:
        return None
    return {
        "workflows": baseline.workflows,
        "activities_per_workflow": baseline.activities_per_workflow,
        "local_activities_per_workflow": baseline.local_activities_per_workflow,
        "completed": baseline.completed,
        "elapsed_s": _round(baseline.elapsed_s),
        "workflows_per_second": _round(baseline.per_second),
        "completion_s": _rounded(baseline.latency_s),
        "start_to_launch_equivalent_s": _rounded(baseline.to_mark_s),
    }


def build_report(
    *,
    options: BurstOptions,
    created: Mapping[str, float],
    running: Mapping[str, float],
    everyone_running: bool,
    by_uid: Mapping[str, HistoryFacts],
    complete: Sequence[HistoryFacts],
    teardown_closed: bool,
    api_to_running: Mapping[str, float],
    api_steady: Mapping[str, float],
    steady_elapsed: float,
    describe_per_round_steady: Sequence[float],
    describe_per_round: Sequence[float],
    memory: Mapping[str, float | None],
    cpu: Mapping[str, float],
    baseline: BaselineResult | None,
    same_shape: BaselineResult | None,
    failed: Mapping[str, str],
) -> dict[str, Any]:
    n = options.pods
    interval = options.poll_interval_s
    first_created = min(created.values())
    to_running = [running[uid] - created[uid] for uid in running if uid in created]
    to_launch = [
        f.launch_returned_at - created[uid]
        for uid, f in by_uid.items()
        if f.launch_returned_at is not None and uid in created
    ]
    makespan = (max(running.values()) - first_created) if running else None
    per_second = len(running) / makespan if makespan else 0.0

    describe_burst = api_to_running.get("ec2:DescribeInstances", 0.0)
    rounds_burst = api_to_running.get(EC2_POLL_ROUNDS, 0.0)
    describe_steady = api_steady.get("ec2:DescribeInstances", 0.0)
    rounds_steady = api_steady.get(EC2_POLL_ROUNDS, 0.0)
    describe_target = math.ceil(n / 1000)
    describe_max = max(describe_per_round, default=None)
    describe_max_steady = max(describe_per_round_steady, default=None)
    launch_calls = sum(api_to_running.get(f"ec2:{op}", 0.0) for op in LAUNCH_OPERATIONS)
    launch_per_pod = launch_calls / n

    ratio = per_second / baseline.per_second if baseline and baseline.per_second else None
    same_shape_ratio = (
        per_second / same_shape.per_second if same_shape and same_shape.per_second else None
    )

    total_cpu = sum(cpu.values())
    emulator_share = cpu.get("aws-emulator", 0.0) / total_cpu if total_cpu else None
    history_p50 = percentile([float(f.bytes_to_running) for f in by_uid.values()], 50)
    launch_p95 = percentile(to_launch, 95)
    baseline_launch_p95 = same_shape.to_mark_s.get("p95") if same_shape else None
    launch_ratio = launch_p95 / baseline_launch_p95 if launch_p95 and baseline_launch_p95 else None

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "MISS")

    return {
        "pods": n,
        "instance_type": options.instance_type,
        "launch_delay_s": options.launch_delay_s,
        "poll_interval_s": interval,
        "max_concurrent_activities": options.effective_max_concurrent_activities,
        "cpus": os.cpu_count(),
        "pods_running": len(running),
        "pods_failed": len(failed),
        "all_running": everyone_running and len(running) == n,
        "creation_spread_s": _round(max(created.values()) - first_created),
        "creation_to_launch_s": _rounded(summary(to_launch)),
        "creation_to_running_s": _rounded(summary(to_running)),
        "makespan_s": _round(makespan),
        "pods_running_per_second": _round(per_second),
        "aws_calls_per_pod_to_running": {
            k: round(v / n, 3)
            for k, v in sorted(api_to_running.items())
            if ":" in k and not k.startswith("poll-rounds:")
        },
        "aws_calls_per_second_steady": {
            k: round(v / steady_elapsed, 3)
            for k, v in sorted(api_steady.items())
            if not k.startswith("poll-rounds:")
        },
        "describe_instances": {
            "calls_to_running": describe_burst,
            "poll_rounds_to_running": rounds_burst,
            "mean_per_interval_to_running": _round(describe_burst / rounds_burst)
            if rounds_burst
            else None,
            "max_per_interval_to_running": describe_max,
            "poll_rounds_steady": rounds_steady,
            "per_interval_steady": _round(describe_steady / rounds_steady)
            if rounds_steady
            else None,
            "max_per_interval_steady": describe_max_steady,
            "target_per_interval": describe_target,
        },
        "launch_calls_per_pod": _round(launch_per_pod),
        "launch_activities_per_pod": _round(
            statistics.mean([f.launch_activities for f in by_uid.values()] or [0])
        ),
        "history_events_per_pod_at_running": _rounded(
            summary([float(f.events) for f in by_uid.values()]), 1
        ),
        "history_events_per_pod_complete": _rounded(
            summary([float(f.events) for f in complete]), 1
        ),
        "history_bytes_per_pod_at_running": _rounded(
            summary([float(f.bytes_to_running) for f in by_uid.values()]), 0
        ),
        "history_bytes_by_part_at_running": history_bytes_by_part(by_uid.values()),
        "teardown_complete": teardown_closed,
        "activities_per_pod_to_running": int(
            statistics.median(
                [f.activities_to_running for f in by_uid.values() if f.activities_to_running] or [0]
            )
        ),
        "local_activities_per_pod_to_running": int(
            statistics.median(
                [f.local_activities_to_running for f in by_uid.values() if f.activities_to_running]
                or [0]
            )
        ),
        "activities_per_pod_complete": int(
            statistics.median([f.activities_total for f in complete] or [0])
        ),
        "peak_rss_mib": _rounded(memory, 1),
        "peak_rss_mib_per_1000_pods": _rounded(
            {k: v * 1000 / n for k, v in memory.items() if v is not None}, 1
        ),
        "cpu_seconds_to_running": _rounded(cpu, 1),
        "cpu_seconds_per_pod_to_running": _rounded({k: v / n for k, v in cpu.items()}, 4),
        "aws_emulator_cpu_share": _round(emulator_share),
        "creation_to_launch_p95_vs_same_shape": _round(launch_ratio),
        "baseline": _baseline_report(baseline),
        "throughput_ratio": _round(ratio),
        "baseline_same_shape": _baseline_report(same_shape),
        "throughput_ratio_same_shape": _round(same_shape_ratio),
        "targets": {
            "throughput_ratio_min": THROUGHPUT_TARGET,
            "throughput": verdict(None if ratio is None else ratio >= THROUGHPUT_TARGET),
            "describe_instances_per_interval_max": describe_target,
            "describe_instances_per_interval": verdict(
                None if describe_max is None else describe_max <= describe_target
            ),
            "describe_instances_per_interval_steady": verdict(
                None if describe_max_steady is None else describe_max_steady <= describe_target
            ),
            "launch_calls_per_pod_max": 1,
            "launch_calls_per_pod": verdict(launch_per_pod <= 1),
            "throughput_same_shape": verdict(
                None if same_shape_ratio is None else same_shape_ratio >= THROUGHPUT_TARGET
            ),
            "history_bytes_per_pod_max": HISTORY_BYTES_TARGET,
            "history_bytes_per_pod": verdict(
                None if history_p50 is None else history_p50 <= HISTORY_BYTES_TARGET
            ),
            "creation_to_launch_p95_vs_same_shape_max": LAUNCH_LATENCY_TARGET,
            "creation_to_launch_p95_vs_same_shape": verdict(
                None if launch_ratio is None else launch_ratio <= LAUNCH_LATENCY_TARGET
            ),
        },
        "failed_pods": dict(list(failed.items())[:5]),
        "processes_left_after_stop": [],
    }


REPORT_FIELDS = (
    "pods",
    "pods_running",
    "all_running",
    "creation_to_launch_s",
    "creation_to_running_s",
    "pods_running_per_second",
    "aws_calls_per_pod_to_running",
    "describe_instances",
    "launch_calls_per_pod",
    "history_events_per_pod_at_running",
    "history_events_per_pod_complete",
    "history_bytes_per_pod_at_running",
    "history_bytes_by_part_at_running",
    "activities_per_pod_to_running",
    "peak_rss_mib",
    "peak_rss_mib_per_1000_pods",
    "cpu_seconds_to_running",
    "cpu_seconds_per_pod_to_running",
    "aws_emulator_cpu_share",
    "creation_to_launch_p95_vs_same_shape",
    "baseline",
    "throughput_ratio",
    "baseline_same_shape",
    "throughput_ratio_same_shape",
    "targets",
    "processes_left_after_stop",
)
"""Fields every report has (the smoke test checks them)."""


# -- output ----------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def format_table(report: Mapping[str, Any]) -> str:
    targets = report["targets"]
    rows: list[tuple[str, str, str]] = []

    def row(label: str, value: str, target: str = "") -> None:
        rows.append((label, value, target))

    def pcts(values: Mapping[str, Any]) -> str:
        return " / ".join(_fmt(values.get(k)) for k in ("p50", "p95", "p99"))

    row("pods Running / created", f"{report['pods_running']} / {report['pods']}")
    row("creation spread (s)", _fmt(report["creation_spread_s"]))
    row("creation → launch call, p50/p95/p99 (s)", pcts(report["creation_to_launch_s"]))
    row("creation → Running, p50/p95/p99 (s)", pcts(report["creation_to_running_s"]))
    row("pods Running per second", _fmt(report["pods_running_per_second"]))
    baseline = report["baseline"]
    if baseline:
        row(
            f"baseline workflows/s ({baseline['activities_per_workflow']} no-op activities)",
            _fmt(baseline["workflows_per_second"]),
        )
    ratio = report["throughput_ratio"]
    row(
        "throughput vs baseline",
        "-" if ratio is None else f"{ratio:.0%}",
        f">= {targets['throughput_ratio_min']:.0%}  {targets['throughput']}",
    )
    same_shape = report["baseline_same_shape"]
    if same_shape:
        row(
            f"same-shape baseline workflows/s ({same_shape['local_activities_per_workflow']} "
            "of them local)",
            _fmt(same_shape["workflows_per_second"]),
        )
        same_ratio = report["throughput_ratio_same_shape"]
        row(
            "throughput vs same-shape baseline",
            "-" if same_ratio is None else f"{same_ratio:.0%}",
            f">= {targets['throughput_ratio_min']:.0%}  {targets['throughput_same_shape']}",
        )
        row(
            "same-shape baseline start → launch-equivalent, p50/p95 (s)",
            pcts(same_shape["start_to_launch_equivalent_s"]),
        )
        launch_ratio = report["creation_to_launch_p95_vs_same_shape"]
        row(
            "creation → launch call p95 vs the same-shape baseline's",
            "-" if launch_ratio is None else f"{launch_ratio:.2f}x",
            f"<= {targets['creation_to_launch_p95_vs_same_shape_max']}x  "
            f"{targets['creation_to_launch_p95_vs_same_shape']}",
        )
    describe = report["describe_instances"]
    row(
        "DescribeInstances per interval, max (burst)",
        _fmt(describe["max_per_interval_to_running"]),
        f"<= {describe['target_per_interval']}  {targets['describe_instances_per_interval']}",
    )
    row(
        "DescribeInstances per interval, mean (burst)",
        _fmt(describe["mean_per_interval_to_running"]),
    )
    row(
        "DescribeInstances per interval, max / mean (all Running)",
        f"{_fmt(describe['max_per_interval_steady'])} / {_fmt(describe['per_interval_steady'])}",
        f"<= {describe['target_per_interval']}  "
        f"{targets['describe_instances_per_interval_steady']}",
    )
    row(
        "RunInstances + CreateFleet per pod",
        _fmt(report["launch_calls_per_pod"]),
        f"<= 1  {targets['launch_calls_per_pod']}",
    )
    for key, value in report["aws_calls_per_pod_to_running"].items():
        row(f"  {key} per pod", _fmt(value))
    row(
        "history events per pod at Running, p50/max",
        _pair(report["history_events_per_pod_at_running"]),
    )
    row(
        "history bytes per pod at Running, p50/max",
        _pair(report["history_bytes_per_pod_at_running"]),
        f"<= {targets['history_bytes_per_pod_max']}  {targets['history_bytes_per_pod']}",
    )
    for part, size in list(report["history_bytes_by_part_at_running"].items())[:8]:
        row(f"  {part}, bytes per pod", _fmt(float(size)))
    row(
        "history events per pod, whole run, p50/max",
        _pair(report["history_events_per_pod_complete"]),
    )
    row(
        "activities per pod to Running (local) / whole run",
        f"{report['activities_per_pod_to_running']} "
        f"({report['local_activities_per_pod_to_running']}) / "
        f"{report['activities_per_pod_complete']}",
    )
    for name, mib in report["peak_rss_mib"].items():
        per_1000 = report["peak_rss_mib_per_1000_pods"].get(name)
        row(f"peak RSS {name} (MiB), per 1000 pods", f"{_fmt(mib)}, {_fmt(per_1000)}")
    per_pod = report["cpu_seconds_per_pod_to_running"]
    for name, seconds in report["cpu_seconds_to_running"].items():
        row(
            f"CPU seconds to all Running: {name} (per pod)",
            f"{_fmt(seconds)} ({_fmt(per_pod.get(name))})",
        )
    share = report["aws_emulator_cpu_share"]
    row("AWS emulator's share of that CPU", "-" if share is None else f"{share:.0%}")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value_width}}  {c}".rstrip() for a, b, c in rows)


def _pair(values: Mapping[str, Any]) -> str:
    return f"{_fmt(values.get('p50'))} / {_fmt(values.get('max'))}"


def compare_ledger(options: BurstOptions) -> dict[str, Any]:
    """The same burst with admission off (`limits.ledger: false`), then through the ledger, each
    on a fresh stack; the ratio of their pods-Running-per-second against `LEDGER_TARGET`."""
    runs: dict[str, dict[str, Any]] = {}
    for name, ledger in (("ledger_off", False), ("ledger_on", True)):
        options.say(f"-- burst with limits.ledger: {str(ledger).lower()}")
        runs[name] = run_burst(dataclasses.replace(options, ledger=ledger, baseline=False))
    off = runs["ledger_off"]["pods_running_per_second"] or 0.0
    on = runs["ledger_on"]["pods_running_per_second"] or 0.0
    ratio = on / off if off else None
    verdict = "n/a" if ratio is None else ("PASS" if ratio >= LEDGER_TARGET else "MISS")
    return {
        **runs,
        "ledger_throughput_ratio": _round(ratio),
        "targets": {"ledger_throughput_ratio_min": LEDGER_TARGET, "ledger_throughput": verdict},
    }


def format_ledger_comparison(report: Mapping[str, Any]) -> str:
    lines = []
    for name, label in (("ledger_off", "ledger off"), ("ledger_on", "ledger on")):
        run = report[name]
        lines.append(
            f"{label:<11} pods Running per second {_fmt(run['pods_running_per_second']):>6}"
            f"  ({run['pods_running']} / {run['pods']} Running, makespan "
            f"{_fmt(run['makespan_s'])} s, creation → Running p50/p95 "
            f"{_fmt(run['creation_to_running_s'].get('p50'))} / "
            f"{_fmt(run['creation_to_running_s'].get('p95'))} s)"
        )
    ratio = report["ledger_throughput_ratio"]
    targets = report["targets"]
    lines.append(
        f"ledger on / off {'-' if ratio is None else f'{ratio:.0%}':>6}"
        f"  >= {targets['ledger_throughput_ratio_min']:.0%}  {targets['ledger_throughput']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.burst", description=__doc__)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--instance-type", default="m5.large")
    parser.add_argument("--launch-delay", type=float, default=1.0, help="emulated pending time")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="worker poll intervals")
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        help="worker.maxConcurrentActivities (default: ORCA's default)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to reach Running")
    parser.add_argument(
        "--teardown-timeout",
        type=float,
        default=180.0,
        help="seconds for the deleted pods' workflows to close",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--compare-ledger",
        action="store_true",
        help="run the burst twice, with limits.ledger false and true, and print both throughputs",
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the stack is stopped (no orphaned server or worker).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    options = BurstOptions(
        pods=args.pods,
        instance_type=args.instance_type,
        launch_delay_s=args.launch_delay,
        poll_interval_s=args.poll_interval,
        max_concurrent_activities=args.max_concurrent_activities,
        running_timeout_s=args.timeout,
        teardown_timeout_s=args.teardown_timeout,
        baseline=not args.no_baseline,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.compare_ledger:
        report = compare_ledger(options)
        print(format_ledger_comparison(report))
    else:
        report = run_burst(options)
        print(format_table(report))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
