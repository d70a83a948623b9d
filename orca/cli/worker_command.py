"""`orca worker`: run the Temporal worker that hosts PodLifecycle and its activities."""

from __future__ import annotations

import argparse

from orca.aws_clients import AwsCredentialsError
from orca.cli.cluster_settings import process_settings
from orca.cli.errors import CommandError
from orca.kube_clients import KubeConfigError
from orca.logging import configure_logging
from orca.temporal_client import TemporalUnavailable


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the worker (PodLifecycle workflows and their activities)",
        description="Poll the Temporal task queue and run pod lifecycles against EC2 and "
        "Kubernetes. Stops cleanly on SIGINT/SIGTERM.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = process_settings(
        args.config,
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
    )
    configure_logging(settings.logging, component="worker")
    from orca.worker.main import main

    try:
        main(settings)
    except (AwsCredentialsError, KubeConfigError, TemporalUnavailable) as error:
        raise CommandError(str(error)) from None
    return 0
