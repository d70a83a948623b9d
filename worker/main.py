"""The ORCA worker: hosts the PodLifecycle workflow and every activity, with real clients.

It builds the AWS and Kubernetes clients once, the shared pollers (the cluster listing: one
DescribeInstances per 1000 instances per interval for every instance read in the worker; one
DescribeInstanceInformation per 50 agents per interval), the container status feed and the
catalog cache, and registers each activity class's methods. Health (`/healthz`) and Prometheus
metrics are served on their own ports.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from orca.activities.amis import Amis
from orca.activities.batched_poller import BatchedPoller
from orca.activities.cluster_instances import ClusterInstances, listed_missing
from orca.activities.container_status_feed import ContainerStatusFeed
from orca.activities.containers import ContainerActivities
from orca.activities.ec2_instances import Ec2Instances
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.instances import InstanceActivities
from orca.activities.launch_admission import (
    BudgetLedgerClient,
    LaunchAdmission,
    LedgerUpkeepActivities,
    NoAdmission,
    rules_from_settings,
)
from orca.activities.lifecycle_events import LifecycleEvents
from orca.activities.namespace_teams import NamespaceTeams
from orca.activities.orphans import OrphanActivities
from orca.activities.planning import PlanningActivities
from orca.activities.pod_claims import PodClaims
from orca.activities.pod_parameters import PodParameters
from orca.activities.pod_references import PodReferences
from orca.activities.pod_status import PodStatusActivities
from orca.activities.secrets_manager import PodSecretsManager
from orca.activities.shared_offerings import share_unavailable_offerings
from orca.activities.spot_prices import SpotPriceActivities
from orca.activities.ssm_commands import SsmCommands
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.activities.volume_attachments import VolumeAttachmentActivities
from orca.activities.volume_provisioning import VolumeProvisioning
from orca.aws_clients import AwsClients
from orca.aws_metrics import instrument
from orca.health import HealthServer
from orca.kube_clients import KubeClients
from orca.settings import Settings, ignored_settings
from orca.temporal_client import connect
from orca.worker.ledger_metrics import LedgerMetrics
from orca.worker.orphan_schedule import ensure_sweep_schedule
from orca.workflows.budget_ledger import BudgetLedger
from orca.workflows.claim_provisioning import ClaimProvisioning, VolumeReclaim
from orca.workflows.ledger_models import ledger_task_queue
from orca.workflows.orphan_sweep import OrphanSweep
from orca.workflows.pod_lifecycle import PodLifecycle

log = structlog.get_logger(__name__)


def launch_admission(settings: Settings, client: Client) -> LaunchAdmission:
    """The cluster's budget ledger, or no admission at all with `limits.ledger: false`."""
    if not settings.limits.ledger:
        return NoAdmission()
    return BudgetLedgerClient(
        client,
        settings.kubernetes.cluster_name,
        rules_from_settings(settings),
        offering_ttl=settings.instances.unavailable_offering_ttl,
        workflow_task_queue=ledger_task_queue(settings.temporal.task_queue),
    )


@dataclass
class WorkerParts:
    activities: list[Callable[..., Any]]
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    """Loops that run beside the worker while it polls."""


