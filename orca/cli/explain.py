"""`orca explain POD.yaml`: what ORCA would launch for a pod, and why, without submitting it.

The same decision the worker makes (see `orca.cli.pod_manifest`): the chosen offering, every
candidate in fallback order with its reason and estimated hourly price, and the offerings that
were left out and why. A pod with PersistentVolumeClaims has its claims read as the worker
reads them (`PodClaims`): once they are bound, only their EBS volumes' zone is a candidate and
every offering elsewhere is listed as skipped, naming the volume; while a claim is not bound yet
the decision says the pod waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orca.aws_clients import AwsClients
from orca.cli import cluster_settings, connections, output
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.cli.pod_manifest import (
    decide,
    decision_document,
    read_pod_manifest,
    render_decision,
    validate,
)
from orca.ebs_volumes import ClaimNotReady, PodVolume, VolumeNotUsable, zone_restriction
from orca.launch_spec import claim_volumes
from orca.selection import CandidatePlan, restrict_to_zone, zone_waiting_reason
from orca.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show which instance a pod would get, the fallback order and prices",
        description="Validate a pod manifest against the settings and the EC2 catalog and show "
        "the decision: the chosen instance type, the candidates in fallback order with their "
        "reasons and estimated hourly prices, and the offerings skipped. Nothing is submitted.",
    )
    parser.add_argument("manifest", type=Path, metavar="POD.yaml", help="pod manifest ('-': stdin)")
    parser.add_argument(
        "--all", action="store_true", help="list every candidate, not only the first ten"
    )
    output.add_output_option(parser, table=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    pod = read_pod_manifest(args.manifest)
    spec = validate(pod, settings)
    catalog, subnets = asyncio.run(connections.instance_catalog(settings))
    plan, waiting = decide(spec, settings, catalog, subnets)
    volumes: Sequence[PodVolume] | str = ()
    if claim_volumes(pod.get("spec") or {}):
        volumes = claim_volumes_of(pod, settings, connections.namespace(args, settings))
        plan, waiting = in_volume_zone(plan, waiting, volumes, subnets)
    if args.output in output.DOCUMENT_FORMATS:
        document = decision_document(
            spec, plan, waiting, volumes if not isinstance(volumes, str) else ()
        )
        output.print_document(document, args.output, sys.stdout)
        return EXIT_OK
    render_decision(spec, plan, waiting, sys.stdout, limit=None if args.all else 10)
    return EXIT_OK


def claim_volumes_of(
    pod: Mapping[str, Any], settings: Settings, default_namespace: str
) -> list[PodVolume] | str:
    """The pod's claim volumes as the worker resolves them (in the pod's namespace, else
    `default_namespace`), or why the pod waits for them. A claim that can never be mounted is
    `CommandError` (exit 2)."""
    from orca.activities.pod_claims import PodClaims

    metadata = dict(pod.get("metadata") or {})
    namespace = metadata.get("namespace") or cluster_settings.default_namespace(settings.kubernetes)
    named = {**pod, "metadata": {**metadata, "namespace": namespace}}
    core = connections.kube_core(settings)
    claims = PodClaims(core, AwsClients(settings.aws))
    try:
        return connections.kube_call(
            core,
            "read the pod's PersistentVolumeClaims",
            lambda: asyncio.run(claims.volumes_of(named)),
            Permission("get", "persistentvolumeclaims", namespace),
        )
    except ClaimNotReady as waiting:
        return waiting.reason
    except VolumeNotUsable as error:
        raise CommandError(f"invalid pod: {error}", EXIT_USAGE) from None


def in_volume_zone(
    plan: CandidatePlan | None,
    waiting: str | None,
    volumes: Sequence[PodVolume] | str,
    subnets_by_zone: Mapping[str, str],
) -> tuple[CandidatePlan | None, str | None]:
    """The decision restricted to the volumes' zone, as the worker's `plan_in_volume_zone`
    restricts it (pure); `volumes` is a sentence when the claims are not bound yet."""
    if isinstance(volumes, str):
        return None, volumes
    if plan is None or not volumes:
        return plan, waiting
    zone = volumes[0].zone
    why = zone_restriction(volumes)
    restricted = restrict_to_zone(plan, zone, why)
    if restricted.candidates:
        return restricted, None
    dropped = [c for c in plan.candidates if c.zone != zone]
    return None, zone_waiting_reason(zone, why, dropped, zone in subnets_by_zone)
