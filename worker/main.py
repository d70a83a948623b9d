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
from collections.abc import Callable
from typing import Any

import structlog
from temporalio.worker import Worker

from orca.activities.batched_poller import BatchedPoller
from orca.activities.cluster_instances import ClusterInstances, listed_missing
from orca.activities.container_status_feed import ContainerStatusFeed
from orca.activities.containers import ContainerActivities, agents_online
from orca.activities.ec2_instances import Ec2Instances
from orca.activities.instance_catalog import InstanceCatalog
from orca.activities.instance_inventory import InstanceInventory
from orca.activities.instances import InstanceActivities
from orca.activities.planning import PlanningActivities
from orca.activities.pod_status import PodStatusActivities
from orca.activities.unavailable_offerings import UnavailableOfferings
from orca.aws_clients import AwsClients
from orca.aws_metrics import instrument
from orca.health import HealthServer
from orca.kube_clients import KubeClients
from orca.settings import Settings, ignored_settings
from orca.temporal_client import connect
from orca.workflows.pod_lifecycle import PodLifecycle

log = structlog.get_logger(__name__)


def build_activities(
    settings: Settings, aws: AwsClients, kube: KubeClients
) -> list[Callable[..., Any]]:
    """Every activity callable, wired to the given clients (tests pass emulator-backed ones)."""
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
    agents: BatchedPoller[bool] = BatchedPoller(
        lambda ids: agents_online(aws, ids),
        lambda _id: False,
        interval_seconds=poll,
        name="ssm-agents",
    )
    feed = ContainerStatusFeed(
        aws, settings.aws.status_log_group, settings.worker.status_poll_interval.total_seconds()
    )
    pod_status = PodStatusActivities(kube.core, settings.node.name)
    planning = PlanningActivities(settings, catalog, unavailable)
    inventory = InstanceInventory(cluster.live, settings.limits)
    instances = InstanceActivities(ec2, catalog, cluster, unavailable, inventory)
    containers = ContainerActivities(settings, aws, kube.core, cluster, agents, feed, pod_status)
    return [
        planning.plan_launch,
        instances.launch_instance,
        instances.wait_until_running,
        instances.terminate_instances,
        containers.start_containers,
        containers.monitor_pod,
        containers.stop_containers,
        pod_status.report_pod_status,
        pod_status.record_pod_event,
        pod_status.delete_pod_object,
    ]


async def run(settings: Settings) -> None:
    for ignored in ignored_settings(settings):
        log.warning("configuration not applied", setting=ignored)
    aws = AwsClients(settings.aws)
    aws.check_credentials()
    kube = KubeClients(settings.kubernetes)
    kube.api  # noqa: B018 - load the kubeconfig now, so a bad one fails at start
    client = await connect(settings.temporal)
    servers = [HealthServer(settings.metrics.host, settings.worker.health_port).start()]
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
    worker = Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=[PodLifecycle],
        activities=build_activities(settings, aws, kube),
        max_concurrent_activities=settings.worker.max_concurrent_activities,
    )
    unenforced = settings.limits.unenforced_budgets()
    if unenforced:
        log.warning(
            "dollar budgets are not enforced yet; launches are held only by instance counts "
            "and GPU quotas (limits.maxConcurrentInstances, maxInstancesPerNamespace, "
            "namespaceQuotas.*.maxInstances/maxGPUs)",
            budgets=unenforced,
        )
    log.info(
        "worker started",
        task_queue=settings.temporal.task_queue,
        temporal=settings.temporal.address,
        namespace=settings.temporal.namespace,
    )
    async with worker:
        await stop.wait()
        log.info("worker stopping")
    for server in servers:
        server.stop()


def main(settings: Settings) -> None:
    asyncio.run(run(settings))
