"""`orca submit POD.yaml`: validate a pod against the settings and the catalog, then create it.

An invalid pod (unknown instance type, template or launch type, a malformed annotation) is refused
here with exit code 2 and the allowed values, instead of being created and failing later. The pod
gets the virtual node's nodeSelector and tolerations when it lacks them, so a plain pod manifest
lands on ORCA's node. Once created, the pod's workflow ID follows from its UID and is printed with
a Temporal UI link when `temporal.uiURL` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client as k8s

from orca.cli import connections
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.pod_manifest import (
    decide,
    read_pod_manifest,
    render_decision,
    validate,
    with_virtual_node_scheduling,
)
from orca.launch_spec import PodRef
from orca.workflow_ids import pod_workflow_id

SHOWN_CANDIDATES = 3


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="validate a pod manifest and create it on ORCA's virtual node",
        description="Validate the pod's orca.research/ annotations and requests against the "
        "settings and the EC2 catalog, add the virtual node's nodeSelector and tolerations "
        "when missing, create the pod, and print what will be launched and the workflow ID.",
    )
    parser.add_argument("manifest", type=Path, metavar="POD.yaml", help="pod manifest ('-': stdin)")
    parser.add_argument(
        "-n", "--namespace", help="namespace when the manifest names none (default: default)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the completed manifest and the decision; create nothing",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args.config)
    pod = read_pod_manifest(args.manifest)
    metadata = pod["metadata"]
    if args.namespace and metadata.get("namespace") not in (None, args.namespace):
        raise CommandError(
            f"the manifest's namespace {metadata['namespace']!r} contradicts --namespace "
            f"{args.namespace!r}",
            EXIT_USAGE,
        )
    metadata["namespace"] = metadata.get("namespace") or args.namespace or "default"
    pod, added = with_virtual_node_scheduling(pod, settings.node)

    spec = validate(pod, settings)
    core = None if args.dry_run else connections.kube_core(settings)
    if core is not None:
        _refuse_existing(core, pod)  # before the catalog: fail fast on the common mistake
    catalog, subnets = asyncio.run(connections.instance_catalog(settings))
    plan, waiting = decide(spec, settings, catalog, subnets)
    out = sys.stdout
    if core is None:
        print("# orca submit --dry-run: nothing was created", file=out)
        print(yaml.safe_dump(pod, sort_keys=False).rstrip(), file=out)
        print(file=out)
        render_decision(spec, plan, waiting, out, limit=SHOWN_CANDIDATES)
        return EXIT_OK

    created = _create(core, pod)
    ref = PodRef(
        namespace=created.metadata.namespace,
        name=created.metadata.name,
        uid=created.metadata.uid,
    )
    print(f"pod/{ref.name} created in namespace {ref.namespace}", file=out)
    for item in added:
        print(f"  added {item}", file=out)
    render_decision(
        spec.model_copy(update={"pod": ref}),
        plan,
        waiting,
        out,
        limit=SHOWN_CANDIDATES,
        show_skipped=False,
    )
    workflow_id = pod_workflow_id(ref)
    print(f"Workflow:     {workflow_id}", file=out)
    if settings.temporal.ui_url:
        print(
            f"Temporal UI:  {connections.workflow_ui_url(settings.temporal, workflow_id)}", file=out
        )
    print(f"Follow it:    orca status {ref.name} -n {ref.namespace}", file=out)
    return EXIT_OK


def _refuse_existing(core: k8s.CoreV1Api, pod: dict[str, Any]) -> None:
    metadata = pod["metadata"]
    name, namespace = metadata.get("name"), metadata["namespace"]
    if not name:
        return  # generateName: the server picks a fresh name
    try:
        connections.kube_call(
            core,
            f"look up pod {namespace}/{name}",
            lambda: core.read_namespaced_pod(name, namespace),
        )
    except k8s.ApiException as error:
        if error.status == 404:
            return
        raise CommandError(
            f"cannot look up pod {namespace}/{name}: {connections.api_message(error)}"
        ) from None
    raise CommandError(
        f"pod {namespace}/{name} already exists; delete it first or choose another name",
        EXIT_USAGE,
    )


def _create(core: k8s.CoreV1Api, pod: dict[str, Any]) -> Any:
    namespace = pod["metadata"]["namespace"]
    try:
        return connections.kube_call(
            core,
            f"create the pod in namespace {namespace}",
            lambda: core.create_namespaced_pod(namespace, cast(Any, pod)),  # dicts are accepted
        )
    except k8s.ApiException as error:
        message = connections.api_message(error)
        if error.status == 409:
            raise CommandError(
                f"pod {namespace}/{pod['metadata'].get('name')} already exists; delete it first "
                "or choose another name",
                EXIT_USAGE,
            ) from None
        if error.status in (400, 403, 404, 422):
            raise CommandError(f"the API server refused the pod: {message}", EXIT_USAGE) from None
        raise CommandError(f"creating the pod failed: {message}") from None
