"""`orca logs POD [-c CONTAINER] [-f] [--tail N]`: a burst pod's container output.

Through the Kubernetes API (`pods/log`), exactly as `kubectl logs`: the API server proxies to the
virtual node's kubelet endpoint, which ORCA's watcher serves from CloudWatch Logs. One code path
for people and tools, and the API server's own errors (no such container, pod not yet on a node)
come back as sentences.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kubernetes import client as k8s

from orca.cli import connections
from orca.cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from orca.cli.permissions import Permission
from orca.cli.status import read_pod


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print a pod's container output (as kubectl logs)",
        description="Print a container's output from its EC2 instance, through the Kubernetes "
        "API and ORCA's kubelet endpoint. With -f, keep streaming until the container ends.",
    )
    parser.add_argument("pod", metavar="POD", help="a pod name")
    parser.add_argument(
        "-c", "--container", help="container name (default: the only or the first container)"
    )
    parser.add_argument("-f", "--follow", action="store_true", help="stream new output")
    parser.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = connections.load_command_settings(args)
    namespace = connections.namespace(args, settings)
    if args.tail is not None and args.tail < 0:
        raise CommandError(f"--tail {args.tail}: give a number of lines >= 0", EXIT_USAGE)
    core = connections.kube_core(settings)
    pod = read_pod(core, args.pod, namespace)
    names = [c.name for c in pod.spec.containers]
    container = args.container or names[0]
    if container not in names:
        init = [c.name for c in pod.spec.init_containers or []]
        if container not in init:
            raise CommandError(
                f"pod {namespace}/{args.pod} has no container {container!r}; "
                f"containers: {', '.join(names + init)}",
                EXIT_USAGE,
            )
    kwargs: dict[str, Any] = {"container": container, "follow": args.follow}
    if args.tail is not None:
        kwargs["tail_lines"] = args.tail
    what = f"read the logs of {namespace}/{args.pod}"
    needs = Permission("get", "pods/log", namespace)
    try:
        response = connections.kube_call(
            core,
            what,
            lambda: core.read_namespaced_pod_log(
                args.pod, namespace, _preload_content=False, **kwargs
            ),
            needs,
        )
        connections.kube_call(core, what, lambda: _copy(response), needs)
    except k8s.ApiException as error:
        raise CommandError(
            f"cannot read the logs of {namespace}/{args.pod} ({container}): "
            f"{connections.api_message(error)}",
            EXIT_USAGE if error.status in (400, 404) else 1,
        ) from None
    return EXIT_OK


def _copy(response: Any) -> None:
    """Stream the body to stdout as it arrives (a followed log never ends on its own)."""
    out = sys.stdout
    try:
        for chunk in response.stream(4096, decode_content=True):
            out.write(chunk.decode("utf-8", errors="replace"))
            out.flush()
    finally:
        response.release_conn()
