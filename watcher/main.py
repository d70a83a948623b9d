"""The watcher process: every part of `watcher/` wired together, with leadership and shutdown.

Always running, on every replica: the health server (`/healthz`, `/readyz`, `/metrics` on
`watcher.healthPort`), the metrics server (`metrics.port`, when enabled and different), the kubelet
endpoint (`node.kubeletPort`) and leader election. Only while leading: the node heartbeat (Node
object and its Lease), the pod watch with its per-pod queues, the claim provisioner
(`claim_provisioner.py`: claims and PersistentVolumes of the `orca.research/ebs` class),
convergence every `watcher.resyncInterval`, and the interruption queue consumer. Losing
leadership stops those and waits to lead again; SIGTERM or SIGINT stops everything, leaves the
node NotReady (or deletes it, with `node.deleteOnShutdown`) and releases the leader lease so the
other replica takes over at once.

Readiness: the leader is ready once the node is registered and the pod watch is live; a follower
is ready once it has read the leader lease (it is a healthy standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import ssl
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client

from orca.aws_clients import AwsClients
from orca.aws_metrics import instrument
from orca.health import HealthServer
from orca.kube_clients import KubeClients
from orca.logging import get_logger
from orca.pod_api import PodApi
from orca.published_settings import PUBLISHED_SETTINGS_ANNOTATION, published_settings
from orca.settings import Settings, ignored_settings
from orca.temporal_client import connect
from orca.usage_reader import UsageReader
from orca.watcher import kubelet_tls
from orca.watcher.claim_provisioner import ClaimProvisioner
from orca.watcher.idle_accelerators import IdleAccelerators
from orca.watcher.interruptions import InterruptionConsumer
from orca.watcher.kubelet_auth import KubeletAuth, client_ca_bundle
from orca.watcher.kubelet_exec import InstanceExec
from orca.watcher.kubelet_server import KubeletServer
from orca.watcher.leader import LeaderElector
from orca.watcher.node_health import HealthCheck, NodeHealthProbe
from orca.watcher.node_heartbeat import NodeHeartbeat
from orca.watcher.pod_queues import PodQueues
from orca.watcher.pod_reactions import PodReactions
from orca.watcher.pod_stats import PodStats
from orca.watcher.pod_watch import PodWatch
from orca.watcher.pod_workflows import PodWorkflows
from orca.watcher.reconcile import Reconciler

log = get_logger(__name__)

RESTART_AFTER_FAILURE_SECONDS = 2.0


class Watcher:
    """One watcher replica. `run(stop)` returns once `stop` is set and everything is shut down."""

    def __init__(
        self,
        settings: Settings,
        *,
        kube: KubeClients,
        aws: AwsClients,
        temporal: Client,
        identity: str | None = None,
        health_check: HealthCheck | None = None,
        interruption_wait_seconds: int = 20,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.aws = aws
        self.temporal = temporal
        self.workflows = PodWorkflows(temporal, settings.temporal.task_queue)
        self.elector = LeaderElector(
            kube.coordination, settings.watcher.leader_election, identity=identity
        )
        self.health_check = (
            health_check
            or NodeHealthProbe(
                aws,
                temporal,
                settings.temporal.task_queue,
                poller_stale_after=settings.watcher.worker_poller_stale_after,
            ).check
        )
        self.interruption_wait_seconds = interruption_wait_seconds
        self.heartbeat: NodeHeartbeat | None = None
        self.watch: PodWatch | None = None
        self.queues: PodQueues | None = None
        self.reconciler: Reconciler | None = None
        self.kubelet: KubeletServer | None = None
        self.stats: PodStats | None = None
        self.health_server: HealthServer | None = None
        self._metrics_server: HealthServer | None = None
        self._running = False

    # -- health ---------------------------------------------------------------------------

    def ready(self) -> bool:
        if not self.settings.watcher.leader_election.enabled or self.elector.is_leader:
            return bool(
                self.heartbeat and self.heartbeat.registered and self.watch and self.watch.live
            )
        # A follower is ready once it has read the leader lease: before that it may be about
        # to lead, and would be called ready with no node registered.
        return self._running and self.elector.has_read_lease

    def alive(self) -> bool:
        return self._running

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._start_servers()
        self._running = True
        election: asyncio.Task[None] | None = None
        if self.settings.watcher.leader_election.enabled:
            election = asyncio.create_task(self.elector.run(), name="leader-election")
        else:
            self.elector.leading.set()
        try:
            while not stop.is_set():
                if not await _first(self.elector.leading.wait(), stop.wait()):
                    break
                if stop.is_set():
                    break
                failed = await self._lead(stop)
                if failed:
                    await _first(asyncio.sleep(RESTART_AFTER_FAILURE_SECONDS), stop.wait())
        finally:
            self._running = False
            if election is not None:
                election.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await election
                await self.elector.release()
            self._stop_servers()
            log.info("watcher stopped")

    async def _lead(self, stop: asyncio.Event) -> bool:
        """Act as leader until stopped or leadership is lost; True if a part failed."""
        settings = self.settings
        node_name = settings.node.name
        core = self.kube.core
        reactions = PodReactions(self.workflows, core, node_name)
        self.queues = queues = PodQueues(reactions.react)
        self.watch = watch = PodWatch(core, node_name, queues)
        self.heartbeat = heartbeat = NodeHeartbeat(
            core,
            self.kube.coordination,
            settings.node,
            self.health_check,
            kubelet_port=self.kubelet.port if self.kubelet else None,
            annotations={PUBLISHED_SETTINGS_ANNOTATION: published_settings(settings)},
        )
        self.reconciler = Reconciler(self.workflows, reactions, queues, core, node_name)
        log.info("leading: registering the node and watching pods", node=node_name)
        parts = [
            asyncio.create_task(heartbeat.run(), name="node-heartbeat"),
            asyncio.create_task(watch.run(), name="pod-watch"),
            asyncio.create_task(
                self.reconciler.run(settings.watcher.resync_interval), name="reconcile"
            ),
        ]
        idle = IdleAccelerators(
            UsageReader(self.aws.cloudwatch),
            lambda: list(watch.pods.values()),
            PodApi(core),
            self.workflows.accelerators_idle,
            node_name=node_name,
            interval=settings.node.stats_interval,
            threshold=settings.limits.idle_utilization_percent,
        )
        parts.append(asyncio.create_task(idle.run(), name="idle-accelerators"))
        provisioner = ClaimProvisioner(
            self.kube.api, self.temporal, settings.temporal.task_queue, node_name
        )
        parts.append(
            asyncio.create_task(
                provisioner.run(settings.watcher.resync_interval), name="claim-provisioner"
            )
        )
        queue_url = settings.aws.interruption_queue_url
        if queue_url:
            consumer = InterruptionConsumer(
                self.aws.sqs,
                self.aws.ec2,
                self.workflows,
                queue_url,
                cluster=settings.kubernetes.cluster_name,
                wait_seconds=self.interruption_wait_seconds,
            )
            parts.append(asyncio.create_task(consumer.run(), name="interruptions"))
        else:
            log.info("no aws.interruptionQueueURL: interruption events are not consumed")
        stopped = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(self.elector.lost.wait())
        failed = False
        try:
            done, _ = await asyncio.wait(
                [*parts, stopped, lost], return_when=asyncio.FIRST_COMPLETED
            )
            for task in parts:
                if task in done and not task.cancelled() and task.exception() is not None:
                    failed = True
                    log.error(
                        "watcher part failed; restarting",
                        part=task.get_name(),
                        exc_info=task.exception(),
                    )
        finally:
            # Also when this task is cancelled: no part may outlive the leadership it serves.
            for pending in (*parts, stopped, lost):
                pending.cancel()
            await asyncio.gather(*parts, stopped, lost, return_exceptions=True)
            await queues.close()
            watch.live = False
        if stop.is_set() and heartbeat.registered:
            try:
                await heartbeat.shutdown()
            except Exception as error:
                log.warning("node shutdown update failed", error=str(error))
        return failed

    # -- servers --------------------------------------------------------------------------

    def _start_servers(self) -> None:
        settings = self.settings
        self.stats = PodStats(
            UsageReader(self.aws.cloudwatch),
            lambda: list(self.watch.pods.values()) if self.watch else [],
            settings.node.stats_interval,
        ).start()
        self.kubelet = KubeletServer(
            _bind_host(settings.node.address),
            settings.node.kubelet_port,
            core=self.kube.core,
            logs=self.aws.logs,
            log_group=settings.aws.log_group,
            node_name=settings.node.name,
            pods=lambda: list(self.watch.pods.values()) if self.watch else [],
            tls=kubelet_tls_context(settings),
            auth=KubeletAuth(
                authentication=self.kube.authentication,
                authorization=self.kube.authorization,
                node_name=settings.node.name,
            ),
            client_ca=lambda: client_ca_bundle(
                self.kube.core, settings.node.kubelet_client_ca_file
            ),
            stats=self.stats,
            exec_runner=InstanceExec(self.aws.ec2, self.aws.ssm),
        ).start()
        metrics_on_health = settings.metrics.enabled and (
            settings.metrics.port == settings.watcher.health_port
        )
        self.health_server = HealthServer(
            settings.metrics.host,
            settings.watcher.health_port,
            ready=self.ready,
            alive=self.alive,
            metrics_path="/metrics" if not metrics_on_health else settings.metrics.path,
        ).start()
        if settings.metrics.enabled and not metrics_on_health:
            self._metrics_server = HealthServer(
                settings.metrics.host,
                settings.metrics.port,
                ready=self.ready,
                alive=self.alive,
                metrics_path=settings.metrics.path,
            ).start()
        log.info(
            "watcher serving",
            health_port=self.health_server.port,
            kubelet_port=self.kubelet.port,
            metrics_port=self._metrics_server.port if self._metrics_server else None,
        )

    def _stop_servers(self) -> None:
        for server in (self.kubelet, self.health_server, self._metrics_server, self.stats):
            if server is not None:
                server.stop()


def _bind_host(address: str) -> str:
    """Listen on loopback when the node advertises loopback (dev, tests), else everywhere."""
    try:
        return address if ipaddress.ip_address(address).is_loopback else "0.0.0.0"
    except ValueError:
        return "0.0.0.0"


async def _first(*awaitables: Awaitable[object]) -> bool:
    """Wait for the first of `awaitables`; cancel the others. True unless cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return True


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the watcher until `stop` is set (default: until SIGTERM or SIGINT).

    Raises `KubeConfigError`, `AwsCredentialsError` or `TemporalUnavailable` when a dependency
    cannot be used at all at start; once running, outages are retried, never fatal.
    """
    for ignored in ignored_settings(settings):
        log.warning("configuration not applied", setting=ignored)
    loop = asyncio.get_running_loop()
    # Kubernetes calls are blocking: give them more threads than the default executor's few.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="watcher"))
    kube = KubeClients(settings.kubernetes)
    kube.core  # noqa: B018 - load the configuration now: a KubeConfigError belongs to startup
    aws = AwsClients(settings.aws)
    aws.check_credentials()
    instrument(aws)
    temporal = await connect(settings.temporal)
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    await Watcher(settings, kube=kube, aws=aws, temporal=temporal).run(stop)


def main(settings: Settings) -> None:
    asyncio.run(run(settings))


def kubelet_tls_context(settings: Settings) -> ssl.SSLContext:
    """The provided certificate and key, else a self-signed certificate for the node's address."""
    node = settings.node
    if node.kubelet_tls_cert_file is not None and node.kubelet_tls_key_file is not None:
        return kubelet_tls.server_context_from_files(
            node.kubelet_tls_cert_file, node.kubelet_tls_key_file
        )
    log.info("kubelet endpoint serves a self-signed certificate", address=node.address)
    return kubelet_tls.server_context(*kubelet_tls.self_signed_certificate(node.address, node.name))
