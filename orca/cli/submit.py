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
from typing import Any, TextIO, cast

import yaml
from kubernetes import client as k8s

from orca.cli import connections, output
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.cli.pod_manifest import (
    decide,
    decision_document,
    read_pod_manifest,
    render_decision,
    validate,
    with_virtual_node_scheduling,
)
from orca.launch_spec import LaunchSpec, PodRef
from orca.selection import CandidatePlan
from orca.settings import Settings
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
        "--dry-run",
        action="store_true",
        help="validate and print the completed manifest and the decision; create nothing",
    )
    output.add_output_option(parser, table=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    pod = read_pod_manifest(args.manifest)
    metadata = pod["metadata"]
    given = getattr(args, "namespace", None)
    if given and metadata.get("namespace") not in (None, given):
        raise CommandError(
            f"the manifest's namespace {metadata['namespace']!r} contradicts --namespace {given!r}",
            EXIT_USAGE,
        )
    metadata["namespace"] = metadata.get("namespace") or connections.namespace(args, settings)
    pod, added = with_virtual_node_scheduling(pod, settings.node)

    spec = validate(pod, settings)
    core = None if args.dry_run else connections.kube_core(settings)
    if core is not None:
        _refuse_existing(core, pod)  # before the catalog: fail fast on the common mistake
    decision, no_catalog = _decision(spec, settings)
    out = sys.stdout
    documents = args.output in output.DOCUMENT_FORMATS
    if core is None:
        if documents:
            document = {"dryRun": True, "manifest": pod, "added": added}
            document["decision"] = decision_document(spec, *decision) if decision else None
            output.print_document(document, args.output, out)
            return EXIT_OK
        print("# orca submit --dry-run: nothing was created", file=out)
        print(yaml.safe_dump(pod, sort_keys=False).rstrip(), file=out)
        print(file=out)
        _render(spec, decision, no_catalog, out, show_skipped=True)
        return EXIT_OK

    created = _create(core, pod)
    ref = PodRef(
        namespace=created.metadata.namespace,
        name=created.metadata.name,
        uid=created.metadata.uid,
    )
    spec = spec.model_copy(update={"pod": ref})
    workflow_id = pod_workflow_id(ref)
    url = None
    if settings.temporal.ui_url:
        url = connections.workflow_ui_url(settings.temporal, workflow_id)
    if documents:
        document = {
            "pod": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
            "added": added,
            "decision": decision_document(spec, *decision) if decision else None,
            "workflow": {"id": workflow_id, "uiURL": url},
        }
        output.print_document(document, args.output, out)
        return EXIT_OK
    print(f"pod/{ref.name} created in namespace {ref.namespace}", file=out)
    for item in added:
        print(f"  added {item}", file=out)
    _render(spec, decision, no_catalog, out, show_skipped=False)
    print(f"Workflow:     {workflow_id}", file=out)
    if url:
        print(f"Temporal UI:  {url}", file=out)
    print(f"Follow it:    orca status {ref.name} -n {ref.namespace}", file=out)
    return EXIT_OK


Decision = tuple[CandidatePlan | None, str | None]


def _decision(spec: LaunchSpec, settings: Settings) -> tuple[Decision | None, str | None]:
    """The worker's decision, or (None, why not) when AWS cannot be asked for the catalog (no
    credentials, an unreachable endpoint): a researcher with only a kubeconfig still submits;
    the worker decides anyway."""
    try:
        catalog, subnets = asyncio.run(connections.instance_catalog(settings))
    except connections.AwsUnavailableError as error:
        return None, f"not shown ({error}); the worker decides: `orca status POD` shows it"
    return decide(spec, settings, catalog, subnets), None


def _render(
    spec: LaunchSpec,
    decision: Decision | None,
    no_catalog: str | None,
    out: TextIO,
    *,
    show_skipped: bool,
) -> None:
    if decision is None:
        print(f"Pod:          {spec.pod.key}", file=out)
        print(f"Decision:     {no_catalog}", file=out)
        return
    plan, waiting = decision
    render_decision(spec, plan, waiting, out, limit=SHOWN_CANDIDATES, show_skipped=show_skipped)


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
            Permission("get", "pods", namespace),
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
            Permission("create", "pods", namespace),
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