def build_activities(
    settings: Settings, aws: AwsClients, kube: KubeClients, client: Client
) -> WorkerParts:
    """Every activity callable, wired to the given clients, and the loops they need."""
    instrument(aws)
    unavailable = UnavailableOfferings(settings.instances.unavailable_offering_ttl.total_seconds())
    catalog = InstanceCatalog(aws, settings.aws)
    ec2 = Ec2Instances(aws, settings)
    poll = settings.worker.instance_poll_interval.total_seconds()
    cluster = ClusterInstances(
        BatchedPoller(
            lambda _ids: ec2.describe_cluster(), listed_missing, interval_seconds=poll, name="ec2"
        )
    )
    commands = SsmCommands(aws, settings.aws.log_group)
    agents: BatchedPoller[bool] = BatchedPoller(
        commands.agents_online,
        lambda _id: False,
        interval_seconds=poll,
        name="ssm-agents",
    )
    feed = ContainerStatusFeed(
        aws, settings.aws.status_log_group, settings.worker.status_poll_interval.total_seconds()
    )
    pod_status = PodStatusActivities(kube.core, settings.node.name)
    events = LifecycleEvents(pod_status.pods, settings.node.name)
    secrets = PodSecretsManager(aws)
    planning = PlanningActivities(
        settings,
        catalog,
        unavailable,
        NamespaceTeams(kube.core),
        secrets,
        PodClaims(kube.core, aws),
        events,
    )
    admission = launch_admission(settings, client)
    parameters = PodParameters(aws)
    amis = Amis(aws, settings.aws.ami_id)
    instances = InstanceActivities(
        ec2, amis, catalog, cluster, unavailable, admission, events=events
    )
    containers = ContainerActivities(
        settings.aws,
        commands,
        agents,
        parameters,
        PodReferences(kube.core),
        cluster,
        feed,
        pod_status.pods,
        settings.node.name,
        secrets,
    )
    orphans = OrphanActivities(
        aws,
        ec2,
        parameters,
        cluster,
        kube.core,
        pod_status,
        cluster_name=settings.kubernetes.cluster_name,
        node_name=settings.node.name,
    )
    volumes = VolumeProvisioning(
        aws,
        kube.api,
        planning,
        cluster_name=settings.kubernetes.cluster_name,
        node_name=settings.node.name,
    )
    volume_attachments = VolumeAttachmentActivities(aws)
    background = []
    if isinstance(admission, BudgetLedgerClient):
        ledger = admission
        background.append(lambda: share_unavailable_offerings(ledger, unavailable))
    activities: list[Callable[..., Any]] = [
        planning.plan_launch,
        instances.launch_instance,
        instances.wait_until_running,
        instances.terminate_instances,
        containers.start_containers,
        containers.monitor_pod,
        containers.stop_containers,
        volume_attachments.attach_volumes,
        volume_attachments.detach_volumes,
        pod_status.report_pod_status,
        pod_status.record_pod_event,
        pod_status.read_restart_counts,
        pod_status.delete_pod_object,
        LedgerUpkeepActivities(client).ledger_running_pods,
        SpotPriceActivities(aws).spot_price_history,
        orphans.find_orphans,
        orphans.end_orphans,
        volumes.prepare_claim,
        volumes.choose_volume_zone,
        volumes.record_claim_event,
        volumes.create_volume,
        volumes.wait_volume_available,
        volumes.create_persistent_volume,
        volumes.wait_volume_detached,
        volumes.delete_volume,
        volumes.delete_persistent_volume,
    ]
    return WorkerParts(activities, background)


async def run(settings: Settings) -> None:
    for ignored in ignored_settings(settings):
        log.warning("configuration not applied", setting=ignored)
    aws = AwsClients(settings.aws)
    aws.check_credentials()
    kube = KubeClients(settings.kubernetes)
    kube.api  # noqa: B018 - load the kubeconfig now, so a bad one fails at start
    client = await connect(settings.temporal)
    servers = [HealthServer(settings.metrics.host, settings.worker.health_port, codec=True).start()]
    if settings.metrics.enabled and settings.metrics.port != settings.worker.health_port:
        servers.append(
            HealthServer(
                settings.metrics.host, settings.metrics.port, metrics_path=settings.metrics.path
            ).start()
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    parts = build_activities(settings, aws, kube, client)
    worker = Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[PodLifecycle, BudgetLedger, OrphanSweep, ClaimProvisioning, VolumeReclaim],
        activities=parts.activities,
        max_concurrent_activities=settings.worker.max_concurrent_activities,
    )
    # The ledger's workflow tasks on a queue of their own (`ledger_task_queue`): a worker of its
    # own, so neither the pods' task queue nor their sticky queue delays an admission. The
    # pods' worker above still hosts BudgetLedger for a ledger started before this queue.
    ledger_worker = Worker(
        client,
        task_queue=ledger_task_queue(settings.temporal.task_queue),
        workflows=[BudgetLedger],
    )
    unenforced = settings.limits.unenforced_budgets()
    if unenforced:
        log.warning(
            "limits.ledger is false: no launch is admitted through the budget ledger, so these "
            "limits and budgets are not enforced",
            budgets=unenforced,
        )
    try:
        await ensure_sweep_schedule(client, settings)
    except Exception as error:  # pods still run without the sweep; say why it is missing
        log.error("cannot create or update the orphan sweep schedule", error=str(error))
    log.info(
        "worker started",
        task_queue=settings.temporal.task_queue,
        temporal=settings.temporal.address,
        namespace=settings.temporal.namespace,
    )
    tasks = [asyncio.create_task(loop()) for loop in parts.background]
    if settings.metrics.enabled and settings.limits.ledger:
        ledger_metrics = LedgerMetrics(client, settings.kubernetes.cluster_name)
        tasks.append(asyncio.create_task(ledger_metrics.run(stop)))
    async with worker, ledger_worker:
        await stop.wait()
        log.info("worker stopping")
        for task in tasks:
            task.cancel()
    for server in servers:
        server.stop()


def main(settings: Settings) -> None:
    asyncio.run(run(settings))
