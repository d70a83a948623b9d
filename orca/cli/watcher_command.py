"""`orca watcher`: run the virtual node, pod watch, interruption queue and kubelet endpoint."""

from __future__ import annotations

import argparse

from orca.aws_clients import AwsCredentialsError
from orca.cli.cluster_settings import process_settings
from orca.cli.errors import EXIT_FAILURE, EXIT_OK, CommandError
from orca.kube_clients import KubeConfigError
from orca.logging import configure_logging
from orca.temporal_client import TemporalUnavailable


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watcher",
        help="run the watcher: the virtual node that connects Kubernetes pods to workflows",
        description=(
            "Register the virtual node and keep its Lease alive, watch the pods bound to it and "
            "start or signal one PodLifecycle workflow per pod, consume the EC2 interruption "
            "queue, and serve the kubelet endpoint `kubectl logs` reaches. With two replicas, "
            "the one holding the leader Lease acts. SIGTERM or Ctrl-C stops it and leaves the "
            "node NotReady."
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = process_settings(
        args.config,
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
    )
    configure_logging(settings.logging, component="watcher")
    from orca.watcher.main import main  # the watcher's imports are only paid by this command

    try:
        main(settings)
    except (KubeConfigError, TemporalUnavailable, AwsCredentialsError) as error:
        raise CommandError(f"orca watcher: {error}", exit_code=EXIT_FAILURE) from None
    except OSError as error:  # a port already taken (node.kubeletPort, watcher.healthPort, ...)
        raise CommandError(
            f"orca watcher: cannot listen: {error}", exit_code=EXIT_FAILURE
        ) from None
    return EXIT_OK
